"""The dialogue rules of the foundation issue, on the real trained model.

Each test is one caller's conversation (tests/conftest.py: Conversation), with the
in-process custom actions, exactly as the chat command and the server run it.
"""

from __future__ import annotations

import pytest
import yaml

from bot.nlu.replies import HangUp, Say, Transfer
from bot.vocabulary import Route
from tests.config import SETTINGS

pytestmark = pytest.mark.engines

RESPONSES = yaml.safe_load(SETTINGS.rasa_domain.read_text(encoding="utf-8"))["responses"]


def text(response: str) -> str:
    return RESPONSES[response][0]["text"]


def faq_texts(family: str) -> set[str]:
    return {v[0]["text"] for k, v in RESPONSES.items() if k.startswith(f"utter_{family}/")}


def said(actions) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


def transfers(actions) -> list[str]:
    routes = [a.route for a in actions if isinstance(a, Transfer)]
    # Typed from the brain on: a plain string here once reached a line that needs a Route.
    assert all(isinstance(r, Route) for r in routes), routes
    return routes


# Sentences nobody could route: the dialogue must say it did not understand.
GIBBERISH = ["quạc quạc tùng xèng lô tô", "hầm bà lằng xắng cấu", "xòe xòe lung tung beng"]


def test_the_call_opens_with_the_greeting(conversation):
    assert said(conversation.greeting) == [text("utter_greet")]


def test_an_emergency_is_transferred_at_once_without_a_question(conversation):
    actions = conversation.say("mẹ tôi tự nhiên ngất xỉu gọi cấp cứu giúp tôi với")
    assert said(actions) == [text("utter_transfer_1")]
    assert transfers(actions) == ["transfer:1"]


def test_text_typed_without_diacritics_is_read_with_its_marks_and_kept_as_typed(conversation):
    from bot.nlu.brain import run

    question = conversation.say("nha toi het gao roi")
    assert said(question) == [text("utter_confirm_6")]
    # The dialogue's record holds what the caller typed, and how the bot read it.
    heard = run(conversation.brain.last_route(conversation.id))
    assert heard.text == "nha toi het gao roi"
    assert heard.restored_text == "nhà tôi hết gạo rồi"
    answer = conversation.say("vang dung roi")
    assert transfers(answer) == ["transfer:6"]


@pytest.mark.parametrize(
    "request_text, branch",
    [
        ("ở ngõ tôi có người nghi nhiễm tôi muốn báo cho bên y tế dự phòng", 2),
        ("chồng tôi là ép không điều trị ở nhà tôi cần bác sĩ tư vấn", 3),
        ("quán karaoke cạnh nhà tôi vẫn hát ầm ĩ giữa lúc giãn cách", 4),
        ("tôi nộp hồ sơ ba tháng rồi mà chưa được giải quyết tôi muốn khiếu nại", 5),
        ("phòng trọ chúng tôi hết sạch gạo rồi xin hỗ trợ lương thực", 6),
    ],
)
def test_other_transfers_are_confirmed_and_yes_transfers(conversation, request_text, branch):
    question = conversation.say(request_text)
    assert said(question) == [text(f"utter_confirm_{branch}")]
    assert transfers(question) == []
    answer = conversation.say("vâng đúng rồi")
    assert transfers(answer) == [f"transfer:{branch}"]
    assert said(answer) == [text(f"utter_transfer_{branch}")]


def test_no_to_a_confirmation_asks_again_and_the_next_request_is_heard(conversation):
    conversation.say("tôi muốn đăng ký xét nghiệm cho cả nhà")
    again = conversation.say("không phải")
    assert said(again) == [text("utter_ask_again")] and transfers(again) == []
    nxt = conversation.say("bố tôi đang khó thở lắm")
    assert transfers(nxt) == ["transfer:1"]


@pytest.mark.parametrize(
    "utterance, route",
    [
        ("cho tôi nối máy nhánh năm", "transfer:5"),
        ("phím ba", "transfer:3"),
        ("sáu", "transfer:6"),
        ("nối máy một một lăm", "transfer:1"),
        ("bấm phím không", "operator"),
    ],
)
def test_spoken_branches_and_bare_digits_transfer_directly(conversation, utterance, route):
    assert transfers(conversation.say(utterance)) == [route]


