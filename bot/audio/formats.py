"""Audio at the edges of a call: formats, and the conversions between them.

Every chunk of audio carries its format (Wyoming's habit), so nothing downstream
guesses a rate or an encoding, and two formats are never mixed by accident.
Conversion happens in one place per direction: the line's format -> the
recogniser's (16 kHz PCM16), and the voice's rate -> the line's format.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from numpy.typing import NDArray
from scipy import signal

ENCODINGS = ("pcm16", "ulaw", "alaw")


class AudioFormatError(ValueError):
    """Audio that does not match the format it claims or the one expected."""


@dataclass(frozen=True)
class AudioFormat:
    rate: int  # samples per second
    encoding: str = "pcm16"  # pcm16: signed 16-bit little-endian; ulaw/alaw: G.711
    channels: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise AudioFormatError(f"unknown encoding {self.encoding!r}; one of {ENCODINGS}")
        if self.rate <= 0 or self.channels <= 0:
            raise AudioFormatError(f"bad rate or channels: {self.rate} Hz, {self.channels} ch")

    @property
    def sample_width(self) -> int:
        return 2 if self.encoding == "pcm16" else 1

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample across all channels."""
        return self.sample_width * self.channels

    def bytes_for_ms(self, ms: float) -> int:
        return int(self.rate * ms / 1000) * self.frame_bytes

    def __str__(self) -> str:
        return f"{self.encoding}/{self.rate}Hz/{self.channels}ch"


# The formats of this system.
TELEPHONE = AudioFormat(8000, "pcm16")  # Asterisk AudioSocket: signed linear 8 kHz mono
RECOGNISER = AudioFormat(16000, "pcm16")  # Vosk's models are trained on 16 kHz

# The telephone's packet time: every line sends and receives audio in frames this long.
FRAME_MS = 20


@dataclass(frozen=True)
class AudioChunk:
    data: bytes
    format: AudioFormat

    def __post_init__(self) -> None:
        if len(self.data) % self.format.frame_bytes:
            raise AudioFormatError(
                f"{len(self.data)} bytes is not a whole number of {self.format} samples"
            )

    @property
    def samples(self) -> int:
        return len(self.data) // self.format.frame_bytes

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.samples / self.format.rate


# ---------------------------------------------------------------------------------------------
# Samples: bytes <-> numpy arrays

Int16Array = NDArray[np.int16]
FloatArray = NDArray[np.float64]

_PCM16_LE = np.dtype("<i2")  # the wire order, whatever the host's


def pcm16_to_float(pcm: bytes | Int16Array) -> NDArray[np.float32]:
    """PCM16 (little-endian bytes or int16 samples) -> float32 in [-1, 1)."""
    samples = np.frombuffer(pcm, dtype=_PCM16_LE) if isinstance(pcm, bytes) else pcm
    return samples.astype(np.float32) / np.float32(32768.0)


def float_to_pcm16(samples: NDArray[np.floating[Any]]) -> Int16Array:
    """Float in [-1, 1) -> int16, rounded, clipped: loud synthesis must saturate, not wrap."""
    return _round_to_int16(np.asarray(samples, dtype=np.float64) * 32768.0)


def _round_to_int16(samples: FloatArray) -> Int16Array:
    """Samples already on the int16 scale -> int16, rounded to nearest and clipped."""
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


def to_samples(chunk: AudioChunk) -> Int16Array:
    """The chunk's linear samples (G.711 decoded), interleaved if it has several channels."""
    if chunk.format.encoding == "ulaw":
        return ulaw_decode(np.frombuffer(chunk.data, dtype=np.uint8))
    if chunk.format.encoding == "alaw":
        return alaw_decode(np.frombuffer(chunk.data, dtype=np.uint8))
    return np.frombuffer(chunk.data, dtype=_PCM16_LE).astype(np.int16)


def from_samples(samples: Int16Array, fmt: AudioFormat) -> AudioChunk:
    """Linear int16 samples -> a chunk in `fmt` (G.711 encoded if `fmt` says so)."""
    if fmt.encoding == "ulaw":
        return AudioChunk(ulaw_encode(samples).tobytes(), fmt)
    if fmt.encoding == "alaw":
        return AudioChunk(alaw_encode(samples).tobytes(), fmt)
    _check_int16(samples)
    return AudioChunk(samples.astype(_PCM16_LE).tobytes(), fmt)


