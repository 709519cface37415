"""The Rasa brain on a thread and event loop of its own, shared by every call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from bot.nlu.replies import BotAction

T = TypeVar("T")


class BrainService:
    """The Rasa brain on a thread and event loop of its own.

    Rasa's NLU and policies compute on the calling loop; on the call loop they
    would stall the real-time pacing of every call's audio."""

    def __init__(self, brain: Any) -> None:
        self.brain = brain
        self.model_path = brain.model_path
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

    async def last_route(self, conversation_id: str) -> Any:
        return await self._submit(self.brain.last_route(conversation_id))

    async def route(self, text: str) -> Any:
        return await self._submit(self.brain.route(text))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
