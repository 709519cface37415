"""Real-time pacing of outgoing audio frames, shared by every transport.

A line plays what arrives: sending faster than real time fills the far end's
buffer (a barge-in then has seconds of audio to throw away), sending slower makes
gaps. Frames leave one period apart on the loop's monotonic clock
(``next = previous + period``), not a sleep after each send, so the cost of a send
does not accumulate into drift.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class PacedSender:
    """A queue of frames drained by one task, one frame per ``period_s``."""

    def __init__(
        self, send: Callable[[bytes], Awaitable[None]], period_s: float, name: str
    ) -> None:
        self._send = send  # raises ConnectionError/RuntimeError when the line is gone
        self._period = period_s
        self._name = name
        self._queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._generation = 0  # bumped by stop(): frames queued before it are dropped
        self._next_due: float | None = None  # loop time when the next frame is due
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.late_frames = 0
        self.frames_sent = 0

    @property
    def playing(self) -> bool:
        return not self._idle.is_set()

    def queue(self, frames: list[bytes]) -> None:
        """Queue frames and return at once; the player task starts on first use."""
        if not frames:
            return
        if self._task is None or self._task.done():  # done: a send failed under it
            self._task = asyncio.create_task(self._play(), name=self._name)
        self._idle.clear()
        for frame in frames:
            self._queue.put_nowait((self._generation, frame))

    def stop(self) -> None:
        """Barge-in: drop every queued frame now; nothing queued before this is sent."""
        self._generation += 1
        while not self._queue.empty():
            self._queue.get_nowait()
        self._next_due = None
        self._idle.set()

    async def wait_played(self) -> None:
        """Until the queue is empty (all sent, stopped, or the line gone)."""
        await self._idle.wait()

    async def close(self) -> None:
        self.stop()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                starved = self._queue.empty()
                generation, frame = await self._queue.get()
                if generation != self._generation:
                    continue
                now = loop.time()
                due = self._next_due
                if due is None or now - due > self._period:
                    # New playback, a producer that left the queue empty, or a late wake-up:
                    # restart the schedule rather than burst to catch up (the far end does
                    # not buffer a burst; the caller would hear it as a skip anyway). Only
                    # the last case is a late frame.
                    if due is not None and not starved:
                        self.late_frames += 1
                    due = now
                elif due > now:
                    await asyncio.sleep(due - now)
                    if generation != self._generation:  # stopped while waiting
                        continue
                await self._send(frame)
                self.frames_sent += 1
                self._next_due = due + self._period
                if self._queue.empty():
                    self._idle.set()
        except (ConnectionError, RuntimeError) as e:
            # The line went away under us; its read loop sees the same and ends the call.
            logger.debug("%s: playback stopped: %r", self._name, e)
        finally:
            self._idle.set()
