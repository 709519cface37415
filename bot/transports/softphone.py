"""The browser softphone: a page with a microphone, a speaker and a keypad, and the
WebSocket voice line it talks to the bot through.

``GET /softphone`` serves the page (``static/softphone.html``); ``GET /ws`` is the line.
One socket is one call. The protocol, both ways:

page -> bot
  binary  caller audio: PCM16 little-endian, 16 kHz, mono (the page resamples the
          microphone); any length up to 64 KiB, whole samples (an even byte count)
  text    a JSON object:
          {"type": "start"}                               begin the call (first, once)
          {"type": "dtmf", "digit": "0".."9" | "*" | "#"}  a keypad press
          {"type": "hangup"}                              the caller hangs up

bot -> page
  binary  the bot's speech: PCM16 LE, 16 kHz, mono, 20 ms (640 bytes) per frame,
          sent in real time
  text    {"type": "started", "call_id": "web-..."}
          {"type": "event", "kind": ..., "text": ..., ...}   the live transcript and the
              bot's decisions: kinds "partial", "heard", "say", "barge_in", "digit",
              "silence", "transfer", "error", "call_ended", ... (``VoiceCall`` notes)
          {"type": "stop"}        barge-in: drop the bot audio not yet played, at once
          {"type": "transfer", "route": "transfer:4", "branch": "Sở Thông tin và Truyền thông"}
          {"type": "hangup"}
          {"type": "error", "message": "..."}   the page broke the protocol
          After "transfer", "hangup" or "error" the bot closes the socket (1008 after an
          error, 1001 when the server stops). A broken socket ends its own call only, with
          the reason logged and stored; other calls go on.

The wire format stops here (architecture.md, habit 4): ``parse_text`` and
``parse_binary`` turn frames into typed events, and ``VoiceCall`` never sees JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bot.app import logs
from bot.app.inputs import json_problem
from bot.audio.formats import FRAME_MS, RECOGNISER, AudioChunk, AudioFormatError, frames
from bot.session.engines import Engines
from bot.session.line import TransferResult
from bot.session.voice_call import VoiceCall
from bot.transports.pacing import PacedSender
from bot.vocabulary import DTMF_KEYS, Route

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SocketLimits:
    """How long a page may take to start, how long it may stay silent, how many at once
    (settings: BOT_WS_START_TIMEOUT_S, BOT_WS_IDLE_TIMEOUT_S, BOT_MAX_CONNECTIONS)."""

    start_timeout_s: float = 10.0
    idle_timeout_s: float = 120.0  # a page without a microphone has only its keypad
    max_connections: int = 64


STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE = STATIC_DIR / "softphone.html"

FRAME_BYTES = RECOGNISER.bytes_for_ms(FRAME_MS)  # 640
_FRAME_S = FRAME_MS / 1000
MAX_FRAME_BYTES = 64 * 1024  # 2 s of audio: far more than any page sends at once
# aiohttp's own limit sits above ours, so an oversized frame still gets our error message;
# beyond it aiohttp closes the socket itself (1009), which also ends only this call.
_WS_MAX_MESSAGE = 4 * MAX_FRAME_BYTES
HEARTBEAT_S = 20.0  # finds a page that vanished without closing (a laptop lid shut)
_END_GRACE_S = 5.0


# --- the page's messages, as typed events (sans-IO) ------------------------------


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Digit:
    digit: str


@dataclass(frozen=True)
class HangUpPressed:
    pass


@dataclass(frozen=True)
class Audio:
    chunk: AudioChunk


PageEvent = Start | Digit | HangUpPressed | Audio


class SoftphoneProtocolError(Exception):
    """The page broke the protocol: its call ends (and no other)."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_binary(data: bytes) -> Audio:
    if len(data) > MAX_FRAME_BYTES:
        raise SoftphoneProtocolError(f"audio frame of {len(data)} bytes; at most {MAX_FRAME_BYTES}")
    try:
        return Audio(AudioChunk(bytes(data), RECOGNISER))
    except AudioFormatError as e:  # an odd byte count: not whole 16-bit samples
        raise SoftphoneProtocolError(
            f"audio frame of {len(data)} bytes: not whole 16-bit samples"
        ) from e


