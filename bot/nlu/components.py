"""Custom Rasa NLU component: branch numbers said aloud ("nhánh năm", "phím ba").

A statistical classifier is the wrong tool for "nhánh năm" vs "nhánh ba": the
words around the number are identical and the number is what matters. This
component finds a spoken keypad branch deterministically, adds it as the
``branch`` entity and, when it finds one, sets the intent to ``choose_branch``
(overriding DIET and the FallbackClassifier), so the dialogue and the ``route``
command both transfer directly. It runs last in the pipeline (config.yml).
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.routes import BRANCH_ENTITY, CHOOSE_BRANCH_INTENT
from bot.nlu.text import fold, merge_accent, numbers_as_digits

# Patterns are matched on a key with no diacritics and every Hanoi onset merge
# collapsed to one spelling (l->n, tr->ch, s->x, gi/r->d; bot/nlu/text.py), so
# "nhánh lăm", "nhanh nam" and "nhánh năm" are one text, as are "sáu" and "xáu".
_DIGITS: dict[str, int] = {
    "khong": 0, "0": 0,
    "mot": 1, "1": 1,
    "hai": 2, "2": 2,
    "ba": 3, "3": 3,
    "bon": 4, "tu": 4, "4": 4,
    "nam": 5, "5": 5,
    "xau": 6, "6": 6,
}  # fmt: skip
_DIGIT = "|".join(sorted(_DIGITS, key=len, reverse=True))
# "115", "một một lăm", "một trăm mười lăm" (all "115" once numbers are digits,
# bot/nlu/text.py numbers_as_digits): the emergency number is branch 1.
_EMERGENCY_NUMBER = re.compile(r"\b115\b")
# A keyword naming the keypad, then the digit: "nhánh năm", "phím số ba", "bấm hai";
# not a count ("bấm hai lần", "nhánh ba mươi").
_NOT_A_BRANCH_AFTER = r"(?:muoi|tram|nghin|chieu|nan|nguoi|ngay|thang|tuoi|do)"
_KEYWORD_DIGIT = re.compile(
    rf"\b(?:nhanh|phim|bam|an|nhan)(?: (?:xo|phim))? ({_DIGIT})\b(?! {_NOT_A_BRANCH_AFTER})"
)
# The whole utterance is a digit with politeness around it: "dạ năm ạ", "số ba".
_FILLER = (
    r"(?:da|vang|u|a|oi|em|chi|anh|cho|toi|minh|chon|xo|nhe|nha|nhi|di|nuon|dup|"
    r"nam on|xin|noi may|chuyen may|may|xang|qua|den|vao|gap|na|thi|voi|cai)"
)
_BARE_DIGIT = re.compile(rf"^(?:{_FILLER} )*({_DIGIT})(?: {_FILLER})*$")


def _key(text: str) -> str:
    return fold(merge_accent(numbers_as_digits(text)))


def spoken_branch(text: str) -> int | None:
    """The keypad branch (0-6) a caller names in ``text``, or None."""
    key = _key(text)
    if not key:
        return None
    if _EMERGENCY_NUMBER.search(key):
        return 1
    match = _KEYWORD_DIGIT.search(key)
    if match:
        return _DIGITS[match.group(1)]
    match = _BARE_DIGIT.match(key)
    if not match:
        return None
    digit = _DIGITS[match.group(1)]
    # A lone "không" is "no", not branch zero: zero needs "số" before it ("số không").
    if digit == 0 and not key[: match.start(1)].endswith("xo "):
        return None
    return digit


@DefaultV1Recipe.register(
    [
        DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR,
        DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER,
    ],
    is_trainable=False,
)
class SpokenBranchClassifier(GraphComponent):
    """Rasa pipeline component wrapping :func:`spoken_branch`."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SpokenBranchClassifier:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            branch = spoken_branch(message.get(TEXT) or "")
            if branch is None:
                continue
            entities = [e for e in message.get(ENTITIES, []) if e.get("entity") != BRANCH_ENTITY]
            entities.append(
                {
                    "entity": BRANCH_ENTITY,
                    "value": str(branch),
                    "start": 0,
                    "end": len(message.get(TEXT) or ""),
                    "confidence_entity": 1.0,
                    "extractor": type(self).__name__,
                }
            )
            message.set(ENTITIES, entities, add_to_output=True)
            intent = {"name": CHOOSE_BRANCH_INTENT, PREDICTED_CONFIDENCE_KEY: 1.0}
            ranking = [intent] + [
                i
                for i in message.get(INTENT_RANKING_KEY, [])
                if i.get("name") != CHOOSE_BRANCH_INTENT
            ]
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
