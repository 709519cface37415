"""Conversions at the edges: G.711, resampling, the per-call converter, WAV files."""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
from numpy.typing import NDArray
from scipy import signal

from bot.audio.formats import (
    RECOGNISER,
    TELEPHONE,
    AudioChunk,
    AudioFormat,
    AudioFormatError,
    Converter,
    Resampler,
    alaw_decode,
    alaw_encode,
    float_to_pcm16,
    from_samples,
    pcm16_to_float,
    read_wav,
    to_samples,
    ulaw_decode,
    ulaw_encode,
    write_wav,
)

pytestmark = pytest.mark.unit

RATES = (8000, 16000, 22050, 24000, 48000)
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


def tone(
    freq: float, rate: int, seconds: float = 1.0, amplitude: float = 10000.0
) -> NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    samples: NDArray[np.int16] = np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return samples


def noise(rate: int, seconds: float = 1.0, seed: int = 0) -> NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 6000, int(rate * seconds)), -32768, 32767).astype(np.int16)


def rms(x: NDArray[np.generic]) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def convert_whole(
    src: AudioFormat, dst: AudioFormat, samples: NDArray[np.int16]
) -> NDArray[np.int16]:
    conv = Converter(src, dst)
    out = conv.convert(from_samples(samples, src))
    return np.concatenate([to_samples(out), to_samples(conv.flush())])


def convert_in_pieces(
    src: AudioFormat, dst: AudioFormat, samples: NDArray[np.int16], sizes: list[int]
) -> NDArray[np.int16]:
    conv = Converter(src, dst)
    pieces, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= len(samples):
            break
        pieces.append(to_samples(conv.convert(from_samples(samples[start : start + size], src))))
        start += size
    pieces.append(to_samples(conv.flush()))
    return np.concatenate(pieces)


# --- G.711 -----------------------------------------------------------------------------------


def test_ulaw_known_values() -> None:
    codes = np.array([0xFF, 0x7F, 0x00, 0x80, 0xFE, 0x7E], dtype=np.uint8)
    assert ulaw_decode(codes).tolist() == [0, 0, -32124, 32124, 8, -8]
    samples = np.array([0, -32124, 32124, 32767, -32768, 8], dtype=np.int16)
    assert ulaw_encode(samples).tolist() == [0xFF, 0x00, 0x80, 0x80, 0x00, 0xFE]


def test_alaw_known_values() -> None:
    codes = np.array([0xD5, 0x55, 0xAA, 0x2A], dtype=np.uint8)
    assert alaw_decode(codes).tolist() == [8, -8, 32256, -32256]
    samples = np.array([0, -1, 32767, -32768, 8, -8], dtype=np.int16)
    assert alaw_encode(samples).tolist() == [0xD5, 0x55, 0xAA, 0x2A, 0xD5, 0x55]


def test_ulaw_codes_survive_decode_and_encode() -> None:
    again = ulaw_encode(ulaw_decode(ALL_CODES))
    # 0x7F is "negative zero": it decodes to 0, which encodes as 0xFF.
    expected = np.where(ALL_CODES == 0x7F, 0xFF, ALL_CODES)
    np.testing.assert_array_equal(again, expected)


def test_alaw_codes_survive_decode_and_encode() -> None:
    np.testing.assert_array_equal(alaw_encode(alaw_decode(ALL_CODES)), ALL_CODES)


def test_ulaw_round_trip_error_is_within_half_a_step() -> None:
    codes = ulaw_encode(ALL_SAMPLES)
    back = ulaw_decode(codes).astype(np.int32)
    error = np.abs(back - ALL_SAMPLES.astype(np.int32))
    segment = ((~codes.astype(np.int32)) & 0x70) >> 4
    half_step = 2 ** (segment + 2)
    unclipped = np.abs(ALL_SAMPLES.astype(np.int32)) <= 32635
    assert np.all(error[unclipped] <= half_step[unclipped])
    assert np.all(np.abs(back[~unclipped]) == 32124)  # clipped to the largest code
    assert np.all(np.diff(back) >= 0)  # monotonic: louder never decodes quieter


def test_alaw_round_trip_error_is_within_half_a_step() -> None:
    codes = alaw_encode(ALL_SAMPLES)
    back = alaw_decode(codes).astype(np.int32)
    error = np.abs(back - ALL_SAMPLES.astype(np.int32))
    segment = ((codes.astype(np.int32) ^ 0x55) & 0x70) >> 4
    half_step = 2 ** (np.maximum(segment, 1) + 2)
    assert np.all(error <= half_step)
    assert np.all(np.diff(back) >= 0)


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_g711_keeps_a_tone_at_telephone_quality(codec: str) -> None:
    x = tone(440, 8000, amplitude=8000)
    if codec == "ulaw":
        back = ulaw_decode(ulaw_encode(x))
    else:
        back = alaw_decode(alaw_encode(x))
    snr = 20 * math.log10(rms(x) / rms(back.astype(np.int32) - x))
    assert snr > 35  # G.711 gives about 38 dB on a loud tone


