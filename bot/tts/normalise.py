"""Vietnamese text normalisation for speech: what a Hanoi speaker would say for digits,
dates, units and abbreviations ("1022" -> "một không hai hai", "UBND" -> "Ủy ban nhân dân").

Piper's phonemiser (espeak-ng) reads "1022" as a quantity and spells "UBND" badly; a caller
must hear the hotline number the way it is dialled. Table-driven: extend the tables.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# --- Vietnamese text normalisation ------------------------------------------------

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
# Units after "mươi" take the Hanoi forms: hai mươi mốt, hai mươi tư, hai mươi lăm.
_UNIT_AFTER_MUOI = {1: "mốt", 4: "tư", 5: "lăm"}
MONTHS = {4: "tư"}  # "tháng tư", not "tháng bốn"; every other month is its number
# Above a billion the groups repeat: "một nghìn tỷ" is 10^12.
_GROUPS = ((10**6, "triệu"), (10**3, "nghìn"), (1, ""))

# Written forms replaced before anything else, as whole tokens, case-sensitive.
PHRASES: dict[str, str] = {
    "24/7": "hai mươi tư trên bảy",
    "SpO2": "sờ pê ô hai",
    "COVID-19": "cô vít mười chín",
    "Covid-19": "cô vít mười chín",
    "covid-19": "cô vít mười chín",
    "SARS-CoV-2": "sát cô vi hai",
    "TP.HCM": "thành phố Hồ Chí Minh",
    "TP. HCM": "thành phố Hồ Chí Minh",
    "v.v.": "vân vân",
}

# Abbreviations of the hotline's world (whole tokens, case-sensitive).
ABBREVIATIONS: dict[str, str] = {
    "TP.": "thành phố",
    "Tp.": "thành phố",
    "UBND": "Ủy ban nhân dân",
    "HĐND": "Hội đồng nhân dân",
    "MTTQ": "Mặt trận Tổ quốc",
    "LĐ-TB&XH": "Lao động Thương binh và Xã hội",
    "LĐTBXH": "Lao động Thương binh và Xã hội",
    "HĐLĐ": "hợp đồng lao động",
    "BHXH": "bảo hiểm xã hội",
    "BHYT": "bảo hiểm y tế",
    "BHTN": "bảo hiểm thất nghiệp",
    "BYT": "Bộ Y tế",
    "TTYT": "Trung tâm Y tế",
    "CDC": "xê đê xê",
    "PCR": "pê xê e rờ",
    "QĐ": "Quyết định",
    "NQ": "Nghị quyết",
    "NĐ": "Nghị định",
    "TTg": "Thủ tướng",
    "SĐT": "số điện thoại",
    "CCCD": "căn cước công dân",
    "CMND": "chứng minh nhân dân",
    "VNĐ": "đồng",
    "VND": "đồng",
    "OK": "ô kê",
}

# Units written right after a number ("96%", "38,5°C", "500mg", "1.500.000đ").
UNITS: dict[str, str] = {
    "%": "phần trăm",
    "°C": "độ xê",
    "°": "độ",
    "mg": "mi li gam",
    "kg": "ki lô gam",
    "ml": "mi li lít",
    "km": "ki lô mét",
    "m²": "mét vuông",
    "đ": "đồng",
    "VNĐ": "đồng",
}

# Words after "/" that make a rate: "lần/phút" -> "lần mỗi phút".
PER = ("giây", "phút", "giờ", "ngày", "tuần", "tháng", "năm", "người", "lần", "viên")

# Service numbers said digit by digit, as they are dialled.
HOTLINES = ("1022", "111", "112", "113", "114", "115", "116")

# Vietnamese letter names, for acronyms no table knows ("WHO" -> "vê kép hát ô").
LETTERS: dict[str, str] = {
    "A": "a", "B": "bê", "C": "xê", "D": "đê", "Đ": "đê", "E": "e", "F": "ép", "G": "giê",
    "H": "hát", "I": "i", "J": "gi", "K": "ca", "L": "e lờ", "M": "em mờ", "N": "en nờ",
    "O": "ô", "P": "pê", "Q": "quy", "R": "e rờ", "S": "ét", "T": "tê", "U": "u", "V": "vê",
    "W": "vê kép", "X": "ích", "Y": "i dài", "Z": "dét",
}  # fmt: skip


def read_digits(digits: str) -> str:
    """'1022' -> 'một không hai hai' (phone numbers, hotlines, codes)."""
    return " ".join(DIGITS[int(d)] for d in digits if d.isdigit())


def _below_thousand(n: int, inner: bool) -> str:
    """0 < n < 1000. ``inner``: a group after a higher one, which says its hundreds even
    when zero ("hai nghìn không trăm hai mươi hai")."""
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if hundreds or inner:
        words += [DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units and words:
            words += ["linh", DIGITS[units]]  # Hanoi "linh"; the South says "lẻ"
        elif units:
            words.append(DIGITS[units])
    elif tens == 1:
        words.append("mười")
        if units:
            words.append("lăm" if units == 5 else DIGITS[units])
    else:
        words += [DIGITS[tens], "mươi"]
        if units:
            words.append(_UNIT_AFTER_MUOI.get(units, DIGITS[units]))
    return " ".join(words)


def read_number(n: int) -> str:
    """21 -> 'hai mươi mốt', 105 -> 'một trăm linh năm', 1500000 -> 'một triệu năm trăm nghìn'."""
    if n < 0:
        return "âm " + read_number(-n)
    if n == 0:
        return "không"
    return _read_positive(n, inner=False)


def _read_positive(n: int, inner: bool) -> str:
    if n >= 10**9:
        high, low = divmod(n, 10**9)
        head = _read_positive(high, inner) + " tỷ"
        return f"{head} {_read_positive(low, inner=True)}" if low else head
    words: list[str] = []
    for size, name in _GROUPS:
        group, n = divmod(n, size)
        if group:
            words.append(_below_thousand(group, inner or bool(words)))
            if name:
                words.append(name)
    return " ".join(words)


def read_decimal(integer: str, fraction: str) -> str:
    """'1', '5' -> 'một phẩy năm'. A short fraction is read as a number ('2,25' -> 'hai
    phẩy hai mươi lăm'), a long one or one with a leading zero digit by digit."""
    head = read_number(int(integer))
    if len(fraction) <= 2 and not fraction.startswith("0"):
        return f"{head} phẩy {read_number(int(fraction))}"
    return f"{head} phẩy {read_digits(fraction)}"


def _token(text: str) -> str:
    """A whole-token pattern for a literal: no letter or digit may touch its ends."""
    start = r"(?<![\w])" if text[0].isalnum() else ""
    end = r"(?![\w])" if text[-1].isalnum() else ""
    return start + re.escape(text) + end


def _table(table: dict[str, str]) -> tuple[re.Pattern[str], Callable[[re.Match[str]], str]]:
    keys = sorted(table, key=len, reverse=True)  # "LĐ-TB&XH" before "LĐ", "TP.HCM" before "TP."
    pattern = re.compile("|".join(_token(k) for k in keys))
    return pattern, lambda m: table[m.group(0)]


def _date(m: re.Match[str]) -> str:
    prefix, day, month, year = m.group("prefix"), int(m["d"]), int(m["m"]), int(m["y"])
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return m.group(0)
    ngay = prefix.strip() if prefix else "ngày"
    return f"{ngay} {read_number(day)} tháng {_month(month)} năm {read_number(year)}"


def _day_month(m: re.Match[str]) -> str:
    day, month = int(m["d"]), int(m["m"])
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return m.group(0)
    return f"{m['prefix']} {read_number(day)} tháng {_month(month)}"


def _month_year(m: re.Match[str]) -> str:
    month, year = int(m["m"]), int(m["y"])
    if not 1 <= month <= 12:
        return m.group(0)
    thang = m["prefix"].strip() if m["prefix"] else "tháng"
    return f"{thang} {_month(month)} năm {read_number(year)}"


def _month(month: int) -> str:
    return MONTHS.get(month, read_number(month))


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m["h"]), int(m["min"] or 0)
    if hour > 24 or minute > 59:
        return m.group(0)
    return f"{read_number(hour)} giờ" + (f" {read_number(minute)}" if minute else "")


