"""Custom Rasa NLU component: what a caller says that a classifier should not guess.

A statistical classifier is the wrong tool for "nhánh năm" vs "nhánh ba": the
words around the number are identical and the number is what matters. This
component finds a spoken keypad branch deterministically, adds it as the
``branch`` entity and, when it finds one, sets the intent to ``choose_branch``
(overriding DIET and the FallbackClassifier), so the dialogue and the ``route``
command both transfer directly. It runs last in the pipeline (config.yml).

A number is a key only where it means one (issue 13): after a cue word ("nhánh",
"phím", "bấm", "số", "nối máy", "chuyển sang"), or alone as the whole answer
("sáu", "dạ năm ạ"); "một một lăm" (115) anywhere. Text that carries diacritics is
matched with them, so "ăn một" is not "ấn một" and "nhận tư vấn" is not "nhấn tư".

The same pass settles a few other whole-utterance shapes deterministically, where
a classifier trained on sentences is unreliable: a filler alone ("ừm", "ờ"), the
short answers to a question ("phải", "chắc là vậy", "vâng cảm ơn em"), thanks
alone, "bên đó" (the branch just offered), a follow-up about the last topic
("thế còn hồ sơ nộp ở đâu"), and a FAQ match too weak to read out (it becomes
``nlu_fallback``, so it climbs the not-understood ladder instead of answering).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

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
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.routes import BRANCH_ENTITY, CHOOSE_BRANCH_INTENT, FAQ_INTENTS, OUT_OF_SCOPE_INTENT
from bot.nlu.text import merge_accent, normalise, numbers_as_digits, strip_diacritics

# Intents this component sets (domain.yml lists them).
FILLER_INTENT = "filler"
AFFIRM_INTENT = "affirm"
DENY_INTENT = "deny"
THANK_INTENT = "thank"
GOODBYE_INTENT = "goodbye"
REFER_OFFERED_INTENT = "refer_offered"
FOLLOW_UP_INTENT = "follow_up"
FALLBACK_INTENT = "nlu_fallback"
# The role of a ``branch`` entity found from a bare number ("sáu"), not a cue word:
# a partial transcript has no end yet, so a bare number in it is not a key.
BARE_ROLE = "bare"
# Below this ResponseSelector confidence a FAQ answer is a guess: a 20-second answer
# to "ờ thì" is worse than "please say it again". Chosen on the held-out set, where
# right FAQ answers score far above it (README, "The dialogue").
WEAK_FAQ_CONFIDENCE = 0.5
# The same for "not our business": out_of_scope is where a classifier puts sentences
# unlike anything it knows ("hầm bà lằng xắng cấu" scored 0.42), and telling a caller
# we do not handle what we did not understand is worse than asking again.
WEAK_OUT_OF_SCOPE_CONFIDENCE = 0.5


@dataclass(frozen=True)
class _Forms:
    """Patterns in two spellings: with diacritics (and Hanoi onset merges applied,
    l->n, tr->ch, s->x, gi/r->d, as bot/nlu/text.py does), and folded to bare ASCII."""

    marked: re.Pattern[str]
    bare: re.Pattern[str]


def _key(text: str, marked: bool) -> str:
    # Numbers are read once, as digits, for this and the red-flag layer (bot/nlu/text.py):
    # "một một lăm", "một trăm mười lăm" and "115" are one key.
    merged = merge_accent(numbers_as_digits(text))
    return merged if marked else strip_diacritics(merged)


def has_diacritics(text: str) -> bool:
    """True when the text carries Vietnamese marks (the recogniser's form, careful typing)."""
    norm = normalise(text)
    return norm != strip_diacritics(norm)


def _merged(pattern: str) -> str:
    # Patterns are written as people spell the words; the keys they are matched on
    # have the onsets merged ("rồi" -> "dồi", "số" -> "xố"), so the words are too.
    return re.sub(r"[^\W\d_]+", lambda m: merge_accent(m.group(0)), pattern)


def _forms(marked: str, bare: str) -> _Forms:
    return _Forms(re.compile(_merged(marked)), re.compile(_merged(bare)))


def _match(forms: _Forms, text: str, how: str = "search") -> re.Match[str] | None:
    """``how``: "search" anywhere, "match" at the start, "full" the whole utterance."""
    marked = has_diacritics(text)
    pattern = forms.marked if marked else forms.bare
    key = _key(text, marked)
    if how == "full":
        return pattern.fullmatch(key)
    return pattern.match(key) if how == "match" else pattern.search(key)


# Digits as the merged key spells them ("sáu" -> "xáu", "lăm" -> "năm").
_DIGITS_MARKED: dict[str, int] = {
    "không": 0, "0": 0, "một": 1, "1": 1, "hai": 2, "2": 2, "ba": 3, "3": 3,
    "bốn": 4, "tư": 4, "4": 4, "năm": 5, "5": 5, "xáu": 6, "6": 6,
}  # fmt: skip
# Without diacritics "tu" is both "tư" (four) and "từ" (from): not a digit there.
_DIGITS_BARE: dict[str, int] = {
    "khong": 0, "0": 0, "mot": 1, "1": 1, "hai": 2, "2": 2, "ba": 3, "3": 3,
    "bon": 4, "4": 4, "nam": 5, "5": 5, "xau": 6, "6": 6,
}  # fmt: skip


def _alternation(words: dict[str, int] | list[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_DIGIT_M = _alternation(_DIGITS_MARKED)
_DIGIT_B = _alternation(_DIGITS_BARE)
# "115", "một một lăm", "một trăm mười lăm": the emergency number is branch 1, anywhere.
_EMERGENCY_NUMBER = _forms(
    r"(?<!\w)(115|một một lăm|một trăm mười lăm)(?!\w)",
    r"\b(115|mot mot lam|mot tram muoi lam)\b",
)
# The emergency service asked for by name, like its number: "chuyển tôi đi cấp cứu", "nối máy
# sang bên cấp cứu", "cho tôi gặp cấp cứu", "gọi giúp tôi xe cấp cứu". A request needs its
# object or "máy": "khi nào thì chuyển đi cấp cứu" is a question about the danger signs.
_PRONOUN_M = r"(?:tôi|em|mình|chị|anh|cháu|con|bác|cô|chú)"
_PRONOUN_B = r"(?:toi|em|minh|chi|anh|chau|con|bac|co|chu)"
_EMERGENCY_NAMED = _forms(
    rf"(?<!\w)(?:(?:chuyển|nối|kết nối)(?: máy)?(?: cho| giúp| hộ)? {_PRONOUN_M}|nối máy|"
    rf"kết nối|cho {_PRONOUN_M} gặp|gọi (?:giúp|hộ)(?: {_PRONOUN_M})?)(?: ngay| luôn| gấp)?"
    r"(?: (?:đi|sang|qua|tới|đến|vào|với|cho))? (?:bên |trung tâm |đội |xe |đường dây )?"
    r"cấp cứu(?!\w)",
    rf"\b(?:(?:chuyen|noi|ket noi)(?: may)?(?: cho| giup| ho)? {_PRONOUN_B}|noi may|"
    rf"ket noi|cho {_PRONOUN_B} gap|goi (?:giup|ho)(?: {_PRONOUN_B})?)(?: ngay| luon| gap)?"
    r"(?: (?:di|sang|qua|toi|den|vao|voi|cho))? (?:ben |trung tam |doi |xe |duong day )?"
    r"cap cuu\b",
)
# Words after a number that make it a count, not a key: "bấm hai lần", "nhánh ba mươi".
_COUNT_WORDS_M = (
    "mươi|mười|trăm|nghìn|ngàn|triệu|chiều|lần|người|ngày|tháng|tuổi|độ|giờ|phút|"
    "tiếng|cái|con|viên|nghìn|đồng|tuần|năm"
)
_COUNT_WORDS_B = (
    "muoi|tram|nghin|ngan|trieu|chieu|lan|nguoi|ngay|thang|tuoi|do|gio|phut|tieng|cai|con|vien|"
    "dong|tuan|nam"
)
# A cue word naming the keypad, then the digit: "nhánh năm", "phím số ba", "bấm hai",
# "nối máy (sang) hai", "chuyển sang nhánh sáu", "số hai" (the last only at the end:
# "số tiền hai triệu" is not a key).
_CUE_M = (
    r"(?:nhánh|phím|bấm|ấn|nhấn|nối máy(?: cho \w+)?(?: sang| qua| tới| đến| vào| với)?|"
    r"chuyển sang|chuyển qua|chuyển máy(?: sang| qua| tới| đến)?)"
)
_CUE_B = (
    r"(?:nhanh|phim|bam|noi may(?: cho \w+)?(?: sang| qua| toi| den| vao| voi)?|"
    r"chuyen sang|chuyen qua|chuyen may(?: sang| qua| toi| den)?)"
)
_KEYWORD_DIGIT = _forms(
    rf"(?<!\w){_CUE_M}(?: (?:số|phím|nhánh))? ({_DIGIT_M})(?!\w)(?! (?:{_COUNT_WORDS_M})(?!\w))",
    rf"\b{_CUE_B}(?: (?:so|phim|nhanh))? ({_DIGIT_B})\b(?! (?:{_COUNT_WORDS_B})\b)",
)
# Politeness and carrier words around a number said alone: "dạ năm ạ", "cho tôi số ba".
_FILLER_M = (
    r"(?:dạ|vâng|ừ|à|ạ|ơi|em|chị|anh|cho|tôi|mình|chọn|số|nhé|nha|nhỉ|đi|muốn|giúp|"
    r"làm ơn|xin|nối máy|chuyển máy|máy|sang|qua|đến|vào|gặp|thì|với|cái|nhánh|phím|bấm)"
)
_FILLER_B = (
    r"(?:da|vang|u|a|oi|em|chi|anh|cho|toi|minh|chon|so|nhe|nha|nhi|di|muon|giup|"
    r"lam on|xin|noi may|chuyen may|may|sang|qua|den|vao|gap|thi|voi|cai|nhanh|phim|bam)"
)
_BARE_DIGIT = _forms(
    rf"(?:{_FILLER_M} )*({_DIGIT_M})(?: {_FILLER_M})*",
    rf"(?:{_FILLER_B} )*({_DIGIT_B})(?: {_FILLER_B})*",
)


def _digit(word: str) -> int:
    return _DIGITS_MARKED.get(word, _DIGITS_BARE.get(word, -1))


def spoken_key(text: str, partial: bool = False) -> tuple[int, bool] | None:
    """The keypad branch (0-6) a caller names in ``text`` and whether it was a bare
    number, or None. ``partial``: the text may go on, so a bare number is no key."""
    if not normalise(text):
        return None
    if _match(_EMERGENCY_NUMBER, text) or _match(_EMERGENCY_NAMED, text):
        return 1, False
    match = _match(_KEYWORD_DIGIT, text)
    if match:
        return _digit(match.group(1)), False
    if partial:
        return None
    match = _match(_BARE_DIGIT, text, how="full")
    if not match:
        return None
    digit = _digit(match.group(1))
    # A lone "không" is "no", not branch zero: zero needs "số" before it ("số không").
    if digit == 0 and not re.search(r"(?:xố|xo) $", match.string[: match.start(1)]):
        return None
    return digit, True


def spoken_branch(text: str, partial: bool = False) -> int | None:
    """The keypad branch (0-6) a caller names in ``text``, or None."""
    found = spoken_key(text, partial)
    return found[0] if found else None


# --- whole-utterance shapes ------------------------------------------------------

_ADDRESS_M = r"(?:ạ|à|em|chị|anh|cô|chú|bác|cháu|bạn|nhé|nha|nhá|ơi|nhiều|lắm|đấy|đó|vậy|thế|rồi)"
_ADDRESS_B = r"(?:a|em|chi|anh|co|chu|bac|chau|ban|nhe|nha|oi|nhieu|nam|day|do|vay|the|roi)"
# A filler alone, or a reaction to what the bot said ("thế à", "vậy hả"): wait for the rest,
# never an FAQ answer to two syllables with no topic in them.
_FILLER_ONLY = _forms(
    r"(?:(?:ừm+|ừ m|ờm?|ơ|ồ|à|ưm|hừm+|hmm+|um+|ờ thì|à thì|thì|là|mà|kiểu|ấy|để xem nào|"
    r"để xem|xem nào|để tôi xem|đợi tí|chờ tí|nào|(?:thế|vậy) (?:cơ )?(?:à|hả|á|ư|sao)) ?)+",
    r"(?:(?:um+|hmm+|hm|u m|om|o|a|o thi|a thi|(?:the|vay) (?:co )?(?:a|ha|u|sao)) ?)+",
)
_THANKS_M = r"(?:cảm ơn|cám ơn)"
_THANKS_B = r"(?:cam on)"
_YES_M = (
    r"(?:dạ|vâng|ừ|ờ|có|phải|đúng|được|ok|ô kê|chắc là vậy|chắc vậy|chắc thế|có lẽ vậy|"
    r"có lẽ thế|hình như vậy|phải rồi|đúng rồi|chuẩn rồi|chuyển đi|chuyển máy đi|nối máy đi)"
)
_YES_B = (
    r"(?:vang|u|co|phai|dung|duoc|ok|chac la vay|chac vay|chac the|co le vay|phai roi|"
    r"dung roi|chuyen di)"
)
# "phải", "dạ phải ạ", "chắc là vậy", "vâng cảm ơn em": a yes, and nothing else.
_AFFIRM_ONLY = _forms(
    rf"(?:dạ )?{_YES_M}(?: {_YES_M})*(?: {_ADDRESS_M})*(?: {_THANKS_M}(?: {_ADDRESS_M})*)?",
    rf"(?:da )?{_YES_B}(?: {_YES_B})*(?: {_ADDRESS_B})*(?: {_THANKS_B}(?: {_ADDRESS_B})*)?",
)
# Thanks alone ("cảm ơn em"): in answer to a confirmation it is a yes (rules.yml).
_THANKS_ONLY = _forms(
    rf"(?:(?:dạ|vâng|em|tôi|chị|anh|cháu|bác|ừ|ờ|ok) )*{_THANKS_M}(?: {_ADDRESS_M})*",
    rf"(?:(?:da|vang|em|toi|chi|anh|chau|bac|u|ok) )*{_THANKS_B}(?: {_ADDRESS_B})*",
)
# "thôi cảm ơn em nhé", "cảm ơn em chào em": thanks that close the call.
_CLOSE_M = r"(?:thôi|thế thôi|vậy thôi|thế nhé|vậy nhé|được rồi|thôi được rồi)"
_CLOSE_B = r"(?:thoi|the thoi|vay thoi|the nhe|vay nhe|duoc roi|thoi duoc roi)"
_BYE_M = r"(?:chào|tạm biệt|chào tạm biệt)"
_BYE_B = r"(?:chao|tam biet|chao tam biet)"
_GOODBYE_ONLY = _forms(
    rf"(?:(?:dạ|vâng|ừ|ờ|ok) )*(?:{_CLOSE_M}(?: {_ADDRESS_M})* {_THANKS_M}(?: {_ADDRESS_M})*"
    rf"(?: {_BYE_M}(?: {_ADDRESS_M})*)?|{_THANKS_M}(?: {_ADDRESS_M})* {_BYE_M}(?: {_ADDRESS_M})*)",
    rf"(?:(?:da|vang|u|ok) )*(?:{_CLOSE_B}(?: {_ADDRESS_B})* {_THANKS_B}(?: {_ADDRESS_B})*"
    rf"(?: {_BYE_B}(?: {_ADDRESS_B})*)?|{_THANKS_B}(?: {_ADDRESS_B})* {_BYE_B}(?: {_ADDRESS_B})*)",
)
# "bên đó", "chuyển cho tôi sang bên đó": the branch the bot just named.
_THERE_M = (
    r"(?:bên đó|bên đấy|bên ấy|chỗ đó|chỗ đấy|chỗ ấy|nơi đó|nhánh đó|nhánh ấy|nhánh đấy|"
    r"chỗ em vừa nói|bên em vừa nói|nơi em vừa nói)"
)
_THERE_B = (
    r"(?:ben do|ben day|ben ay|cho do|cho day|cho ay|noi do|nhanh do|nhanh ay|nhanh day|"
    r"cho em vua noi|ben em vua noi)"
)
_REFER = _forms(rf"(?<!\w){_THERE_M}(?!\w)", rf"\b{_THERE_B}\b")
_NEGATION = _forms(r"(?<!\w)(?:không|đừng|chưa|thôi khỏi)(?!\w)", r"\b(?:khong|dung|chua)\b")
# A follow-up: a marker, a detail, and no topic of its own ("thế còn hồ sơ nộp ở đâu").
_FOLLOW_MARKER = _forms(
    r"(?:thế còn|vậy còn|còn|thế thì|vậy thì|thế|vậy|thế em ơi|em ơi thế)(?!\w)",
    r"(?:the con|vay con|con|the thi|vay thi|the|vay)\b",
)
_DETAIL = _forms(
    r"(?<!\w)(?:hồ sơ|giấy tờ|thủ tục|nộp|ở đâu|bao giờ|khi nào|hạn|trẻ con|trẻ em|con nhỏ|"
    r"nói thêm|cụ thể|chi tiết|gì nữa|mức|bao nhiêu)(?!\w)",
    r"\b(?:ho so|giay to|thu tuc|nop|o dau|bao gio|khi nao|han|tre con|tre em|con nho|"
    r"noi them|cu the|chi tiet|gi nua|muc|bao nhieu)\b",
)
_TOPIC = _forms(
    r"(?<!\w)(?:tự do|chấm dứt|hợp đồng|giáo viên|tư thục|mầm non|tạm hoãn|ngừng việc|"
    r"nghèo|có công|thương binh|bảo trợ|ép không|cách ly|ô xy|thuốc|sốt|ăn uống|nguy hiểm|"
    r"khó thở|xét nghiệm|gạo|cấp cứu|bác sĩ)(?!\w)",
    r"\b(?:tu do|cham dut|hop dong|giao vien|tu thuc|mam non|tam hoan|ngung viec|ngheo|"
    r"co cong|thuong binh|bao tro|ep khong|cach ly|o xy|thuoc|sot|an uong|nguy hiem|kho tho|"
    r"xet nghiem|gao|cap cuu|bac si)\b",
)
_MAX_FOLLOW_UP_SYLLABLES = 12


def utterance_shape(text: str) -> str | None:
    """The intent of a whole-utterance shape found without the classifier, or None."""
    if not normalise(text):
        return None
    if _match(_FILLER_ONLY, text, how="full"):
        return FILLER_INTENT
    if _match(_AFFIRM_ONLY, text, how="full"):
        return AFFIRM_INTENT
    if _match(_THANKS_ONLY, text, how="full"):
        return THANK_INTENT
    if _match(_GOODBYE_ONLY, text, how="full"):
        return GOODBYE_INTENT
    if _match(_REFER, text) and not _match(_NEGATION, text):
        return REFER_OFFERED_INTENT
    if (
        len(normalise(text).split()) <= _MAX_FOLLOW_UP_SYLLABLES
        and _match(_FOLLOW_MARKER, text, how="match")
        and _match(_DETAIL, text)
        and not _match(_TOPIC, text)
    ):
        return FOLLOW_UP_INTENT
    return None


def _selector_confidence(message: Message, intent: str) -> float:
    selector = (message.get("response_selector") or {}).get(intent) or {}
    return float((selector.get("response") or {}).get("confidence") or 0.0)


_Rule = TypeVar("_Rule", bound="RuleComponent")


class RuleComponent(GraphComponent):
    """A pipeline component that learns nothing: its rules are its code, so Rasa creates
    it without configuration or storage (the red-flag layer is one too)."""

    @classmethod
    def create(
        cls: type[_Rule],
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> _Rule:
        return cls()


@DefaultV1Recipe.register(
    [
        DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR,
        DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER,
    ],
    is_trainable=False,
)
class SpokenBranchClassifier(RuleComponent):
    """Rasa pipeline component: spoken keys (:func:`spoken_key`), whole-utterance
    shapes (:func:`utterance_shape`) and weak FAQ or out-of-scope matches, decided by rule."""

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            found = spoken_key(text)
            if found is not None:
                branch, bare = found
                entity: dict[str, Any] = {
                    "entity": BRANCH_ENTITY,
                    "value": str(branch),
                    "start": 0,
                    "end": len(text),
                    "confidence_entity": 1.0,
                    "extractor": type(self).__name__,
                }
                if bare:
                    entity["role"] = BARE_ROLE
                others = [e for e in message.get(ENTITIES, []) if e.get("entity") != BRANCH_ENTITY]
                message.set(ENTITIES, [*others, entity], add_to_output=True)
                _set_intent(message, CHOOSE_BRANCH_INTENT)
                continue
            shape = utterance_shape(text)
            if shape is not None:
                _set_intent(message, shape)
                continue
            intent = message.get(INTENT) or {}
            name = intent.get("name") or ""
            if name in FAQ_INTENTS:
                weak = _selector_confidence(message, name) < WEAK_FAQ_CONFIDENCE
            else:
                confidence = float(intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
                weak = name == OUT_OF_SCOPE_INTENT and confidence < WEAK_OUT_OF_SCOPE_CONFIDENCE
            if weak:
                _set_intent(message, FALLBACK_INTENT)
        return messages


def _set_intent(message: Message, name: str) -> None:
    intent = {"name": name, PREDICTED_CONFIDENCE_KEY: 1.0}
    ranking = [intent] + [i for i in message.get(INTENT_RANKING_KEY, []) if i.get("name") != name]
    message.set(INTENT, intent, add_to_output=True)
    message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)


# An utterance of at least this many syllables, at least this share of them never seen in
# training, is noise or another language, not a request: the classifier's answer to it is
# a guess ("quạc quạc tùng xèng lô tô" scored 0.92 as an emergency, from "quạt" in one
# example). No held-out or hard-set sentence has half its syllables unknown.
UNKNOWN_MIN_SYLLABLES = 3
UNKNOWN_SHARE = 0.5


_C = TypeVar("_C", bound="OneFileComponent")


class OneFileComponent(GraphComponent):
    """A trainable pipeline component whose learned state is one text file in the model:
    ``train`` calls ``save``, and ``load`` hands the file back to ``restore_state``."""

    FILE = "state.json"

    def __init__(self, model_storage: ModelStorage, resource: Resource) -> None:
        self._model_storage, self._resource = model_storage, resource

    @classmethod
    def create(
        cls: type[_C],
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> _C:
        return cls(model_storage, resource)

    @classmethod
    def load(
        cls: type[_C],
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> _C:
        component = cls(model_storage, resource)
        with model_storage.read_from(resource) as folder:
            component.restore_state((folder / cls.FILE).read_text(encoding="utf-8"))
        return component

    def save(self, state: str) -> Resource:
        with self._model_storage.write_to(self._resource) as folder:
            (folder / self.FILE).write_text(state, encoding="utf-8")
        return self._resource

    def restore_state(self, state: str) -> None:
        raise NotImplementedError


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class UnknownWordsGuard(OneFileComponent):
    """Rasa pipeline component: an utterance made mostly of syllables the training data
    never had becomes ``nlu_fallback``. It learns the syllables (every variant the
    training sees, so typed text without diacritics is known too) and keeps them in
    the model; it runs after the FallbackClassifier and before the rules that
    recognise keys and red flags, which still win."""

    FILE = "known.json"

    def __init__(self, model_storage: ModelStorage, resource: Resource) -> None:
        super().__init__(model_storage, resource)
        self.known: set[str] = set()

    def train(self, training_data: TrainingData) -> Resource:
        self.known = {
            w for m in training_data.training_examples for w in normalise(m.get(TEXT) or "").split()
        }
        return self.save(json.dumps(sorted(self.known), ensure_ascii=False))

    def restore_state(self, state: str) -> None:
        self.known = set(json.loads(state))

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            words = normalise(message.get(TEXT) or "").split()
            if not self.known or len(words) < UNKNOWN_MIN_SYLLABLES:
                continue
            if sum(w not in self.known for w in words) >= UNKNOWN_SHARE * len(words):
                _set_intent(message, FALLBACK_INTENT)
        return messages
