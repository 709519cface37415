"""The 1022 branch-7 switchboard server.

Loads the trained Rasa model once and serves, on http://BOT_HOST:BOT_PORT
(127.0.0.1:8022 by default):

  GET  /health      {"status": "ok", "model": ..., "voice": ..., "asr": engine:model}
  POST /api/route   {"text": "..."}  ->  {"text", "route", "intent", "confidence"[, "red_flag"]}
  POST /api/chat    {"conversation_id"?: "...", "text"?: "...", "digit"?: "0-9*#"}
                    ->  {"conversation_id", "actions": [{"kind": "say", "text"}, ...]}
                    Without a conversation_id a new conversation starts with the greeting.

  GET  /metrics     counters for the operator, in Prometheus text format

and the voice line, when the speech models are in place (`python -m bot models check`):

  Asterisk AudioSocket on BOT_AUDIOSOCKET_HOST:BOT_AUDIOSOCKET_PORT (127.0.0.1:9092),
  transfers by AMI Redirect (README, "Asterisk");
  GET /softphone    a page to talk to the bot from a browser (microphone, transcript, keypad)
  GET /ws           its WebSocket (bot/transports/softphone.py has the protocol)

Without the Vietnamese speech models the text endpoints still serve, and the log and
/health say exactly what is missing. `--stand-in-models` runs the voice line on the
PyPI stand-ins instead (for testing: they do not understand Vietnamese).

Every input is bounded (issue 9): request headers and bodies have deadlines, a request
body is JSON with ``Content-Type: application/json`` only, the Host header must be one of
BOT_ALLOWED_HOSTS and a browser's Origin the server's own or one of BOT_ALLOWED_ORIGINS,
/api/chat conversations are capped in number, age and turns, and a malformed input is a
4xx with one log line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

from bot.app import logs
from bot.app.inputs import json_problem
from bot.app.settings import Settings, quiet_libraries
from bot.errors import ModelMissing
from bot.nlu.replies import action_dict
from bot.session.brain_service import BrainService
from bot.session.engines import Engines
from bot.vocabulary import DTMF_KEYS

logger = logging.getLogger("server")

BRAIN: web.AppKey[BrainService] = web.AppKey("brain", BrainService)
ENGINES: web.AppKey[Engines | None] = web.AppKey("engines")
VOICE_PROBLEM: web.AppKey[str | None] = web.AppKey("voice_problem")
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
# The AMI client's state for /health (None without the voice line).
AMI_STATUS: web.AppKey[Callable[[], dict[str, object]] | None] = web.AppKey("ami_status")
CHATS: web.AppKey[ChatSessions] = web.AppKey("chats")
# A request body is one utterance and a few fields; nothing legitimate is bigger.
MAX_BODY_BYTES = 64 * 1024
# /api/chat's conversation ids: a namespace of their own, which no call id can be in.
CHAT_ID = re.compile(r"chat-[0-9a-f]{32}")
_CHAT_SENDER = "chat:"  # the brain's conversation id of a chat: no call id starts so


class ClientGone(Exception):
    """The client hung up in the middle of its request: nothing to answer, nothing broken."""


def bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as {"error": "..."} with its status, including aiohttp's own
    (413 for a body over MAX_BODY_BYTES, 404, 405); a bug answers 500 and is logged,
    and the server goes on serving."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status != 404:  # one line, at most a few a minute per client
            logs.peers.warning(
                logger, str(request.remote), "%s %s from %s: %d %s",
                request.method, request.path[:80], request.remote, e.status, (e.text or "")[:120],
            )  # fmt: skip
        response = web.json_response({"error": e.text or e.reason}, status=e.status, dumps=_dumps)
        if e.status == 408:
            response.force_close()  # the rest of that body is not worth waiting for
        return response
    except (ClientGone, ConnectionResetError) as e:
        logger.info("%s %s: the client hung up mid-request (%s)", request.method, request.path, e)
        return web.Response(status=499)  # never sent: the client is gone
    except Exception:
        logger.exception("error while serving %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    if "*" in allowed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    return name in {a.strip("[]").lower() for a in allowed}


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host allowlist (DNS rebinding) on every request; Origin allowlist on /api/* and /ws
    (a page on another site must not drive the bot with its visitors' browsers)."""
    s = request.app[SETTINGS]
    host = request.headers.get("Host")
    if host is not None and not _host_allowed(host, s.allowed_hosts):
        raise web.HTTPForbidden(text=f"host {host[:80]!r} is not served here (BOT_ALLOWED_HOSTS)")
    origin = request.headers.get("Origin")
    if origin is not None and (request.path.startswith("/api/") or request.path == "/ws"):
        own = f"{request.scheme}://{host}" if host else None
        if origin != own and origin not in s.allowed_origins:
            raise web.HTTPForbidden(
                text=f"origin {origin[:80]!r} may not use this server (BOT_ALLOWED_ORIGINS)"
            )
    return await handler(request)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text=f"send JSON with Content-Type: application/json, not {request.content_type!r}"
        )
    deadline = request.app[SETTINGS].http_body_timeout_s
    try:
        body = await asyncio.wait_for(request.read(), deadline)
    except asyncio.TimeoutError as e:  # over MAX_BODY_BYTES: aiohttp raises 413 instead
        raise web.HTTPRequestTimeout(text=f"the body did not arrive within {deadline:g} s") from e
    except ConnectionError as e:
        raise ClientGone(repr(e)) from e
    return parse_json_object(body)


