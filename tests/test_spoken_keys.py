"""Spoken numbers are keys only where they mean one (issue 13), and the whole-utterance
shapes and weak matches the NLU component settles by rule. No model needed:
bot/nlu/components.py."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.components import SpokenBranchClassifier, spoken_branch, spoken_key, utterance_shape

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        # The cases: ordinary words that looked like "ấn một", "nhấn tư".
        "con tôi bị ép không mà không chịu ăn một chút nào",
        "tôi muốn được nhận tư vấn về chế độ ăn cho ép không",
        # Typed without marks: "an", "nhan", "tu" are not cues or digits there.
        "con toi bi ep khong ma khong chiu an mot chut nao",
        "toi muon duoc nhan tu van ve che do an cho ep khong",
        "tôi chờ từ tháng tư đến giờ",
        "số tiền hai triệu",
        "nhánh ba mươi",
        "bấm hai lần rồi mà không được",
        "tôi ăn năm bữa",
        # The emergency service named in a question, not asked for.
        "khi nào thì chuyển đi cấp cứu",
        "khi nào phải chuyển người bệnh đi cấp cứu",
        "xe cấp cứu có mất tiền không",
    ],
)
def test_ordinary_words_are_not_keys(text):
    assert spoken_branch(text) is None


@pytest.mark.parametrize(
    "text, branch",
    [
        ("chuyển sang nhánh số bốn", 4),
        ("chuyển sang sáu", 6),
        ("nối máy hai", 2),
        ("ấn năm", 5),
        ("nhấn phím hai", 2),
        ("nhánh tư", 4),
        ("cho tôi số hai", 2),
        ("tôi muốn nối máy sang một một lăm", 1),
        ("con tôi khó thở gọi 115 giúp tôi", 1),
        # The emergency service asked for by name, like its number.
        ("chuyển tôi đi cấp cứu luôn", 1),
        ("em ơi nối tôi sang cấp cứu ngay", 1),
        ("cho tôi gặp bên cấp cứu", 1),
        ("gọi giúp tôi xe cấp cứu", 1),
        ("chuyen toi di cap cuu", 1),
    ],
)
def test_cue_words_make_a_number_a_key(text, branch):
    assert spoken_branch(text) == branch


@pytest.mark.parametrize("text", ["sáu", "dạ năm ạ", "cho tôi một", "số không"])
def test_a_bare_number_is_a_key_only_when_the_utterance_has_ended(text):
    branch, bare = spoken_key(text) or (None, None)
    assert branch is not None and bare
    # The voice line's fast path routes partial transcripts: "cho tôi một…" goes on.
    assert spoken_key(text, partial=True) is None


@pytest.mark.parametrize("text", ["nhánh năm", "nối máy một một lăm", "bấm số ba"])
def test_cue_words_and_115_work_on_partial_transcripts(text):
    assert spoken_key(text, partial=True) == spoken_key(text)


@pytest.mark.parametrize(
    "text, shape",
    [
        ("ừm", "filler"),
        ("ờ", "filler"),
        ("ờ thì", "filler"),
        ("um", "filler"),
        # A reaction to what the bot said is no request either.
        ("thế à", "filler"),
        ("ồ vậy hả", "filler"),
        ("thế cơ à", "filler"),
        ("the a", "filler"),
        ("phải", "affirm"),
        ("chắc là vậy", "affirm"),
        ("dạ phải ạ", "affirm"),
        ("vâng cảm ơn em", "affirm"),
        ("đúng rồi cảm ơn em nhé", "affirm"),
        ("chuyển đi", "affirm"),
        ("cảm ơn em", "thank"),
        ("cam on em", "thank"),
        ("chuyển cho tôi sang bên đó", "refer_offered"),
        ("bên đó", "refer_offered"),
        ("thế còn hồ sơ nộp ở đâu", "follow_up"),
        ("còn thủ tục thế nào", "follow_up"),
        ("thôi cảm ơn em nhé", "goodbye"),
        ("cảm ơn em chào em", "goodbye"),
        ("thoi cam on em", "goodbye"),
        # Not shapes: left to the classifier.
        ("thôi không cần đâu", None),
        ("không phải bên đó", None),
        ("thế còn người có công thì sao", None),
        ("thế sao lại cắt tiền của tôi", None),
        ("tôi muốn hỏi về hồ sơ lao động tự do nộp ở đâu", None),
        # A follow-up opens with its marker; "vậy" at the end is only a particle.
        ("khai báo ở đâu vậy em", None),
        ("hết hạn nộp hồ sơ rồi thì còn nộp được không", None),
    ],
)
def test_whole_utterance_shapes(text, shape):
    assert utterance_shape(text) == shape


def _classified(intent: str, confidence: float, answer_confidence: float = 1.0) -> Message:
    """A message as the classifier leaves it, for the rule pass after it."""
    message = Message(data={TEXT: "hầm bà lằng xắng cấu"})
    message.set(INTENT, {"name": intent, "confidence": confidence})
    message.set(INTENT_RANKING_KEY, [{"name": intent, "confidence": confidence}])
    message.set(
        "response_selector",
        {intent: {"response": {"confidence": answer_confidence}}},
    )
    return message


@pytest.mark.parametrize(
    "intent, confidence, answer_confidence, after",
    [
        ("out_of_scope", 0.42, 1.0, "nlu_fallback"),  # a guess: ask again
        ("out_of_scope", 0.8, 1.0, "out_of_scope"),  # sure: say it is not our business
        ("faq_f0", 0.9, 0.3, "nlu_fallback"),  # the family is sure, the answer is not
        ("faq_f0", 0.9, 0.8, "faq_f0"),
        ("cdc", 0.42, 1.0, "cdc"),  # other intents: the fallback threshold decides
    ],
)
def test_weak_out_of_scope_and_faq_matches_are_not_understood(
    intent, confidence, answer_confidence, after
):
    message = _classified(intent, confidence, answer_confidence)
    SpokenBranchClassifier().process([message])
    assert message.get(INTENT)["name"] == after