def parse_text(text: str) -> PageEvent:
    if len(text) > MAX_FRAME_BYTES:
        raise SoftphoneProtocolError(
            f"text frame of {len(text)} characters; at most {MAX_FRAME_BYTES}"
        )
    try:
        data = json.loads(text)
    except ValueError as e:
        raise SoftphoneProtocolError(f"a text frame must be a JSON object ({e})") from e
    except RecursionError as e:
        raise SoftphoneProtocolError(
            "a text frame must be a JSON object (nested too deeply)"
        ) from e
    if not isinstance(data, dict):
        raise SoftphoneProtocolError(
            f"a text frame must be a JSON object, not {type(data).__name__}"
        )
    problem = json_problem(data)
    if problem:
        raise SoftphoneProtocolError(f"a text frame must be a JSON object ({problem})")
    kind = data.get("type")
    if kind == "start":
        return Start()
    if kind == "hangup":
        return HangUpPressed()
    if kind == "dtmf":
        digit = data.get("digit")
        if not isinstance(digit, str) or digit not in DTMF_KEYS:
            raise SoftphoneProtocolError(f"dtmf digit {_shown(digit)}: not one of 0-9 * #")
        return Digit(digit)
    raise SoftphoneProtocolError(
        f"unknown message type {_shown(kind)}; expected start, dtmf or hangup"
    )


def branch_name(route: Route) -> str:
    """What the page shows for a transfer: the branch's name, or the human operator."""
    return route.destination


def audio_frames(chunk: AudioChunk) -> list[bytes]:
    """The chunk as 20 ms frames; the last is padded with silence."""
    return frames(chunk, RECOGNISER)


def _dumps(message: dict[str, Any]) -> str:
    # default=str: a note's data may hold a value JSON has no type for; show it, never fail.
    return json.dumps(message, ensure_ascii=False, default=str)


# --- the line ------------------------------------------------------------------------


