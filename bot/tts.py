"""Speech synthesis with Piper: Vietnamese text -> audio chunks in the line's format.

Three pieces, each small:

* ``normalise_vi``: what a Hanoi speaker would say for digits, dates, units and
  abbreviations ("1022" -> "một không hai hai", "UBND" -> "Ủy ban nhân dân"). Piper's
  phonemiser (espeak-ng) reads "1022" as a quantity and spells "UBND" badly; a caller
  must hear the hotline number the way it is dialled. Table-driven: extend the tables.
* ``Speaker``: synthesises clause by clause (``split_clauses``), so the first clause
  plays while the rest is still being synthesised; ``stream`` runs Piper off the
  event loop.
* ``PromptCache``: the fixed responses of domain.yml rendered once, in the line's
  format, so the greeting and transfer notices cost nothing at call time.

One ``Voice`` (one ONNX session) is shared by all calls: onnxruntime sessions are
thread-safe and Piper serialises its espeak phonemiser itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import threading
import unicodedata
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import NamedTuple, Protocol

from bot import settings
from bot.audio import AudioChunk, AudioFormat, AudioFormatError, Converter
from bot.models import ModelMissing, piper_howto, require_piper

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


# --- clauses -----------------------------------------------------------------------

# A clause ends at . ? ! ; , : (or …) followed by a space: "1,5", "1.500.000" and "24/7"
# have no space after the mark, so they are never cut.
_CLAUSE_END = re.compile(r"(?<=[.?!;,:…])\s+")
MAX_CLAUSE_WORDS = 20  # ~1.5 s of synthesis on a slow core: the caller's wait for audio
MIN_CLAUSE_WORDS = 2  # "Dạ," alone would be a clipped word: it joins the next clause
_NO_CUT_AFTER = tuple(k for k in (*PHRASES, *ABBREVIATIONS) if k.endswith("."))


def split_clauses(text: str) -> list[str]:
    """Cut text into clauses short enough to synthesise quickly, keeping punctuation.

    Cuts at sentence and clause marks followed by a space (never inside "1,5" or
    "24/7", nor after "TP."), splits clauses over ``MAX_CLAUSE_WORDS`` words into
    even parts, and joins one-word clauses to the next."""
    pieces: list[str] = []
    start = 0
    for m in _CLAUSE_END.finditer(text):
        if text[: m.start()].endswith(_NO_CUT_AFTER):
            continue
        pieces.append(text[start : m.start()])
        start = m.end()
    pieces.append(text[start:])

    clauses: list[str] = []
    carry = ""
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        piece = f"{carry} {piece}".strip()
        if len(piece.split()) < MIN_CLAUSE_WORDS:
            carry = piece
            continue
        carry = ""
        clauses.extend(_even_parts(piece))
    if carry:
        if clauses:
            clauses[-1] = f"{clauses[-1]} {carry}"
        else:
            clauses.append(carry)
    return clauses


def _even_parts(clause: str) -> list[str]:
    words = clause.split()
    parts = math.ceil(len(words) / MAX_CLAUSE_WORDS)
    size = math.ceil(len(words) / parts)
    return [" ".join(words[i : i + size]) for i in range(0, len(words), size)]


# --- voice ------------------------------------------------------------------------


class SpeechVoice(Protocol):
    """What a Speaker needs of a voice (``Voice``, or a wrapper around one in tests)."""

    @property
    def name(self) -> str: ...

    @property
    def format(self) -> AudioFormat: ...

    def synthesize_pcm(self, text: str) -> Iterator[AudioChunk]: ...


class Voice:
    """One loaded Piper voice (ONNX model + JSON config), shared by every call."""

    def __init__(
        self, model_path: Path | str | None = None, config_path: Path | str | None = None
    ) -> None:
        from piper import PiperVoice

        onnx = Path(model_path) if model_path is not None else settings.PIPER_VOICE
        onnx, config = require_piper(onnx, Path(config_path) if config_path else None)
        try:
            self.piper = PiperVoice.load(onnx, config_path=config)
        except Exception as e:  # a truncated download fails here, deep in onnxruntime or json
            raise ModelMissing(
                f"Piper voice: {onnx} could not be loaded ({e})\n{piper_howto(onnx)}"
            ) from e
        self._name = onnx.name.removesuffix(".onnx")  # "vi_VN-vais1000-medium"
        self._format = AudioFormat(self.piper.config.sample_rate, "pcm16")

    @property
    def name(self) -> str:
        return self._name

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def sample_rate(self) -> int:
        return self._format.rate

    def synthesize_pcm(self, text: str) -> Iterator[AudioChunk]:
        """Piper's own output, one chunk per sentence it finds, in the voice's format."""
        for chunk in self.piper.synthesize(text):
            if chunk.sample_width != 2 or chunk.sample_channels != 1:
                raise AudioFormatError(
                    f"Piper gave {chunk.sample_width}-byte {chunk.sample_channels}-channel audio"
                )
            yield AudioChunk(chunk.audio_int16_bytes, self._format)


def to_format(chunk: AudioChunk, fmt: AudioFormat) -> AudioChunk:
    """One whole piece of speech (a clause, silence-padded by Piper) in another format,
    through bot.audio's converter (the one place conversions live); flushing the
    resampler per piece gives its full length, with no tail held back."""
    if chunk.format == fmt:
        return chunk
    converter = Converter(chunk.format, fmt)
    return _join((converter.convert(chunk), converter.flush()), fmt)


def _join(chunks: Iterable[AudioChunk], fmt: AudioFormat) -> AudioChunk:
    return AudioChunk(b"".join(c.data for c in chunks), fmt)


# --- speaker ----------------------------------------------------------------------


class Speaker:
    """Text -> audio chunks in ``fmt`` (by default the voice's own format)."""

    def __init__(
        self,
        voice: SpeechVoice,
        cache: PromptCache | None = None,
        fmt: AudioFormat | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.voice = voice
        self.cache = cache
        self.format = fmt or voice.format
        self._executor = executor

    def synthesize(self, text: str) -> Iterator[AudioChunk]:
        """A cached prompt as one chunk; otherwise clause by clause, each chunk yielded as
        soon as its clause is synthesised."""
        if self.cache is not None:
            cached = self.cache.get(text, self.voice, self.format)
            if cached is not None:
                yield cached
                return
        yield from self._synthesize(text, self.format)

    def _synthesize(self, text: str, fmt: AudioFormat) -> Iterator[AudioChunk]:
        for clause in split_clauses(normalise_vi(text)):
            for chunk in self.voice.synthesize_pcm(clause):
                yield to_format(chunk, fmt)

    def render(self, text: str, fmt: AudioFormat | None = None) -> AudioChunk:
        """The whole text as one chunk, bypassing the cache (what the cache stores)."""
        fmt = fmt or self.format
        return _join(self._synthesize(text, fmt), fmt)

    async def stream(self, text: str) -> AsyncGenerator[AudioChunk, None]:
        """``synthesize`` in a worker thread; chunks arrive as each clause is ready, while
        the next is synthesised. Leaving the loop early (barge-in) stops the worker after
        its current clause."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AudioChunk | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: AudioChunk | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        def produce() -> None:
            try:
                for chunk in self.synthesize(text):
                    if stop.is_set():
                        return
                    put(chunk)
            except Exception as e:  # handed to the consumer, raised there
                put(e)
            finally:
                put(None)

        loop.run_in_executor(self._executor, produce)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()


# --- prompt cache -----------------------------------------------------------------


class RenderCount(NamedTuple):
    rendered: int
    cached: int


def domain_texts(domain_file: Path = settings.DOMAIN_FILE, extra: Iterable[str] = ()) -> list[str]:
    """Every response text of the Rasa domain, then ``extra``; no repeats, order kept.

    Texts with {slot} templates are left out: they change per call."""
    import yaml

    domain = yaml.safe_load(domain_file.read_text(encoding="utf-8")) or {}
    texts: dict[str, None] = {}
    for variants in (domain.get("responses") or {}).values():
        for variant in variants or []:
            text = variant.get("text") if isinstance(variant, dict) else None
            if isinstance(text, str) and text.strip() and not re.search(r"\{\w+\}", text):
                texts.setdefault(text.strip())
    for text in extra:
        texts.setdefault(text.strip())
    return list(texts)


class PromptCache:
    """Pre-rendered fixed prompts on disk, one raw audio file per (text, voice, format).

    Files are keyed by sha256 of the normalised text, the voice name and the format,
    so a changed text, voice or line format simply misses and is rendered anew."""

    def __init__(self, directory: Path | str = settings.PROMPT_CACHE_DIR) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(text: str, voice: str, fmt: AudioFormat) -> str:
        material = "\n".join((normalise_vi(text), voice, str(fmt)))
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def path(self, text: str, voice: SpeechVoice | str, fmt: AudioFormat) -> Path:
        name = voice if isinstance(voice, str) else voice.name
        return self.directory / f"{self.key(text, name, fmt)}.{fmt.encoding}"

    def get(self, text: str, voice: SpeechVoice | str, fmt: AudioFormat) -> AudioChunk | None:
        try:
            data = self.path(text, voice, fmt).read_bytes()
            return AudioChunk(data, fmt) if data else None
        except (OSError, AudioFormatError):  # absent or damaged: render again
            return None

    def put(self, text: str, voice: SpeechVoice | str, chunk: AudioChunk) -> Path:
        path = self.path(text, voice, chunk.format)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(chunk.data)
        partial.replace(path)  # atomic: a reader never sees half a prompt
        return path

    def render_all(
        self, speaker: Speaker, texts: Iterable[str] | None = None, fmt: AudioFormat | None = None
    ) -> RenderCount:
        """Render every text not yet cached (by default all of domain.yml's responses)."""
        fmt = fmt or speaker.format
        rendered = cached = 0
        for text in dict.fromkeys(domain_texts() if texts is None else texts):
            if self.get(text, speaker.voice, fmt) is not None:
                cached += 1
                continue
            self.put(text, speaker.voice, speaker.render(text, fmt))
            rendered += 1
        return RenderCount(rendered, cached)
