"""Which words may end a caller's request (bot/call/turn_end.py), and the rule that uses them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.call.machine import CallConfig, understood
from bot.call.turn_end import EndWords, example_texts
from tests.config import SETTINGS

pytestmark = pytest.mark.unit

NLU = """version: "3.1"
nlu:
- intent: faq_social
  examples: |
    - cho tôi hỏi về trợ cấp thất nghiệp ạ
    - hỏi về hộ nghèo
    - Trợ cấp cho [lao động tự do](group) thế nào?
- lookup: city
  examples: |
    - hà nội
"""


@pytest.fixture
def words(tmp_path: Path) -> EndWords:
    (tmp_path / "nlu").mkdir()
    (tmp_path / "nlu" / "faq.yml").write_text(NLU, encoding="utf-8")
    return EndWords.from_training_data(tmp_path)


def test_examples_are_read_in_the_recognisers_form(tmp_path: Path) -> None:
    (tmp_path / "faq.yml").write_text(NLU, encoding="utf-8")
    assert list(example_texts(tmp_path)) == [
        "cho tôi hỏi về trợ cấp thất nghiệp ạ",
        "hỏi về hộ nghèo",
        "trợ cấp cho lao động tự do thế nào",
        "hà nội",
    ]


def test_rates_count_how_often_a_word_ends_an_example(words: EndWords) -> None:
    assert words.rate("về") == pytest.approx(0.5 / 3)  # 2 times, never last
    assert words.rate("ạ") == pytest.approx(1.5 / 2)  # once, last
    assert words.rate("nào") > words.rate("cho")
    assert words.rate("chưa-thấy-bao-giờ") == 0.5  # unknown: nothing against it
    assert words.may_end("Cho tôi hỏi về trợ cấp thất nghiệp ạ.", 0.5)
    assert not words.may_end("cho tôi hỏi về", 0.5)
    assert not words.may_end("", 0.0)


def test_the_early_end_rule_needs_the_nlu_and_the_last_word(words: EndWords) -> None:
    config = dataclasses.replace(CallConfig(), end_words=words, early_end_min_end_rate=0.3)
    whole, beginning = "hỏi về hộ nghèo", "hỏi về"
    assert understood(whole, "faq:ho_ngheo", "faq_social", 0.95, config)
    assert not understood(beginning, "faq:ho_ngheo", "faq_social", 0.95, config)  # last word
    assert not understood(whole, "faq:ho_ngheo", "faq_social", 0.5, config)  # unsure
    assert not understood(whole, "fallback", "greet", 0.99, config)  # not a request
    assert understood("vâng", "fallback", "affirm", 0.99, config)  # a complete answer
    # Without the word counts, the NLU alone decides.
    assert understood(beginning, "faq:ho_ngheo", "faq_social", 0.95, CallConfig())


def test_the_projects_training_data_gives_sensible_ends() -> None:
    words = EndWords.from_training_data(SETTINGS.nlu_data)
    for ending in ("ạ", "không", "gì"):
        assert words.rate(ending) >= 0.3, ending
    for middle in ("về", "cho", "của"):
        assert words.rate(middle) < 0.1, middle
