"""Vietnamese text helpers shared by training, evaluation and routing.

Callers reach the bot three ways that must all land on the same route: the
recogniser's output (lowercase syllables with diacritics), text typed without
diacritics, and speech with Hanoi sound merges (l/n, tr/ch, s/x, d/gi/r), which
recognisers reproduce. The functions here produce those variants so the model is
trained on them and scored on them.
"""

from __future__ import annotations

import random
import re
import unicodedata

# Syllable onsets that Hanoi speech (and so the recogniser) confuses. Each class is
# a set of spellings that sound alike; longest spellings first so "tr" wins over "t".
MERGE_CLASSES: tuple[tuple[str, ...], ...] = (
    ("l", "n"),
    ("tr", "ch"),
    ("s", "x"),
    ("gi", "d", "r"),
)
# One fixed direction per class, the way a Hanoi speaker most often merges.
CANONICAL_MERGE: dict[str, str] = {"l": "n", "tr": "ch", "s": "x", "gi": "d", "r": "d"}

_ONSETS = sorted({o for cls in MERGE_CLASSES for o in cls}, key=len, reverse=True)
_CLASS_OF = {o: cls for cls in MERGE_CLASSES for o in cls}
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")


def strip_diacritics(text: str) -> str:
    """'hỗ trợ đồng bào' -> 'ho tro dong bao' (đ is a letter, not a mark: mapped by hand)."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", bare.replace("đ", "d").replace("Đ", "D"))


def normalise(text: str) -> str:
    """The recogniser's form: NFC, lowercase, no punctuation, single spaces."""
    text = unicodedata.normalize("NFC", text).lower()
    return _SPACES.sub(" ", _PUNCT.sub(" ", text)).strip()


def fold(text: str) -> str:
    """A key for 'is this the same sentence': normalised and without diacritics."""
    return strip_diacritics(normalise(text))


def _split_onset(syllable: str) -> tuple[str, str]:
    for onset in _ONSETS:
        if syllable.startswith(onset):
            rest = syllable[len(onset) :]
            # "ng"/"nh" are onsets of their own, not "n" + vowel; "gi" needs a
            # following letter to be an onset ("gì" is g + ì, still merged to "dì").
            if onset == "n" and rest[:1] in ("g", "h"):
                return "", syllable
            return onset, rest
    return "", syllable


def merge_accent(text: str, rng: random.Random | None = None, rate: float = 1.0) -> str:
    """Apply Hanoi onset merges to each syllable.

    Without ``rng``: the canonical direction (l->n, tr->ch, s->x, gi/r->d) on every
    syllable that has one. With ``rng``: each mergeable syllable is changed with
    probability ``rate`` to another spelling of its class, in any direction, which
    is what an evaluation set should use so it does not mirror the training variant.
    """
    out = []
    for syllable in text.split(" "):
        onset, rest = _split_onset(syllable)
        if onset:
            if rng is None:
                onset = CANONICAL_MERGE.get(onset, onset)
            elif rng.random() < rate:
                onset = rng.choice([o for o in _CLASS_OF[onset] if o != onset])
            syllable = onset + rest
        out.append(syllable)
    return " ".join(out)


# --- numbers -------------------------------------------------------------------
#
# Callers give readings as the recogniser writes them ("tám mươi tám", "chín hai",
# "một trăm hai lăm") or typed ("88", "88%", "90/60", "tam muoi tam"). The
# deterministic layers (the spoken-branch classifier, the red-flag layer) read
# numbers from ``numbers_as_digits`` so both see "88" for all of these.

# Spellings with diacritics, including the Hanoi merges the recogniser reproduces
# ("lăm"/"năm", "sáu"/"xáu", "trăm"/"chăm", "linh"/"ninh", "lẻ"/"nẻ").
_DIGIT_WORDS: dict[str, int] = {
    "không": 0, "một": 1, "mốt": 1, "hai": 2, "ba": 3, "bốn": 4, "tư": 4,
    "năm": 5, "lăm": 5, "nhăm": 5, "sáu": 6, "xáu": 6, "bảy": 7, "bẩy": 7,
    "tám": 8, "chín": 9,
}  # fmt: skip
# The same words typed without diacritics. Only a token written without any mark is
# looked up here, so "nằm", "tạm" or "bà" never become digits.
_PLAIN_DIGIT_WORDS: dict[str, int] = {
    "khong": 0, "mot": 1, "hai": 2, "ba": 3, "bon": 4, "tu": 4, "nam": 5,
    "lam": 5, "sau": 6, "xau": 6, "bay": 7, "tam": 8, "chin": 9,
}  # fmt: skip
# Words that only mean a digit after another number word: "mốt" alone is "the day
# after tomorrow", "tư" alone is "private", "tu" typed is usually "từ".
_NOT_LEADING = {"mốt", "tư", "lăm", "nhăm", "tu", "lam"}
_TENS = {"mươi", "mười", "muoi"}
_HUNDREDS = {"trăm", "chăm", "tram", "cham"}
_ODD = {"linh", "ninh", "lẻ", "nẻ", "le", "ne"}  # "một trăm linh năm" = 105
# A single digit word is a number only before a unit ("ba tuổi", "năm lần"), so
# "nhánh năm", "năm nay" and "ba tôi" keep their words.
_UNITS = {
    "tuổi", "tuoi", "tháng", "thang", "lần", "lan", "nần", "nan", "nhịp", "nhip",
    "phút", "phut", "độ", "do", "cái", "cai", "ngày", "ngay", "%",
}  # fmt: skip
_SPO2_NAME = re.compile(
    r"\b(?:(?:sờ|xờ|sơ|so|xo|ét|ép|et|ep|ếch)\s+)?s?p(?:ê|e)?\s*[oô]\s*(?:hai|2)\b"
)
_F0_NAME = re.compile(r"\b(?:ép|ep|f)\s*(?:không|khong|0)\b")
_FRACTION = re.compile(r"(\d+)\s*/\s*(\d+)")
_NUMBER_PUNCT = re.compile(r"[^\w\s%/]", re.UNICODE)


