"""The red-flag layer: a caller reporting a danger sign goes to 115, never to a FAQ.

A classifier trained on examples can read "ô xy của mẹ tôi chỉ còn tám mươi tám"
as a question about measuring SpO2; on a public health hotline that is the worst
mistake it can make. This layer runs after the classifiers (config.yml) and
decides by rules a supervisor can read, from the danger ranges of
faq-facts.md (section f0_dau_hieu_nguy_hiem, Quyết định 261):

- a vital reading in the danger range: SpO2 <= 96%, breathing >= 20/min for an
  adult (>= 30 for a child of 5-11, >= 40 for 1-4, >= 50 under one), pulse > 120
  or < 50, blood pressure under 90/60;
- a danger sign said about someone now: khó thở, thở hụt hơi, tím môi, co giật,
  ngất, lơ mơ, li bì, đau tức ngực...

It is not fired by a question about what the danger signs are ("khó thở có phải
dấu hiệu nguy hiểm không" stays faq:f0_dau_hieu_nguy_hiem), a negated sign
("không khó thở"), a sign that is over ("hôm qua khó thở nhưng giờ đỡ rồi"), or a
reading in the normal range. When it fires it sets the intent to ``emergency``
and records why in the parse result: ``red_flag: {"rule", "matched", "route"}``.

Matching is on a key (``_key``): numbers in digits, Hanoi onset merges collapsed
and diacritics removed, so "ô xy tám tám", "o xy 88" and "ô xi tám tám" are one
text. The key keeps one token per word of the caller, so the words that fired a
rule can be quoted back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.components import RuleComponent
from bot.nlu.routes import RED_FLAG_KEY
from bot.nlu.text import merge_accent, numbers_as_digits, strip_diacritics
from bot.vocabulary import RedFlagRule, Route

EMERGENCY_INTENT = "emergency"
ROUTE = Route.TRANSFER_1
CLEARED_KEY = "red_flag_cleared"  # parse-result field: an emergency the rules took back


def _key_tokens(text: str, marks: bool = False) -> tuple[list[str], list[str]]:
    """(key tokens, caller's tokens): the same length, one per word or number.

    Keys have the Hanoi merges collapsed and, unless ``marks``, no diacritics. In NFC
    a Vietnamese letter loses its marks without changing length, so both keys have
    the same character offsets."""
    words = numbers_as_digits(text).split()
    merged = [merge_accent(w) for w in words]
    return (merged if marks else [strip_diacritics(w) for w in merged]), words


def _phrases(*phrases: str, marks: bool = False) -> str:
    """A regex alternative of phrases written as callers say them, in key form."""
    keys = {" ".join(_key_tokens(p, marks)[0]) for p in phrases}
    return "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))


# --- what a vital reading is called ---------------------------------------------

_VITALS: dict[RedFlagRule, str] = {
    RedFlagRule.SPO2: _phrases(
        "spo2",
        "ô xy",
        "ôxy",
        "oxy",
        "ô xi",
        "o xi",
        "oxi",
        "ô-xy",
        "máy đo",
        "máy kẹp",
        "kẹp máy",
        "kẹp tay",
        "kẹp ngón",
        "bão hòa",
    ),
    RedFlagRule.BREATHING_RATE: _phrases("nhịp thở", "thở", "thở được", "thở tới"),
    RedFlagRule.PULSE: _phrases("mạch", "nhịp tim", "tim đập", "nhịp đập", "mạch đập"),
    RedFlagRule.BLOOD_PRESSURE: _phrases("huyết áp"),
}
_VITAL = re.compile("|".join(rf"(?P<{name}>\b(?:{alt})\b)" for name, alt in _VITALS.items()))
# A breathing count needs its unit ("thở 32 lần"), so "thở ô xy" or a count of
# days is never read as a rate.
_RATE_UNIT = {"nan", "lan", "nhip", "cai"}
_WINDOW = 10  # words between the name of a vital and its reading

# --- danger signs said as words ---------------------------------------------------

_SIGN_WORDS = (
    "khó thở", "thở khó", "thở khó khăn", "thở hụt hơi", "hụt hơi", "thở dốc", "thở gấp",
    "thở rít", "thở rên", "thở khò khè", "khò khè", "thở không nổi", "thở không ra hơi",
    "không ra hơi", "không thở được", "thở không được", "ngừng thở", "ngạt thở", "thở ngáp",
    "thở phì phò", "thở hổn hển", "thở yếu", "thở nhanh", "rút lõm", "phập phồng cánh mũi",
    "thở hắt", "thở rướn", "thoi thóp", "mặt xám", "xám ngoét",
    "tím môi", "môi tím", "môi thâm", "tím tái", "tím ngắt", "tím cả người", "tím lại",
    "đầu chi tím", "tím đầu ngón",
    "co giật", "giật giật", "lên cơn giật", "ngất", "ngất xỉu", "bất tỉnh", "lịm đi",
    "lịm dần", "nằm lịm", "lả đi", "mệt lả", "lơ mơ", "li bì", "lú lẫn", "mê man",
    "mê sảng", "gọi không dậy", "gọi không tỉnh", "gọi mãi không", "không tỉnh",
    "khó đánh thức", "không nhận ra ai",
    "đau tức ngực", "tức ngực", "đau ngực", "đau thắt ngực", "thắt ngực", "bó thắt ngực",
    "tụt huyết áp", "huyết áp tụt",
)  # fmt: skip
_SIGN = re.compile(rf"\b(?:{_phrases(*_SIGN_WORDS)})\b")


# Each sign's key -> its spellings with marks: "không tính" (did not count) and "không
# tỉnh" (unconscious) share the key "khong tinh", and the marks tell them apart.
def _spellings(phrases: tuple[str, ...]) -> dict[str, list[list[str]]]:
    spellings: dict[str, list[list[str]]] = {}
    for phrase in phrases:
        spellings.setdefault(" ".join(_key_tokens(phrase)[0]), []).append(
            _key_tokens(phrase, marks=True)[0]
        )
    return spellings


_SIGN_SPELLINGS = _spellings(_SIGN_WORDS)
# Words that look like a sign and are not: "ngạt mũi" (ngạt = ngất once folded),
# "ngất ngây".
_NOT_A_SIGN_AFTER = re.compile(r"^ (?:mui|ngay)\b")
_NOT_A_SIGN_AFTER_MARKED = re.compile(r"^ (?:mũi|ngây)\b")


def _spelled_otherwise(said: list[str], key: str, spellings: dict[str, list[list[str]]]) -> bool:
    """True when a word the caller typed with marks is not the phrase's word. A word typed
    bare matches any spelling: "kho thở" is still "khó thở"."""
    return not any(
        len(said) == len(spelling)
        and all(w == strip_diacritics(w) or w == s for w, s in zip(said, spelling, strict=True))
        for spelling in spellings.get(key, [])
    )


def _look_alike(t: _Text, m: re.Match[str]) -> bool:
    """Words that fold to a sign and are not one: typed with other marks ("không tính
    lương"), or a bare "ngất"/"ngạt" followed by "mũi" or "ngây" (with marks when the
    caller typed them, so "ngất xỉu ngay" stays a sign)."""
    if t.has_marks and _spelled_otherwise(
        t.marked[m.start() : m.end()].split(), m.group(0), _SIGN_SPELLINGS
    ):
        return True
    if m.group(0) != "ngat":
        return False
    if t.has_marks:
        return _NOT_A_SIGN_AFTER_MARKED.match(t.marked[m.end() :]) is not None
    return _NOT_A_SIGN_AFTER.match(t.key[m.end() :]) is not None


# --- what makes a mention not a live report ------------------------------------------


class _Words:
    """Marker words of the context. Matched with diacritics when the caller's text has
    them: once folded, merged spellings collide ("lắm", "làm" and "năm" are all "nam";
    "trưa" is "chưa"), which would make a marker out of an unrelated word."""

    def __init__(self, *phrases: str, suffix: str = "") -> None:
        self.marked = re.compile(rf"\b(?:{_phrases(*phrases, marks=True)})\b{suffix}")
        self.folded = re.compile(rf"\b(?:{_phrases(*phrases)})\b{suffix}")

    def pattern(self, t: _Text) -> re.Pattern[str]:
        return self.marked if t.has_marks else self.folded

    def search(self, t: _Text, start: int = 0, end: int | None = None) -> bool:
        return self.pattern(t).search(t.marked[start:end]) is not None


# "không khó thở", "chưa thấy khó thở", "hết khó thở", "không còn thở hụt hơi";
# the "không" of "ép không" is not one: F0 is written "f0" in the key.
_NEGATED_BEFORE = re.compile(
    r"\b(?:khong|chua|chang|het|khoi)(?: (?:bi|co|thay|con|he|con bi|bi gi))? $"
)
# The sign or reading is over, said after it: "... giờ đỡ rồi", "đã hết", "tỉnh táo rồi".
_IMPROVED_AFTER = _Words(
        "đỡ rồi", "đã đỡ", "đỡ hơn", "đỡ nhiều", "đã hết", "giờ hết", "nay hết", "khỏi rồi",
        "ổn rồi",
        "đã ổn", "bình thường rồi", "bình thường lại", "tỉnh táo", "tỉnh lại rồi",
        "dễ thở hơn", "đã được đưa", "đã nhập viện", "đã đi viện", "đã được đi viện",
    )  # fmt: skip
# A question about signs in general, a hypothesis, or a habit: enough on its own to
# say "not now", unless something says it is happening now.
_GENERIC = _Words(
        "nếu", "giả sử", "trường hợp", "khi nào", "lúc nào", "thế nào là", "như thế nào",
        "thế nào gọi là", "muốn biết", "chưa hiểu",
        "thế nào thì", "dấu hiệu", "biểu hiện", "triệu chứng nào", "bao nhiêu", "mức nào",
        "ngưỡng", "quy định", "người ta bảo", "người ta nói", "theo quyết định",
        "hay bị", "thường bị", "từng bị", "hồi còn", "tin đồn", "trên mạng", "chữa khỏi",
        "phòng khi", "lỡ mà", "đến mức", "tới mức", "nhận biết", "làm sao biết",
        "làm sao để biết", "kiểu nào thì", "trông thế nào", "khác nhau",
    )  # fmt: skip
# Weaker signs of a general question: they say "not now" only when no relative is
# named and nothing says it is happening now ("mẹ tôi ô xy 88 thì có sao không" is live).
_QUESTION = _Words(
        "có phải", "có nguy hiểm", "nguy hiểm", "có đáng lo", "đáng ngại", "có sao", "có tính là",
        "được coi là", "gọi là", "có nhanh", "có cần", "thì có", "thì phải", "là thấp",
        "bình thường", "đúng không", "phải không", "người lớn", "trẻ", "bệnh nhân",
        "người bệnh", "người bị", "người già", "người cao tuổi",
    suffix="",
)  # fmt: skip
_QUESTION_END = re.compile(r"\b(?:a|chua|à|chưa)$")
# "dưới chín mươi sáu", "từ hai mươi trở lên": a threshold, not a reading.
_COMPARATOR_BEFORE = _Words(
        "dưới", "trên", "từ", "quá", "hơn", "nhỏ hơn", "lớn hơn", "thấp hơn", "cao hơn",
        "tới", "đến",
    suffix=" $",
)  # fmt: skip
_LIVE = _Words(
        "đang", "vừa", "mới đo", "bây giờ", "giờ lại", "hiện giờ", "hiện tại", "lúc này",
        "từ sáng", "từ nãy", "từ tối", "cứu với", "cứu tôi", "cứu em", "cứu cháu",
        "cứu giúp", "gấp lên", "gấp giúp", "giúp gấp", "nhanh lên", "chỉ còn", "tụt còn",
        "không chịu được", "đo được", "đo thấy", "đo ra",
    )  # fmt: skip
_RELATIVE = _Words(
        "bố", "mẹ", "ba tôi", "ông", "bà", "cụ", "vợ", "chồng", "con tôi", "con gái",
        "con trai", "con bé", "cháu", "thằng bé", "em bé", "bé nhà", "anh tôi",
        "anh trai", "chị tôi", "chị gái", "em tôi", "em trai", "em gái", "nhà tôi",
        "người nhà", "hàng xóm", "ông xã", "bà xã", "tôi đang", "tôi bị", "tôi thấy",
        "tôi đo", "mình đang",
    )  # fmt: skip
# "đang nhiễm", "đang ở nhà": what is now is the infection, not the sign. When the sign is
# said after a word that makes it a supposition ("bố tôi đang nhiễm, nếu ông tím môi thì…"),
# these do not count as _LIVE. Said before one ("mẹ tôi đang nhiễm, môi tím rồi, nếu gọi
# 115…") they still do: a missed emergency costs more than an answer not needed. Not
# "trường hợp" or "muốn biết": "trường hợp của mẹ tôi…", "muốn biết mẹ tôi khó thở thế
# này…" report one.
_SUPPOSED_BEFORE = _Words(
        "nếu", "giả sử", "phòng khi", "lỡ mà", "nhận biết", "làm sao biết", "làm sao để biết",
    )  # fmt: skip
_STATUS = _Words(
        "đang nhiễm", "đang bị nhiễm", "đang mắc", "đang bị covid", "đang bị cô vít",
        "đang dương tính", "đang là ép không", "đang là f0", "đang cách ly", "đang điều trị",
        "đang ở nhà", "đang nằm nhà", "đang nằm ở nhà", "đang ở lán", "đang ở trọ",
    )  # fmt: skip
_CHILD = _Words("trẻ", "bé", "em bé", "cháu bé", "thằng bé", "con bé", "đứa bé")
_AGE = re.compile(r"\b(\d+) (tuoi|thang)\b")


@dataclass(frozen=True)
class RedFlag:
    """Why an utterance is an emergency: the rule, the caller's words, the route."""

    rule: RedFlagRule
    matched: str  # the caller's words that fired it
    route: str = ROUTE

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "matched": self.matched, "route": self.route}


