"""Asterisk AudioSocket: a call's audio over TCP, as typed events.

The protocol (docs.asterisk.org, Configuration/Channel-Drivers/AudioSocket): every
frame is one type byte, a two-byte big-endian payload length, then the payload.

    0x00  hang-up, no payload (closing the socket means the same)
    0x01  the call's UUID, 16 bytes (binary form)
    0x03  a DTMF digit, 1 ASCII byte
    0x10  audio: signed linear 16-bit, 8 kHz, mono, little-endian samples
    0xff  an error; optional payload: an application-specific error code byte
          (Asterisk's: 0x01 calling party hung up, 0x02 frame forwarding, 0x04 memory)

Asterisk connects to us, sends the UUID first, then audio and digits; we send
audio back (and may hang up). Two layers, as h11 does it:

- ``AudioSocketParser`` and the ``encode_*`` functions: sans-IO, bytes <-> events.
- ``serve`` / ``AudioSocketConnection``: the asyncio server, one task per call,
  real-time pacing of outgoing audio, barge-in, and one call's failure never
  touching another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.app import logs
from bot.audio.formats import FRAME_MS, TELEPHONE, AudioChunk, frames
from bot.transports.pacing import PacedSender
from bot.vocabulary import DTMF_KEYS

log = logging.getLogger(__name__)

# Frame types (the type byte).
KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
_KINDS = frozenset({KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR})
# Newer Asterisk versions add 0x11-0x18 for slin at 12-192 kHz; only 8 kHz is ours.
_OTHER_RATE_KINDS = range(0x11, 0x19)

_HEADER = struct.Struct(">BH")
HEADER_BYTES = _HEADER.size
FRAME_BYTES = TELEPHONE.bytes_for_ms(FRAME_MS)  # 320: what Asterisk sends and expects
_FRAME_S = FRAME_MS / 1000
DEFAULT_MAX_PAYLOAD = 4096
# Asterisk sends the UUID at once and a frame every 20 ms: a peer silent for these long is
# not a live call (settings: BOT_AUDIOSOCKET_UUID_TIMEOUT_S, BOT_AUDIOSOCKET_IDLE_TIMEOUT_S).
DEFAULT_UUID_TIMEOUT_S = 2.0
DEFAULT_IDLE_TIMEOUT_S = 30.0
DEFAULT_MAX_CONNECTIONS = 64  # BOT_MAX_CONNECTIONS
# The wire also carries A-D, the fourth column of a full DTMF pad (no phone keypad has it).
DTMF_DIGITS = DTMF_KEYS | frozenset("ABCD")
READ_BYTES = 4096
_CLOSE_TIMEOUT_S = 2.0  # a peer that stops reading must not hold a call's task forever


# --- events -------------------------------------------------------------------


@dataclass(frozen=True)
class CallStarted:
    uuid: uuid.UUID


@dataclass(frozen=True)
class AudioReceived:
    chunk: AudioChunk


@dataclass(frozen=True)
class DigitPressed:
    digit: str  # one of DTMF_DIGITS


@dataclass(frozen=True)
class HungUp:
    """The caller's side ended the call: a 0x00 frame, or the socket closed."""


@dataclass(frozen=True)
class RemoteError:
    code: int | None  # the PBX's error code byte, when it sent one


Event = CallStarted | AudioReceived | DigitPressed | HungUp | RemoteError


