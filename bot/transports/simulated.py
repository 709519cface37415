"""A recording played into the pipeline as if it were a call (``python -m bot call FILE``),
with the bot's side laid on a track at the time it would be heard."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.audio.formats import (
    FRAME_MS,
    TELEPHONE,
    AudioChunk,
    AudioFormat,
    Converter,
    read_wav,
    write_wav,
)
from bot.session.engines import Engines
from bot.session.line import TransferResult
from bot.session.voice_call import VoiceCall
from bot.vocabulary import DTMF_KEYS, CallEnd, Outcome, Route

# --- a recording played as a call ------------------------------------------------


@dataclass
class TimelineEntry:
    at: float
    who: str
    what: str


@dataclass
class SimulatedLine:
    """A call whose caller is a recording: audio goes in at the pace of a real line,
    and the bot's audio is laid on a track at the time it would be heard."""

    format: AudioFormat = TELEPHONE
    frame_ms: int = FRAME_MS
    timeline: list[TimelineEntry] = field(default_factory=list)
    outcome: Outcome | None = None
    late_frames: int = 0  # the simulation paces nothing: no frame is ever late
    clock: Any = None  # () -> seconds since the call started; set by run_simulated_call
    _pending: bytearray = field(default_factory=bytearray)
    _track: bytearray = field(default_factory=bytearray)
    _drained: asyncio.Event = field(default_factory=asyncio.Event)
    _hung_up: bool = False

    def _log(self, who: str, what: str) -> None:
        self.timeline.append(TimelineEntry(self.clock() if self.clock else 0.0, who, what))

    async def send_audio(self, chunk: AudioChunk) -> None:
        self._pending += chunk.data
        self._drained.clear()

    async def stop_audio(self) -> None:
        self._pending.clear()
        self._drained.set()
        self._log("bot", "(stops talking)")

    async def wait_played(self) -> None:
        if self._pending:
            await self._drained.wait()

    async def hangup(self) -> None:
        self._hung_up = True
        self.outcome = self.outcome or CallEnd.HANGUP
        self._log("bot", "(hangs up)")

    async def transfer(self, route: Route) -> TransferResult:
        self.outcome = route
        self._log("bot", f"(transfers to {route})")
        return TransferResult.done()

    async def show(self, message: dict[str, Any]) -> None:
        kind, text = message.get("kind"), message.get("text") or ""
        if kind in ("partial", "heard", "say", "barge_in", "emergency_from_partial", "digit"):
            self._log(
                "caller" if kind in ("partial", "heard", "digit") else "bot", f"{kind}: {text}"
            )
        elif kind in ("transfer", "silence", "error", "backchannel_ignored", "final_dropped"):
            self._log("bot", f"{kind}: {text or message}")
        elif kind == "response_latency":
            self._log(
                "bot", f"first audio {message.get('latency_ms', 0):.0f} ms after the caller stopped"
            )

    def tick(self) -> None:
        """One frame of time passes: the line plays one frame of the bot's audio."""
        frame = self.format.bytes_for_ms(self.frame_ms)
        out = bytes(self._pending[:frame])
        del self._pending[:frame]
        self._track += out + b"\0" * (frame - len(out))
        if not self._pending:
            self._drained.set()

    @property
    def ended(self) -> bool:
        return self._hung_up or self.outcome is not None

    def bot_audio(self) -> AudioChunk:
        return AudioChunk(bytes(self._track), self.format)


def parse_digits(spec: str) -> list[tuple[float, str]]:
    """'5' (pressed two seconds in) or '3@4.5,*@9' (digit@seconds) -> [(seconds, digit)]."""
    presses = []
    for i, item in enumerate(filter(None, (p.strip() for p in spec.split(",")))):
        digit, _, at = item.partition("@")
        if len(digit) != 1 or digit not in DTMF_KEYS:
            raise ValueError(f"not a keypad digit: {digit!r}")
        presses.append((float(at) if at else 2.0 + i, digit))
    return sorted(presses)


async def run_simulated_call(
    engines: Engines,
    recording: Path,
    digits: str = "",
    max_seconds: float = 60.0,
) -> tuple[SimulatedLine, VoiceCall]:
    """Play ``recording`` into a call as its caller, then silence until the call ends
    (a transfer, a hang-up) or ``max_seconds`` pass. In real time: barge-in, silence
    and latency only mean something at the pace of a real line."""
    audio = read_wav(recording)
    line = SimulatedLine()
    call = VoiceCall(f"sim-{uuid.uuid4()}", line, engines, "simulated", caller=recording.name)
    line.clock = call.now
    to_line = Converter(audio.format, line.format)
    caller = to_line.convert(audio).data + to_line.flush().data
    presses = parse_digits(digits)
    frame = line.format.bytes_for_ms(line.frame_ms)
    loop = asyncio.get_running_loop()
    await call.start()
    started = loop.time()
    n = 0
    while not line.ended and n * line.frame_ms / 1000 < max_seconds:
        at = n * line.frame_ms / 1000
        while presses and presses[0][0] <= at:
            line._log("caller", f"presses {presses[0][1]}")
            await call.digit(presses.pop(0)[1])
        data = caller[n * frame : (n + 1) * frame]
        await call.audio(AudioChunk(data + b"\0" * (frame - len(data)), line.format))
        line.tick()
        n += 1
        await asyncio.sleep(max(0.0, started + n * line.frame_ms / 1000 - loop.time()))
    if not line.ended:
        await call.hung_up()
        line._log("caller", "(hangs up)")
    await call.wait(timeout=10)
    return line, call


def write_bot_side(line: SimulatedLine, path: Path) -> None:
    write_wav(path, line.bot_audio())
