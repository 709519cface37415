"""Every call recorded as it happens: caller and bot on two channels of one WAV file.

Channel 1 is the caller (after conversion to 16 kHz, as the recogniser hears it), channel 2
the bot (its audio as sent, converted to 16 kHz), both on the caller's clock: the caller's
audio arrives in real time from the line, so "now" in the recording is the caller audio
received so far. The bot's audio is queued by the line and played one chunk after the other,
so each chunk is laid where the bot's previous audio ends, or now if the bot was silent; a
barge-in (``bot_stopped``) drops what was queued beyond now, as the line does.

Written in chunks of about a second, with the WAV header brought up to date after each
(libsndfile's ``SFC_UPDATE_HEADER_NOW``): a server killed mid-call leaves a file that plays
up to its last second. ``recover`` (run at start-up) also fixes the header of a file whose
last write was torn, and stores the duration of every recording in its call record.
"""

from __future__ import annotations

import logging
import re
import struct
from bisect import bisect_right
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile

from bot.audio.formats import RECOGNISER, AudioChunk, AudioFormat, Converter
from bot.store.calls import CallStore, StoreError

logger = logging.getLogger(__name__)

RATE = RECOGNISER.rate
CHANNELS = 2  # 1: caller, 2: bot
FRAME_BYTES = 2 * CHANNELS  # one PCM16 sample per channel
FLUSH_SAMPLES = RATE  # a second: what a killed server may lose at most
# libsndfile's sf_command code: rewrite the header for the data written so far.
_SFC_UPDATE_HEADER_NOW = 0x1060
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def recording_path(folder: Path, call_id: str, at: datetime) -> Path:
    """var/recordings/2026-11-30/<call id>.wav (a call id is not trusted as a file name)."""
    name = _SAFE_NAME.sub("_", call_id)[:120] or "call"
    return folder / at.strftime("%Y-%m-%d") / f"{name}.wav"


class CallRecorder:
    """One call's two-channel recording. Not thread-safe: the call's event loop calls it."""

    def __init__(self, path: Path, bot_format: AudioFormat) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = soundfile.SoundFile(
            str(path), "w", samplerate=RATE, channels=CHANNELS, format="WAV", subtype="PCM_16"
        )
        self._bot_in = Converter(bot_format, RECOGNISER)
        self.written = 0  # samples per channel on disk
        self._caller = bytearray()  # caller samples from `written` on
        self._bot = bytearray()  # bot samples from `written` on (may reach beyond the caller)
        self._closed = False

    @property
    def caller_samples(self) -> int:
        """Now, on the recording's clock (caller samples received)."""
        return self.written + len(self._caller) // 2

    @property
    def seconds(self) -> float:
        return self.caller_samples / RATE

    def caller(self, chunk: AudioChunk) -> None:
        """Caller audio in the recogniser's format, in order."""
        if self._closed:
            return
        self._caller += chunk.data
        if len(self._caller) // 2 >= FLUSH_SAMPLES:
            self._flush()

    def bot(self, chunk: AudioChunk) -> None:
        """Bot audio as it is sent to the line (any format), in order."""
        if self._closed:
            return
        data = self._bot_in.convert(chunk).data
        gap = len(self._caller) - len(self._bot)  # the bot was silent until now
        if gap > 0:
            self._bot += bytes(gap)
        self._bot += data

    def bot_stopped(self) -> None:
        """Barge-in: the line dropped the bot's audio not yet played."""
        del self._bot[len(self._caller) :]

    def close(self) -> float:
        """Write the rest (the bot's queued audio too) and close; the duration in seconds."""
        if self._closed:
            return self.written / RATE
        self._closed = True
        end = max(len(self._caller), len(self._bot))
        self._caller += bytes(end - len(self._caller))
        self._flush()
        self._file.close()
        return self.written / RATE

    def _flush(self) -> None:
        n = len(self._caller) // 2
        if not n:
            return
        caller = np.frombuffer(bytes(self._caller[: 2 * n]), dtype="<i2")
        bot_bytes = bytes(self._bot[: 2 * n])
        bot = np.zeros(n, dtype=np.int16)
        bot[: len(bot_bytes) // 2] = np.frombuffer(bot_bytes, dtype="<i2")
        self._file.write(np.column_stack((caller, bot)))
        # soundfile has no wrapper for this command: its own private handles it is.
        soundfile._snd.sf_command(self._file._file, _SFC_UPDATE_HEADER_NOW, soundfile._ffi.NULL, 0)
        self._file.flush()
        del self._caller[: 2 * n]
        del self._bot[: 2 * n]
        self.written += n


class SpeechClock:
    """Maps times in the recogniser's stream (only the speech the VAD passed on) to times
    in the call's recording, so a word's times can be played from the recording."""

    def __init__(self) -> None:
        self._asr_ms: list[float] = []  # start of each segment in the recogniser's stream
        self._call_ms: list[float] = []  # where that segment starts in the call
        self._fed_ms = 0.0

    def fed(self, duration_ms: float, ends_at_call_ms: float) -> None:
        """``duration_ms`` of audio went to the recogniser, ending at ``ends_at_call_ms``."""
        start = ends_at_call_ms - duration_ms
        contiguous = (
            self._call_ms
            and abs(self._call_ms[-1] + (self._fed_ms - self._asr_ms[-1]) - start) < 1.0
        )
        if not contiguous:
            self._asr_ms.append(self._fed_ms)
            self._call_ms.append(start)
        self._fed_ms += duration_ms

    def call_seconds(self, asr_seconds: float) -> float:
        i = bisect_right(self._asr_ms, asr_seconds * 1000) - 1
        if i < 0:
            return asr_seconds
        return (self._call_ms[i] + asr_seconds * 1000 - self._asr_ms[i]) / 1000


def repair_header(path: Path) -> float:
    """Make the RIFF and data sizes of a WAV match what is on disk (a torn last write is
    cut to whole frames); the duration in seconds. Raises ValueError if it is no WAV."""
    with path.open("r+b") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a WAV file")
        size = path.stat().st_size
        offset = 12
        frame_bytes = FRAME_BYTES
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"fmt ":
                fmt = f.read(16)
                channels, bits = (
                    struct.unpack("<H", fmt[2:4])[0],
                    struct.unpack("<H", fmt[14:16])[0],
                )
                frame_bytes = channels * bits // 8
            if chunk_id == b"data":
                data_bytes = (size - offset - 8) // frame_bytes * frame_bytes
                f.truncate(offset + 8 + data_bytes)
                f.seek(offset + 4)
                f.write(struct.pack("<I", data_bytes))
                f.seek(4)
                f.write(struct.pack("<I", offset + data_bytes))
                return data_bytes / frame_bytes / RATE
            offset += 8 + chunk_size + (chunk_size & 1)
        raise ValueError(f"{path} has no data chunk")


def recover(store: CallStore) -> int:
    """At start-up: fix the header of each recording whose call never ended (the server
    was killed) and store its length; how many were recovered. A missing or broken file
    is logged and left; the server starts anyway."""
    try:
        pending = store.unsized_recordings()
    except StoreError as e:
        logger.error("recordings not recovered: %s", e)
        return 0
    recovered = 0
    for call_id, path in pending:
        try:
            seconds = repair_header(Path(path))
            store.set_audio(call_id, path, seconds)
        except (OSError, ValueError, StoreError) as e:
            logger.error("call %s: recording %s not recovered: %s", call_id, path, e)
            continue
        recovered += 1
        logger.warning("call %s: recovered %.1f s of recording %s", call_id, seconds, path)
    return recovered