class _Text:
    """One utterance as key tokens, with character offsets back to token indexes."""

    def __init__(self, text: str) -> None:
        self.keys, self.words = _key_tokens(text)
        self.key = " ".join(self.keys)
        self.marked = " ".join(_key_tokens(text, marks=True)[0])
        self.has_marks = self.marked != self.key
        self.starts: list[int] = []
        at = 0
        for k in self.keys:
            self.starts.append(at)
            at += len(k) + 1

    def token_at(self, offset: int) -> int:
        index = 0
        for i, start in enumerate(self.starts):
            if start <= offset:
                index = i
        return index

    def quote(self, first: int, last: int) -> str:
        return " ".join(self.words[first : last + 1])


def _number(token: str) -> tuple[int, int | None] | None:
    """'88' -> (88, None); '90/60' -> (90, 60); anything else -> None."""
    if token.isdigit():
        return int(token), None
    top, _, bottom = token.partition("/")
    if top.isdigit() and bottom.isdigit():
        return int(top), int(bottom)
    return None


def _age_in_years(t: _Text) -> float | None:
    for m in _AGE.finditer(t.key):
        value = int(m.group(1))
        return value / 12 if m.group(2) == "thang" else float(value)
    return None


def _breathing_danger(rate: int, t: _Text) -> bool:
    age = _age_in_years(t)
    if age is None:
        # A named child with no age: the threshold of 1-4 years, the most common caller.
        return rate >= (40 if _CHILD.search(t) else 20)
    if age < 1:
        return rate >= 50
    if age < 5:
        return rate >= 40
    if age < 12:
        return rate >= 30
    return rate >= 20