def parse_json_object(body: bytes | str) -> dict[str, Any]:
    """A JSON object, or HTTPBadRequest saying why: not JSON, not an object, nested deeper
    than inputs.MAX_JSON_DEPTH, or holding a lone surrogate (which no text can encode)."""
    try:
        data = json.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError alike
        raise bad_request(f"the body must be a JSON object ({type(e).__name__})") from e
    except RecursionError as e:
        raise bad_request("the body must be a JSON object (nested too deeply)") from e
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    problem = json_problem(data)
    if problem:
        raise bad_request(f"the body must be a JSON object ({problem})")
    return data


class ChatSessions:
    """/api/chat's conversations: ids the server made, at most ``limit`` of them (the least
    recently used dropped first), each dropped after ``ttl_s`` idle or closed after
    ``max_turns``. The brain's tracker store is bounded the same way (bot.nlu.brain)."""

    def __init__(
        self,
        limit: int,
        ttl_s: float,
        max_turns: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.ttl_s, self.max_turns, self._clock = limit, ttl_s, max_turns, clock
        self._turns: OrderedDict[str, tuple[int, float]] = OrderedDict()  # id -> turns, last use

    def new(self) -> tuple[str, list[str]]:
        """A new conversation id, and the brain conversations to forget to make room."""
        chat_id = f"chat-{uuid.uuid4().hex}"
        self._turns[chat_id] = (0, self._clock())
        dropped = self._expire()
        while len(self._turns) > self.limit:
            dropped.append(self._turns.popitem(last=False)[0])
        return chat_id, [sender(d) for d in dropped]

    def take_turn(self, chat_id: str) -> None:
        """Count one turn; HTTPNotFound for an id that is not a live chat, 429 past the limit."""
        self._expire()
        if not CHAT_ID.fullmatch(chat_id) or chat_id not in self._turns:
            raise web.HTTPNotFound(
                text="no such conversation (expired, or not made here): "
                "start one by posting {} to /api/chat"
            )
        turns, _ = self._turns.pop(chat_id)
        if turns >= self.max_turns:
            self._turns[chat_id] = (turns, self._clock())
            raise web.HTTPTooManyRequests(
                text=f"this conversation has had its {self.max_turns} turns: start a new one"
            )
        self._turns[chat_id] = (turns + 1, self._clock())

    def _expire(self) -> list[str]:
        cutoff, dropped = self._clock() - self.ttl_s, []
        while self._turns:
            oldest, (_, used) = next(iter(self._turns.items()))
            if used > cutoff:
                break
            del self._turns[oldest]
            dropped.append(oldest)
        return dropped

    def __len__(self) -> int:
        return len(self._turns)


def sender(chat_id: str) -> str:
    """The brain's conversation id of a chat: outside every call's id space."""
    return _CHAT_SENDER + chat_id


def _text(data: dict[str, Any], required: bool, limit: int) -> str | None:
    text = data.get("text")
    if text is None and not required:
        return None
    if not isinstance(text, str):
        raise bad_request('"text" must be a string')
    if len(text) > limit:
        raise bad_request(f'"text" is too long ({len(text)} characters; at most {limit})')
    return text


async def health(request: web.Request) -> web.Response:
    engines = request.app[ENGINES]
    body: dict[str, Any] = {
        "status": "ok",
        "model": request.app[BRAIN].model_path.name,
        "voice": "ready" if engines is not None else "unavailable",
    }
    if engines is not None:
        body["asr"] = engines.speech.name  # the engine and model that hear the calls
    if request.app[VOICE_PROBLEM]:
        body["voice_problem"] = request.app[VOICE_PROBLEM]
    ami_status = request.app[AMI_STATUS]
    if ami_status is not None:
        # Transfers depend on the manager: a voice line without it cannot put anyone through.
        ami = ami_status()
        body["dependencies"] = {"ami": ami}
        body["transfers"] = "ready" if ami["logged_in"] else "unavailable"
    return web.json_response(body, dumps=_dumps)


async def metrics(request: web.Request) -> web.Response:
    engines = request.app[ENGINES]
    text = engines.metrics.prometheus() if engines else "bot_calls_active 0\n"
    return web.Response(text=text, content_type="text/plain")


async def route(request: web.Request) -> web.Response:
    text = _text(await _body(request), True, request.app[SETTINGS].max_utterance_chars) or ""
    result = await request.app[BRAIN].route(text)
    return web.json_response(result.as_dict(), dumps=_dumps)


async def chat(request: web.Request) -> web.Response:
    data = await _body(request)
    brain = request.app[BRAIN]
    chats = request.app[CHATS]
    conversation = data.get("conversation_id")
    text = _text(data, False, request.app[SETTINGS].max_utterance_chars)
    digit = data.get("digit")
    # Everything is checked before the brain is asked: a refused request changes nothing.
    if conversation is None:
        conversation, dropped = chats.new()
        for old in dropped:
            await brain.forget(old)
        actions = await brain.start(sender(conversation))
    elif not isinstance(conversation, str) or not conversation or len(conversation) > 128:
        raise bad_request('"conversation_id" must be a non-empty string of at most 128 characters')
    elif digit is not None:
        if not isinstance(digit, str) or digit not in DTMF_KEYS:
            raise bad_request('"digit" must be one key of the keypad: 0-9, * or #')
        chats.take_turn(conversation)
        actions = await brain.digit(sender(conversation), digit)
    elif text is not None:
        chats.take_turn(conversation)
        actions = await brain.turn(sender(conversation), text)
    else:
        raise bad_request('give "text" or "digit"')
    return web.json_response(
        {"conversation_id": conversation, "actions": [action_dict(a) for a in actions]},
        dumps=_dumps,
    )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def make_app(
    brain: BrainService,
    settings: Settings,
    engines: Engines | None = None,
    voice_problem: str | None = None,
    transferer: Any = None,
    follow_registry: bool = False,
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors, guard])
    app[SETTINGS] = settings
    app[BRAIN] = brain
    app[ENGINES] = engines
    app[VOICE_PROBLEM] = voice_problem
    app[CHATS] = ChatSessions(
        settings.max_conversations, settings.conversation_ttl_s, settings.chat_max_turns
    )
    app[AMI_STATUS] = None
    app.add_routes(
        [
            web.get("/health", health),
            web.get("/metrics", metrics),
            web.post("/api/route", route),
            web.post("/api/chat", chat),
        ]
    )
    if follow_registry:
        app.cleanup_ctx.append(_follow_registry(brain, settings))
    _add_console(app, engines, settings)
    from bot.console.trainer import add_trainer  # the trainers' pages, in the console's shell

    add_trainer(
        app,
        brain,
        settings,
        lambda: engines.metrics.calls_active if engines is not None else 0,
    )
    if engines is not None:
        transferer = transferer or make_transferer(settings)
        app[AMI_STATUS] = transferer.client.status
        app.cleanup_ctx.append(_audiosocket(engines, settings, transferer))
        from bot.transports.softphone import SocketLimits
        from bot.transports.softphone import add_routes as add_softphone  # the browser's voice line

        limits = SocketLimits(
            settings.ws_start_timeout_s, settings.ws_idle_timeout_s, settings.max_connections
        )
        add_softphone(app, engines, limits)
    return app