def test_g711_agrees_with_audioop() -> None:
    # audioop (Python <= 3.12) is an independent implementation of the same tables.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    raw = ALL_SAMPLES.tobytes()
    ref_ulaw = np.frombuffer(audioop.lin2ulaw(raw, 2), dtype=np.uint8)
    ref_alaw = np.frombuffer(audioop.lin2alaw(raw, 2), dtype=np.uint8)
    np.testing.assert_array_equal(alaw_encode(ALL_SAMPLES), ref_alaw)
    # audioop first floors samples to 14 bits, which moves some negative ones by a step;
    # elsewhere the two agree exactly.
    same = (ALL_SAMPLES >= 0) | (ALL_SAMPLES % 4 == 0)
    np.testing.assert_array_equal(ulaw_encode(ALL_SAMPLES)[same], ref_ulaw[same])
    codes = ALL_CODES.tobytes()
    np.testing.assert_array_equal(
        ulaw_decode(ALL_CODES), np.frombuffer(audioop.ulaw2lin(codes, 2), np.int16)
    )
    np.testing.assert_array_equal(
        alaw_decode(ALL_CODES), np.frombuffer(audioop.alaw2lin(codes, 2), np.int16)
    )


def test_encoders_refuse_samples_that_are_not_int16() -> None:
    with pytest.raises(AudioFormatError, match="int16"):
        ulaw_encode(np.zeros(4, dtype=np.float64))
    with pytest.raises(AudioFormatError, match="int16"):
        alaw_encode(np.zeros(4, dtype=np.int32))


# --- float helpers ---------------------------------------------------------------------------


def test_float_conversion_round_trips_every_sample() -> None:
    floats = pcm16_to_float(ALL_SAMPLES)
    assert floats.dtype == np.float32
    assert floats.min() == -1.0 and floats.max() < 1.0
    np.testing.assert_array_equal(float_to_pcm16(floats), ALL_SAMPLES)


def test_float_to_pcm16_clips_instead_of_wrapping() -> None:
    out = float_to_pcm16(np.array([1.5, -1.5, 1.0, 0.5]))
    assert out.tolist() == [32767, -32768, 32767, 16384]


def test_pcm16_to_float_reads_little_endian_bytes() -> None:
    assert pcm16_to_float(b"\x00\x40\x00\xc0").tolist() == [0.5, -0.5]


# --- resampling ------------------------------------------------------------------------------

