"""The 1022 branch-7 switchboard server.

Loads the trained Rasa model once and serves, on http://BOT_HOST:BOT_PORT
(127.0.0.1:8022 by default):

  GET  /health      {"status": "ok", "model": ...}
  POST /api/route   {"text": "..."}  ->  {"text", "route", "intent", "confidence"}
  POST /api/chat    {"conversation_id"?: "...", "text"?: "...", "digit"?: "0-9*#"}
                    ->  {"conversation_id", "actions": [{"kind": "say", "text"}, ...]}
                    Without a conversation_id a new conversation starts with the greeting.

The voice line (telephony transports) joins this process in a later stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import uuid
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bot import settings
from bot.brain import Brain, ModelNotFound
from bot.replies import action_dict

logger = logging.getLogger("server")

BRAIN: web.AppKey[Brain] = web.AppKey("brain", Brain)
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
    return web.json_response({"status": "ok", "model": request.app[BRAIN].model_path.name})


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


def make_app(brain: Brain) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors])
    app[BRAIN] = brain
    app.add_routes(
        [
            web.get("/health", health),
            web.post("/api/route", route),
            web.post("/api/chat", chat),
        ]
    )
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default=settings.HOST)
    parser.add_argument("--port", type=int, default=settings.PORT)
    parser.add_argument("--model", help="model file (default: newest in models/)")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        brain = Brain(args.model)
    except ModelNotFound as e:
        raise SystemExit(f"error: {e}") from e
    logger.info("model %s loaded", brain.model_path.name)
    web.run_app(
        make_app(brain),
        host=args.host,
        port=args.port,
        print=lambda _: logger.info("serving on http://%s:%d", args.host, args.port),
    )


if __name__ == "__main__":
    main()