def _check_int16(samples: NDArray[Any]) -> None:
    # Casting floats or wider ints here would wrap loud samples silently.
    if samples.dtype != np.int16:
        raise AudioFormatError(f"expected int16 samples, got {samples.dtype}")


# ---------------------------------------------------------------------------------------------
# G.711 (ITU-T G.711), on 16-bit samples as Asterisk's codecs do it. (audioop first floors
# samples to 14 bits for μ-law, which moves some negative samples by one step; A-law agrees.)
# Each codec is a table: 64 K codes for encoding (indexed by the sample's bit pattern), 256
# samples for decoding, computed once, vectorised, from the standard's segment rules.

# Upper bounds (exclusive) of segments 0..6 on 16-bit magnitudes; segment 7 runs to the top.
_SEGMENT_ENDS = np.array([256, 512, 1024, 2048, 4096, 8192, 16384], dtype=np.int32)
_ULAW_BIAS = 0x84  # shifts magnitudes so every segment starts at a power of two
_ULAW_CLIP = 32635  # largest magnitude that stays below 2**15 once biased

# Every 16-bit sample, in the order of its bit pattern read as uint16.
_ALL_SAMPLES = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16)


def _ulaw_encode_table() -> NDArray[np.uint8]:
    x = _ALL_SAMPLES.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude, side="right")
    mantissa = (magnitude >> (segment + 3)) & 0x0F
    # Codes are sent inverted (G.711), which keeps silence away from all-zero bytes.
    table: NDArray[np.uint8] = (~(sign | (segment << 4) | mantissa) & 0xFF).astype(np.uint8)
    return table


def _ulaw_decode_table() -> Int16Array:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code & 0x70) >> 4
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << segment
    return np.where(code & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS).astype(np.int16)


def _alaw_encode_table() -> NDArray[np.uint8]:
    x = _ALL_SAMPLES.astype(np.int32)
    # A-law has no zero: 0 and -1 are mirror images, so negatives are folded by ones' complement.
    magnitude = np.where(x >= 0, x, -x - 1)
    even_bits = np.where(x >= 0, 0xD5, 0x55)  # sign bit, and G.711's even-bit inversion
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude, side="right")
    mantissa = (magnitude >> (np.maximum(segment, 1) + 3)) & 0x0F  # segments 0 and 1 share a step
    table: NDArray[np.uint8] = (((segment << 4) | mantissa) ^ even_bits).astype(np.uint8)
    return table


