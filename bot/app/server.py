"""The 1022 branch-7 switchboard server.

Loads the trained Rasa model once and serves, on http://BOT_HOST:BOT_PORT
(127.0.0.1:8022 by default):

  GET  /health      {"status": "ok", "model": ...}
  POST /api/route   {"text": "..."}  ->  {"text", "route", "intent", "confidence"}
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
"""

from __future__ import annotations

import argparse
import json
import logging
import uuid
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.app import settings
from bot.nlu.brain import Brain, ModelNotFound
from bot.nlu.replies import action_dict
from bot.session.brain_service import BrainService
from bot.session.engines import Engines

logger = logging.getLogger("server")

BRAIN: web.AppKey[BrainService] = web.AppKey("brain", BrainService)
ENGINES: web.AppKey[Engines | None] = web.AppKey("engines")
VOICE_PROBLEM: web.AppKey[str | None] = web.AppKey("voice_problem")
# A request body is one utterance and a few fields; nothing legitimate is bigger.
MAX_BODY_BYTES = 64 * 1024


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
        return web.json_response({"error": e.text or e.reason}, status=e.status, dumps=_dumps)
    except Exception:
        logger.exception("error while serving %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


async def _body(request: web.Request) -> dict[str, Any]:
    body = await request.read()  # over MAX_BODY_BYTES: aiohttp raises 413
    try:
        data = json.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError alike
        raise bad_request(f"the body must be a JSON object ({type(e).__name__})") from e
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    return data


def _text(data: dict[str, Any], required: bool) -> str | None:
    text = data.get("text")
    if text is None and not required:
        return None
    if not isinstance(text, str):
        raise bad_request('"text" must be a string')
    if len(text) > settings.MAX_UTTERANCE_CHARS:
        raise bad_request(
            f'"text" is too long ({len(text)} characters; at most {settings.MAX_UTTERANCE_CHARS})'
        )
    return text


async def health(request: web.Request) -> web.Response:
    voice = "ready" if request.app[ENGINES] is not None else "unavailable"
    body: dict[str, Any] = {
        "status": "ok",
        "model": request.app[BRAIN].model_path.name,
        "voice": voice,
    }
    if request.app[VOICE_PROBLEM]:
        body["voice_problem"] = request.app[VOICE_PROBLEM]
    return web.json_response(body, dumps=_dumps)


async def metrics(request: web.Request) -> web.Response:
    engines = request.app[ENGINES]
    text = engines.metrics.prometheus() if engines else "bot_calls_active 0\n"
    return web.Response(text=text, content_type="text/plain")


async def route(request: web.Request) -> web.Response:
    text = _text(await _body(request), required=True) or ""
    result = await request.app[BRAIN].route(text)
    return web.json_response(result.as_dict(), dumps=_dumps)


async def chat(request: web.Request) -> web.Response:
    data = await _body(request)
    brain = request.app[BRAIN]
    conversation = data.get("conversation_id")
    text = _text(data, required=False)
    digit = data.get("digit")
    if conversation is None:
        conversation = f"web-{uuid.uuid4().hex}"
        actions = await brain.start(conversation)
    elif not isinstance(conversation, str) or not conversation or len(conversation) > 128:
        raise bad_request('"conversation_id" must be a non-empty string of at most 128 characters')
    elif digit is not None:
        if digit not in list("0123456"):
            raise bad_request('"digit" must be one of 0-6')
        actions = await brain.digit(conversation, digit)
    elif text is not None:
        actions = await brain.turn(conversation, text)
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
    engines: Engines | None = None,
    voice_problem: str | None = None,
    follow_registry: bool = False,
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors])
    app[BRAIN] = brain
    app[ENGINES] = engines
    app[VOICE_PROBLEM] = voice_problem
    app.add_routes(
        [
            web.get("/health", health),
            web.get("/metrics", metrics),
            web.post("/api/route", route),
            web.post("/api/chat", chat),
        ]
    )
    if follow_registry:
        app.cleanup_ctx.append(_follow_registry(brain))
    _add_console(app, engines)
    from bot.console.trainer import add_trainer  # the trainers' pages, in the console's shell

    add_trainer(app, brain, lambda: engines.metrics.calls_active if engines is not None else 0)
    if engines is not None:
        app.cleanup_ctx.append(_audiosocket(engines))
        from bot.transports.softphone import add_routes as add_softphone  # the browser's voice line

        add_softphone(app, engines)
    return app


def _follow_registry(brain: BrainService) -> Any:
    """A model activated in the registry (console or `python -m bot models activate`)
    goes live for new calls without a restart."""

    async def follow(app: web.Application) -> Any:
        import asyncio

        from bot.session.brain_service import follow_registry
        from bot.tools.model_registry import default_registry

        task = asyncio.create_task(
            follow_registry(brain, default_registry().active_path, Brain, settings.MODEL_POLL_S)
        )
        yield
        task.cancel()

    return follow


def _add_console(app: web.Application, engines: Engines | None) -> None:
    """The supervisors' console under /console/ (bot/console/), with its nightly retention."""
    from bot.console.app import add_console, live_calls
    from bot.console.retention import nightly
    from bot.store.calls import CallStore

    store = engines.store if engines is not None and engines.store is not None else CallStore()
    add_console(app, store, live_calls(engines))
    app.cleanup_ctx.append(nightly(store))


def _audiosocket(engines: Engines) -> Any:
    async def listen(app: web.Application) -> Any:
        from bot.transports.asterisk import serve_audiosocket

        server = await serve_audiosocket(engines)
        for sock in server.sockets:
            logger.info("AudioSocket listening on %s:%d", *sock.getsockname()[:2])
        yield
        server.close()
        await server.wait_closed()

    return listen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default=settings.HOST)
    parser.add_argument("--port", type=int, default=settings.PORT)
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
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        brain = BrainService(Brain(args.model))
    except ModelNotFound as e:
        raise SystemExit(f"error: {e}") from e
    logger.info("model %s loaded", brain.model_path.name)
    engines, problem = None, None
    if not args.no_voice:
        from bot.app.engines import load_engines
        from bot.app.speech_models import ModelMissing

        try:
            engines = load_engines(stand_in=args.stand_in_models, brain=brain)
        except ModelMissing as e:
            problem = str(e)
            logger.error("voice line not started: %s", e)
        else:
            kind = "stand-in" if args.stand_in_models else "configured"
            logger.info("voice line ready on the %s speech models", kind)
    web.run_app(
        make_app(brain, engines, problem, follow_registry=args.model is None),
        host=args.host,
        port=args.port,
        print=lambda _: logger.info("serving on http://%s:%d", args.host, args.port),
    )


if __name__ == "__main__":
    main()
