"""Bounds and logs (issue 9) without a model: the bounded tracker store, the chat sessions,
the JSON checks, the log set-up and the per-peer warning limit. The same behaviours are
checked end to end over real sockets in test_server.py, test_audiosocket.py,
test_softphone.py and test_voice_line.py."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from aiohttp import web

from bot.app import logs
from bot.app.inputs import json_problem


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.engines  # imports Rasa (no model)
def test_the_tracker_store_keeps_a_bounded_number_for_a_bounded_time() -> None:
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.nlu.brain import BoundedTrackerStore

    clock = Clock()
    store = BoundedTrackerStore(max_conversations=3, ttl_s=60, clock=clock)

    async def scenario() -> None:
        for n in range(5):
            await store.save(DialogueStateTracker(f"c{n}", []))
            clock.now += 1
        assert list(store.store) == ["c2", "c3", "c4"]  # the oldest two were dropped
        assert await store.retrieve("c0") is None
        assert await store.retrieve("c2") is not None  # use keeps it: now the newest
        await store.save(DialogueStateTracker("c5", []))
        assert list(store.store) == ["c4", "c2", "c5"]
        clock.now += 61
        assert await store.retrieve("c5") is None  # idle past the TTL: all gone
        assert list(store.store) == []

    asyncio.run(scenario())


@pytest.mark.unit
def test_chat_sessions_expire_cap_and_count_turns() -> None:
    from bot.app.server import ChatSessions, sender

    clock = Clock()
    chats = ChatSessions(limit=2, ttl_s=10, max_turns=2, clock=clock)
    a, dropped = chats.new()
    assert dropped == [] and a.startswith("chat-") and sender(a) == f"chat:{a}"
    b, _ = chats.new()
    chats.take_turn(a)  # a is now the most recently used
    c, dropped = chats.new()
    assert dropped == [sender(b)] and len(chats) == 2
    with pytest.raises(web.HTTPNotFound):
        chats.take_turn(b)
    chats.take_turn(a)
    with pytest.raises(web.HTTPTooManyRequests):
        chats.take_turn(a)
    clock.now += 11
    with pytest.raises(web.HTTPNotFound):
        chats.take_turn(c)
    with pytest.raises(web.HTTPNotFound):
        chats.take_turn("4f1c2a80-0000-4000-8000-000000000001")  # a voice call's id


@pytest.mark.unit
@pytest.mark.parametrize(
    "data, problem",
    [
        ({"text": "nhánh hai"}, None),
        ({"text": "\ud800"}, "lone surrogate"),
        ({"\udfff": 1}, "lone surrogate"),
        ({"a": [[[[[[[[[1]]]]]]]]]}, "nested deeper"),
        (json.loads("[" * 500 + "]" * 500), "nested deeper"),
    ],
)
def test_json_problems(data: object, problem: str | None) -> None:
    found = json_problem(data)
    assert (found is None) if problem is None else (problem in (found or ""))


@pytest.mark.unit
def test_json_lines_carry_time_level_and_the_call_id() -> None:
    stream = io.StringIO()
    handler = logs.setup(level="INFO", fmt="json", stream=stream)
    try:
        log = logging.getLogger("bot.test")

        async def a_call() -> None:
            logs.call_id.set("4f1c2a80-0000-4000-8000-000000000001")
            log.info("greeting played")
            await asyncio.create_task(asyncio.sleep(0))  # tasks of the call inherit it

        asyncio.run(a_call())
        log.warning("between calls")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["call_id"] == "4f1c2a80-0000-4000-8000-000000000001"
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO",
        "bot.test",
        "greeting played",
    )
    assert first["time"].endswith("+00:00") and second["call_id"] == "-"


@pytest.mark.engines  # imports Rasa (no model)
def test_text_lines_after_rasa_configured_logging() -> None:
    import bot.nlu.brain  # noqa: F401  (Rasa configures logging on import)

    stream = io.StringIO()
    handler = logs.setup(level="INFO", fmt="text", stream=stream)
    try:
        logging.getLogger("server").info("serving on http://127.0.0.1:8022")
    finally:
        logging.getLogger().removeHandler(handler)
    assert " INFO server [-] serving on http://127.0.0.1:8022" in stream.getvalue()


@pytest.mark.unit
def test_a_bad_log_format_is_refused() -> None:
    with pytest.raises(SystemExit, match="BOT_LOG_FORMAT"):
        logs.setup(fmt="xml")


@pytest.mark.unit
def test_warnings_are_limited_per_peer_and_say_how_many_were_held_back() -> None:
    limiter = logs.PeerLimiter(per_minute=2)
    got = [limiter.allow("10.0.0.1", now=t) for t in (0, 1, 2, 3)]
    assert got == [(True, 0), (True, 0), (False, 0), (False, 0)]
    assert limiter.allow("10.0.0.2", now=4) == (True, 0)  # another peer is not held back
    assert limiter.allow("10.0.0.1", now=61) == (True, 2)  # a new minute: 2 were held back
