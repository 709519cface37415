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
import math
import re
import threading
from collections.abc import AsyncGenerator, Iterable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.audio.formats import AudioChunk, AudioFormat, AudioFormatError, Converter
from bot.errors import ModelMissing
from bot.speech_models import piper_howto, require_piper
from bot.tts.normalise import ABBREVIATIONS, PHRASES, normalise_vi

if TYPE_CHECKING:  # the cache renders with a Speaker: a type-only import both ways
    from bot.tts.prompt_cache import PromptCache

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

    def __init__(self, model_path: Path | str, config_path: Path | str | None = None) -> None:
        from piper import PiperVoice

        onnx, config = require_piper(Path(model_path), Path(config_path) if config_path else None)
        try:
            self.piper = PiperVoice.load(onnx, config_path=config)
        except Exception as e:  # a truncated download fails here, deep in onnxruntime or json
            raise ModelMissing.unloadable("Piper voice", onnx, e, piper_howto(onnx)) from e
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
