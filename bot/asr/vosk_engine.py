"""Speech recognition with Vosk: one shared model, one recogniser per call.

``VoskModel`` loads the Vosk model once (hundreds of MB, seconds to load) and is
shared by every call; ``VoskRecognition`` is one call's decoder with its own
``KaldiRecognizer``, so no call's settings (grammar, word output) leak into another's,
the anti-pattern of vosk-server's global recogniser config.

Audio must already be in the recogniser's format (16 kHz PCM16 mono, ``RECOGNISER``):
conversion from the line happens once, in ``bot.audio.formats``; anything else is refused.
Decoding blocks, so the ``*_async`` methods run it in a thread pool. Both keep the rules of
``bot.asr.types``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

import vosk

from bot.asr.types import DecodesOffLoop, Final, Partial, Word
from bot.audio.formats import RECOGNISER, AudioChunk, AudioFormatError
from bot.errors import ModelMissing
from bot.speech_models import require_vosk, vosk_howto

_T = TypeVar("_T")

UNKNOWN_WORD = "[unk]"  # Vosk's garbage word: lets a grammar decoder say "none of these"


class VoskModel:
    """One loaded Vosk model, shared by all calls (read-only after loading)."""

    def __init__(self, path: Path | str, log_level: int | None = None) -> None:
        self.path = require_vosk(Path(path))
        if log_level is not None:  # Kaldi's verbosity is process-wide: the caller's choice
            vosk.SetLogLevel(log_level)
        try:
            self.model: Any = vosk.Model(str(self.path))
        except Exception as e:  # Vosk says only "Failed to create a model"
            raise ModelMissing.unloadable("Vosk model", self.path, e, vosk_howto(self.path)) from e
        # Runtime grammars need a lookahead graph (HCLr.fst + Gr.fst, as in Vosk's small
        # models); models with a static HCLG.fst ignore them with a warning.
        graph = self.path / "graph"
        self.supports_grammar = (graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file()

    @property
    def name(self) -> str:
        return f"vosk:{self.path.name}"

    def knows(self, word: str) -> bool:
        # vosk 0.3.45 names it vosk_model_find_word; later bindings call it find_word.
        find = getattr(self.model, "find_word", None) or self.model.vosk_model_find_word
        return bool(find(word) >= 0)

    def vocabulary_phrases(self, examples: Iterable[str]) -> list[str]:
        """Phrases for a decoding grammar, from examples in the recogniser's form (lowercase,
        no punctuation: ``bot.call.turn_end.example_texts``).

        Each keeps only the words the model knows, since Vosk drops a grammar phrase's
        unknown words anyway, with a warning per word. Order kept, no repeats."""
        phrases: dict[str, None] = {}
        for example in examples:
            words = [w for w in example.split() if self.knows(w)]
            if words:
                phrases.setdefault(" ".join(words))
        return list(phrases)

    def recognition(
        self, phrases: Sequence[str] | None = None, executor: Executor | None = None
    ) -> VoskRecognition:
        return VoskRecognition(self, phrases, executor)


class VoskRecognition(DecodesOffLoop):
    """One call's decoder. Feed it RECOGNISER-format chunks in order.

    Word times count from the first audio fed to this Recognition, across utterances,
    so they line up with the call's recording. Not for concurrent use by several
    tasks: await each ``accept_async`` before the next (a lock keeps Kaldi safe, but
    only the caller can keep the order)."""

    def __init__(
        self,
        model: VoskModel,
        phrases: Sequence[str] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.model = model
        self._executor = executor
        rate = float(RECOGNISER.rate)
        if phrases and model.supports_grammar:
            grammar = list(phrases)
            if model.knows(UNKNOWN_WORD):
                grammar.append(UNKNOWN_WORD)
            # ensure_ascii=False: Vosk's JSON reader does not decode \\u escapes, so escaped
            # Vietnamese (or Korean) words would all be "missing from the vocabulary".
            self._rec: Any = vosk.KaldiRecognizer(
                model.model, rate, json.dumps(grammar, ensure_ascii=False)
            )
        else:
            self._rec = vosk.KaldiRecognizer(model.model, rate)
        self.uses_grammar = bool(phrases and model.supports_grammar)
        self._rec.SetWords(True)
        # Not SetPartialWords: in vosk 0.3.45 it leaves most partial results empty (seen on
        # the stand-in model), and the call needs only the partial text.
        self._lock = threading.Lock()  # the async methods may land on different pool threads
        self._last_partial = ""

    def accept(self, chunk: AudioChunk) -> Partial | Final | None:
        """Decode one chunk. Returns a Final when Vosk ends an utterance by itself (long
        silence), a Partial when the running guess changed, otherwise None."""
        if chunk.format != RECOGNISER:
            raise AudioFormatError(
                f"the recogniser takes {RECOGNISER} audio, got {chunk.format}: "
                "convert it at the line's edge (bot.audio.formats) first"
            )
        with self._lock:
            if self._rec.AcceptWaveform(chunk.data):
                self._last_partial = ""
                final = _final(self._rec.Result())
                # Vosk also ends "utterances" of pure silence; they carry nothing.
                return final if final.text else None
            text = str(json.loads(self._rec.PartialResult()).get("partial", ""))
        if text and text != self._last_partial:
            self._last_partial = text
            return Partial(text)
        return None

    def finish(self) -> Final:
        """End the utterance now (the VAD heard its end) and get ready for the next."""
        with self._lock:
            final = _final(self._rec.FinalResult())
            self._last_partial = ""
        return final


def _final(result_json: str) -> Final:
    result = json.loads(result_json)
    words = tuple(
        Word(str(w["word"]), float(w["start"]), float(w["end"]), _conf(w.get("conf")))
        for w in result.get("result", [])
    )
    confs = [w.conf for w in words if w.conf is not None]
    confidence = sum(confs) / len(confs) if confs else None
    return Final(str(result.get("text", "")).strip(), words, confidence)


def _conf(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None  # absent: not invented
