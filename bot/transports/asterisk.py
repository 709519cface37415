"""Each transport as a `Line` a `VoiceCall` can talk through.

- `AudioSocketCall`: an Asterisk AudioSocket connection; transfers go through AMI
  (`Redirect` of the caller's channel, whose name the dial plan stored in AstDB).
- `SimulatedLine`: a recording played into the pipeline as if it were a call
  (`python -m bot call FILE.wav`), with the bot's side written to a WAV file.
The WebSocket softphone's line lives with its page (bot/transports/softphone.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.audio.formats import TELEPHONE, AudioChunk
from bot.session.engines import Engines
from bot.session.line import TransferResult
from bot.session.voice_call import VoiceCall
from bot.transports import audiosocket as asock
from bot.transports.ami import AmiClient, AmiError, TransferPlan
from bot.vocabulary import Route

logger = logging.getLogger(__name__)

# The AstDB family where the dial plan stores each call's channel name under its UUID.
ASTDB_FAMILY = "bot1022"


class Transferer:
    """Moves an AudioSocket call's channel to the branch's dial-plan target over AMI."""

    def __init__(self, client: AmiClient, plan: TransferPlan) -> None:
        self.client = client
        self.plan = plan

    async def transfer(self, call_id: str, route: Route) -> TransferResult:
        """Redirect the call's channel; the result says whether it left, and if not, why."""
        try:
            channel = await self.client.getvar(f"DB({ASTDB_FAMILY}/{call_id})")
            if not channel:
                raise self.client.note_failure(
                    AmiError(
                        f"no channel stored for call {call_id} in AstDB family {ASTDB_FAMILY}: "
                        "see the dial plan in README.md",
                        "no_channel",
                    )
                )
            await self.plan.transfer(self.client, channel, route)
        except AmiError as e:
            self.client.note_failure(e)
            logger.warning("call %s: transfer to %s failed (%s): %s", call_id, route, e.kind, e)
            return TransferResult.failed(e.kind, str(e))
        except KeyError as e:  # a route without a dial-plan target (the plan checks at start)
            return TransferResult.failed("error", str(e))
        return TransferResult.done()


class AudioSocketLine:
    format = TELEPHONE

    def __init__(self, connection: asock.AudioSocketConnection, transferer: Transferer) -> None:
        self.connection = connection
        self.transferer = transferer

    @property
    def late_frames(self) -> int:
        return self.connection.late_frames

    async def send_audio(self, chunk: AudioChunk) -> None:
        await self.connection.send_audio(chunk)

    async def stop_audio(self) -> None:
        await self.connection.stop_audio()

    async def wait_played(self) -> None:
        await self.connection.wait_played()

    async def hangup(self) -> None:
        await self.connection.hangup()

    async def transfer(self, route: Route) -> TransferResult:
        if self.connection.closed:
            return TransferResult.failed("caller_gone", "the caller hung up before the transfer")
        result = await self.transferer.transfer(str(self.connection.call_id), route)
        if result.ok:
            # The channel has left AudioSocket(): end our side. On failure the caller is
            # still on the line, and the call goes on (VoiceCall falls back).
            await self.connection.hangup()
        return result

    async def show(self, message: dict[str, Any]) -> None:
        return None  # a phone has no screen


class AudioSocketCall:
    """The `CallHandler` the AudioSocket server makes for each connection."""

    def __init__(
        self, connection: asock.AudioSocketConnection, engines: Engines, transferer: Transferer
    ) -> None:
        self.connection = connection
        self.call = VoiceCall(
            str(connection.call_id), AudioSocketLine(connection, transferer), engines, "audiosocket"
        )
        self._started = False

    async def on_event(self, event: asock.Event) -> None:
        if isinstance(event, asock.CallStarted):
            self._started = True  # set first: a start cut short still ends the record
            await self.call.start()
        elif isinstance(event, asock.AudioReceived):
            await self.call.audio(event.chunk)
        elif isinstance(event, asock.DigitPressed):
            await self.call.digit(event.digit)
        elif isinstance(event, asock.HungUp):
            await self.call.hung_up()
        elif isinstance(event, asock.RemoteError):
            logger.warning("call %s: Asterisk reported error %s", self.call.call_id, event.code)

    async def on_close(self, reason: str | None) -> None:
        if self._started:
            await self.call.closed(reason)


async def serve_audiosocket(
    engines: Engines,
    host: str,
    port: int,
    transferer: Transferer,
    max_payload: int = asock.DEFAULT_MAX_PAYLOAD,
    *,
    max_connections: int = asock.DEFAULT_MAX_CONNECTIONS,
    uuid_timeout_s: float = asock.DEFAULT_UUID_TIMEOUT_S,
    idle_timeout_s: float = asock.DEFAULT_IDLE_TIMEOUT_S,
) -> asyncio.Server:
    return await asock.serve(
        lambda connection: AudioSocketCall(connection, engines, transferer),
        host,
        port,
        max_payload=max_payload,
        max_connections=max_connections,
        uuid_timeout_s=uuid_timeout_s,
        idle_timeout_s=idle_timeout_s,
    )
