"""The server's log: one set-up, timestamps and levels, the call id on every line of a call,
JSON lines on request, and warnings that one misbehaving peer cannot multiply.

Rasa configures logging when it is imported, so ``logging.basicConfig`` afterwards does
nothing; ``setup`` replaces the root handlers instead, and must run after that import.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

# The call a log line belongs to: set where a call's task begins (the tasks it starts
# inherit it), read by every handler's filter.
call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(call_id)s] %(message)s"
# Our own loggers; the libraries (Rasa, TensorFlow, aiohttp) stay at BOT_LOG_LEVEL.
OWN_LOGGERS = ("bot", "server", "__main__")


class CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = call_id.get() or "-"
        return True


class OneLineClientErrors(logging.Filter):
    """aiohttp logs a malformed request with its whole traceback ("Error handling request");
    a client's garbage is one line, not kilobytes of our stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            from aiohttp.http_exceptions import HttpProcessingError

            error = record.exc_info[1]
            if isinstance(error, (HttpProcessingError, ConnectionError)):
                text = str(error).replace("\n", " ")[:200]
                record.msg = "bad request from a client: %s: %s"
                record.args = (type(error).__name__, text)
                record.exc_info = None
                record.exc_text = None
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, call id, message (and any traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "call_id": getattr(record, "call_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup(
    level: str = "INFO",
    fmt: str = "text",
    library_level: str = "WARNING",
    stream: Any = None,
) -> logging.Handler:
    """Make the root logger's one handler ours. Call after importing Rasa."""
    if fmt not in ("text", "json"):
        raise SystemExit(f"error: BOT_LOG_FORMAT must be 'text' or 'json', not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CallIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.getLevelName(library_level))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineClientErrors) for f in server_log.filters):
        server_log.addFilter(OneLineClientErrors())
    return handler


class PeerLimiter:
    """At most ``per_minute`` warnings per peer per minute; the next one allowed says how
    many were held back. Bounded: it forgets the least recently seen peers."""

    MAX_PEERS = 1024

    def __init__(self, per_minute: int = 5) -> None:
        self.per_minute = per_minute
        self._peers: OrderedDict[str, tuple[float, int, int]] = OrderedDict()

    def allow(self, peer: str, now: float | None = None) -> tuple[bool, int]:
        """Whether to log this one, and how many were suppressed before it."""
        now = time.monotonic() if now is None else now
        start, count, held = self._peers.pop(peer, (now, 0, 0))
        if now - start >= 60:
            start, count = now, 0
        if count < self.per_minute:
            self._peers[peer] = (start, count + 1, 0)
            allowed, suppressed = True, held
        else:
            self._peers[peer] = (start, count, held + 1)
            allowed, suppressed = False, 0
        while len(self._peers) > self.MAX_PEERS:
            self._peers.popitem(last=False)
        return allowed, suppressed

    def warning(self, log: logging.Logger, peer: str, message: str, *args: Any) -> None:
        allowed, suppressed = self.allow(peer)
        if allowed:
            if suppressed:
                message += f" ({suppressed} more from this peer not logged)"
            log.warning(message, *args)


peers = PeerLimiter()  # one per process: the limit is per peer, whatever it does
