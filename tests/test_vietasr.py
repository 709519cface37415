"""The vietasr engine (bot/asr/vietasr_engine.py) on real Vietnamese speech.

The six natural clips of the vieneu wheel (`make test` extracts them into build/vieneu/ with
bot/tools/vieneu_clips.py, checked by hash) are played as callers over an 8 kHz G.711 μ-law
line through the real pipeline: line -> VAD -> vietasr -> call machine -> Rasa (the trained
model) -> Piper (the English stand-in voice: the Vietnamese one cannot be downloaded here),
with the call record in SQLite.

The WER bounds are per clip, from what this engine gave through this path on this machine
(README, "Speech models"), with a margin: a clip that gets worse by more than its margin
is a regression of the engine or of the line's audio path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.app.engines import load_engines, load_speech_model
from bot.app.settings import ROOT
from bot.asr.types import Final, Partial
from bot.asr.vietasr_engine import VietasrModel, VietasrRecognition
from bot.audio.formats import (
    RECOGNISER,
    TELEPHONE,
    AudioChunk,
    AudioFormat,
    AudioFormatError,
    Converter,
    read_wav,
    write_wav,
)
from bot.session.brain_service import BrainService
from bot.session.engines import Engines
from bot.speech_models import asr_engine
from bot.tools.audio_tests import syllable_edits
from bot.tools.vieneu_clips import DEST, bad_files, expected_hashes
from bot.transports.simulated import run_simulated_call
from bot.vocabulary import NoteKind
from tests.config import SETTINGS

pytestmark = pytest.mark.engines

ULAW_LINE = AudioFormat(8000, "ulaw")
FRAME = RECOGNISER.bytes_for_ms(20)

# Per clip: most syllable errors allowed (edits / reference syllables) over the μ-law line.
# Measured here (README): 1/12, 0/12, 2/13, 1/16, 5/13 ("19" is written as a number in the
# transcript, the engine says "mười chín"), 0/22; the margin is 3 syllables.
WER_BOUND = {
    "Bình (nam miền Bắc)": 4 / 12,
    "Ly (nữ miền Bắc)": 3 / 12,
    "Ngọc (nữ miền Bắc)": 5 / 13,
    "Tuyên (nam miền Bắc)": 4 / 16,
    "Vĩnh (nam miền Nam)": 8 / 13,
    "Đoan (nữ miền Nam)": 3 / 22,
}


@dataclass(frozen=True)
class Clip:
    name: str
    wav: Path
    text: str


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    hashes = expected_hashes()
    bad = bad_files(DEST, hashes)
    if bad:  # a clear failure, not a skip: `make test` puts them there
        pytest.fail(
            f"the vieneu clips are missing or changed in {DEST} ({', '.join(bad)}): "
            "run `make test` or `python -m bot.tools.vieneu_clips`"
        )
    wavs = sorted(n for n in hashes if n.endswith(".wav"))
    return [
        Clip(n[:-4], DEST / n, (DEST / f"{n[:-4]}.txt").read_text(encoding="utf-8").strip())
        for n in wavs
    ]


@pytest.fixture(scope="module")
def model() -> VietasrModel:
    return VietasrModel()  # ~1-3 s, ~240 MB: once for the module


def pcm16k(wav: Path) -> bytes:
    audio = read_wav(wav)
    convert = Converter(audio.format, RECOGNISER)
    return convert.convert(audio).data + convert.flush().data


def decode(model: VietasrModel, pcm: bytes) -> tuple[list[Partial], Final]:
    recognition = model.recognition()
    partials: list[Partial] = []
    for start in range(0, len(pcm), FRAME):
        result = recognition.accept(AudioChunk(pcm[start : start + FRAME], RECOGNISER))
        assert not isinstance(result, Final)  # the engine never ends an utterance itself
        if isinstance(result, Partial):
            partials.append(result)
    return partials, recognition.finish()


# --- the engine on its own ----------------------------------------------------------------


def test_auto_takes_the_embedded_model_without_the_vietnamese_vosk_model(tmp_path: Path) -> None:
    assert asr_engine("auto", tmp_path / "no-vosk-model") == "vietasr"
    assert asr_engine("vosk", tmp_path / "no-vosk-model") == "vosk"  # explicit: kept
    with pytest.raises(ValueError, match="BOT_ASR_ENGINE"):
        asr_engine("whisper", tmp_path)


def test_the_engine_names_itself_and_takes_no_grammar(model: VietasrModel) -> None:
    assert model.name == "vietasr:embedded-0.1.0.dev11"
    assert model.vocabulary_phrases() == []


def test_it_refuses_audio_that_is_not_16_khz_pcm16(model: VietasrModel) -> None:
    with pytest.raises(AudioFormatError, match="convert it at the line's edge"):
        model.recognition().accept(AudioChunk(b"\0" * 320, TELEPHONE))


def test_a_clip_gives_growing_partials_then_one_final_without_words_or_confidence(
    model: VietasrModel, clips: list[Clip]
) -> None:
    ly = next(c for c in clips if c.name.startswith("Ly"))
    partials, final = decode(model, pcm16k(ly.wav))
    assert len(partials) >= 3 and partials[0].text != partials[-1].text
    assert final.text == "chúng ta có thể áp dụng logic tương tự với người khác"
    assert final.words == () and final.confidence is None  # the engine gives none: none invented


def test_finish_starts_the_next_utterance_afresh(model: VietasrModel, clips: list[Clip]) -> None:
    ly, doan = (next(c for c in clips if c.name.startswith(n)) for n in ("Ly", "Đoan"))
    recognition = model.recognition()
    for clip in (ly, doan):
        pcm = pcm16k(clip.wav)
        for start in range(0, len(pcm), FRAME):
            recognition.accept(AudioChunk(pcm[start : start + FRAME], RECOGNISER))
        final = recognition.finish()
        edits, syllables = syllable_edits(clip.text, final.text)
        assert edits / syllables <= WER_BOUND[clip.name], final.text
    assert recognition.finish() == Final("")  # nothing since: an empty final, exactly one


def test_decoding_never_reaches_the_network(
    model: VietasrModel, clips: list[Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In process: any Python socket connection or name lookup fails the test...
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the recogniser tried the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = VietasrModel()
    _, final = decode(fresh, pcm16k(clips[0].wav))
    assert final.text


def test_the_native_library_opens_no_internet_socket(clips: list[Clip], tmp_path: Path) -> None:
    # ...and the native library, which Python cannot see into, is watched by strace: building
    # the model and decoding a clip must make no socket() or connect() of an internet family.
    assert subprocess.run(["strace", "-V"], capture_output=True).returncode == 0, (
        "strace is installed by `make test`"
    )
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from tests.test_vietasr import VietasrModel, decode, pcm16k
        print(decode(VietasrModel(), pcm16k(Path({str(clips[0].wav)!r})))[1].text)
        """
    )
    trace = tmp_path / "trace"
    watch = ["strace", "-f", "-e", "trace=socket,connect", "-o", str(trace)]
    done = subprocess.run(
        [*watch, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()  # it did decode
    calls = trace.read_text().splitlines()
    internet = [c for c in calls if "AF_INET" in c]  # AF_INET and AF_INET6
    assert internet == []


# --- the whole line, on natural speech -----------------------------------------------------


@dataclass
class Heard:
    """What the real recognition of one call did: partials with the utterance audio fed
    before each (ms), and each finish() with the audio of its utterance."""

    partials: list[tuple[float, str]] = field(default_factory=list)
    finals: list[tuple[float, str]] = field(default_factory=list)
    fed_ms: float = 0.0


class WatchedRecognition:
    """The real recognition, watched: it counts the audio it is given, nothing else (a spy,
    not a fake: every result is the engine's)."""

    def __init__(self, real: VietasrRecognition, heard: Heard) -> None:
        self.real, self.heard = real, heard

    def accept(self, chunk: AudioChunk) -> Partial | Final | None:
        result = self.real.accept(chunk)
        self.heard.fed_ms += chunk.duration_ms
        if isinstance(result, Partial):
            self.heard.partials.append((self.heard.fed_ms, result.text))
        return result

    def finish(self) -> Final:
        final = self.real.finish()
        self.heard.finals.append((self.heard.fed_ms, final.text))
        self.heard.fed_ms = 0.0
        return final

    async def accept_async(self, chunk: AudioChunk) -> Partial | Final | None:
        return await asyncio.to_thread(self.accept, chunk)

    async def finish_async(self) -> Final:
        return await asyncio.to_thread(self.finish)


class WatchedModel:
    def __init__(self, real: VietasrModel) -> None:
        self.real = real
        self.calls: list[Heard] = []

    @property
    def name(self) -> str:
        return self.real.name

    def vocabulary_phrases(self) -> list[str]:
        return self.real.vocabulary_phrases()

    def recognition(
        self, phrases: object = None, executor: Executor | None = None
    ) -> WatchedRecognition:
        heard = Heard()
        self.calls.append(heard)
        return WatchedRecognition(self.real.recognition(), heard)


@pytest.fixture(scope="module")
def line_engines(brain, tmp_path_factory) -> Iterator[Engines]:  # type: ignore[no-untyped-def]
    db = tmp_path_factory.mktemp("records") / "calls.sqlite3"
    loaded = load_engines(
        SETTINGS,
        store_url=f"sqlite:///{db}",
        brain=BrainService(brain),
        asr_engine="vietasr",
        stand_in_voice=True,  # the Vietnamese Piper voice cannot be downloaded here
    )
    yield loaded
    loaded.close()


def test_load_engines_picks_vietasr_by_auto_here(tmp_path: Path) -> None:
    here = dataclasses.replace(SETTINGS, vosk_model=tmp_path / "no-vosk-model", asr_engine="auto")
    assert load_speech_model(here).name.startswith("vietasr:")


def over_ulaw_line(wav: Path, out: Path) -> Path:
    """The recording as it arrives over a G.711 μ-law line: 8 kHz, μ-law coded and decoded
    by the line's own converters, as the 8 kHz PCM16 the simulated line carries (its
    prompts are cached in that format)."""
    audio = read_wav(wav)
    to_line, from_line = Converter(audio.format, ULAW_LINE), Converter(ULAW_LINE, TELEPHONE)
    coded = to_line.convert(audio).data + to_line.flush().data
    pcm = from_line.convert(AudioChunk(coded, ULAW_LINE)).data + from_line.flush().data
    write_wav(out, AudioChunk(pcm, TELEPHONE))
    return out


def test_natural_speech_over_a_ulaw_line_is_heard(
    line_engines: Engines, clips: list[Clip], tmp_path: Path
) -> None:
    store = line_engines.store
    assert store is not None
    watched = WatchedModel(line_engines.speech)  # type: ignore[arg-type]
    line_engines.speech = watched

    async def play(clip: Clip):  # type: ignore[no-untyped-def]
        on_line = over_ulaw_line(clip.wav, tmp_path / f"{clip.name}.wav")
        # Long enough for the final and the brain's answer even on a busy machine.
        seconds = read_wav(on_line).duration_ms / 1000 + 15.0
        return await run_simulated_call(line_engines, on_line, max_seconds=seconds)

    async def all_calls():  # type: ignore[no-untyped-def]
        # Two at a time: decoding runs on one core whatever the threads (the module docstring).
        results = []
        for pair in (clips[i : i + 2] for i in range(0, len(clips), 2)):
            results += await asyncio.gather(*(play(c) for c in pair))
        return results

    results = asyncio.run(all_calls())
    failures = []
    for clip, (_, call) in zip(clips, results, strict=True):
        watching = call._recognition
        assert isinstance(watching, WatchedRecognition)
        heard = watching.heard
        record = store.get_call(call.call_id)
        assert record is not None and record.asr_engine == "vietasr:embedded-0.1.0.dev11"
        turns = store.turns(call.call_id)
        utterances = [t.text or "" for t in turns if t.kind == NoteKind.UTTERANCE]
        assert heard.finals, f"{clip.name}: no utterance ended"
        # Exactly one final per utterance the VAD ended, and each in the record.
        assert [text for _, text in heard.finals if text] == utterances, clip.name
        transcript = " ".join(utterances)
        edits, syllables = syllable_edits(clip.text, transcript)
        print(f"{clip.name}: {edits}/{syllables} {transcript!r}")
        if edits / syllables > WER_BOUND[clip.name]:
            failures.append(f"{clip.name}: {edits}/{syllables} heard {transcript!r}")
        # Partials while the caller still speaks: from a part of the utterance's audio.
        ends = [ms for ms, _ in heard.finals]
        assert any(ms < ends[0] - 500 for ms, _ in heard.partials), (clip.name, heard)
        # And the brain was asked with what was heard.
        assert any(t.kind == NoteKind.HEARD and t.text for t in turns), clip.name
        assert call.stats.asr_audio_seconds > 0
    assert failures == []