def test_a_branch_that_does_not_exist_reads_the_menu(conversation):
    actions = conversation.say("cho tôi nhánh bảy")
    assert said(actions) == [text("utter_menu")] and transfers(actions) == []


@pytest.mark.parametrize(
    "digit, route", [("4", "transfer:4"), ("1", "transfer:1"), ("0", "operator")]
)
def test_keypad_digits_transfer(conversation, digit, route):
    assert transfers(conversation.press(digit)) == [route]


def test_social_faq_answer_then_offer_of_branch_5_and_yes(conversation):
    answer = conversation.say("tôi bán hàng rong mất việc thì được hỗ trợ bao nhiêu tiền")
    spoken = said(answer)
    assert len(spoken) == 2
    assert spoken[0] == text("utter_faq_social/lao_dong_tu_do")
    assert spoken[1] == text("utter_offer_5")
    assert transfers(conversation.say("có")) == ["transfer:5"]


def test_f0_faq_answer_then_no_then_nothing_else_says_goodbye(conversation):
    answer = conversation.say("ép không ở nhà sốt cao thì uống thuốc gì")
    spoken = said(answer)
    assert spoken[0] in faq_texts("faq_f0") and spoken[1] == text("utter_offer_3")
    assert said(conversation.say("không cần")) == [text("utter_anything_else")]
    bye = conversation.say("không")
    assert said(bye) == [text("utter_goodbye")]
    assert any(isinstance(a, HangUp) for a in bye)


def test_repeat_says_the_last_answer_again_and_keeps_the_context(conversation):
    first = said(conversation.say("hộ cận nghèo thì được hỗ trợ những gì"))
    assert said(conversation.say("em nói lại được không")) == first
    assert said(conversation.say("nhắc lại giúp tôi với")) == first
    # The offer is still the open question: "có" answers it.
    assert transfers(conversation.say("có")) == ["transfer:5"]


def test_repeat_of_a_confirmation_question_then_yes(conversation):
    question = said(conversation.say("tôi muốn phản ánh có nhóm người tụ tập đánh bài"))
    assert said(conversation.say("nói lại đi")) == question
    assert transfers(conversation.say("vâng")) == ["transfer:4"]


@pytest.mark.parametrize("nonsense", GIBBERISH)
def test_gibberish_is_not_understood(brain, nonsense):
    from bot.nlu.brain import run

    assert run(brain.parse(nonsense))["intent"]["name"] == "nlu_fallback"


def test_not_understood_once_twice_three_times(conversation):
    assert said(conversation.say(GIBBERISH[0])) == [text("utter_ask_rephrase")]
    assert said(conversation.say(GIBBERISH[1])) == [text("utter_menu_not_understood")]
    third = conversation.say(GIBBERISH[2])
    assert transfers(third) == ["operator"]


def test_not_understood_then_understood_resets(conversation):
    conversation.say(GIBBERISH[0])
    assert transfers(conversation.say("con tôi co giật sốt cao quá")) == ["transfer:1"]


@pytest.mark.parametrize("backchannel", ["vâng", "dạ", "ừ"])
def test_a_backchannel_alone_is_not_a_request(conversation, backchannel):
    actions = conversation.say(backchannel)
    assert transfers(actions) == []
    assert not any(isinstance(a, HangUp) for a in actions)


def test_alo_hears_that_we_are_listening(conversation):
    assert said(conversation.say("alo alo")) == [text("utter_im_here")]


def test_goodbye_hangs_up(conversation):
    actions = conversation.say("thôi cảm ơn em nhé")
    assert said(actions) == [text("utter_goodbye")]
    assert isinstance(actions[-1], HangUp)


def test_an_empty_turn_does_nothing(conversation):
    assert conversation.say("   ") == []


def test_the_operator_on_request(conversation):
    assert transfers(conversation.say("tôi muốn gặp nhân viên tổng đài")) == ["operator"]
