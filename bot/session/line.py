"""What a call needs from its transport: the ``Line`` protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.audio.formats import AudioChunk, AudioFormat
from bot.vocabulary import Route


@dataclass(frozen=True)
class TransferResult:
    """What became of a transfer: the call left for its target, or it is still ours.

    ``reason`` is a short fixed word (a /metrics label: ``ami_unavailable``, ``no_channel``,
    ``refused``, ``timeout``, ``connection_lost``, ``caller_gone``, ``error``); ``detail``
    is the one-line why, for the call record and the log."""

    ok: bool
    reason: str = ""
    detail: str = ""

    @classmethod
    def done(cls) -> TransferResult:
        return cls(True)

    @classmethod
    def failed(cls, reason: str, detail: str) -> TransferResult:
        return cls(False, reason, detail)


class Line(Protocol):
    """What a call needs from its transport (AudioSocket, WebSocket, a simulation)."""

    format: AudioFormat  # the audio format on the wire, both ways

    @property
    def late_frames(self) -> int: ...  # outgoing frames sent late so far (0 if unpaced)

    async def send_audio(self, chunk: AudioChunk) -> None: ...  # queued, paced by the line

    async def stop_audio(self) -> None: ...  # drop everything queued: barge-in

    async def wait_played(self) -> None: ...  # until the queued audio has left

    async def hangup(self) -> None: ...

    # Ends the line only on success; on failure the caller is still on it (never raises).
    async def transfer(self, route: Route) -> TransferResult: ...

    async def show(self, message: dict[str, Any]) -> None: ...  # live transcript, decisions