def has_marks(text: str) -> bool:
    """Whether any letter carries a diacritic (or is đ)."""
    return strip_diacritics(text) != text


def _digit(token: str, leading: bool = False) -> int | None:
    if leading and token in _NOT_LEADING:
        return None
    table = _DIGIT_WORDS if has_marks(token) else _PLAIN_DIGIT_WORDS
    return table.get(token)


def _tens(tokens: list[str], i: int) -> tuple[int, int] | None:
    """'tám mươi tám' / 'mười lăm' / 'chín mươi' at ``i``: (value, next index)."""
    d = _digit(tokens[i], leading=True) if i < len(tokens) else None
    if d is not None and i + 1 < len(tokens) and tokens[i + 1] in _TENS:
        value, j = d * 10, i + 2
    elif i < len(tokens) and tokens[i] in _TENS:
        value, j = 10, i + 1
    else:
        return None
    unit = _digit(tokens[j]) if j < len(tokens) else None
    if unit is not None:
        return value + unit, j + 1
    return value, j


def _compound(tokens: list[str], i: int) -> tuple[int, int] | None:
    """A number with mươi/trăm at ``i``: (value, next index), or None."""
    d = _digit(tokens[i], leading=True)
    if d is not None and i + 1 < len(tokens) and tokens[i + 1] in _HUNDREDS:
        value, j = d * 100, i + 2
        if j + 1 < len(tokens) and tokens[j] in _ODD and _digit(tokens[j + 1]) is not None:
            return value + (_digit(tokens[j + 1]) or 0), j + 2
        tens = _tens(tokens, j)
        if tens:
            return value + tens[0], tens[1]
        first = _digit(tokens[j]) if j < len(tokens) else None
        if first is not None:
            second = _digit(tokens[j + 1]) if j + 1 < len(tokens) else None
            if second is not None:  # "một trăm hai lăm" = 125
                return value + first * 10 + second, j + 2
            return value + first * 10, j + 1  # "một trăm hai" = 120
        return value, j
    return _tens(tokens, i)


def _digit_run(tokens: list[str], i: int) -> tuple[str, int] | None:
    """'tám tám', 'chín hai', 'một một lăm': digits said one by one, two or more."""
    if _digit(tokens[i], leading=True) is None:
        return None
    j = i
    while j < len(tokens) and _digit(tokens[j], leading=j == i) is not None:
        j += 1
    # "ba tám mươi": the last digit belongs to the compound that follows.
    if j < len(tokens) and tokens[j] in _TENS | _HUNDREDS:
        j -= 1
    if j - i < 2:
        return None
    return "".join(str(_digit(t)) for t in tokens[i:j]), j


def numbers_as_digits(text: str) -> str:
    """The recogniser's form (``normalise``) with every number written in digits.

    "ô xy tám mươi tám phần trăm" -> "ô xy 88 %", "huyết áp 90/60" stays "90/60",
    "chín hai" -> "92", "một trăm hai mươi" -> "120", "ba tuổi" -> "3 tuổi".
    SpO2 and F0 are written "spo2" and "f0" so their "hai"/"không" is not a number.
    A single digit word with no unit after it stays a word ("nhánh năm", "năm nay").
    """
    text = unicodedata.normalize("NFC", text).lower()
    text = _FRACTION.sub(r"\1/\2", text)
    text = _SPACES.sub(" ", _NUMBER_PUNCT.sub(" ", text.replace("%", " % "))).strip()
    text = _F0_NAME.sub("f0", _SPO2_NAME.sub("spo2", text))
    tokens = text.split(" ") if text else []
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("phần", "phan") and i + 1 < len(tokens) and tokens[i + 1] in _HUNDREDS:
            out.append("%")
            i += 2
            continue
        run = _digit_run(tokens, i)
        if run:
            out.append(run[0])
            i = run[1]
            continue
        compound = _compound(tokens, i)
        if compound:
            out.append(str(compound[0]))
            i = compound[1]
            continue
        single = _digit(token, leading=True)
        if single is not None and i + 1 < len(tokens) and tokens[i + 1] in _UNITS:
            out.append(str(single))
        else:
            out.append(token)
        i += 1
    return " ".join(out)
