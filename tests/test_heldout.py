"""The held-out routing set: independent of training, and routed well enough."""

from __future__ import annotations

import pytest

from bot.tools.evaluation import load_heldout, score, variants
from bot.tools.training import heldout_overlap, load_examples
from tests.config import SETTINGS

pytestmark = pytest.mark.engines

ROWS = load_heldout(SETTINGS.heldout)
# The targets of docs/product.md.
TARGETS = {"clean": 0.95, "no_diacritics": 0.90, "accent_merged": 0.90}


def test_heldout_set_is_big_and_covers_every_route():
    from bot.vocabulary import Route

    assert len(ROWS) >= 150
    assert {r for _, r in ROWS} == set(Route)


def test_no_heldout_sentence_is_in_the_training_data():
    assert heldout_overlap([t for t, _ in ROWS], SETTINGS.nlu_data) == []


def test_training_has_enough_examples_per_intent():
    examples = load_examples(SETTINGS.nlu_data)
    for intent in (
        "emergency",
        "cdc",
        "doctor_advice",
        "report_violation",
        "social_officer",
        "essential_supplies",
    ):
        assert len(examples[intent]) >= 36, intent
    faq = {k: v for k, v in examples.items() if k.startswith("faq_")}
    assert len(faq) == 13
    assert min(len(v) for v in faq.values()) >= 20


@pytest.fixture(scope="module")
def scores(brain):
    from bot.nlu.brain import run

    def route(texts):
        return [run(brain.route(t)).route for t in texts]

    return {name: score(name, rows, route) for name, rows in variants(ROWS).items()}


@pytest.mark.parametrize("variant", list(TARGETS))
def test_routing_accuracy_meets_the_target(scores, variant):
    s = scores[variant]
    assert s.accuracy >= TARGETS[variant], (
        f"{variant}: {s.accuracy:.1%} < {TARGETS[variant]:.0%}; confusions: {s.confusions}"
    )