def _danger(vital: RedFlagRule, value: int, second: int | None, t: _Text, at: int) -> bool:
    if vital is RedFlagRule.SPO2:
        return 40 <= value <= 96
    if vital is RedFlagRule.BREATHING_RATE:
        return 8 <= value <= 120 and _breathing_danger(value, t)
    if vital is RedFlagRule.PULSE:
        return 20 <= value <= 250 and (value > 120 or value < 50)
    # Blood pressure: "90/60", "80 trên 50", or the upper figure alone.
    if second is None and at + 2 < len(t.keys) and t.keys[at + 1] == _OVER:
        found = _number(t.keys[at + 2])
        second = found[0] if found else None
    return 40 <= value <= 250 and (value < 90 or (second is not None and second < 60))


def _live(t: _Text, start: int) -> bool:
    """Is anything said to be happening now? The infection itself does not count when the
    sign at key offset ``start`` comes after a word of supposition."""
    if not _SUPPOSED_BEFORE.search(t, end=start):
        return _LIVE.search(t)
    without_status = _STATUS.pattern(t).sub(lambda m: " " * len(m.group()), t.marked)
    return _LIVE.pattern(t).search(without_status) is not None


def _not_now(t: _Text, start: int, end: int) -> bool:
    """Is the mention at key offsets [start, end) negated, over, or a general question?"""
    if _NEGATED_BEFORE.search(t.key[:start]) or _IMPROVED_AFTER.search(t, start=end):
        return True
    live = _live(t, start)
    if _GENERIC.search(t) and not live:
        return True
    weak = (
        _QUESTION.search(t)
        or _QUESTION_END.search(t.marked) is not None
        or _COMPARATOR_BEFORE.search(t, end=start)
    )
    return weak and not live and not _RELATIVE.search(t)


