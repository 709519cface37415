"""Fakes for the seams where a real engine cannot run in a unit test (no model loaded).

A recogniser that hears a script, a brain that answers from a table, a voice that speaks
a tone. Each keeps the rules of the interface it stands in for (``bot.asr.types``,
``bot.session.brain_service.Brain``, ``bot.tts.piper_voice.SpeechVoice``); the engines'
own tests (test_asr, test_dialogue, test_tts, test_voice_line) run the real ones.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.asr.types import Final, Partial
from bot.audio.formats import RECOGNISER, AudioChunk, AudioFormat
from bot.audio.vad import VadConfig
from bot.call.machine import CallConfig
from bot.call.prompts import Prompts
from bot.nlu.replies import BotAction
from bot.nlu.routes import RouteResult
from bot.session.engines import Engines
from bot.store.calls import CallStore
from bot.vocabulary import Route
from tests.config import SETTINGS


def voiced(seconds: float, rate: int = 8000) -> np.ndarray:
    """A synthetic voiced sound (140 Hz and its harmonics, four syllables a second) that
    webrtcvad hears as speech, as PCM16 samples."""
    t = np.arange(int(rate * seconds)) / rate
    harmonics = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, rate // 2 // 140))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t - np.pi / 2))
    signal = harmonics * envelope
    return (signal * 6000 / np.max(np.abs(signal))).astype(np.int16)


def write_caller(path: Path, *parts: tuple[str, float], rate: int = 8000) -> Path:
    """A caller's recording from ("speech" | "silence", seconds) parts, as a WAV file."""
    pieces = [
        voiced(s, rate) if kind == "speech" else np.zeros(int(rate * s), np.int16)
        for kind, s in parts
    ]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.concatenate(pieces).tobytes())
    return path


def korean_speech_wav(folder: Path, rate: int, before_s: float, after_s: float) -> Path:
    """A caller saying "hello, please help me" in Korean (the stand-in recogniser is Korean),
    spoken by espeak-ng, at ``rate``, with silence before and after: the fake microphone and
    the simulated caller of the browser tests."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed to synthesise the caller (apt-get install {tool})")
    spoken, wav = folder / "spoken.wav", folder / "caller.wav"
    words = "안녕하세요 도와주세요"  # "hello, please help me"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(spoken), words], check=True)
    pad = ["pad", str(before_s), str(after_s)]
    subprocess.run(
        ["sox", str(spoken), "-r", str(rate), "-c", "1", "-b", "16", str(wav), *pad], check=True
    )
    return wav


class ScriptedRecognition:
    """Hears the next line of the script at each utterance's end; a partial as audio comes."""

    def __init__(self, script: deque[str]) -> None:
        self._script = script
        self._fed = 0

    def accept(self, chunk: AudioChunk) -> Partial | Final | None:
        if chunk.format != RECOGNISER:
            raise ValueError(f"the recogniser takes {RECOGNISER}, got {chunk.format}")
        self._fed += 1
        return Partial(self._script[0].split()[0]) if self._fed == 1 and self._script else None

    def finish(self) -> Final:
        self._fed = 0
        return Final(self._script.popleft() if self._script else "")  # no confidence: none

    async def accept_async(self, chunk: AudioChunk) -> Partial | Final | None:
        return self.accept(chunk)

    async def finish_async(self) -> Final:
        return self.finish()


class ScriptedSpeech:
    """A recogniser "model" whose calls hear the given lines, one per utterance."""

    name = "fake:script"

    def __init__(self, lines: Sequence[str]) -> None:
        self.script = deque(lines)

    def vocabulary_phrases(self) -> list[str]:
        return []

    def recognition(
        self, phrases: Sequence[str] | None = None, executor: Executor | None = None
    ) -> ScriptedRecognition:
        return ScriptedRecognition(self.script)


class TableBrain:
    """A brain that answers each sentence from a table (nothing for an unknown one)."""

    def __init__(self, greeting: list[BotAction], replies: Mapping[str, list[BotAction]]):
        self.greeting, self.replies = greeting, replies
        self.heard: list[str] = []

    @property
    def model_path(self) -> Path:
        return Path("fake-model.tar.gz")

    async def start(self, conversation_id: str) -> list[BotAction]:
        return list(self.greeting)

    async def turn(self, conversation_id: str, text: str) -> list[BotAction]:
        self.heard.append(text)
        return list(self.replies.get(text, []))

    async def digit(self, conversation_id: str, digit: str) -> list[BotAction]:
        return []

    async def route(self, text: str) -> RouteResult:
        return RouteResult(text, Route.FALLBACK, "", 0.0)

    async def last_route(self, conversation_id: str) -> RouteResult | None:
        return None  # a table has no NLU to report

    def close(self) -> None:
        pass


class ToneVoice:
    """A voice that says every clause as a 150 ms tone, at Piper's rate."""

    name = "fake:tone"
    format = AudioFormat(22050, "pcm16")

    def synthesize_pcm(self, text: str) -> Iterator[AudioChunk]:
        t = np.arange(int(self.format.rate * 0.15)) / self.format.rate
        yield AudioChunk(
            (np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16).tobytes(), self.format
        )


def fake_engines(
    brain: TableBrain, speech: ScriptedSpeech, store: CallStore | None = None
) -> Engines:
    """Engines for a real VoiceCall on fakes: the real machine, VAD, prompts and store."""
    return Engines(
        brain=brain,
        speech=speech,
        voice=ToneVoice(),
        prompts=Prompts.from_domain(SETTINGS.rasa_domain),
        call_config=CallConfig(),
        vad_config=VadConfig(),
        brain_timeout_s=6.0,
        max_calls=0,
        decoder=ThreadPoolExecutor(max_workers=1, thread_name_prefix="fake-decoder"),
        store=store,
    )