def _follow_registry(brain: BrainService, s: Settings) -> Any:
    """A model activated in the registry (console or `python -m bot models activate`)
    goes live for new calls without a restart."""

    async def follow(app: web.Application) -> Any:
        from bot.nlu.brain import Brain
        from bot.session.brain_service import follow_registry
        from bot.tools.model_registry import default_registry

        def load(path: Any) -> Brain:
            return Brain(
                path,
                max_conversations=s.max_conversations,
                conversation_ttl_s=s.conversation_ttl_s,
            )

        task = asyncio.create_task(
            follow_registry(brain, default_registry(s).active_path, load, s.model_poll_s)
        )
        yield
        task.cancel()

    return follow


def _add_console(app: web.Application, engines: Engines | None, s: Settings) -> None:
    """The supervisors' console under /console/ (bot/console/), with its nightly retention."""
    from bot.console.app import add_console, live_calls
    from bot.console.retention import nightly
    from bot.store.calls import CallStore

    if engines is not None and engines.store is not None:
        store = engines.store
    else:
        store = CallStore(s.database_url)
    add_console(app, store, s, live_calls(engines))
    app.cleanup_ctx.append(nightly(store, s))


def make_transferer(s: Settings) -> Any:
    """The AMI login and the dial-plan targets the operator configured."""
    from bot.transports.ami import AmiClient, TransferPlan
    from bot.transports.asterisk import Transferer

    client = AmiClient(
        s.ami_host, s.ami_port, s.ami_username, s.ami_secret, s.ami_timeout, s.ami_auth
    )
    return Transferer(client, TransferPlan.from_mapping(s.transfer_context, s.transfer_extensions))