def _key_words(*words: str) -> set[str]:
    return {k for w in words for k in _key_tokens(w)[0]}


_CHANGE = _key_words(
    "lên", "xuống", "tụt", "còn", "nay", "tăng", "giảm", "lại", "ra"
)  # not "giờ": it folds to "độ"
_NOT_A_READING_AFTER = _key_words("phút", "giây", "tuổi", "ngày", "giờ", "tiếng", "tháng")
_OVER = _key_tokens("trên")[0][0]  # "90 trên 60"


def _readings(t: _Text) -> dict[RedFlagRule, tuple[int, int, int, int | None]]:
    """The current reading of each vital named: vital -> (name at, number at, value, lower)."""
    readings: dict[RedFlagRule, tuple[int, int, int, int | None]] = {}
    # Each alternative of _VITAL is a group named after its rule.
    names = [(t.token_at(m.start()), RedFlagRule(m.lastgroup)) for m in _VITAL.finditer(t.key)]
    for i, key in enumerate(t.keys):
        number = _number(key)
        # "1 phút", "3 tuổi", "2 ngày": a duration or an age, not a reading.
        if number is None or number[0] < 10 or set(t.keys[i + 1 : i + 2]) & _NOT_A_READING_AFTER:
            continue
        before = [(at, vital) for at, vital in names if at < i and i - at <= _WINDOW]
        if not before:
            continue
        at, vital = before[-1]
        if vital is RedFlagRule.BREATHING_RATE and t.keys[i + 1 : i + 2] not in [
            [u] for u in _RATE_UNIT
        ]:
            if t.keys[at : at + 2] != ["nhip", "tho"]:
                continue
        if i >= 2 and t.keys[i - 1] == _OVER and _number(t.keys[i - 2]):
            continue  # the lower figure of "90 trên 60", read with the upper one
        seen = readings.get(vital)
        # A later figure replaces the first only after a word of change ("94, nay lên 98"),
        # not when it is another figure on the screen ("98 với một số nữa là 72").
        if seen and seen[0] == at and not _CHANGE & set(t.keys[seen[1] + 1 : i]):
            continue
        readings[vital] = (at, i, number[0], number[1])
    return readings