PAIRS = [(a, b) for a in RATES for b in RATES if a != b]


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_chunked_conversion_equals_whole(src: int, dst: int) -> None:
    x = noise(src, 0.5) // 2 + tone(700, src, 0.5)
    whole = convert_whole(AudioFormat(src), AudioFormat(dst), x)
    assert len(whole) == math.ceil(len(x) * dst / src)
    for sizes in ([src // 50], [1, 37, 441, 2, 999], [len(x) // 3 + 1]):  # 20 ms, odd, large
        pieces = convert_in_pieces(AudioFormat(src), AudioFormat(dst), x, sizes)
        assert len(pieces) == len(whole)
        assert np.abs(pieces.astype(np.int32) - whole).max() <= 1, sizes


@pytest.mark.parametrize(
    ("src", "dst"), [(22050, 8000), (8000, 16000), (48000, 8000), (24000, 22050)]
)
def test_resampler_matches_scipy_resample_poly(src: int, dst: int) -> None:
    # Same filter, independent implementation: checks the alignment (no delay) and the phases.
    x = noise(src, 0.3, seed=1).astype(np.float64)
    resampler = Resampler(src, dst)
    ours = np.concatenate(
        [resampler.process(x[:1000]), resampler.process(x[1000:]), resampler.flush()]
    )
    reference = signal.resample_poly(
        x, resampler.up, resampler.down, window=resampler.taps / resampler.up
    )
    assert len(ours) == len(reference)
    assert np.abs(ours - reference).max() < 1e-6


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_a_speech_band_tone_keeps_its_level_and_timing(src: int, dst: int) -> None:
    x = tone(1000, src)
    out = convert_whole(AudioFormat(src), AudioFormat(dst), x).astype(np.float64)
    expected = tone(1000, dst).astype(np.float64)
    middle = slice(dst // 10, -dst // 10)  # away from the edges, where the filter sees zeros
    # Same samples at the same instants: level kept, and no delay or phase shift.
    assert np.abs(out[middle] - expected[middle]).max() < 0.005 * 10000


@pytest.mark.parametrize(
    ("src", "dst", "freq"), [(22050, 8000, 5000.0), (48000, 8000, 6000.0), (16000, 8000, 4500.0)]
)
def test_downsampling_does_not_alias(src: int, dst: int, freq: float) -> None:
    x = tone(freq, src, amplitude=16000)
    out = convert_whole(AudioFormat(src), AudioFormat(dst), x)
    middle = out[dst // 10 : -dst // 10]
    assert rms(middle) < 1e-3 * rms(x)  # the tone is above the new Nyquist: -60 dB or better
    # Control: the same tone decimated without a filter folds into the band at full level.
    if src % dst == 0:
        assert rms(x[:: src // dst]) > 0.5 * rms(x)


def test_upsampling_leaves_no_images() -> None:
    out = convert_whole(TELEPHONE, RECOGNISER, tone(3000, 8000)).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(out[1600:-1600] * np.hanning(len(out) - 3200)))
    freqs = np.fft.rfftfreq(len(out) - 3200, 1 / 16000)
    image = spectrum[(freqs > 4500)].max()  # the image of 3 kHz would be at 5 kHz
    assert image < 1e-3 * spectrum.max()


def test_resampler_refuses_ratios_that_need_huge_filters() -> None:
    with pytest.raises(AudioFormatError, match="too long a filter"):
        Resampler(8000, 44099)


# --- the converter ---------------------------------------------------------------------------


def test_converter_refuses_a_chunk_of_another_format() -> None:
    conv = Converter(TELEPHONE, RECOGNISER)
    wrong = AudioChunk(bytes(320), RECOGNISER)
    with pytest.raises(AudioFormatError, match="takes pcm16/8000Hz/1ch"):
        conv.convert(wrong)
    with pytest.raises(AudioFormatError):
        conv.convert(AudioChunk(bytes(160), AudioFormat(8000, "ulaw")))


@pytest.mark.parametrize("stereo", [AudioFormat(8000, channels=2), AudioFormat(16000, "ulaw", 2)])
def test_converter_takes_mono_only(stereo: AudioFormat) -> None:
    with pytest.raises(AudioFormatError, match="mono"):
        Converter(stereo, TELEPHONE)
    with pytest.raises(AudioFormatError, match="mono"):
        Converter(TELEPHONE, stereo)


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_converter_decodes_g711_to_the_recogniser_and_back(codec: str) -> None:
    line = AudioFormat(8000, codec)
    x = tone(440, 8000, amplitude=8000)
    on_line = from_samples(x, line)
    assert len(on_line.data) == len(x)  # one byte per sample
    inbound = Converter(line, RECOGNISER)
    wide = inbound.convert(on_line)
    wide = AudioChunk(wide.data + inbound.flush().data, RECOGNISER)
    assert wide.samples == 2 * len(x)
    outbound = Converter(RECOGNISER, line)
    back = outbound.convert(wide)
    back = AudioChunk(back.data + outbound.flush().data, line)
    assert back.format == line and back.samples == len(x)
    error = to_samples(back).astype(np.int32) - x
    snr = 20 * math.log10(rms(x) / rms(error[400:-400]))
    assert snr > 30  # two G.711 passes and two resamplings


def test_converter_without_resampling_is_exact() -> None:
    codes = from_samples(ALL_SAMPLES, AudioFormat(8000, "ulaw"))
    conv = Converter(AudioFormat(8000, "ulaw"), TELEPHONE)
    np.testing.assert_array_equal(
        to_samples(conv.convert(codes)), ulaw_decode(ulaw_encode(ALL_SAMPLES))
    )
    assert conv.flush() == AudioChunk(b"", TELEPHONE)


def test_converter_starts_a_new_stream_after_flush() -> None:
    x = noise(22050, 0.2)
    conv = Converter(AudioFormat(22050), TELEPHONE)
    first = conv.convert(from_samples(x, AudioFormat(22050))).data + conv.flush().data
    second = conv.convert(from_samples(x, AudioFormat(22050))).data + conv.flush().data
    assert first == second


# --- files -----------------------------------------------------------------------------------


def test_write_and_read_wav_round_trip(tmp_path: Path) -> None:
    chunk = from_samples(noise(16000, 0.25), RECOGNISER)
    write_wav(tmp_path / "a.wav", chunk)
    assert read_wav(tmp_path / "a.wav") == chunk


def test_read_wav_mixes_down_any_format_to_mono_pcm16(tmp_path: Path) -> None:
    left = np.linspace(-0.5, 0.5, 4410)
    right = np.full(4410, 0.25)
    soundfile.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    chunk = read_wav(tmp_path / "s.wav")
    assert chunk.format == AudioFormat(44100)
    expected = float_to_pcm16((left + right) / 2)
    assert np.abs(to_samples(chunk).astype(np.int32) - expected).max() <= 1


def test_write_wav_decodes_g711(tmp_path: Path) -> None:
    x = tone(440, 8000, 0.1)
    write_wav(tmp_path / "u.wav", from_samples(x, AudioFormat(8000, "ulaw")))
    info = soundfile.info(str(tmp_path / "u.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    np.testing.assert_array_equal(
        to_samples(read_wav(tmp_path / "u.wav")), ulaw_decode(ulaw_encode(x))
    )


def test_framing_is_one_function_for_every_line() -> None:
    from bot.audio.formats import FRAME_MS, RECOGNISER, TELEPHONE, frames

    chunk = AudioChunk(b"\x01\x00" * 170, TELEPHONE)  # 21.25 ms at 8 kHz
    out = frames(chunk, TELEPHONE)
    assert FRAME_MS == 20 and [len(f) for f in out] == [320, 320]
    assert out[1][20:] == b"\x00" * 300  # padded with silence, never cut
    with pytest.raises(AudioFormatError, match="convert it first"):
        frames(chunk, RECOGNISER)