class AudioSocketProtocolError(Exception):
    """The peer broke the AudioSocket protocol; this call cannot go on.

    ``events`` holds what the failing ``feed`` decoded before the violation, so
    nothing the PBX sent correctly is lost."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.events: list[Event] = []


class _CallFailed(Exception):
    """The call cannot go on, though nobody broke the protocol (the PBX's own error)."""


# --- sans-IO codec ------------------------------------------------------------


class AudioSocketParser:
    """Bytes from Asterisk in, events out; no I/O, any split of the stream.

    Header checks run as soon as the header bytes arrive, so a bad or oversized
    frame fails before its payload is buffered. After a AudioSocketProtocolError the parser
    stays failed: the stream's framing can no longer be trusted."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if not 0 < max_payload <= 0xFFFF:
            raise ValueError(f"max_payload must be 1..65535 bytes, got {max_payload}")
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._offset = 0  # stream position of the buffer's start, for error messages
        self._call_id: uuid.UUID | None = None
        self._ended = False
        self._failure: str | None = None

    @property
    def call_id(self) -> uuid.UUID | None:
        return self._call_id

    @property
    def ended(self) -> bool:
        """True once the caller hung up (0x00 or end of stream)."""
        return self._ended

    def feed(self, data: bytes) -> list[Event]:
        self._check_not_failed()
        if not data:
            return []
        events: list[Event] = []
        try:
            if self._ended:
                self._fail("data after hang-up")
            self._buffer += data
            while (event := self._next_event()) is not None:
                events.append(event)
                if self._ended and self._buffer:
                    # No byte count: it would depend on how the reads split the stream.
                    self._fail("data after hang-up")
        except AudioSocketProtocolError as e:
            e.events = events
            raise
        return events

    def feed_eof(self) -> list[Event]:
        """The stream ended. Closing the socket is a valid hang-up, unless it cuts a frame."""
        self._check_not_failed()
        if self._ended:
            return []
        if self._buffer:
            if len(self._buffer) >= HEADER_BYTES:
                kind, length = _HEADER.unpack_from(self._buffer)
                got = len(self._buffer) - HEADER_BYTES
                self._fail(
                    f"stream ended inside a frame of type 0x{kind:02x}: "
                    f"{got} of {length} payload bytes"
                )
            self._fail(f"stream ended inside a frame header ({len(self._buffer)} of 3 bytes)")
        self._ended = True
        return [HungUp()]

    def _check_not_failed(self) -> None:
        if self._failure is not None:
            raise AudioSocketProtocolError(f"stream already failed: {self._failure}")

    def _fail(self, reason: str) -> None:
        self._failure = f"{reason} (at byte {self._offset} of the stream)"
        self._buffer.clear()
        raise AudioSocketProtocolError(self._failure)

    def _next_event(self) -> Event | None:
        """Decode one whole frame from the buffer, or None until more bytes arrive."""
        if not self._buffer:
            return None
        kind = self._buffer[0]
        self._check_kind(kind)
        if len(self._buffer) < HEADER_BYTES:
            return None
        length = int.from_bytes(self._buffer[1:3], "big")
        self._check_length(kind, length)
        end = HEADER_BYTES + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[HEADER_BYTES:end])
        event = self._decode(kind, payload)
        del self._buffer[:end]
        self._offset += end
        return event

    def _check_kind(self, kind: int) -> None:
        if kind not in _KINDS:
            if kind in _OTHER_RATE_KINDS:
                self._fail(
                    f"frame type 0x{kind:02x} is audio at a rate other than 8 kHz; "
                    "this server takes slin 8 kHz (0x10) only"
                )
            self._fail(f"unknown frame type 0x{kind:02x}")
        if kind == KIND_UUID and self._call_id is not None:
            self._fail(f"a second UUID frame (the call is {self._call_id})")
        if kind in (KIND_AUDIO, KIND_DTMF) and self._call_id is None:
            what = "audio" if kind == KIND_AUDIO else "DTMF"
            self._fail(f"{what} frame before the call's UUID")

    def _check_length(self, kind: int, length: int) -> None:
        if length > self.max_payload:
            self._fail(
                f"frame of type 0x{kind:02x} claims {length} payload bytes; "
                f"the maximum is {self.max_payload}"
            )
        if kind == KIND_UUID and length != 16:
            self._fail(f"UUID frame of {length} bytes; a UUID is 16")
        elif kind == KIND_DTMF and length != 1:
            self._fail(f"DTMF frame of {length} bytes; a digit is 1")
        elif kind == KIND_AUDIO and length % TELEPHONE.frame_bytes:
            self._fail(f"audio frame of {length} bytes: not whole 16-bit samples")
        elif kind == KIND_HANGUP and length:
            self._fail(f"hang-up frame with a {length}-byte payload; it has none")
        elif kind == KIND_ERROR and length > 1:
            self._fail(f"error frame with a {length}-byte payload; the code is 1 byte")

    def _decode(self, kind: int, payload: bytes) -> Event:
        if kind == KIND_UUID:
            self._call_id = uuid.UUID(bytes=payload)
            return CallStarted(self._call_id)
        if kind == KIND_AUDIO:
            return AudioReceived(AudioChunk(payload, TELEPHONE))
        if kind == KIND_DTMF:
            digit = chr(payload[0])
            if digit not in DTMF_DIGITS:
                self._fail(f"DTMF frame with {payload!r}: not one of 0-9 * # A-D")
            return DigitPressed(digit)
        if kind == KIND_HANGUP:
            self._ended = True
            return HungUp()
        return RemoteError(payload[0] if payload else None)  # KIND_ERROR: _check_kind let it in


def _frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def audio_payloads(chunk: AudioChunk) -> list[bytes]:
    """The chunk as 20 ms payloads; the last is padded with silence."""
    return frames(chunk, TELEPHONE)


def encode_audio(chunk: AudioChunk) -> bytes:
    """Audio frames of 20 ms each, in TELEPHONE format only (AudioFormatError otherwise)."""
    return b"".join(_frame(KIND_AUDIO, payload) for payload in audio_payloads(chunk))


def encode_hangup() -> bytes:
    return _frame(KIND_HANGUP)


def encode_error(code: int | None = None) -> bytes:
    if code is None:
        return _frame(KIND_ERROR)
    if not 0 <= code <= 0xFF:
        raise ValueError(f"an AudioSocket error code is one byte, got {code}")
    return _frame(KIND_ERROR, bytes([code]))


# --- asyncio server -----------------------------------------------------------


class CallHandler(Protocol):
    """What one call's logic offers the transport. Made per call by a factory
    that receives the call's ``AudioSocketConnection`` (to send audio, hang up).

    ``on_event`` is awaited in the order the frames arrived, starting with
    ``CallStarted``; it should return quickly (audio is queued, not awaited), since
    the call's next frames wait for it."""

    async def on_event(self, event: Event) -> None: ...

    async def on_close(self, reason: str | None) -> None:
        """The call is over and its socket closed; ``reason`` is None for a normal end
        (either side hung up), else why it was cut (protocol error, PBX error, bug)."""
        ...


# Called when the call's UUID arrives (so ``connection.call_id`` is set); a connection
# that ends before sending one never gets a handler.
HandlerFactory = Callable[["AudioSocketConnection"], CallHandler]


class AudioSocketConnection:
    """One call from Asterisk: reads frames, feeds the handler, plays its audio.

    Outgoing audio goes through a queue drained by a player task that sends one
    20 ms frame per period. Deadlines come from the loop's monotonic clock
    (``next = previous + 20 ms``), not from sleeping 20 ms after each send, so the
    cost of each send does not accumulate into drift."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        uuid_timeout_s: float = DEFAULT_UUID_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self.uuid_timeout_s = uuid_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._reader = reader
        self._writer = writer
        self._parser = AudioSocketParser(max_payload)
        self._handler: CallHandler | None = None
        peername = writer.get_extra_info("peername")
        self.peer = str(peername)
        # Warnings are limited per host, not per (host, port): each connection has a new port.
        self.peer_host = str(peername[0]) if isinstance(peername, tuple) else self.peer
        self._player = PacedSender(self._send_frame, _FRAME_S, f"audiosocket-play-{self.peer}")
        self._closed = False
        self.end_reason: str | None = None

    @property
    def call_id(self) -> uuid.UUID | None:
        """The call's UUID, once Asterisk has sent it (always before any audio)."""
        return self._parser.call_id

    @property
    def late_frames(self) -> int:
        """Frames sent more than one period after their deadline while more audio was
        waiting (the event loop was busy). A queue the producer left empty is not late."""
        return self._player.late_frames

    @property
    def frames_sent(self) -> int:
        return self._player.frames_sent

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def playing(self) -> bool:
        return self._player.playing

    def _label(self) -> str:
        return str(self.call_id) if self.call_id else f"(no UUID yet, from {self.peer})"

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Queue audio for real-time playback and return at once.

        TELEPHONE format only (AudioFormatError otherwise). Once the call is closed the
        audio is dropped: the caller is gone, and a racing speaker is not an error."""
        payloads = audio_payloads(chunk)
        if self._closed or not payloads:
            return
        self._player.queue(payloads)

    async def stop_audio(self) -> None:
        """Barge-in: drop every queued frame now; nothing queued before this is sent."""
        self._player.stop()

    async def wait_played(self) -> None:
        """Wait until the queue is empty (all sent, or stopped, or the call closed)."""
        await self._player.wait_played()

    async def hangup(self) -> None:
        """End the call from our side: stop playback, send 0x00, close the socket."""
        await self._close(send_hangup=True)

    async def _send_frame(self, payload: bytes) -> None:
        self._writer.write(_frame(KIND_AUDIO, payload))
        await self._writer.drain()

    async def run(self, handler_factory: HandlerFactory) -> None:
        """Serve this call until it ends. Never raises (except cancellation): a bad call
        is logged with its UUID and reason, and closed."""
        reason: str | None = None
        try:
            await self._read_loop(handler_factory)
        except AudioSocketProtocolError as e:
            reason = f"protocol error: {e}"
        except _CallFailed as e:
            reason = str(e)
        except asyncio.CancelledError:
            reason = "server shutting down"
            raise
        except Exception as e:
            reason = f"internal error: {type(e).__name__}: {e}"
            log.exception("call %s: failed", self._label())
        finally:
            self.end_reason = reason
            if reason is None:
                log.info("call %s: ended", self._label())
            elif self.call_id is None:  # no call: a stranger or a broken peer, rate-limited
                logs.peers.warning(log, self.peer_host, "call %s: ended: %s", self._label(), reason)
            else:
                log.warning("call %s: ended: %s", self._label(), reason)
            # 0x00 tells Asterisk to end the channel's AudioSocket at once when we cut it.
            await self._close(send_hangup=reason is not None)
            if self._handler is not None:
                try:
                    await self._handler.on_close(reason)
                except Exception:
                    log.exception("call %s: on_close failed", self._label())

    async def _read_loop(self, handler_factory: HandlerFactory) -> None:
        while not self._closed:
            # Asterisk sends the UUID at once, then a frame every 20 ms: a silent peer is
            # either not Asterisk or a call that is gone.
            wait = self.uuid_timeout_s if self.call_id is None else self.idle_timeout_s
            try:
                data = await asyncio.wait_for(self._reader.read(READ_BYTES), wait)
            except asyncio.TimeoutError:
                raise _CallFailed(
                    f"no UUID within {wait:g} s of connecting"
                    if self.call_id is None
                    else f"nothing from the PBX for {wait:g} s"
                ) from None
            except ConnectionError:
                data = b""  # a reset line is the caller gone: the same as closing it
            if self._closed:
                return  # we hung up; what arrives now is not the caller's
            try:
                events = self._parser.feed(data) if data else self._parser.feed_eof()
            except AudioSocketProtocolError as e:
                for event in e.events:  # what came before the fault still counts
                    await self._dispatch(handler_factory, event)
                raise
            for event in events:
                await self._dispatch(handler_factory, event)
                if isinstance(event, RemoteError):
                    code = "none" if event.code is None else f"0x{event.code:02x}"
                    raise _CallFailed(f"the PBX reported an error (code {code})")
                if self._closed:
                    return
            if self._parser.ended:
                return

    async def _dispatch(self, handler_factory: HandlerFactory, event: Event) -> None:
        if isinstance(event, CallStarted):
            logs.call_id.set(str(event.uuid))  # on every log line of this call from now on
            log.info("call %s: started from %s", event.uuid, self.peer)
            self._handler = handler_factory(self)
        if self._handler is not None:  # a hang-up or error before the UUID has no call
            await self._handler.on_event(event)

    async def _close(self, *, send_hangup: bool) -> None:
        if self._closed:
            return
        self._closed = True
        await self._player.close()
        writer = self._writer
        if send_hangup and not writer.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(encode_hangup())
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT_S)
        except (asyncio.TimeoutError, OSError):
            writer.transport.abort()


async def serve(
    handler_factory: HandlerFactory,
    host: str,
    port: int,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    uuid_timeout_s: float = DEFAULT_UUID_TIMEOUT_S,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
) -> asyncio.Server:
    """Listen for Asterisk's AudioSocket connections; each call runs in its own task.

    Beyond ``max_connections`` open at once, a new connection gets a hang-up frame and is
    closed (0: no limit). Port 0 picks a free port (see ``server.sockets``). Close with
    ``server.close()``."""
    open_connections = 0

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        if max_connections and open_connections >= max_connections:
            peer = str(writer.get_extra_info("peername"))
            logs.peers.warning(
                log, "audiosocket-full", "connection %s refused: %d connections open (limit %d)",
                peer, open_connections, max_connections,
            )  # fmt: skip
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(encode_hangup())
            writer.close()
            return
        open_connections += 1
        try:
            connection = AudioSocketConnection(
                reader,
                writer,
                max_payload=max_payload,
                uuid_timeout_s=uuid_timeout_s,
                idle_timeout_s=idle_timeout_s,
            )
            await connection.run(handler_factory)
        finally:
            open_connections -= 1

    return await asyncio.start_server(on_connection, host, port)
