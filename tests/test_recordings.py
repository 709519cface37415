"""Call recordings: two channels on the caller's clock, written in chunks, a playable file
left behind by a server killed with SIGKILL mid-call (and its turns up to the kill)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bot.audio.formats import RECOGNISER, TELEPHONE, AudioChunk
from bot.session.recorder import RATE, CallRecorder, SpeechClock, recover, repair_header
from bot.store.calls import CallStore
from tests.conftest import ROOT
from tests.test_server import _free_port
from tests.test_voice_line import FRAME, Caller, korean_speech  # noqa: F401 (a fixture)


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


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail("server did not start:\n" + out)
            time.sleep(0.5)


def _turn_kinds(db: Path, call_id: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT kind FROM turns WHERE call_id=? ORDER BY seq", (call_id,))
        return [r[0] for r in rows]


def test_a_server_killed_mid_call_leaves_a_playable_recording_and_its_turns(
    tmp_path: Path,
    korean_speech: bytes,  # noqa: F811
) -> None:
    db, folder = tmp_path / "calls.db", tmp_path / "recordings"
    port, audio_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "BOT_DATABASE_URL": f"sqlite:///{db}",
        "BOT_RECORDINGS_DIR": str(folder),
        "BOT_AUDIOSOCKET_PORT": str(audio_port),
        "BOT_MODELS_DIR": os.environ.get("BOT_MODELS_DIR", str(ROOT / "models")),
    }
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--port", str(port), "--stand-in-models"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    call_id = uuid.uuid4()
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", proc)

        async def talk() -> None:
            async with Caller(audio_port, call_id) as caller:
                await caller.wait_for_bot_audio(FRAME * 50)  # a second of the greeting
                await caller.play(korean_speech)
                for _ in range(150):  # until the utterance is on record
                    await caller.silence(0.2)
                    if "utterance" in _turn_kinds(db, str(call_id)):
                        break
                await caller.silence(2.5)  # at least two more chunks of recording
                proc.send_signal(signal.SIGKILL)  # mid-call, no clean-up of any kind
                await caller.silence(0.5)

        asyncio.run(talk())
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(db) as conn:
        path, outcome = conn.execute(
            "SELECT audio_path, outcome FROM calls WHERE id=?", (str(call_id),)
        ).fetchone()
    assert outcome is None  # the call never ended
    kinds = _turn_kinds(db, str(call_id))
    assert kinds[:2] == ["call_started", "say"] and "utterance" in kinds, kinds
    # Playable as the kill left it (the header is brought up to date after each second)...
    as_left = soundfile.info(path)
    assert as_left.channels == 2 and as_left.duration > 3.0
    # ...and recovered at the next start-up, with the length in the call record.
    store = CallStore(f"sqlite:///{db}")
    assert recover(store) == 1
    record = store.get_call(str(call_id))
    assert record is not None and record.audio_seconds is not None
    data, rate = soundfile.read(path, dtype="int16")
    assert record.audio_seconds == pytest.approx(len(data) / rate)
    assert np.abs(data[:, 0]).max() > 1000  # the caller's speech
    assert np.abs(data[:, 1]).max() > 1000  # the bot's greeting
    assert recover(store) == 0  # once only
    store.close()
