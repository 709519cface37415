"""Speech recognition with ``vietasr``: the Vietnamese model embedded in the PyPI wheel.

``viet-asr`` (import ``vietasr``) carries an ONNX Vietnamese recogniser inside its native
library (``libvietasr.so``, 4,972 tokens), so it needs no download and works on a machine
that cannot reach the model hosts. What it gives, read from the wheel and measured here:

- a streaming session per call (``Pipeline.stream(sample_rate)``): ``accept(pcm16)``,
  ``partial()`` (the whole text since the last reset), ``final()`` then ``reset()``;
- no endpointing (``accept`` never ends an utterance: the VAD does), no word times and
  no confidences: ``Final.words`` is empty and ``Final.confidence`` None, never invented;
- sessions of one shared pipeline decode on several threads at once (the native calls release
  the GIL and take no lock: bench/vietasr_threads.py), about 0.15-0.17 CPU-s per audio second;
- no network: the embedded "vietasr" module is the only one built here; the library's
  downloader (for its other modules) is compiled without an HTTP client, and
  tests/test_vietasr.py runs a decode with sockets blocked and under strace.

Audio must be RECOGNISER format (16 kHz PCM16 mono), like every engine (bot.asr.types).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from importlib import metadata
from typing import Any, TypeVar

from bot.asr.types import DecodesOffLoop, Final, Partial
from bot.audio.formats import RECOGNISER, AudioChunk, AudioFormatError

_T = TypeVar("_T")

PACKAGE = "viet-asr"


def installed() -> bool:
    """Whether the vietasr wheel is importable (it is pinned in requirements.txt)."""
    try:
        metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return False
    return True


class VietasrModel:
    """The embedded Vietnamese model, built once per process (~1-3 s, ~240 MB) and shared."""

    def __init__(self, log_level: int = 3) -> None:
        """``log_level``: the native library's threshold (3: warnings; 2 prints INFO lines)."""
        import vietasr  # here, not at import time: its native library is 70 MB
        from vietasr.ffi import native

        native.lib.vietasr_set_log_level(log_level)
        self.version = metadata.version(PACKAGE)
        self._pipeline: Any = vietasr.Pipeline.new().add("vietasr").build()

    @property
    def name(self) -> str:
        return f"vietasr:embedded-{self.version}"

    def vocabulary_phrases(self, examples: Iterable[str] = ()) -> list[str]:
        """None: the engine takes no decoding grammar, so BOT_ASR_VOCABULARY changes nothing."""
        return []

    def recognition(
        self, phrases: Sequence[str] | None = None, executor: Executor | None = None
    ) -> VietasrRecognition:
        return VietasrRecognition(self._pipeline.stream(float(RECOGNISER.rate)), executor)


class VietasrRecognition(DecodesOffLoop):
    """One call's session. Feed it RECOGNISER-format chunks in order; ``phrases`` are not
    taken (no grammar). Not for concurrent use by several tasks (a lock keeps the native
    session safe when the async twins land on different pool threads)."""

    def __init__(self, session: Any, executor: Executor | None = None) -> None:
        self._session = session
        self._executor = executor
        self._lock = threading.Lock()
        self._last_partial = ""

    def accept(self, chunk: AudioChunk) -> Partial | Final | None:
        """Decode one chunk; a Partial when the running guess changed, otherwise None
        (never a Final: the engine does not end utterances by itself)."""
        if chunk.format != RECOGNISER:
            raise AudioFormatError(
                f"the recogniser takes {RECOGNISER} audio, got {chunk.format}: "
                "convert it at the line's edge (bot.audio.formats) first"
            )
        if not chunk.data:
            return None
        with self._lock:
            self._session.accept(chunk.data)
            text = _text(self._session.partial().text)
        if text and text != self._last_partial:
            self._last_partial = text
            return Partial(text)
        return None

    def finish(self) -> Final:
        """End the utterance now (the VAD heard its end) and get ready for the next."""
        with self._lock:
            try:
                text = _text(self._session.final().text)
            finally:
                # Even when final() failed, the next utterance must not inherit this one's audio.
                self._session.reset()
                self._last_partial = ""
        return Final(text)  # no word times, no confidence: the engine gives none


def _text(raw: str) -> str:
    """The engine joins the segments of an utterance with newlines: one line of words here."""
    return " ".join(raw.split())