def _audiosocket(engines: Engines, s: Settings, transferer: Any) -> Any:
    async def listen(app: web.Application) -> Any:
        from bot.transports.asterisk import serve_audiosocket

        server = await serve_audiosocket(
            engines,
            s.audiosocket_host,
            s.audiosocket_port,
            transferer,
            s.audiosocket_max_payload,
            max_connections=s.max_connections,
            uuid_timeout_s=s.audiosocket_uuid_timeout_s,
            idle_timeout_s=s.audiosocket_idle_timeout_s,
        )
        for sock in server.sockets:
            logger.info("AudioSocket listening on %s:%d", *sock.getsockname()[:2])
        watch = asyncio.create_task(_watch_ami(transferer.client, s.ami_check_s))
        yield
        watch.cancel()
        server.close()
        await server.wait_closed()
        await transferer.client.close()

    return listen


async def _watch_ami(client: Any, every_s: float) -> None:
    """Keep the AMI logged in, so /health tells before a transfer whether one can work."""
    from bot.transports.ami import AmiError

    while True:
        if not client.connected:
            try:
                await client.connect()
            except AmiError as e:
                logs.peers.warning(logger, "ami", "AMI not available: %s", e)
        await asyncio.sleep(every_s)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler with a deadline for a request's headers: aiohttp has
    none, so a client sending half a header could hold a connection for ever. (The body
    has its own deadline in _body; an idle kept-alive connection, keepalive_timeout.)"""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._started = self._request_count
        self._header_guard: asyncio.TimerHandle | None = self._loop.call_later(
            self.header_timeout_s, self._headers_late
        )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_guard is not None and self._request_count > self._started:
            self._header_guard.cancel()  # a whole request head has arrived
            self._header_guard = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_guard is not None:
            self._header_guard.cancel()
            self._header_guard = None
        super().connection_lost(exc)

    def _headers_late(self) -> None:
        self._header_guard = None
        if self._request_count == self._started and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            logs.peers.warning(
                logger, str(peer and peer[0]), "closing %s: no request within %g s",
                peer, self.header_timeout_s,
            )  # fmt: skip
            self.transport.close()


async def serve(app: web.Application, s: Settings, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, with GuardedRequestHandler for every connection."""
    runner = web.AppRunner(app, handle_signals=True)
    await runner.setup()
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: GuardedRequestHandler(
            server,
            loop=loop,
            keepalive_timeout=s.http_keepalive_s,
            header_timeout_s=s.http_header_timeout_s,
            # After an answer to a request whose body never came whole (408), aiohttp reads
            # the rest for this long before closing (its default: 10 s more of a slow client).
            lingering_time=1.0,
        ),
        host,
        port,
        reuse_address=True,
    )
    logger.info("serving on http://%s:%d", host, port)
    try:
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        listener.close()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    s = Settings.from_env()  # read once, here, and passed down
    parser.add_argument("--host", default=s.host)
    parser.add_argument("--port", type=int, default=s.port)
    parser.add_argument(
        "--model",
        help="Rasa model file, fixed (default: the registry's active model, followed)",
    )
    parser.add_argument("--no-voice", action="store_true", help="text endpoints only")
    parser.add_argument(
        "--stand-in-models",
        action="store_true",
        help="run the voice line on the PyPI stand-in models (testing only)",
    )
    parser.add_argument(
        "--stand-in-voice",
        action="store_true",
        help="only the voice: the English stand-in, where the Vietnamese one cannot be had",
    )
    args = parser.parse_args()
    quiet_libraries(s.log_level)  # before Rasa is imported
    from bot.nlu.brain import Brain
    from bot.tools.model_registry import default_registry

    # Rasa configured logging when imported: now make it ours (one handler, our format).
    logs.setup(s.server_log_level, s.log_format, s.log_level)
    logs.peers.per_minute = s.log_warnings_per_peer
    # Call records and recordings are personal data: nothing this process creates is
    # readable by other users (the store also sets its files' modes explicitly).
    os.umask(0o077)
    try:
        brain = BrainService(
            Brain(
                # Fixed by --model, else the registry's active model (followed while serving).
                args.model or default_registry(s).active_path(),
                max_conversations=s.max_conversations,
                conversation_ttl_s=s.conversation_ttl_s,
            )
        )
    except ModelMissing as e:
        raise SystemExit(f"error: {e}") from e
    logger.info("model %s loaded", brain.model_path.name)
    engines, problem = None, None
    if not args.no_voice:
        from bot.app.engines import load_engines

        try:
            engines = load_engines(
                s, stand_in=args.stand_in_models, brain=brain, stand_in_voice=args.stand_in_voice
            )
        except ModelMissing as e:
            problem = str(e)
            logger.error("voice line not started: %s", e)
        else:
            kind = "stand-in" if args.stand_in_models else "configured"
            logger.info(
                "voice line ready on the %s speech models; recogniser %s",
                kind,
                engines.speech.name,
            )
            if engines.store is not None and s.recover_open_calls:
                try:
                    engines.store.close_abandoned()
                except Exception as e:  # noqa: BLE001  (the calls to come matter more)
                    logger.error("could not close the calls a crash left open: %s", e)
    app = make_app(brain, s, engines, problem, follow_registry=args.model is None)
    try:
        asyncio.run(serve(app, s, args.host, args.port))
    except (KeyboardInterrupt, web.GracefulExit):
        logger.info("stopped")


if __name__ == "__main__":
    main()
