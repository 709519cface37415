"""What a recogniser hands over, and the interface every engine implements.

The rules every engine keeps (the call, the session, the runner and the benches rely on
them, not on any one engine's classes):

- Audio in is 16 kHz PCM16 mono (``bot.audio.formats.RECOGNISER``), converted at the line's
  edge; any other format is refused with ``AudioFormatError``.
- ``accept`` returns a ``Partial`` when the running guess changed, a ``Final`` when the engine
  ended a piece of the utterance by itself (a pause), else None.
- ``finish`` ends the utterance now and returns exactly one ``Final`` (its text may be empty),
  then the recognition is ready for the next utterance.
- Word times count from the call's first audio fed to this recognition, where the engine
  gives word times at all; confidences are in 0..1, or None where the engine gives none:
  never invented.
- One ``SpeechModel`` is loaded per process and shared; each call gets its own
  ``Recognition``. A recognition is used by one task at a time; decoding blocks, so the
  ``*_async`` twins run it on the given executor.

Importing this module needs no engine installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from bot.audio.formats import AudioChunk

_T = TypeVar("_T")


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the call's first audio fed to the recognition
    end: float
    conf: float | None = None  # the engine's posterior, 0..1, where it gives one


@dataclass(frozen=True)
class Partial:
    """The decoder's current guess for the utterance so far; it may still change."""

    text: str


@dataclass(frozen=True)
class Final:
    """A finished utterance. ``confidence``: the mean word confidence, None when the engine
    gives none (or nothing was heard)."""

    text: str
    words: tuple[Word, ...] = ()
    confidence: float | None = None


class Recognition(Protocol):
    """One call's decoder."""

    def accept(self, chunk: AudioChunk) -> Partial | Final | None: ...

    def finish(self) -> Final: ...

    async def accept_async(self, chunk: AudioChunk) -> Partial | Final | None: ...

    async def finish_async(self) -> Final: ...


class SpeechModel(Protocol):
    """A loaded recogniser model, shared by every call of the process."""

    @property
    def name(self) -> str: ...  # engine and model, for logs, /health and call records

    # The phrases of these examples a decoding grammar can use ([] if the engine has none).
    def vocabulary_phrases(self, examples: Iterable[str]) -> list[str]: ...

    def recognition(
        self, phrases: Sequence[str] | None = None, executor: Executor | None = None
    ) -> Recognition: ...


class DecodesOffLoop:
    """The async twins every engine's recognition shares: decoding blocks, so it runs on the
    recognition's executor (or a worker thread), never on the event loop."""

    _executor: Executor | None = None

    def accept(self, chunk: AudioChunk) -> Partial | Final | None:
        raise NotImplementedError

    def finish(self) -> Final:
        raise NotImplementedError

    async def accept_async(self, chunk: AudioChunk) -> Partial | Final | None:
        return await self._off_loop(self.accept, chunk)

    async def finish_async(self) -> Final:
        return await self._off_loop(self.finish)

    async def _off_loop(self, fn: Callable[..., _T], *args: object) -> _T:
        if self._executor is None:
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