def _quote_reading(t: _Text, at: int, i: int) -> str:
    last = i + 2 if t.keys[i + 1 : i + 2] == [_OVER] else i
    return t.quote(at, min(last, len(t.words) - 1))


# Said before a sign or a reading on a partial transcript, a time in the past: the rest of
# the sentence often takes it back ("hôm qua mẹ tôi khó thở… nhưng giờ đỡ rồi").
_EARLIER = _Words(
    "hôm qua", "đêm qua", "tối qua", "hôm kia", "hôm trước", "mấy hôm trước", "tuần trước",
    "tháng trước", "năm ngoái", "có lúc", "có lần", "lúc trước", "từng",
)  # fmt: skip


def _may_be_taken_back(t: _Text, start: int) -> bool:
    """On a partial transcript: signs or events listed first, before anyone is named (how
    questions about the signs open: "mệt lả li bì ở trẻ thì…"), or after a time in the past."""
    opens = start == 0 or _SIGN.match(t.key) is not None or _ACUTE.match(t.key) is not None
    return opens or _EARLIER.search(t, end=start)


def _vital_reading(t: _Text, partial: bool = False) -> RedFlag | None:
    for vital, (at, i, value, second) in _readings(t).items():
        if partial and (i == len(t.keys) - 1 or _EARLIER.search(t, end=t.starts[at])):
            continue  # a number still being said ("chín mươi… tám"), or an earlier reading
        if not _danger(vital, value, second, t, i):
            continue
        start, end = t.starts[i], t.starts[i] + len(t.keys[i])
        if _not_now(t, start, end):
            continue
        return RedFlag(vital, _quote_reading(t, at, i))
    return None


def _danger_sign(t: _Text, partial: bool = False) -> RedFlag | None:
    for m in _SIGN.finditer(t.key):
        if _look_alike(t, m) or (partial and _may_be_taken_back(t, m.start())):
            continue
        if _not_now(t, m.start(), m.end()):
            continue
        return RedFlag(
            RedFlagRule.DANGER_SIGN, t.quote(t.token_at(m.start()), t.token_at(m.end() - 1))
        )
    return None


