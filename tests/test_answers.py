"""FAQ answers are written for the ear (issue 13, docs/product.md): counted here.

Two to four sentences, at most about 60 syllables before the offer, one number a
sentence, the children's doses the facts give, no sentence heard as its own
negation, the 2021 support packages said as past, danger signs ending on 115.
"""

from __future__ import annotations

import re

import pytest
import yaml

from bot.vocabulary import Route
from tests.config import SETTINGS

pytestmark = pytest.mark.unit
RESPONSES = yaml.safe_load(SETTINGS.rasa_domain.read_text(encoding="utf-8"))["responses"]
ANSWERS = {k.split("/", 1)[1]: v[0]["text"] for k, v in RESPONSES.items() if "/" in k}
DETAILS = {
    k[len("utter_detail_") :]: v[0]["text"]
    for k, v in RESPONSES.items()
    if k.startswith("utter_detail_")
}
FAQ_KEYS = [r.faq_key for r in Route if r.faq_key]
MAX_SYLLABLES = 60
SPOKEN = {
    **{f"answer:{k}": t for k, t in ANSWERS.items()},
    **{f"detail:{k}": t for k, t in DETAILS.items()},
}

# Number words; "một" alone is mostly the article ("một viên"), "không" mostly "not",
# "tư" mostly "private" (tư thục), "triệu" in "triệu chứng": alone they are no number.
_NUMBER = set(
    "không một hai ba bốn tư năm lăm sáu bảy tám chín mười mươi mốt trăm nghìn ngàn "
    "triệu tỷ linh lẻ rưỡi".split()
)
_NOT_ALONE = ({"một"}, {"không"}, {"tư"}, {"triệu"}, {"trăm"})
# Inside one quantity: "ba mươi tám độ rưỡi", "mười đến mười lăm", "chín mươi sáu phần trăm".
_JOINS = {"đến", "tới", "độ", "phần"}


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s]


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def numbers(sentence: str) -> list[list[str]]:
    """The numbers said in a sentence, each a run of number words."""
    tokens = words(sentence)
    runs: list[list[str]] = []
    current: list[str] = []
    for i, token in enumerate(tokens):
        joins = token in _JOINS and current and i + 1 < len(tokens) and tokens[i + 1] in _NUMBER
        if token in _NUMBER or joins:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [r for r in runs if set(r) not in _NOT_ALONE]


def test_every_faq_key_has_an_answer_and_details():
    assert set(ANSWERS) == set(FAQ_KEYS)
    assert set(DETAILS) == set(FAQ_KEYS)


@pytest.mark.parametrize("key", FAQ_KEYS)
def test_an_answer_is_two_to_four_short_sentences(key):
    text = ANSWERS[key]
    assert 2 <= len(sentences(text)) <= 4, text
    assert len(words(text)) <= MAX_SYLLABLES, f"{len(words(text))} syllables: {text}"


@pytest.mark.parametrize("key", FAQ_KEYS)
def test_details_are_short_too(key):
    text = DETAILS[key]
    assert 2 <= len(sentences(text)) <= 4, text
    assert len(words(text)) <= MAX_SYLLABLES, text


@pytest.mark.parametrize("name", sorted(SPOKEN))
def test_one_number_a_sentence_at_most(name):
    text = SPOKEN[name]
    for sentence in sentences(text):
        assert len(numbers(sentence)) <= 1, (numbers(sentence), sentence)


def test_the_number_counter_counts():
    two = "Nghỉ dưới một tháng được một triệu tám trăm nghìn, từ một tháng trở lên được ba triệu."
    assert len(numbers(two)) == 2
    assert len(numbers("Trẻ em thì mỗi cân uống mười đến mười lăm mi li gam.")) == 1


@pytest.mark.parametrize("name", sorted(SPOKEN))
def test_no_sentence_is_heard_as_its_own_negation(name):
    text = SPOKEN[name]
    # "người bệnh ép không cần cấp cứu khi…" is heard as "… không cần cấp cứu".
    assert not re.search(r"ép không \w", text), text


def test_a_childs_fever_gets_the_childrens_dose():
    text = ANSWERS["f0_thuoc"]
    assert "Trẻ em" in text and "mười đến mười lăm mi li gam" in text


@pytest.mark.parametrize(
    "key", ["lao_dong_tu_do", "cham_dut_hdld", "tam_hoan_hdld", "chi_tra", "giao_duc_tu_thuc"]
)
def test_the_2021_packages_are_said_as_past(key):
    # Today is after 2026: a deadline of 31/01/2022 is over, never read as current.
    text = ANSWERS[key]
    assert re.search(r"đã (hết hạn|kết thúc)", text), text
    assert "chậm nhất" not in text and "Hạn nộp chậm" not in text


def test_the_danger_signs_answer_is_followed_by_the_offer_of_115():
    from bot.nlu.actions import offer_for

    assert offer_for("f0_dau_hieu_nguy_hiem") == 1
    assert "một một lăm" in RESPONSES["utter_offer_1"][0]["text"]
    rules = (SETTINGS.nlu_data / "rules.yml").read_text(encoding="utf-8")
    assert "  - action: utter_faq_f0\n  - action: action_offer\n" in rules
