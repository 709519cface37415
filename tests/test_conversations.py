"""Whole conversations as callers have them, on the real trained model (issue 13).

tests/data/conversations.yml holds them (one or more for every rule of
docs/product.md and every failure of issue 13; bot/tools/conversations.py has the
format), replayed turn by turn with the in-process custom actions, as /api/chat
and the phone run them. A property test plays random turn sequences: whatever came
before, an emergency still transfers and a key still works, and no reply repeats
an action.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.nlu.replies import HangUp, Say, Transfer
from bot.tools.conversations import Conversation, load, replay
from tests.config import SETTINGS

pytestmark = pytest.mark.engines
CONVERSATIONS = load(SETTINGS.conversations)

# The rules of docs/product.md ("Rules that a good hotline keeps", and the call) and the
# failures of issue 13 that the suite must cover, each by at least one conversation.
PRODUCT_RULES = [
    "product: emergencies at once",
    "product: other transfers confirmed in one question",
    "product: không asks again",
    "product: after a FAQ answer, offer the branch",
    "product: after a FAQ answer, offer more help",
    "product: digits always work",
    "product: * repeats",
    "product: saying nhánh năm works",
    "product: saying phím ba works",
    "product: nối máy một một lăm",
    "product: not understood twice, the menu; a third time, an operator",
    "product: alo",
    "product: a human when the bot cannot help",
]
ISSUE_FAILURES = [f"issue-13.{n}" for n in range(1, 7)]


def _run():  # type: ignore[no-untyped-def]
    from bot.nlu.brain import run

    return run


def test_the_suite_is_big_and_covers_every_rule_and_failure():
    assert len(CONVERSATIONS) >= 60
    covers = [c for conv in CONVERSATIONS for c in conv.covers]
    for rule in PRODUCT_RULES:
        assert rule in covers, rule
    for failure in ISSUE_FAILURES:
        assert any(c.startswith(failure) for c in covers), failure
    assert len({c.name for c in CONVERSATIONS}) == len(CONVERSATIONS), "names must be unique"


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: c.name)
def test_conversation(brain, conversation: Conversation):
    lines: list[str] = []
    results = replay(brain, conversation, _run(), show=lines.append)
    problems = [p for r in results for p in r.problems]
    assert not problems, "\n".join(lines)
    for result in results:
        said = [a.response for a in result.actions if isinstance(a, Say)]
        repeated = [r for r, n in Counter(said).items() if n > 1]
        assert not repeated, f"a reply repeats {repeated}:\n" + "\n".join(lines)


# Turns a caller might say in any order: answers, requests, fillers, nonsense.
POOL = [
    "vâng",
    "không",
    "dạ",
    "ừm",
    "ờ thì",
    "alo alo",
    "nói lại đi",
    "cảm ơn em",
    "chào em",
    "có những nhánh nào",
    "thời tiết hôm nay thế nào",
    "quạc quạc tùng xèng lô tô",
    "thế còn hồ sơ nộp ở đâu",
    "cho tôi sang bên đó",
    "hộ cận nghèo được hỗ trợ bao nhiêu tiền",
    "ép không ở nhà sốt cao thì uống thuốc gì",
    "tôi muốn đăng ký xét nghiệm cho cả nhà",
    "nhà tôi hết gạo rồi không còn gì ăn cả",
    "không phải tôi muốn hỏi về người có công",
]
KEYS = ["*", "#", "7", "9"]
TURNS = st.one_of(st.sampled_from(POOL), st.sampled_from(KEYS).map(lambda k: f"[{k}]"))


def _play(brain, conversation_id: str, turn: str) -> list:  # type: ignore[no-untyped-def, type-arg]
    run = _run()
    if turn.startswith("[") and turn.endswith("]"):
        return run(brain.digit(conversation_id, turn[1:-1]))  # type: ignore[no-any-return]
    return run(brain.turn(conversation_id, turn))  # type: ignore[no-any-return]


def _ended(actions: list) -> bool:  # type: ignore[type-arg]
    return any(isinstance(a, (Transfer, HangUp)) for a in actions)


@settings(
    max_examples=6,  # each example plays up to a dozen turns on the real model
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    turns=st.lists(TURNS, min_size=1, max_size=8),
    last=st.sampled_from(["emergency", "1", "3", "5", "0"]),
)
def test_after_any_turns_an_emergency_transfers_and_a_key_works(brain, turns, last):
    import uuid

    run = _run()
    conversation_id = f"prop-{uuid.uuid4().hex[:12]}"
    run(brain.start(conversation_id))
    for turn in turns:
        actions = _play(brain, conversation_id, turn)
        said = [a.response for a in actions if isinstance(a, Say)]
        assert len(said) == len(set(said)), (turns, turn, said)
        if _ended(actions):
            return  # the call is over (a transfer or a goodbye): nothing follows
    if last == "emergency":
        actions = run(brain.turn(conversation_id, "bố tôi ngất rồi không thở được"))
        assert [a.route for a in actions if isinstance(a, Transfer)] == ["transfer:1"], turns
    else:
        actions = run(brain.digit(conversation_id, last))
        route = "operator" if last == "0" else f"transfer:{last}"
        assert [a.route for a in actions if isinstance(a, Transfer)] == [route], turns


@pytest.mark.parametrize("text", ["cho tôi một", "dạ sáu"])
def test_the_fast_path_takes_no_bare_number_from_a_partial_transcript(brain, text):
    run = _run()
    assert run(brain.route(text)).route.startswith("transfer:")  # said whole, a key
    assert run(brain.route(text, partial=True)).route == "fallback"  # it may go on


def test_ordinary_words_in_a_partial_are_no_emergency(brain):
    # Issue 13: "… không chịu ăn một" went to 115 from the partial transcript.
    run = _run()
    partial = run(brain.route("con tôi bị ép không mà không chịu ăn một", partial=True))
    assert partial.route != "transfer:1" and partial.intent != "choose_branch"


def test_the_fast_path_still_hears_115_and_cue_words_in_a_partial(brain):
    run = _run()
    assert run(brain.route("nối máy cho tôi sang một một lăm", partial=True)).route == "transfer:1"
    assert run(brain.route("cho tôi nối máy nhánh năm", partial=True)).route == "transfer:5"


def test_the_fast_path_waits_for_what_the_sentence_may_take_back(brain):
    run = _run()
    # "khó thở có… phải là dấu hiệu nặng không": said whole, three words are an emergency;
    # as the beginning of a question, they wait for the rest.
    assert run(brain.route("khó thở có")).route == "transfer:1"
    assert run(brain.route("khó thở có", partial=True)).route == "fallback"
    assert run(brain.route("hôm qua mẹ tôi khó thở", partial=True)).route == "fallback"
    live = run(brain.route("alo mẹ tôi khó thở", partial=True))
    assert live.route == "transfer:1" and live.red_flag is not None


def test_chat_replays_a_conversation_file(tmp_path):
    from tests.conftest import run_bot

    script = tmp_path / "call.txt"
    script.write_text("vâng\nừm\ntôi muốn đi xét nghiệm\n[*]\nphải\n", encoding="utf-8")
    result = run_bot("chat", "--script", str(script))
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "caller: vâng" in out and "[utter_ask_again]" in out
    assert "caller presses: *" in out
    assert out.count("[utter_confirm_2]") == 2
    assert "-> transfer to transfer:2" in out