def _alaw_decode_table() -> Int16Array:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    magnitude = (code & 0x0F) << 4
    magnitude = np.where(
        segment == 0, magnitude + 8, (magnitude + 0x108) << np.maximum(segment - 1, 0)
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_ENCODE = _ulaw_encode_table()
_ULAW_DECODE = _ulaw_decode_table()
_ALAW_ENCODE = _alaw_encode_table()
_ALAW_DECODE = _alaw_decode_table()


def ulaw_encode(samples: Int16Array) -> NDArray[np.uint8]:
    """int16 samples -> G.711 μ-law codes."""
    _check_int16(samples)
    result: NDArray[np.uint8] = _ULAW_ENCODE[samples.view(np.uint16)]
    return result


def ulaw_decode(codes: NDArray[np.uint8]) -> Int16Array:
    """G.711 μ-law codes -> int16 samples."""
    result: Int16Array = _ULAW_DECODE[np.asarray(codes, dtype=np.uint8)]
    return result


def alaw_encode(samples: Int16Array) -> NDArray[np.uint8]:
    """int16 samples -> G.711 A-law codes."""
    _check_int16(samples)
    result: NDArray[np.uint8] = _ALAW_ENCODE[samples.view(np.uint16)]
    return result


def alaw_decode(codes: NDArray[np.uint8]) -> Int16Array:
    """G.711 A-law codes -> int16 samples."""
    result: Int16Array = _ALAW_DECODE[np.asarray(codes, dtype=np.uint8)]
    return result


# ---------------------------------------------------------------------------------------------
# Resampling: streaming polyphase FIR

# Kaiser-window low-pass. The stopband starts at the lower rate's Nyquist frequency, so nothing
# above it folds back into the band; the passband keeps 85% of it (3.4 kHz on an 8 kHz line,
# the telephone band). 80 dB keeps aliases below the noise floor of speech on a phone line.
_PASSBAND = 0.85
_STOPBAND_DB = 80.0
# 44.1 kHz <-> 48 kHz needs 147/160; beyond this the filter grows to millions of taps.
_MAX_RATIO_TERM = 1000
_BLOCK = 4096  # outputs computed at once: bounds the (outputs x taps) gather in memory


@functools.cache
def _lowpass(up: int, down: int) -> FloatArray:
    """Polyphase prototype filter for up/down, with the gain of `up` that zero-stuffing loses."""
    widest = max(up, down)
    numtaps, beta = signal.kaiserord(_STOPBAND_DB, (1.0 - _PASSBAND) / widest)
    numtaps |= 1  # odd: the group delay is a whole number of samples, which flush() removes
    cutoff = (1.0 + _PASSBAND) / 2.0 / widest
    taps = signal.firwin(numtaps, cutoff, window=("kaiser", beta)) * up
    result: FloatArray = np.asarray(taps, dtype=np.float64)
    result.setflags(write=False)  # shared between calls through the cache
    return result


class Resampler:
    """Streaming rational resampler for one mono signal of float samples (any scale).

    Feeding a signal in pieces gives the same output as feeding it whole, which is the same as
    `scipy.signal.resample_poly(x, up, down, window=taps / up)` (zero padding at both ends): the
    filter's delay is removed, so output sample n is at time n / dst_rate. Output therefore lags
    by about half the filter (a few ms); `flush()` returns that tail and starts a new stream.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise AudioFormatError(f"bad rates: {src_rate} Hz -> {dst_rate} Hz")
        common = math.gcd(src_rate, dst_rate)
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self.up = dst_rate // common
        self.down = src_rate // common
        if max(self.up, self.down) > _MAX_RATIO_TERM:
            raise AudioFormatError(
                f"cannot resample {src_rate} Hz -> {dst_rate} Hz: the ratio "
                f"{self.up}/{self.down} needs too long a filter"
            )
        self.taps = _lowpass(self.up, self.down)
        self._delay = (len(self.taps) - 1) // 2  # in samples at up * src_rate
        per_phase = -(-len(self.taps) // self.up)
        padded = np.zeros(self.up * per_phase)
        padded[: len(self.taps)] = self.taps
        # _phases[p, i] = taps[p + i * up]: the taps that meet input samples for output phase p.
        self._phases: FloatArray = np.ascontiguousarray(padded.reshape(per_phase, self.up).T)
        self._per_phase = per_phase
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample fed is time zero of a new one."""
        self._received = 0  # input samples fed
        self._produced = 0  # output samples returned
        # Input history; samples before the stream are zeros, which the first outputs read.
        self._history: FloatArray = np.zeros(self._per_phase)
        self._history_start = -self._per_phase  # input index of _history[0]

    def process(self, samples: NDArray[Any]) -> FloatArray:
        """Feed input samples; return every output sample they complete."""
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 1:
            raise AudioFormatError(f"expected mono samples (1-D), got shape {samples.shape}")
        self._history = np.concatenate((self._history, samples))
        self._received += len(samples)
        # Output n needs input up to index (n * down + delay) // up.
        last = self._received * self.up - 1 - self._delay
        end = last // self.down + 1 if last >= 0 else 0
        return self._produce(end)

    def flush(self) -> FloatArray:
        """The outputs still held back by the filter (the input ends in zeros); then reset."""
        total = -(-self._received * self.up // self.down)  # ceil: resample_poly's length
        if total > self._produced:
            needed = ((total - 1) * self.down + self._delay) // self.up + 1
            missing = needed - (self._history_start + len(self._history))
            self._history = np.concatenate((self._history, np.zeros(max(missing, 0))))
        tail = self._produce(total)
        self.reset()
        return tail

    def _produce(self, end: int) -> FloatArray:
        pieces = []
        for start in range(self._produced, end, _BLOCK):
            n = np.arange(start, min(start + _BLOCK, end), dtype=np.int64)
            position = n * self.down + self._delay  # on the zero-stuffed (up * src_rate) grid
            newest = position // self.up - self._history_start
            window = self._history[newest[:, None] - np.arange(self._per_phase)[None, :]]
            pieces.append((window * self._phases[position % self.up]).sum(axis=1))
        self._produced = max(self._produced, end)
        # Keep only the history that the next output will read.
        oldest = (self._produced * self.down + self._delay) // self.up - (self._per_phase - 1)
        drop = oldest - self._history_start
        if drop > 0:
            self._history = self._history[drop:]
            self._history_start += drop
        return np.concatenate(pieces) if pieces else np.zeros(0)


# ---------------------------------------------------------------------------------------------
# One conversion per call per direction


class Converter:
    """Convert one stream of mono audio from `src` to `dst`: decode, resample, encode.

    Keep one per call and direction: it carries the resampler's state from chunk to chunk.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        for role, fmt in (("source", src), ("destination", dst)):
            if fmt.channels != 1:
                raise AudioFormatError(
                    f"{role} format {fmt} has {fmt.channels} channels; "
                    "the converter takes mono audio only (mix down first, e.g. read_wav)"
                )
        self.src = src
        self.dst = dst
        self._resampler = Resampler(src.rate, dst.rate) if src.rate != dst.rate else None

    def convert(self, chunk: AudioChunk) -> AudioChunk:
        if chunk.format != self.src:
            raise AudioFormatError(
                f"chunk is {chunk.format}, but this converter takes {self.src} (to {self.dst})"
            )
        samples = to_samples(chunk)
        if self._resampler is not None:
            samples = _round_to_int16(self._resampler.process(samples))
        return from_samples(samples, self.dst)

    def flush(self) -> AudioChunk:
        """The resampler's tail at the end of the stream (empty if there is none)."""
        if self._resampler is None:
            return AudioChunk(b"", self.dst)
        return from_samples(_round_to_int16(self._resampler.flush()), self.dst)


# ---------------------------------------------------------------------------------------------
# Files


def read_wav(path: str | Path) -> AudioChunk:
    """Any file soundfile reads (WAV, FLAC, ...; any rate and sample format) -> mono PCM16."""
    # Read as float: libsndfile does not scale float files read as int16 (0.5 would read as 0),
    # and int16 files come back exactly (x / 32768).
    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    frames: FloatArray = np.asarray(data, dtype=np.float64)
    # The average of the channels, so a stereo call does not clip when mixed down.
    mono = float_to_pcm16(frames.mean(axis=1))
    return from_samples(np.ascontiguousarray(mono), AudioFormat(int(rate)))


def write_wav(path: str | Path, chunk: AudioChunk) -> None:
    """Write a chunk as a PCM16 WAV file (G.711 is decoded first)."""
    samples = to_samples(chunk).reshape(-1, chunk.format.channels)
    soundfile.write(str(path), samples, chunk.format.rate, subtype="PCM_16", format="WAV")


def frames(chunk: AudioChunk, fmt: AudioFormat, ms: int = FRAME_MS) -> list[bytes]:
    """The chunk as frames of ``ms`` each, for a line that carries ``fmt``; the last is padded
    with silence (under one frame of it), so a paced sender sends one frame per period.
    Audio in another format is refused: convert it at the line's edge first."""
    if chunk.format != fmt:
        raise AudioFormatError(f"this line carries {fmt}, not {chunk.format}; convert it first")
    if fmt.encoding != "pcm16":
        raise AudioFormatError(f"framing pads with PCM16 silence; {fmt} is not PCM16")
    size = fmt.bytes_for_ms(ms)
    data = chunk.data
    out = [data[i : i + size] for i in range(0, len(data), size)]
    if out and len(out[-1]) < size:
        out[-1] = out[-1].ljust(size, b"\x00")  # PCM16 zero is silence
    return out
