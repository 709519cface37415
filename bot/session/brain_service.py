"""The Rasa brain on a thread and event loop of its own, shared by every call."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.nlu.replies import BotAction
from bot.nlu.routes import RouteResult

T = TypeVar("T")
logger = logging.getLogger(__name__)

# A conversation idle this long has ended (calls last minutes); its pin is dropped, so the
# brain it started on can be freed once no conversation uses it.
PIN_IDLE_S = 3600.0


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
    would stall the real-time pacing of every call's audio.

    The brain can be replaced while calls are up (a newly activated model): each
    conversation stays on the brain it started with (its dialogue state lives in that
    brain's tracker store), new conversations and routing get the new one."""

    def __init__(self, brain: Any) -> None:
        self.brain = brain  # bot.nlu.brain.Brain: Rasa's agent, used on this thread only
        self._pins: dict[str, tuple[Any, float]] = {}  # conversation -> (brain, last used)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="brain", daemon=True)
        self._thread.start()

    @property
    def model_path(self) -> Path:
        """The model new conversations get (the current brain's)."""
        return Path(self.brain.model_path)

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def brain_of(self, conversation_id: str) -> Any:
        """The brain this conversation started on (the current one for a new conversation)."""
        now = time.monotonic()
        pinned = self._pins.get(conversation_id)
        brain = pinned[0] if pinned else self.brain
        self._pins[conversation_id] = (brain, now)
        return brain

    def conversations_on_old_models(self) -> int:
        return sum(1 for b, _ in self._pins.values() if b is not self.brain)

    def swap(self, brain: Any) -> None:
        """New conversations get ``brain``; those already talking keep theirs."""
        old = self.brain
        self.brain = brain
        cutoff = time.monotonic() - PIN_IDLE_S
        for conversation, (_, used) in list(self._pins.items()):
            if used < cutoff:
                del self._pins[conversation]
        logger.info(
            "model %s is live (was %s; %d conversations finish on earlier models)",
            Path(brain.model_path).name,
            Path(old.model_path).name,
            self.conversations_on_old_models(),
        )

    async def turn(self, conversation_id: str, text: str) -> list[BotAction]:
        return await self._submit(self.brain_of(conversation_id).turn(conversation_id, text))

    async def start(self, conversation_id: str) -> list[BotAction]:
        self._pins.pop(conversation_id, None)  # a (re)started conversation gets the current brain
        return await self._submit(self.brain_of(conversation_id).start(conversation_id))

    async def digit(self, conversation_id: str, digit: str) -> list[BotAction]:
        return await self._submit(self.brain_of(conversation_id).digit(conversation_id, digit))

    async def last_route(self, conversation_id: str) -> RouteResult | None:
        return await self._submit(self.brain_of(conversation_id).last_route(conversation_id))

    async def forget(self, conversation_id: str) -> None:
        # The conversation is over: its brain forgets it, and its pin goes.
        pinned = self._pins.pop(conversation_id, None)
        brain = pinned[0] if pinned else self.brain
        await self._submit(brain.forget(conversation_id))

    async def route(self, text: str, partial: bool = False) -> RouteResult:
        return await self._submit(self.brain.route(text, partial=partial))

    async def on(self, brain: Any, coro_fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """Run ``coro_fn(brain)`` on the brain thread (another model, e.g. a candidate)."""
        return await self._submit(coro_fn(brain))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


async def follow_registry(
    service: BrainService,
    active_path: Callable[[], Path],
    load: Callable[[Path], Any],
    interval_s: float,
) -> None:
    """Keep ``service`` on the registry's active model: when it changes, load the new
    model off the event loop and swap it in. A model that fails to load is logged and
    the current one keeps serving."""
    failed: Path | None = None
    while True:
        await asyncio.sleep(interval_s)
        try:
            wanted = await asyncio.to_thread(active_path)
        except Exception as e:  # a half-written or unreadable registry: keep serving
            logger.warning("model registry unreadable: %s", e)
            continue
        if wanted == service.model_path or wanted == failed:
            continue
        logger.info("loading model %s", wanted.name)
        try:
            brain = await asyncio.to_thread(load, wanted)
        except Exception:
            logger.exception(
                "model %s failed to load; %s stays live", wanted.name, service.model_path.name
            )
            failed = wanted
            continue
        failed = None
        service.swap(brain)
