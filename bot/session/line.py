"""What a call needs from its transport: the ``Line`` protocol."""

from __future__ import annotations

from typing import Any, Protocol

from bot.audio.formats import AudioChunk, AudioFormat
from bot.vocabulary import Route


class Line(Protocol):
    """What a call needs from its transport (AudioSocket, WebSocket, a simulation)."""

    format: AudioFormat  # the audio format on the wire, both ways

    @property
    def late_frames(self) -> int: ...  # outgoing frames sent late so far (0 if unpaced)

    async def send_audio(self, chunk: AudioChunk) -> None: ...  # queued, paced by the line

    async def stop_audio(self) -> None: ...  # drop everything queued: barge-in

    async def wait_played(self) -> None: ...  # until the queued audio has left

    async def hangup(self) -> None: ...

    async def transfer(self, route: Route) -> None: ...

    async def show(self, message: dict[str, Any]) -> None: ...  # live transcript, decisions
