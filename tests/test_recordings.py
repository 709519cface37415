"""Call recordings: two channels on the caller's clock, written in chunks with the header
kept up to date, a torn file repaired; word times mapped onto the recording. (A server
killed mid-call: tests/test_recordings_crash.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from bot.audio.formats import RECOGNISER, TELEPHONE, AudioChunk
from bot.session.recorder import RATE, CallRecorder, SpeechClock, repair_header

pytestmark = pytest.mark.unit


def tone(ms: int, fmt=RECOGNISER, value: int = 1000) -> AudioChunk:
    return AudioChunk(np.full(fmt.rate * ms // 1000, value, dtype="<i2").tobytes(), fmt)


def test_caller_and_bot_on_two_channels_on_the_callers_clock(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path / "a.wav", TELEPHONE)
    rec.caller(tone(500, value=100))  # half a second of the caller
    rec.bot(tone(300, TELEPHONE, value=2000))  # the bot starts now, 0.5 s in
    rec.bot(tone(300, TELEPHONE, value=2000))  # queued behind: 0.8 .. 1.1 s
    rec.caller(tone(700, value=100))
    rec.bot_stopped()  # barge-in at 1.2 s: nothing queued beyond
    rec.caller(tone(300, value=100))
    seconds = rec.close()
    data, rate = soundfile.read(tmp_path / "a.wav", dtype="int16")
    assert rate == RATE and data.shape == (int(1.5 * RATE), 2) and seconds == pytest.approx(1.5)
    assert (data[:, 0] == 100).all()
    bot = data[:, 1]
    assert (bot[: RATE // 2 - 100] == 0).all()  # silent until the bot spoke
    # Resampled from 8 kHz: the level holds away from the edges, and the bot's audio is
    # still there at 1.0 s (queued) and gone after the barge-in.
    assert abs(int(bot[int(0.7 * RATE)]) - 2000) < 50
    assert abs(int(bot[int(1.0 * RATE)]) - 2000) < 50
    assert (bot[int(1.11 * RATE) :] == 0).all()


def test_a_file_still_being_written_plays_up_to_its_last_second(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path / "b.wav", RECOGNISER)
    for _ in range(25):
        rec.caller(tone(100))
    info = soundfile.info(str(tmp_path / "b.wav"))  # not closed: the header was kept up
    assert info.channels == 2 and 2.0 <= info.duration <= 2.5
    rec.close()


def test_a_torn_last_write_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "c.wav"
    rec = CallRecorder(path, RECOGNISER)
    rec.caller(tone(2000))
    rec._file.close()  # as if killed: no final header...
    with path.open("ab") as f:
        f.write(b"\x01\x02\x03")  # ...and half a frame written when the power went
    assert repair_header(path) == pytest.approx(2.0)
    data, _ = soundfile.read(path, dtype="int16")
    assert data.shape == (2 * RATE, 2)
    with pytest.raises(ValueError):
        (tmp_path / "x.wav").write_bytes(b"not a wav file at all")
        repair_header(tmp_path / "x.wav")


def test_word_times_from_the_recogniser_map_to_the_call() -> None:
    clock = SpeechClock()
    clock.fed(300, 2000)  # speech (with pre-roll) from 1.7 s to 2.0 s of the call
    clock.fed(100, 2100)
    clock.fed(200, 5200)  # the next utterance: 5.0 .. 5.2 s
    assert clock.call_seconds(0.1) == pytest.approx(1.8)
    assert clock.call_seconds(0.35) == pytest.approx(2.05)
    assert clock.call_seconds(0.45) == pytest.approx(5.05)
