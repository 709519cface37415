"""The unknown-words guard (bot/nlu/components.py): noise is not a request."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.components import UnknownWordsGuard

pytestmark = pytest.mark.unit


class Storage:
    """Rasa's model storage, as a folder: write_to and read_from the same one."""

    def __init__(self, folder):
        self.folder = folder

    def write_to(self, resource):
        from contextlib import nullcontext

        return nullcontext(self.folder)

    read_from = write_to


def trained(tmp_path, *examples: str) -> UnknownWordsGuard:
    guard = UnknownWordsGuard.create({}, Storage(tmp_path), "guard", None)  # type: ignore[arg-type]
    messages = [Message(data={"text": t, "intent": "x"}) for t in examples]
    guard.train(TrainingData(training_examples=messages))
    return UnknownWordsGuard.load({}, Storage(tmp_path), "guard", None)  # type: ignore[arg-type]


def intent_of(guard: UnknownWordsGuard, text: str) -> str:
    message = Message(data={"text": text, "intent": {"name": "emergency", "confidence": 0.92}})
    guard.process([message])
    return message.get("intent")["name"]


def test_mostly_unknown_syllables_fall_back_and_the_rest_is_left_alone(tmp_path) -> None:
    guard = trained(tmp_path, "mẹ tôi khó thở", "quạt điện bị chập", "me toi kho tho")
    assert intent_of(guard, "quạc quạc xèng quạt") == "nlu_fallback"  # 3 of 4 unknown
    assert intent_of(guard, "mẹ tôi khó thở quá") == "emergency"  # 1 of 5
    assert intent_of(guard, "Mẹ tôi, KHÓ THỞ!") == "emergency"  # the recogniser's form
    assert intent_of(guard, "me toi kho tho") == "emergency"  # typed, a trained variant
    assert intent_of(guard, "quạc xèng") == "emergency"  # too short to judge: the threshold's
    ranking = Message(data={"text": "tùng xèng lô tô", "intent": {"name": "emergency"}})
    guard.process([ranking])
    assert ranking.get("intent_ranking")[0]["name"] == "nlu_fallback"


def test_an_untrained_guard_changes_nothing(tmp_path) -> None:
    guard = UnknownWordsGuard.create({}, Storage(tmp_path), "guard", None)  # type: ignore[arg-type]
    assert intent_of(guard, "quạc quạc tùng xèng lô tô") == "emergency"
