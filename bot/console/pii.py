"""Callers' personal data in transcripts: citizen ID numbers (CCCD, 12 digits), phone
numbers, house addresses, typed ("0983 123 456") or as the recogniser writes speech
("không chín tám ba một hai ba bốn năm sáu"). Found per token, so a recogniser's word
list (with times) is masked exactly like its text.

A run of number tokens (digits, or Vietnamese digit and number words, with or without
diacritics) that holds at least ``MIN_DIGITS`` digits is personal: no request to the
hotline needs eight digits in a row (branch numbers are one, "một một lăm" is three).
An address is a house-number keyword (số nhà, ngõ, ngách, hẻm, kiệt, tổ) with a number,
and what follows it while it is numbers, address words, or up to three words of a street
name after "phố" / "đường". Over-masking a little is the safe side.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

MIN_DIGITS = 8
MASK = "•••"

# Spoken digits and the number words around them, as the recogniser writes them; matched
# without diacritics, so typed text without tone marks is caught too ("khong chin tam").
_DIGIT_WORDS = {
    "khong", "mot", "hai", "ba", "bon", "tu", "nam", "lam", "nhăm", "nham", "sau", "bay",
    "bah", "tam", "chin", "linh", "le", "muoi", "moi", "tram", "khomg", "zero",
}  # fmt: skip
_ADDRESS_START = {"ngo", "ngach", "hem", "kiet", "to", "toa", "phong", "can"}
_ADDRESS_WORDS = _ADDRESS_START | {"so", "nha", "phuong", "khu", "pho", "duong", "thon", "xom"}
_STREET = {"pho", "duong"}
_LABELS = {
    "cccd": "CCCD",
    "phone": "số điện thoại",
    "number": "dãy số",
    "address": "địa chỉ",
}
_TOKEN = re.compile(r"\S+")
_EDGE_PUNCT = ".,;:!?()[]\"'“”"


def fold(word: str) -> str:
    """Lowercase, without diacritics or punctuation at the edges: 'Chín,' -> 'chin'."""
    word = word.strip(_EDGE_PUNCT).lower().replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def _digits(token: str) -> int:
    """How many digits a token stands for (0: not a number)."""
    folded = fold(token)
    if folded in _DIGIT_WORDS:
        return 1
    digits = sum(c.isdigit() for c in folded)
    if digits and all(c.isdigit() or c in ".-+/" for c in folded):
        return digits
    return digits if digits >= MIN_DIGITS else 0  # "sdt:0983123456"


@dataclass(frozen=True)
class Span:
    start: int  # token index
    end: int  # exclusive
    kind: str  # cccd | phone | number | address


def find(tokens: list[str]) -> list[Span]:
    """The personal spans of a token list, in order, not overlapping."""
    spans: list[Span] = []
    folded = [fold(t) for t in tokens]
    digits = [_digits(t) for t in tokens]
    i = 0
    while i < len(tokens):
        start_address = folded[i] in _ADDRESS_START or (
            folded[i] in ("so", "nha")
            and i + 1 < len(tokens)
            and (folded[i + 1] in ("nha", "so") or digits[i + 1])
        )
        if start_address:
            j, street_left, numbers = i, 0, 0
            while j < len(tokens):
                if digits[j]:
                    numbers += 1
                elif folded[j] in _STREET:
                    street_left = 3
                elif folded[j] in _ADDRESS_WORDS:
                    pass
                elif street_left > 0:
                    street_left -= 1
                else:
                    break
                j += 1
            # "số 0983 123 456" is a number said after "số", not an address.
            only_digits = all(digits[k] for k in range(i + 1, j))
            if only_digits and sum(digits[i + 1 : j]) >= MIN_DIGITS:
                i += 1
                continue
            if numbers and (j - i > 2 or folded[i] not in ("so", "nha", "to", "phong", "can")):
                spans.append(Span(i, j, "address"))
                i = j
                continue
        if digits[i]:
            j, total = i, 0
            while j < len(tokens) and digits[j]:
                total += digits[j]
                j += 1
            if total >= MIN_DIGITS:
                kind = "cccd" if total == 12 else "phone" if total in (10, 11) else "number"
                spans.append(Span(i, j, kind))
            i = j
            continue
        i += 1
    return spans


def mask_text(text: str | None) -> str | None:
    """The text with each personal span replaced by a label: '[CCCD đã ẩn]'."""
    if not text:
        return text
    matches = list(_TOKEN.finditer(text))
    spans = find([m.group() for m in matches])
    if not spans:
        return text
    out, last = [], 0
    for span in spans:
        begin, end = matches[span.start].start(), matches[span.end - 1].end()
        out += [text[last:begin], f"[{_LABELS[span.kind]} đã ẩn]"]
        last = end
    out.append(text[last:])
    return "".join(out)


def mask_words(words: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """A recogniser's word list with the personal words replaced (times kept)."""
    if not words:
        return words
    hidden: set[int] = set()
    for span in find([str(w.get("word", "")) for w in words]):
        hidden.update(range(span.start, span.end))
    return [{**w, "word": MASK} if i in hidden else w for i, w in enumerate(words)]


def mask_caller(number: str | None) -> str:
    """A caller's number with all but its last two digits hidden: '••••••••56'."""
    if not number:
        return ""
    digits = [c for c in number if c.isdigit()]
    if len(digits) >= 4 and len(digits) >= len(number) - 2:
        return "•" * (len(digits) - 2) + "".join(digits[-2:])
    return mask_text(number) or ""