# --- acute events: an accident, a poisoning, a stroke, a birth happening now -----------

# Said about someone now, each is a call for 115 whatever the classifier thinks: the
# held-out set found it reading "uống phải thuốc chuột" as a medicine question and a fall
# from a building site as a question for war veterans. Bare "ngã" (ngã tư: a crossroads)
# and "tai nạn" ("tai nạn lao động": a labour question) are too wide to be here, and so
# are phrases that fold into everyday words without their marks: "rơi từ" (theo dõi từ),
# "đau đẻ" (ở đâu để), "chuyển dạ" (chuyên gia), "nuốt phải" (lượt phải), "tự tử" (từ
# từ), "thuốc sâu" (thuốc sau ăn), "rơi xuống" (rồi xuống); and "liệt nửa người", which
# is as often years old as sudden.
_ACUTE_WORDS = (
    "ngộ độc", "uống phải thuốc", "uống nhầm", "thuốc chuột", "thuốc trừ sâu",
    "uống cả vỉ", "uống cả lọ",
    "ngã từ tầng", "ngã từ trên", "rơi từ tầng", "rơi từ trên", "ngã từ mái", "ngã cầu thang",
    "ngã giàn giáo", "ngã xuống", "rơi xuống hồ", "rơi xuống ao", "rơi xuống sông",
    "rơi xuống giếng", "ngã đập đầu", "đập đầu xuống", "ngã vỡ đầu",
    "tai nạn giao thông", "tai nạn xe", "bị xe đâm", "bị xe tông", "bị ô tô đâm",
    "bị xe máy đâm", "đâm xe", "tông xe", "đâm vào người", "va vào người", "tông vào người",
    "đâm phải người", "bị xe cán", "va chạm giao thông",
    "đuối nước", "chết đuối", "điện giật", "giật điện",
    "chảy máu nhiều", "chảy nhiều máu", "máu chảy nhiều", "chảy máu không cầm",
    "máu chảy không ngừng", "mất nhiều máu", "chảy máu đầu",
    "đột quỵ", "méo miệng", "méo mồm", "ngừng tim",
    "nhồi máu cơ tim", "lên cơn đau tim", "sốc phản vệ", "vỡ ối",
    "hóc xương", "hóc dị vật", "bỏng nặng", "bỏng nước sôi", "rắn cắn",
    "định tự tử", "đòi tự tử", "muốn tự tử", "tự sát", "nhảy cầu", "nhảy lầu", "treo cổ",
    "cắt cổ tay",
)  # fmt: skip
_ACUTE = re.compile(rf"\b(?:{_phrases(*_ACUTE_WORDS)})\b")
_ACUTE_SPELLINGS = _spellings(_ACUTE_WORDS)
# An event that is the subject of a claim or told as the past is not a call for 115:
# "bị tai nạn giao thông năm ngoái thì có được hỗ trợ không".
_ACUTE_NOT_NOW = _Words(
    "năm ngoái", "năm trước", "tháng trước", "tuần trước", "hồi trước", "trước đây",
    "ngày xưa", "hồi đó", "lâu rồi", "có lần", "hỗ trợ", "chế độ", "bảo hiểm", "trợ cấp",
    "bồi thường", "được hưởng", "tiền", "hồ sơ", "thủ tục", "giấy tờ", "phòng tránh",
    "phòng ngừa", "cách sơ cứu", "sơ cứu thế nào", "mất rồi", "qua đời",
)  # fmt: skip


# A stranger reported: "có người bị xe tông", "có vụ đâm xe". The weak question words of
# _not_now include "người bị", which is how such a report begins.
_SOMEONE = _Words(
    "có người", "có vụ", "có công nhân", "có đứa", "có ông", "có bà", "có anh", "có chị",
    "có thằng", "có cô",
)  # fmt: skip


def _acute_not_now(t: _Text, start: int, end: int) -> bool:
    if _ACUTE_NOT_NOW.search(t):
        return True
    if _SOMEONE.search(t) and not _GENERIC.search(t):
        return bool(_NEGATED_BEFORE.search(t.key[:start]) or _IMPROVED_AFTER.search(t, start=end))
    return _not_now(t, start, end)


