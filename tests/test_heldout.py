"""The held-out routing set: independent of training, and routed well enough."""

from __future__ import annotations

import pytest

from bot.nlu.text import fold
from bot.tools.evaluation import load_hard, load_heldout, score, variants
from bot.tools.training import heldout_overlap, load_examples, shared_runs
from tests.config import SETTINGS

pytestmark = pytest.mark.engines

ROWS = load_heldout(SETTINGS.heldout)
# The development set (tuning) is kept apart from training like the held-out set.
DEV_ROWS = load_heldout(SETTINGS.dev_set)
# The targets of docs/product.md ("Targets that make it best in its field"), on a held-out
# set that shares no 4-syllable run with the training data (the old one did, and said 98.9%).
# `make eval` on model 20261201-184824: 97.0% clean (492/507), 97.2% without diacritics (read
# a second time with their marks restored), 96.3% accent-merged: all three met.
TARGETS = {"clean": 0.97, "no_diacritics": 0.95, "accent_merged": 0.95}
# What the tests hold the model to: today's figures less a point or so (the classifier
# trains deterministically, so the margin is for new training data, which moves a few of
# 507 sentences either way), so that a change that loses ground fails the build.
# Raise them, never lower.
FLOORS = {"clean": 0.96, "no_diacritics": 0.96, "accent_merged": 0.95}


def test_heldout_and_dev_sets_are_big_and_cover_every_route():
    from bot.vocabulary import Route

    assert len(ROWS) >= 500
    assert {r for _, r in ROWS} == set(Route)
    assert len(DEV_ROWS) >= 400
    assert {r for _, r in DEV_ROWS} == set(Route)


@pytest.mark.parametrize("rows", [ROWS, DEV_ROWS], ids=["heldout", "dev"])
def test_no_heldout_or_dev_sentence_is_in_the_training_data(rows):
    assert heldout_overlap([t for t, _ in rows], SETTINGS.nlu_data) == []


@pytest.mark.parametrize("rows", [ROWS, DEV_ROWS], ids=["heldout", "dev"])
def test_no_heldout_or_dev_sentence_shares_four_syllables_with_a_training_example(rows):
    # A held-out sentence that repeats four syllables of a training example measures
    # memory, not understanding; the issue-10 check found the old set was.
    examples = [t for texts in load_examples(SETTINGS.nlu_data).values() for t in texts]
    assert shared_runs([t for t, _ in rows], examples) == []


def test_shared_runs_finds_a_four_syllable_run_folded():
    examples = ["tôi muốn hỏi về tiền hỗ trợ"]
    assert shared_runs(["cho hoi ve tien ho tro nhe"], examples) == [
        ("cho hoi ve tien ho tro nhe", "hoi ve tien ho")
    ]
    assert shared_runs(["hỏi về tiền thôi"], examples) == []  # three syllables only


def test_heldout_dev_and_hard_sets_are_disjoint_and_without_repeats():
    heldout = [fold(t) for t, _ in ROWS]
    dev = [fold(t) for t, _ in DEV_ROWS]
    hard = [fold(r.text) for r in load_hard(SETTINGS.emergency_hard)]
    for rows in (heldout, dev, hard):
        assert len(set(rows)) == len(rows)
    assert set(heldout) & set(hard) == set()
    assert set(dev) & (set(heldout) | set(hard)) == set()
    # Tuning on the development set must not tune on the held-out set's phrasings.
    assert shared_runs([t for t, _ in DEV_ROWS], [t for t, _ in ROWS]) == []


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
        results = [run(brain.route(t)) for t in texts]
        return [(r.route, r.confidence) for r in results]

    return {name: score(name, rows, route) for name, rows in variants(ROWS).items()}


@pytest.mark.parametrize("variant", list(FLOORS))
def test_routing_accuracy_holds_its_floor(scores, variant):
    s = scores[variant]
    assert s.accuracy >= FLOORS[variant], (
        f"{variant}: {s.accuracy:.1%} < {FLOORS[variant]:.0%} (target {TARGETS[variant]:.0%}); "
        f"confusions: {s.confusions}"
    )
