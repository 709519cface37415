"""The Rasa brain on a thread and event loop of its own, shared by every call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.nlu.replies import BotAction
from bot.nlu.routes import RouteResult

T = TypeVar("T")


class Brain(Protocol):
    """What a call and the text endpoints need from the brain.

    Rules: one brain serves every conversation of the process, each known by its id; the
    coroutines are awaited from the server's event loop and must not block it (Rasa runs
    elsewhere: ``BrainService``); an empty reply means "keep listening"; a failure raises,
    and the call turns it into the apology (``Stage.BRAIN``)."""

    @property
    def model_path(self) -> Path: ...

    async def start(self, conversation_id: str) -> list[BotAction]: ...  # the greeting

    async def turn(self, conversation_id: str, text: str) -> list[BotAction]: ...

    async def digit(self, conversation_id: str, digit: str) -> list[BotAction]: ...

    # One sentence, no conversation. ``partial``: a transcript still growing, where a
    # number said alone is no key yet (the voice line's fast path).
    async def route(self, text: str, partial: bool = False) -> RouteResult: ...

    # How the conversation's last request was understood (None: no request yet), recorded
    # with the call for review.
    async def last_route(self, conversation_id: str) -> RouteResult | None: ...

    def close(self) -> None: ...


class BrainService:
    """The Rasa brain on a thread and event loop of its own.

    Rasa's NLU and policies compute on the calling loop; on the call loop they
    would stall the real-time pacing of every call's audio."""

    def __init__(self, brain: Any) -> None:
        self.brain = brain  # bot.nlu.brain.Brain: Rasa's agent, used on this thread only
        self._model_path: Path = brain.model_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="brain", daemon=True)
        self._thread.start()

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def turn(self, conversation_id: str, text: str) -> list[BotAction]:
        return await self._submit(self.brain.turn(conversation_id, text))

    async def start(self, conversation_id: str) -> list[BotAction]:
        return await self._submit(self.brain.start(conversation_id))

    async def digit(self, conversation_id: str, digit: str) -> list[BotAction]:
        return await self._submit(self.brain.digit(conversation_id, digit))

    async def last_route(self, conversation_id: str) -> RouteResult | None:
        return await self._submit(self.brain.last_route(conversation_id))

    async def forget(self, conversation_id: str) -> None:
        await self._submit(self.brain.forget(conversation_id))

    @property
    def model_path(self) -> Path:
        return self._model_path

    async def route(self, text: str, partial: bool = False) -> RouteResult:
        return await self._submit(self.brain.route(text, partial=partial))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