def _acute_event(t: _Text, partial: bool = False) -> RedFlag | None:
    for m in _ACUTE.finditer(t.key):
        if partial and _may_be_taken_back(t, m.start()):
            continue
        said = t.marked[m.start() : m.end()].split()
        if t.has_marks and _spelled_otherwise(said, m.group(0), _ACUTE_SPELLINGS):
            continue  # "chuyên gia", not a phrase of this list that folds like it
        if _acute_not_now(t, m.start(), m.end()):
            continue
        return RedFlag(
            RedFlagRule.ACUTE_EVENT, t.quote(t.token_at(m.start()), t.token_at(m.end() - 1))
        )
    return None


# Emergencies the rules do not read (an accident, a birth, a poisoning): a classifier's
# "emergency" with one of these words is never taken back.
_OTHER_EMERGENCY = _Words(
    "cấp cứu", "cứu", "tai nạn", "chảy máu", "ra máu", "ngã", "đột quỵ", "tai biến", "bất tỉnh",
    "xe cứu thương", "đâm", "bỏng", "điện giật", "đuối nước", "ngộ độc", "uống nhầm", "hóc",
    "chuyển dạ", "vỡ ối", "méo", "liệt", "cháy", "115",
)  # fmt: skip


def not_an_emergency(text: str) -> tuple[str, str] | None:
    """(rule, words) when the rules can tell ``text`` is not an emergency although it names
    one: a danger sign only asked about, negated or over ("danger_sign_not_now"), a
    look-alike such as "ngạt mũi" ("not_a_sign"), or readings all in the normal range
    ("reading_normal"); None when they cannot tell."""
    t = _Text(text)
    if not t.keys or _OTHER_EMERGENCY.search(t) or _vital_reading(t) or _danger_sign(t):
        return None
    for m in _SIGN.finditer(t.key):
        words = t.quote(t.token_at(m.start()), t.token_at(m.end() - 1))
        if _look_alike(t, m):
            return "not_a_sign", t.quote(t.token_at(m.start()), t.token_at(m.end() + 1))
        return "danger_sign_not_now", words
    readings = _readings(t)
    if readings:
        at, i = min((at, i) for at, i, _, _ in readings.values())
        return "reading_normal", _quote_reading(t, at, max(i for _, i, _, _ in readings.values()))
    return None


def red_flag(text: str, partial: bool = False) -> RedFlag | None:
    """Why ``text`` is an emergency to put through to 115 at once, or None.

    ``partial``: a transcript still growing (the voice line's fast path). There what the
    rest of the sentence may take back waits for it: a sign or an event said first, before
    anyone is named (questions about the signs open that way: "khó thở có phải là dấu
    hiệu…" is "khó thở có" after three words), or after a time in the past ("hôm qua mẹ tôi
    khó thở… nhưng giờ đỡ rồi"), and a reading whose number may still grow ("chín mươi…
    chín"). The final transcript is read whole anyway, a moment later."""
    t = _Text(text)
    if not t.keys:
        return None
    return _vital_reading(t, partial) or _danger_sign(t, partial) or _acute_event(t, partial)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class RedFlagClassifier(RuleComponent):
    """Rasa pipeline component wrapping :func:`red_flag`; last in config.yml so it wins."""

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            flag = red_flag(text)
            if flag is None:
                self._clear(message, text)
                continue
            message.set(RED_FLAG_KEY, flag.as_dict(), add_to_output=True)
            intent = {"name": EMERGENCY_INTENT, PREDICTED_CONFIDENCE_KEY: 1.0}
            ranking = [intent] + [
                i for i in message.get(INTENT_RANKING_KEY, []) if i.get("name") != EMERGENCY_INTENT
            ]
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    @staticmethod
    def _clear(message: Message, text: str) -> None:
        """The other way round: the classifier said emergency because a danger sign or a
        reading is named, and the rules say it is not one (a question about the signs, "không
        khó thở", "hôm qua khó thở giờ đỡ rồi", "ô xy chín tám"). The next intent of the
        ranking is kept, and the parse result says why (``red_flag_cleared``)."""
        if (message.get(INTENT) or {}).get("name") != EMERGENCY_INTENT:
            return
        why = not_an_emergency(text)
        ranking = [
            i for i in message.get(INTENT_RANKING_KEY, []) if i.get("name") != EMERGENCY_INTENT
        ]
        if why is None or not ranking:
            return
        message.set(CLEARED_KEY, {"rule": why[0], "matched": why[1]}, add_to_output=True)
        message.set(INTENT, ranking[0], add_to_output=True)
        message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