class WebSocketLine:
    """A ``bot.session.line.Line`` over one page's WebSocket.

    Bot audio goes through a queue drained by a player task that sends one 20 ms frame
    per period on the loop's monotonic clock (``next = previous + 20 ms``, as the
    AudioSocket connection does): the page plays what arrives, so pacing here keeps its
    buffer short and a barge-in ``stop`` has little to throw away. All sends share one
    lock, so a JSON message never lands inside the player's send."""

    format = RECOGNISER

    def __init__(self, ws: web.WebSocketResponse, label: str = "") -> None:
        self._ws = ws
        self._label = label
        self._send_lock = asyncio.Lock()
        self._player = PacedSender(self._send_frame, _FRAME_S, f"softphone-play-{label}")
        self._closer: asyncio.Task[None] | None = None
        # The bot decided to end the call (transfer, hang-up)...
        self.ending = False
        # ...and has told the page; set before the call goes on to record its end.
        self.told_page = asyncio.Event()

    @property
    def late_frames(self) -> int:
        """Frames sent more than one period late while more audio was waiting."""
        return self._player.late_frames

    @property
    def frames_sent(self) -> int:
        return self._player.frames_sent

    @property
    def closed(self) -> bool:
        return self._ws.closed or self._closer is not None

    # -- Line ---------------------------------------------------------------------

    async def send_audio(self, chunk: AudioChunk) -> None:
        out = audio_frames(chunk)
        if self.closed or self.ending or not out:
            return  # the page is gone or leaving: a racing speaker is not an error
        self._player.queue(out)

    async def stop_audio(self) -> None:
        self._player.stop()
        await self._send({"type": "stop"})

    async def wait_played(self) -> None:
        await self._player.wait_played()

    async def hangup(self) -> None:
        await self._end({"type": "hangup"})

    async def transfer(self, route: Route) -> TransferResult:
        # The page is the whole "switch": telling it is the transfer.
        if self._ws.closed:
            return TransferResult.failed("caller_gone", "the page closed the socket")
        await self._end({"type": "transfer", "route": route, "branch": branch_name(route)})
        return TransferResult.done()

    async def show(self, message: dict[str, Any]) -> None:
        await self._send({"type": "event", **{k: v for k, v in message.items() if k != "type"}})

    # -- for the socket's handler ------------------------------------------------------

    async def send_error(self, message: str) -> None:
        await self._send({"type": "error", "message": message})

    async def send_started(self, call_id: str) -> None:
        await self._send({"type": "started", "call_id": call_id})

    async def close(self, code: int = WSCloseCode.OK) -> None:
        """Stop playback and close the socket (or finish the close the bot began)."""
        await self._player.close()
        if self._closer is None:
            self._closer = asyncio.create_task(self._close(code))
        await self._closer

    # -- internals ---------------------------------------------------------------------

    async def _end(self, message: dict[str, Any]) -> None:
        if self.ending:
            return
        self.ending = True
        self._player.stop()
        await self._send(message)
        # Closed by a task of the line's own: VoiceCall records the call's end right after
        # this returns, and the handler, woken by the close, must not cancel that.
        if self._closer is None:
            self._closer = asyncio.create_task(self._close(WSCloseCode.OK))
        self.told_page.set()

    async def _close(self, code: int) -> None:
        try:
            await self._ws.close(code=code)
        except (ConnectionError, RuntimeError) as e:
            logger.debug("softphone %s: close failed: %r", self._label, e)
        finally:
            self._player.stop()

    async def _send(self, message: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        try:
            async with self._send_lock:
                await self._ws.send_str(_dumps(message))
        except (ConnectionError, RuntimeError) as e:  # the page left meanwhile
            logger.debug("softphone %s: could not send %s: %r", self._label, message, e)

    async def _send_frame(self, frame: bytes) -> None:
        async with self._send_lock:
            if self._ws.closed:
                raise ConnectionError("the page closed the socket")
            await self._ws.send_bytes(frame)


# --- one socket, one call ---------------------------------------------------------------


class SoftphoneCall:
    """Reads one page's socket, feeds its ``VoiceCall``, and ends it whatever happens."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        engines: Engines,
        peer: str | None,
        limits: SocketLimits = SocketLimits(),
    ) -> None:
        self.ws = ws
        self.limits = limits
        self.engines = engines
        self.peer = peer or "?"
        self.call_id = f"web-{uuid.uuid4().hex}"
        self.line = WebSocketLine(ws, self.call_id)
        self.call: VoiceCall | None = None
        self._caller_hung_up = False
        self._shutting_down = False
        self.end_reason: str | None = None

    async def run(self) -> None:
        """Serve the socket until the call ends. Never raises (except cancellation)."""
        logs.call_id.set(self.call_id)  # on every log line of this call
        reason: str | None = None
        try:
            reason = await self._read_loop()
        except asyncio.CancelledError:
            reason = "server shutting down"
            raise
        except Exception as e:  # a bug ends this call, never the server
            reason = f"internal error: {type(e).__name__}: {e}"
            logger.exception("softphone call %s: failed", self.call_id)
        finally:
            await self._finish(reason)

    async def _read_loop(self) -> str | None:
        while True:
            # A page sends "start" at once, then its microphone every 20 ms.
            wait = self.limits.start_timeout_s if self.call is None else self.limits.idle_timeout_s
            try:
                msg = await self.ws.receive(timeout=wait)
            except asyncio.TimeoutError:
                what = '{"type": "start"}' if self.call is None else "a message"
                await self.line.send_error(f"no {what} within {wait:g} s")
                return f"protocol error: no {what} within {wait:g} s"
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                try:
                    if msg.type == WSMsgType.BINARY:
                        event: PageEvent = parse_binary(msg.data)
                    else:
                        event = parse_text(msg.data)
                    await self._dispatch(event)
                except SoftphoneProtocolError as e:
                    await self.line.send_error(str(e))
                    return f"protocol error: {e}"
                if self._caller_hung_up:
                    return None
            elif msg.type == WSMsgType.ERROR:
                return f"websocket error: {self.ws.exception()!r}"
        if self._shutting_down:
            return "server shutting down"
        return None  # the page closed the socket, or the bot did (transfer, hang-up)

    async def shut_down(self) -> None:
        """The server is stopping: close the socket (1001), which ends the read loop."""
        self._shutting_down = True
        await self.line.close(WSCloseCode.GOING_AWAY)

    async def _dispatch(self, event: PageEvent) -> None:
        if isinstance(event, Start):
            if self.call is not None:
                raise SoftphoneProtocolError("the call has already started")
            self.call = VoiceCall(self.call_id, self.line, self.engines, "websocket")
            logger.info("softphone call %s: started from %s", self.call_id, self.peer)
            await self.line.send_started(self.call_id)
            await self.call.start()
            return
        if isinstance(event, HangUpPressed):
            self._caller_hung_up = True
            if self.call is not None:
                await self.call.hung_up()
            return
        if self.call is None:
            what = "audio" if isinstance(event, Audio) else "dtmf"
            raise SoftphoneProtocolError(
                f'{what} before the call started: send {{"type": "start"}} first'
            )
        if isinstance(event, Audio):
            if event.chunk.data:
                await self.call.audio(event.chunk)
        else:
            await self.call.digit(event.digit)

    async def _finish(self, reason: str | None) -> None:
        self.end_reason = reason
        try:
            if self.line.ending:
                # The bot is ending the call: let it tell the page and record the end
                # before closed() cancels the call's tasks.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.line.told_page.wait(), _END_GRACE_S)
            if self.call is not None:
                await self.call.closed(reason)
        finally:
            if reason is None:
                logger.info("softphone call %s: ended", self.call_id)
            elif self.call is None:  # no call began: a broken or hostile page, rate-limited
                logs.peers.warning(
                    logger, self.peer, "softphone socket from %s: closed: %s", self.peer, reason
                )
            else:
                logger.warning("softphone call %s: ended: %s", self.call_id, reason)
            protocol_error = reason is not None and reason.startswith("protocol error")
            await self.line.close(
                WSCloseCode.POLICY_VIOLATION if protocol_error else WSCloseCode.OK
            )


# --- routes -------------------------------------------------------------------------------


def _prompts_rendered(engines: Engines) -> Callable[[web.Application], AsyncIterator[None]]:
    """Render the fixed prompts (greeting, transfer notices, ...) in the page's format.

    load_engines renders them for the telephone's 8 kHz only; at 16 kHz each would be
    synthesised live in every call, seconds of delay on these cores. Runs in the
    background (calls before it finishes synthesise live) and only renders what the disk
    cache lacks, so it costs something on the first start only."""

    async def render(app: web.Application) -> AsyncIterator[None]:
        cache = engines.cache
        speaker = engines.speaker(RECOGNISER)  # made here: Engines' speaker table is not locked
        stop = threading.Event()

        def work() -> None:
            assert cache is not None
            try:
                counts = cache.render_all(speaker, engines.prompts.texts, stop=stop)
            except Exception as e:  # calls still synthesise them live; say why it is slow
                logger.warning("softphone: could not pre-render the prompts: %r", e)
                return
            if counts.rendered:
                logger.info("softphone: %d prompts rendered at %s", counts.rendered, RECOGNISER)

        task = asyncio.create_task(asyncio.to_thread(work)) if cache is not None else None
        yield
        stop.set()
        if task is not None:
            await task

    return render


async def _page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


async def serve_socket(
    request: web.Request,
    engines: Engines,
    calls: set[SoftphoneCall] | None = None,
    limits: SocketLimits = SocketLimits(),
) -> web.WebSocketResponse:
    limit = limits.max_connections
    if calls is not None and limit and len(calls) >= limit:
        logs.peers.warning(
            logger, "softphone-full", "softphone socket from %s refused: %d open (limit %d)",
            request.remote, len(calls), limit,
        )  # fmt: skip
        raise web.HTTPServiceUnavailable(text=f"the softphone is full ({limit} calls)")
    # No compression: deflating PCM costs CPU and saves little.
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=_WS_MAX_MESSAGE, compress=False)
    await ws.prepare(request)
    call = SoftphoneCall(ws, engines, request.remote, limits)
    if calls is not None:
        calls.add(call)
    try:
        await call.run()
    finally:
        if calls is not None:
            calls.discard(call)
    return ws


def add_routes(
    app: web.Application, engines: Engines, limits: SocketLimits = SocketLimits()
) -> None:
    """``GET /softphone`` (the page and its files) and ``GET /ws`` (one call per socket)."""
    calls: set[SoftphoneCall] = set()

    async def socket(request: web.Request) -> web.WebSocketResponse:
        return await serve_socket(request, engines, calls, limits)

    async def close_calls(app: web.Application) -> None:
        # Before aiohttp waits for its handlers: an open socket would hold the shutdown
        # for its whole timeout, and its call would end without a recorded reason.
        await asyncio.gather(*(call.shut_down() for call in list(calls)), return_exceptions=True)

    app.router.add_get("/softphone", _page)
    app.router.add_static("/softphone/static", STATIC_DIR)
    app.router.add_get("/ws", socket)
    app.cleanup_ctx.append(_prompts_rendered(engines))
    # aiohttp 3.9 types its signals for aiosignal < 1.4, whose generic parameter was the
    # callback; aiosignal 1.4 (installed) takes the arguments, so mypy sees a mismatch.
    app.on_shutdown.append(close_calls)  # type: ignore[arg-type]
