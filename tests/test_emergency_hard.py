"""No emergency missed: the hard set through the trained model and the red-flag layer."""

from __future__ import annotations

import pytest

from bot.tools.evaluation import load_hard, score_hard
from tests.config import SETTINGS

ROWS = load_hard(SETTINGS.emergency_hard)
# docs/product.md, "Targets": every emergency reaches 115; at most 2% false emergencies.
MIN_RECALL = 1.0
MAX_FALSE_RATE = 0.02

pytestmark = pytest.mark.engines


def test_hard_set_is_big_enough():
    assert sum(r.kind == "emergency" for r in ROWS) >= 80
    assert sum(r.kind == "near_miss" for r in ROWS) >= 120


@pytest.fixture(scope="module")
def hard(brain):
    from bot.nlu.brain import run

    def route(texts):
        results = [run(brain.route(t)) for t in texts]
        return [(r.route, r.confidence) for r in results]

    return score_hard(ROWS, route)


def test_every_emergency_reaches_115(hard):
    assert hard.recall >= MIN_RECALL, f"missed: {hard.missed}"


def test_false_emergencies_stay_under_two_percent(hard):
    assert hard.false_rate <= MAX_FALSE_RATE, f"false emergencies: {hard.false_emergencies}"


def test_a_red_flag_wins_over_the_faq_and_says_why(brain):
    from bot.nlu.brain import run

    result = run(brain.route("máy đo ô xy của mẹ tôi chỉ còn tám mươi tám"))
    assert result.route == "transfer:1"
    assert result.red_flag == {
        "rule": "spo2",
        "matched": "ô xy của mẹ tôi chỉ còn 88",
        "route": "transfer:1",
    }
    assert result.as_dict()["red_flag"]["rule"] == "spo2"
    # A question about the same reading is still the FAQ, with no red flag.
    question = run(brain.route("ô xy dưới chín mươi sáu thì có phải đi viện không"))
    assert question.route == "faq:f0_dau_hieu_nguy_hiem"
    assert question.red_flag is None
    assert "red_flag" not in question.as_dict()


def test_the_conversation_keeps_why_it_went_to_115(brain):
    # What the voice line writes into the call record comes from the dialogue's own parse.
    from bot.nlu.brain import run

    run(brain.start("red-flag-call"))
    try:
        run(brain.turn("red-flag-call", "máy đo ô xy của mẹ tôi chỉ còn tám mươi tám"))
        routed = run(brain.last_route("red-flag-call"))
    finally:
        run(brain.forget("red-flag-call"))
    assert routed is not None and routed.route == "transfer:1"
    assert routed.red_flag is not None and routed.red_flag["rule"] == "spo2"