def _number(m: re.Match[str]) -> str:
    text = m.group(0)
    if "," in text:
        integer, fraction = text.split(",", 1)
        return read_decimal(integer.replace(".", ""), fraction)
    if re.fullmatch(r"\d{1,3}(\.\d{3})+", text):
        return read_number(int(text.replace(".", "")))  # Vietnamese thousands dots
    if "." in text:  # "2.5": a dotted decimal is said with "chấm"
        integer, fraction = text.split(".", 1)
        return f"{read_number(int(integer))} chấm {read_digits(fraction)}"
    if len(text) > 1 and text.startswith("0"):  # "01" in "mẫu số 01": a code, not a quantity
        return read_digits(text)
    return read_number(int(text))


_NUM_START = r"(?<!\d)(?<!\d[.,])"  # not the middle of "1.500" or "1,5"
_NUM_END = r"(?!\d|[.,]\d)"
_NUMBER = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+,\d+|\d+\.\d+|\d+"
_units_pattern = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))

# The rules, in order: each later rule sees the words earlier ones wrote.
RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    # "ngày 24/7" is a date, so dates come before the phrase "24/7".
    (
        re.compile(
            r"(?P<prefix>(?:[Nn]gày)\s+)?(?<!\d)(?P<d>\d{1,2})(?P<sep>[/-])(?P<m>\d{1,2})"
            r"(?P=sep)(?P<y>\d{4})(?!\d)"
        ),
        _date,
    ),
    (re.compile(r"(?P<prefix>[Nn]gày)\s+(?P<d>\d{1,2})/(?P<m>\d{1,2})(?![\d/])"), _day_month),
    (
        re.compile(r"(?P<prefix>(?:[Tt]háng)\s+)?(?<![\d/])(?P<m>\d{1,2})/(?P<y>\d{4})(?!\d)"),
        _month_year,
    ),
    # A document code after its number ("3642/QĐ-UBND") is filed, not said.
    (re.compile(r"(?<=\d)/[A-ZĐ][\wĐ]*(?:-[A-ZĐ][\wĐ]*)+"), lambda m: ""),
    _table(PHRASES),
    _table(ABBREVIATIONS),
    (re.compile(r"(?<!\w)[Ff](\d)(?!\w)"), lambda m: f"ép {DIGITS[int(m[1])]}"),  # F0, F1
    # Phone numbers: 0 + 9-10 digits, grouped or not; 1800/1900 lines.
    (
        re.compile(r"(?<![\d.,])0\d{2,3}[ .]?\d{3,4}[ .]?\d{3,4}(?![\d]|[.,]\d)"),
        lambda m: read_digits(m[0]) if len(re.sub(r"\D", "", m[0])) in (10, 11) else m[0],
    ),
    (
        re.compile(r"(?<![\d.,])1[89]00[ .]?\d{3,4}(?:[ .]?\d{1,4})?" + _NUM_END),
        lambda m: read_digits(m[0]),
    ),
    (
        re.compile(_NUM_START + "(?:" + "|".join(HOTLINES) + ")" + _NUM_END),
        lambda m: read_digits(m[0]),
    ),
    # Document numbers of four digits and more ("Quyết định số 3642") are read as digits.
    (re.compile(r"(?<=[Ss]ố )\d{4,}" + _NUM_END), lambda m: read_digits(m[0])),
    (re.compile(r"(?<!\d)(?P<h>\d{1,2})h(?P<min>\d{2})?(?!\w)"), _time),
    (re.compile(r"(?<=[Tt]háng )\d{1,2}(?![\d/.,])"), lambda m: _month(int(m[0]))),
    # "20 lần/phút": a rate is said with "mỗi".
    (re.compile(r"/(?=(?:" + "|".join(PER) + r")(?!\w))"), lambda m: " mỗi "),
    (re.compile(r"(?<=\d)\s?(" + _units_pattern + r")(?!\w)"), lambda m: " " + UNITS[m[1]]),
    (re.compile(r"%"), lambda m: " phần trăm"),
    # Ranges and ratios between numbers: "4-6 tiếng", "20/30".
    (
        re.compile(_NUM_START + r"(" + _NUMBER + r")\s?[-–]\s?(" + _NUMBER + r")" + _NUM_END),
        lambda m: f"{m[1]} đến {m[2]}",
    ),
    (
        re.compile(_NUM_START + r"(" + _NUMBER + r")/(" + _NUMBER + r")" + _NUM_END),
        lambda m: f"{m[1]} trên {m[2]}",
    ),
    (re.compile(_NUM_START + "(?:" + _NUMBER + ")" + _NUM_END), _number),
    # Acronyms no table knows are spelt letter by letter.
    (
        re.compile(r"(?<!\w)[A-ZĐ]{2,5}(?!\w)"),
        lambda m: " ".join(LETTERS.get(c, c) for c in m[0]),
    ),
    (re.compile(r"\s*&\s*"), lambda m: " và "),
]


def normalise_vi(text: str) -> str:
    """Vietnamese text as it should be spoken: numbers, dates, units and abbreviations in
    words, the Hanoi way. Text that is already words passes through unchanged."""
    text = unicodedata.normalize("NFC", text)
    for pattern, replace in RULES:
        text = pattern.sub(replace, text)
    text = re.sub(r"\s+([,.;:?!])", r"\1", text)  # a rule that wrote "" leaves " ,"
    return re.sub(r"\s+", " ", text).strip()
