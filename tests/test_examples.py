"""Adding a trainer's example: normalised, written in its topic file, refused when wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.tools.examples import (
    ROUTE_NAMES,
    ExampleRefused,
    add_example,
    intent_for_route,
    preview,
    route_of_intent,
    validation_errors,
)
from bot.tools.training import load_examples
from bot.vocabulary import Route
from tests.config import SETTINGS

# Rasa's validator and the training data, no model loaded.
pytestmark = pytest.mark.unit


@pytest.fixture
def data(tmp_path: Path) -> Path:
    copy = tmp_path / "nlu_data"
    shutil.copytree(SETTINGS.nlu_data, copy)
    return copy


def test_every_route_has_a_vietnamese_name_and_an_intent_that_teaches_it():
    assert list(ROUTE_NAMES) == list(Route) and len(ROUTE_NAMES) == 21
    for route in Route:
        assert route_of_intent(intent_for_route(route)) == route


def test_text_is_put_in_the_recognisers_form_with_a_diff():
    change = preview("Cho tôi hỏi, chỗ tiêm mũi 3 ở đâu?")
    assert change.text == "cho tôi hỏi chỗ tiêm mũi ba ở đâu"
    assert ("-", "3") in change.diff and ("+", "ba") in change.diff
    assert ("=", "tiêm") in change.diff
    assert not preview("nhánh năm").changed


def test_an_example_goes_into_its_topic_file_and_nothing_else_changes(data: Path):
    before = {p.name: p.read_text(encoding="utf-8") for p in (data / "nlu").glob("*.yml")}
    added = add_example(SETTINGS, "transfer:2", "Cho tôi hỏi chỗ tiêm vắc xin mũi 3 ở đâu", data)
    assert added.intent == "cdc" and added.file.name == "transfer.yml"
    assert "cho tôi hỏi chỗ tiêm vắc xin mũi ba ở đâu" in load_examples(data)["cdc"]
    after = {p.name: p.read_text(encoding="utf-8") for p in (data / "nlu").glob("*.yml")}
    assert {n for n in after if after[n] != before[n]} == {"transfer.yml"}
    old, new = before["transfer.yml"].splitlines(), after["transfer.yml"].splitlines()
    # One line more, every other line (comments, order, other intents) as it was.
    assert len(new) == len(old) + 1
    inserted = new.index("    - cho tôi hỏi chỗ tiêm vắc xin mũi ba ở đâu")
    assert new[:inserted] + new[inserted + 1 :] == old
    assert validation_errors(SETTINGS, data) == []


def test_a_faq_example_goes_to_the_retrieval_intent(data: Path):
    added = add_example(SETTINGS, "faq:f0_thuoc", "ép không thì uống thuốc hạ sốt loại nào", data)
    assert added.intent == "faq_f0/f0_thuoc" and added.file.name == "faq.yml"


def test_a_duplicate_of_another_intents_example_is_refused_and_nothing_is_written(data: Path):
    before = {p: p.read_text(encoding="utf-8") for p in (data / "nlu").glob("*.yml")}
    existing = load_examples(data)["emergency"][0]
    from bot.nlu.text import strip_diacritics

    # The same sentence typed without diacritics, taught to another route.
    with pytest.raises(ExampleRefused, match="emergency"):
        add_example(SETTINGS, "transfer:3", strip_diacritics(existing).upper(), data)
    with pytest.raises(ExampleRefused, match="đã có"):
        add_example(SETTINGS, "transfer:1", existing, data)
    assert {p: p.read_text(encoding="utf-8") for p in before} == before


def test_a_heldout_sentence_is_refused(data: Path):
    from bot.tools.evaluation import load_heldout

    text, route = load_heldout(SETTINGS.heldout)[0]
    with pytest.raises(ExampleRefused, match="heldout"):
        add_example(SETTINGS, route, text, data)


def test_unknown_route_and_empty_text_are_refused(data: Path):
    with pytest.raises(ExampleRefused, match="tuyến"):
        add_example(SETTINGS, "transfer:9", "xin chào", data)
    with pytest.raises(ExampleRefused, match="trống"):
        add_example(SETTINGS, "transfer:1", " ?! ", data)
    # The page's route list starts unchosen (its first route is the emergency branch).
    with pytest.raises(ExampleRefused, match="chưa chọn tuyến"):
        add_example(SETTINGS, "", "xin chào", data)


def test_rasas_validator_finds_a_broken_project(data: Path):
    # Examples that are not a block of "- " lines break Rasa's schema.
    (data / "nlu" / "broken.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: [1, 2]\n', encoding="utf-8"
    )
    assert validation_errors(SETTINGS, data)
