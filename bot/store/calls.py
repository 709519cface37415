"""Call records: one row per call, one row per turn, written while the call happens.

Every write is its own short transaction, committed before the method returns, so a
crash of the server loses at most the turn in progress (SQLite in WAL mode keeps every
commit across a process crash; ``synchronous=NORMAL`` means a power cut may roll back the
last few commits, never corrupt the file).

SQLite (a file under ``var/``, created on first use) by default; PostgreSQL when
``BOT_DATABASE_URL`` names one. The supervisor's questions decide the indexes: calls by
day (``started_at``), calls by outcome, a call's turns in order (``call_id, seq``).

Vocabulary: the types of ``bot.vocabulary``, checked on every write and parsed on every read.

- ``calls.transport``: a ``Transport``.
- ``calls.outcome``: an ``Outcome``: the route the call was settled on (a transfer, or the
  FAQ the caller was answered with), ``goodbye`` (the bot closed the call after a goodbye
  with no FAQ answered), ``hangup`` (the caller hung up before anything was settled),
  ``transfer_failed`` (a transfer did not go through and the call ended without reaching
  anyone) or ``error``. ``NULL`` while the call runs; a call left open by a crash is closed
  at the next start-up (``close_abandoned``: ``error``, "server restarted").
- ``turns.kind``: a ``NoteKind``; ``turns.speaker``: that kind's ``Speaker`` (caller, bot,
  or the call's own events: system), written by the store, never chosen by the writer.

Errors: a failed write is logged here and raised as :class:`StoreError`. The store never
swallows it and never kills anything: the caller decides. The call loop should catch
``StoreError``, log it against the call and carry on talking to the caller (a lost record
is bad, a dropped call is worse); other calls are unaffected, since each write is an
independent transaction on its own pooled connection. Bad arguments (an unknown
transport, note kind or outcome) are programming errors and raise ``ValueError``.

Asyncio: the sync methods block on disk. From the event loop use the ``async_*`` twins:
writes go to one writer thread in submission order (so a call's turns keep their order
even if not awaited one by one, SQLite never sees two writers of ours at once, and a
cancelled call task does not cancel its queued writes); reads run in ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.types import TypeDecorator

from bot.vocabulary import (
    TRANSFER_ROUTES,
    CallEnd,
    NoteKind,
    Outcome,
    Route,
    Speaker,
    Transport,
    parse_outcome,
    settled_by_bot,
)

logger = logging.getLogger(__name__)

# The end reason of calls a crash left open, written at the next start-up.
RESTARTED = "server restarted"
# How long a write waits for a busy SQLite database before it fails.
WAIT_SECONDS = 30.0
# PostgreSQL advisory lock held while creating the schema (any constant unique to us).
SCHEMA_LOCK_ID = 1022_0007

# Word timings from the recogniser, as Vosk gives them: [{"word", "start", "end", "conf"}].
Words = list[dict[str, Any]]

P = ParamSpec("P")
T = TypeVar("T")


class StoreError(RuntimeError):
    """A call record could not be read or written (the message says which and why)."""


class DuplicateCall(StoreError):
    """start_call with an id already recorded: that record is another call's."""


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones (store naive UTC text, which also sorts right); PostgreSQL
    has ``timestamptz`` and answers in the session's zone (convert back to UTC)."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return utc(value)


# Schema. There is no Alembic here yet: create_all only creates what is missing and never
# alters a table. Until the first real migration, schema changes must be additive (new
# nullable columns, tables, indexes) with a small hand-written step; the first one that is
# not should bring in Alembic with a baseline revision equal to this metadata and
# `alembic stamp` the existing databases (batch mode covers SQLite's ALTER limits).
# Value sets (transport, kind, outcome) are checked in Python, not by CHECK constraints,
# so a new transport or route needs no migration.
metadata = MetaData()

calls = Table(
    "calls",
    metadata,
    Column("id", Text, primary_key=True),  # the call's UUID, as the transport gives it
    Column("transport", Text, nullable=False),
    Column("caller", Text),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("outcome", Text),
    Column("end_reason", Text),
    Column("audio_path", Text),
    # The recogniser that heard the call, as "engine:model" (SpeechModel.name). Added after
    # the first release: _add_missing_columns puts it into older databases.
    Column("asr_engine", Text),
    Column("audio_seconds", Float),  # the recording's length; added later, as asr_engine
    Index("ix_calls_started_at", "started_at"),  # calls by day, newest first
    Index("ix_calls_outcome_started_at", "outcome", "started_at"),  # calls by outcome
)

turns = Table(
    "turns",
    metadata,
    # BIGINT on PostgreSQL; INTEGER on SQLite, where only that spelling is the rowid.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("call_id", Text, ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),  # 1, 2, ... within the call
    Column("at", UTCDateTime(), nullable=False),
    Column("speaker", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("text", Text),
    Column("route", Text),
    Column("intent", Text),
    Column("confidence", Float),
    Column("started_ms", Integer),  # offsets in the call's audio
    Column("ended_ms", Integer),
    Column("latency_ms", Integer),  # end of caller speech -> first bot audio
    # none_as_null: no words is SQL NULL, not the JSON text "null".
    Column("words", JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")),
    # Why the red-flag layer sent a request to 115 ({"rule", "matched", "route"}), so a
    # supervisor sees the rule and the caller's words; added later, as asr_engine.
    Column(
        "red_flag", JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    ),
    # Also the index for "a call's turns in order".
    UniqueConstraint("call_id", "seq", name="uq_turns_call_seq"),
)


@dataclass(frozen=True)
class CallRecord:
    id: str
    transport: Transport
    caller: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: Outcome | None
    end_reason: str | None
    audio_path: str | None
    asr_engine: str | None = None  # engine:model that heard the call (None: none, or older)
    audio_seconds: float | None = None


@dataclass(frozen=True)
class TurnRecord:
    id: int
    call_id: str
    seq: int
    at: datetime
    speaker: Speaker
    kind: NoteKind
    text: str | None
    route: str | None
    intent: str | None
    confidence: float | None
    started_ms: int | None
    ended_ms: int | None
    latency_ms: int | None
    words: Words | None
    red_flag: dict[str, str] | None = None


def utc(at: datetime | None = None) -> datetime:
    """``at`` as an aware UTC datetime (now if None; a naive datetime is taken as UTC)."""
    if at is None:
        return datetime.now(timezone.utc)
    if at.tzinfo is None:
        return at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc)


def resolve_url(url: str, root: Path) -> str:
    """A relative SQLite path taken from ``root`` (the settings take every path from the
    project root); any other URL as it is."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if parsed.query.get("uri") == "true":  # a file: URI (mode=ro, ...) says where it is
        return url
    if Path(database).is_absolute():
        return url
    return str(parsed.set(database=str(root / database)))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers (the supervisor's page) never block the writer, and a commit
        # survives a process crash. NORMAL: no fsync per commit, only at checkpoints.
        mode = _enable_wal(cursor)
        if mode not in ("wal", "memory"):
            logger.warning(
                "SQLite would not use WAL (journal_mode=%s): crash safety is weaker", mode
            )
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite
    finally:
        cursor.close()


def _enable_wal(cursor: Any, wait: float = WAIT_SECONDS) -> str:
    # Switching a new file to WAL while another connection does the same fails at once
    # with "database is locked": SQLite skips the busy timeout there. Once the file is in
    # WAL (it stays so), this is a no-op that never fails; so retry only here.
    deadline = time.monotonic() + wait
    while True:
        try:
            return str(cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


# The project's own var/ (bot/store/calls.py -> the project root): its mode is ours to set.
_OWN_VAR = Path(__file__).resolve().parents[2] / "var"


def _private_file(path: Path) -> None:
    """The directory 0700 and the database 0600, created so before SQLite opens it (the WAL
    and shared-memory files take the database's mode): call records are personal data."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent == _OWN_VAR:
        os.chmod(path.parent, 0o700)  # ours, maybe made 0755 before; never chmod another's
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, 0o600)


def _dumps(value: Any) -> str:
    # Vietnamese words stay readable in the database instead of \\u escapes.
    return json.dumps(value, ensure_ascii=False)


class CallStore:
    """Call records in SQLite or PostgreSQL. Thread-safe; one instance per process.

    Nothing touches the disk or the network until the first read or write, which creates
    the SQLite file (and ``var/``) and the tables if they are missing."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(self.url)
        self._sqlite_file: Path | None = None
        if parsed.get_backend_name() == "sqlite":
            memory = not parsed.database or parsed.database == ":memory:"
            if not memory and parsed.query.get("uri") != "true":  # a file: URI is not a path
                self._sqlite_file = Path(parsed.database)
            self._engine: Engine = create_engine(
                self.url,
                future=True,
                json_serializer=_dumps,
                # Connections move between threads (one at a time, via the pool).
                # A busy database is waited for, not failed at once.
                connect_args={"check_same_thread": False, "timeout": WAIT_SECONDS},
                # One shared connection for an in-memory database (each connection
                # would be a separate empty database): for single-threaded tests only.
                # A file: a small pool for the writer thread and a few readers.
                poolclass=StaticPool if memory else QueuePool,
                **({} if memory else {"pool_size": 5, "max_overflow": 10}),
            )
            event.listen(self._engine, "connect", _sqlite_pragmas)
        else:
            self._engine = create_engine(
                self.url,
                future=True,
                json_serializer=_dumps,
                pool_pre_ping=True,  # a restarted database server is not a failed write
            )
        self._init_lock = threading.Lock()
        self._ready = False
        self._closed = False
        # One writer thread: submission order is commit order for async writes.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callstore-writer")

    def __repr__(self) -> str:
        return f"CallStore({make_url(self.url).render_as_string(hide_password=True)!r})"

    # --- set-up ---------------------------------------------------------------------

    def _engine_ready(self) -> Engine:
        if self._closed:
            raise StoreError("the call store is closed")
        if self._ready:
            return self._engine
        with self._init_lock:
            if not self._ready:
                try:
                    self._create_schema()
                except (OSError, SQLAlchemyError) as e:
                    raise self._fail(f"cannot open the call store at {self!r}", e) from e
                self._ready = True
        return self._engine

    def _create_schema(self) -> None:
        if self._sqlite_file is not None:
            _private_file(self._sqlite_file)
        with self._engine.begin() as conn:
            # Several processes may open a new database at once: the first to take the lock
            # creates the tables, the others wait for it and find them there.
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, waiting if busy
            elif conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_ID)))
            metadata.create_all(conn)
            _add_missing_columns(conn)

    def close(self) -> None:
        """Finish the queued writes, then close every connection."""
        if self._closed:
            return
        self._writer.shutdown(wait=True)
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> CallStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _fail(message: str, error: BaseException) -> StoreError:
        # One line naming the call and the database's own reason (not SQLAlchemy's wrapper
        # with the statement and the caller's words); the raised error chains the cause.
        cause = getattr(error, "orig", None) or error
        full = f"{message}: {type(cause).__name__}: {cause}"
        logger.error("%s", full)
        return StoreError(full)

    # --- writes (each one short transaction, committed on return) -----------------------

    def start_call(
        self,
        call_id: str,
        transport: Transport | str,
        caller: str | None = None,
        at: datetime | None = None,
        audio_path: str | None = None,
        asr_engine: str | None = None,
    ) -> None:
        transport = Transport(transport)  # ValueError for one that does not exist
        engine = self._engine_ready()
        row = {
            "id": call_id,
            "transport": transport.value,
            "caller": caller,
            "started_at": utc(at),
            "audio_path": audio_path,
            "asr_engine": asr_engine,
        }
        try:
            with engine.begin() as conn:
                conn.execute(calls.insert().values(**row))
        except IntegrityError as e:
            message = f"cannot start call {call_id}: it is already recorded"
            logger.warning("%s", message)
            raise DuplicateCall(message) from e
        except SQLAlchemyError as e:
            raise self._fail(f"cannot start call {call_id}", e) from e

    def add_turn(
        self,
        call_id: str,
        *,
        kind: NoteKind | str,
        text: str | None = None,
        route: str | None = None,
        intent: str | None = None,
        confidence: float | None = None,
        started_ms: int | None = None,
        ended_ms: int | None = None,
        latency_ms: int | None = None,
        words: Words | None = None,
        red_flag: dict[str, str] | None = None,
        at: datetime | None = None,
    ) -> int:
        """Record one turn as the next of its call; returns the turn's id.

        The store numbers turns (``seq``) in the order their writes commit, so write one
        call's turns from one task (the call's ordered queue), not from several at once."""
        kind = NoteKind(kind)  # ValueError for one that does not exist
        engine = self._engine_ready()
        # The next seq is computed inside the INSERT itself: one statement, one write lock.
        next_seq = (
            select(func.coalesce(func.max(turns.c.seq), 0) + 1)
            .where(turns.c.call_id == call_id)
            .scalar_subquery()
        )
        row = {
            "call_id": call_id,
            "seq": next_seq,
            "at": utc(at),
            # Plain strings: every database driver binds them (not all bind str subclasses).
            "speaker": kind.speaker.value,
            "kind": kind.value,
            "text": text,
            "route": None if route is None else str(route),
            "intent": intent,
            "confidence": confidence,
            "started_ms": started_ms,
            "ended_ms": ended_ms,
            "latency_ms": latency_ms,
            "words": words,
            "red_flag": red_flag,
        }
        try:
            with engine.begin() as conn:
                result = conn.execute(turns.insert().values(**row))
                return int(result.inserted_primary_key[0])
        except IntegrityError as e:
            why = (
                "two writers added turns to it at once"
                if self._exists(call_id)
                else "the call was never started (start_call first)"
            )
            raise self._fail(f"cannot add a {kind} turn to call {call_id}: {why}", e) from e
        except SQLAlchemyError as e:
            raise self._fail(f"cannot add a {kind} turn to call {call_id}", e) from e

    def end_call(
        self,
        call_id: str,
        outcome: Outcome | str,
        reason: str,
        at: datetime | None = None,
        audio_path: str | None = None,
    ) -> None:
        """Close the call. The first end wins: a later one (say, an error while hanging up
        an already finished call) is logged and ignored, so the real reason stays."""
        outcome = parse_outcome(outcome)  # ValueError for one that does not exist
        engine = self._engine_ready()
        values: dict[str, Any] = {
            "ended_at": utc(at),
            "outcome": outcome.value,
            "end_reason": reason,
        }
        if audio_path is not None:
            values["audio_path"] = audio_path
        try:
            with engine.begin() as conn:
                result = conn.execute(
                    update(calls)
                    .where(calls.c.id == call_id, calls.c.ended_at.is_(None))
                    .values(**values)
                )
                if result.rowcount == 1:
                    return
                known = conn.execute(select(calls.c.id).where(calls.c.id == call_id)).first()
        except SQLAlchemyError as e:
            raise self._fail(f"cannot end call {call_id}", e) from e
        if known is None:
            message = f"cannot end call {call_id}: it was never started"
            logger.error("%s", message)
            raise StoreError(message)
        logger.warning(
            "call %s already ended; ignoring a second end (%s: %s)", call_id, outcome, reason
        )

    def set_audio(self, call_id: str, path: str | None, seconds: float | None) -> None:
        """The call's recording: where it is and how long (None, None: deleted)."""
        engine = self._engine_ready()
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(calls)
                    .where(calls.c.id == call_id)
                    .values(audio_path=path, audio_seconds=seconds)
                )
        except SQLAlchemyError as e:
            raise self._fail(f"cannot store the recording of call {call_id}", e) from e

    def unsized_recordings(self) -> list[tuple[str, str]]:
        """(call id, audio path) of recordings whose length was never stored: the server
        stopped before their call ended."""
        engine = self._engine_ready()
        query = select(calls.c.id, calls.c.audio_path).where(
            calls.c.audio_path.is_not(None), calls.c.audio_seconds.is_(None)
        )
        try:
            with engine.connect() as conn:
                return [(row.id, row.audio_path) for row in conn.execute(query)]
        except SQLAlchemyError as e:
            raise self._fail("cannot list recordings", e) from e

    def engine(self) -> Engine:
        """The database engine (created on first use), for the console's own tables."""
        return self._engine_ready()

    def close_abandoned(self, reason: str = RESTARTED) -> int:
        """Close every call still open (a crash left it so): outcome ``error``. Call at
        start-up, before any call starts; only when this process is the database's only
        writer (settings.RECOVER_OPEN_CALLS). Returns how many were closed."""
        engine = self._engine_ready()
        try:
            with engine.begin() as conn:
                result = conn.execute(
                    update(calls)
                    .where(calls.c.ended_at.is_(None))
                    .values(ended_at=utc(), outcome=CallEnd.ERROR.value, end_reason=reason)
                )
        except SQLAlchemyError as e:
            raise self._fail("cannot close the calls left open", e) from e
        closed = int(result.rowcount or 0)
        if closed:
            logger.warning("closed %d call(s) left open by a crash (%s)", closed, reason)
        return closed

    # --- reads ------------------------------------------------------------------------

    def _exists(self, call_id: str) -> bool:
        try:
            return self.get_call(call_id) is not None
        except StoreError:
            return False

    def get_call(self, call_id: str) -> CallRecord | None:
        engine = self._engine_ready()
        try:
            with engine.connect() as conn:
                row = conn.execute(select(calls).where(calls.c.id == call_id)).first()
        except SQLAlchemyError as e:
            raise self._fail(f"cannot read call {call_id}", e) from e
        return None if row is None else _call_record(row)

    def turns(self, call_id: str) -> list[TurnRecord]:
        """The call's turns in order (empty for an unknown call)."""
        engine = self._engine_ready()
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(turns).where(turns.c.call_id == call_id).order_by(turns.c.seq)
                ).all()
        except SQLAlchemyError as e:
            raise self._fail(f"cannot read the turns of call {call_id}", e) from e
        return [_turn_record(row) for row in rows]

    def calls(
        self,
        since: datetime | None = None,
        outcome: Outcome | str | None = None,
        limit: int = 100,
        until: datetime | None = None,
    ) -> list[CallRecord]:
        """Calls started in [since, until), newest first, optionally with one outcome."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        engine = self._engine_ready()
        query = select(calls)
        if since is not None:
            query = query.where(calls.c.started_at >= utc(since))
        if until is not None:
            query = query.where(calls.c.started_at < utc(until))
        if outcome is not None:
            query = query.where(calls.c.outcome == parse_outcome(outcome).value)
        query = query.order_by(calls.c.started_at.desc(), calls.c.id).limit(limit)
        try:
            with engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as e:
            raise self._fail("cannot list calls", e) from e
        return [_call_record(row) for row in rows]

    def counts(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, int]:
        """The seed article's figures for calls started in [since, until).

        ``received``: every call. ``answered``: settled by the bot (a FAQ answered, or a
        goodbye: ``settled_by_bot``). ``transferred``: put through to a branch or an operator, with
        ``transfer:1``..``transfer:6`` and ``operator`` per destination. The rest, so the
        figures add up: ``fallback`` (ended not understood), ``hangup``, ``error`` and
        ``unfinished`` (still running, or cut off by a crash)."""
        engine = self._engine_ready()
        query = select(calls.c.outcome, func.count()).group_by(calls.c.outcome)
        if since is not None:
            query = query.where(calls.c.started_at >= utc(since))
        if until is not None:
            query = query.where(calls.c.started_at < utc(until))
        try:
            with engine.connect() as conn:
                by_outcome: dict[str | None, int] = {
                    outcome: int(n) for outcome, n in conn.execute(query).all()
                }
        except SQLAlchemyError as e:
            raise self._fail("cannot count calls", e) from e
        outcomes = {parse_outcome(o) if o is not None else None: n for o, n in by_outcome.items()}
        figures: dict[str, int] = {
            "received": sum(outcomes.values()),
            "answered": sum(n for o, n in outcomes.items() if settled_by_bot(o)),
            "transferred": sum(outcomes.get(d, 0) for d in TRANSFER_ROUTES),
        }
        figures.update({str(d): outcomes.get(d, 0) for d in TRANSFER_ROUTES})
        figures.update(
            {
                str(k): outcomes.get(k, 0)
                for k in (Route.FALLBACK, CallEnd.HANGUP, CallEnd.TRANSFER_FAILED, CallEnd.ERROR)
            }
        )
        figures["unfinished"] = by_outcome.get(None, 0)
        return figures

    # --- asyncio ----------------------------------------------------------------------

    async def _write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise StoreError("the call store is closed")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._writer, functools.partial(fn, *args, **kwargs))
        # Shielded: a cancelled call task (the caller hung up) must not cancel its queued
        # writes, which would silently drop the last turns.
        return await asyncio.shield(future)

    def _read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        return asyncio.to_thread(fn, *args, **kwargs)

    async def async_start_call(
        self,
        call_id: str,
        transport: Transport | str,
        caller: str | None = None,
        at: datetime | None = None,
        audio_path: str | None = None,
        asr_engine: str | None = None,
    ) -> None:
        await self._write(self.start_call, call_id, transport, caller, at, audio_path, asr_engine)

    async def async_add_turn(
        self,
        call_id: str,
        *,
        kind: NoteKind | str,
        text: str | None = None,
        route: str | None = None,
        intent: str | None = None,
        confidence: float | None = None,
        started_ms: int | None = None,
        ended_ms: int | None = None,
        latency_ms: int | None = None,
        words: Words | None = None,
        red_flag: dict[str, str] | None = None,
        at: datetime | None = None,
    ) -> int:
        # The time of the turn is when it happened, not when the writer gets to it.
        return await self._write(
            self.add_turn,
            call_id,
            kind=kind,
            text=text,
            route=route,
            intent=intent,
            confidence=confidence,
            started_ms=started_ms,
            ended_ms=ended_ms,
            latency_ms=latency_ms,
            words=words,
            red_flag=red_flag,
            at=utc(at),
        )

    async def async_end_call(
        self,
        call_id: str,
        outcome: Outcome | str,
        reason: str,
        at: datetime | None = None,
        audio_path: str | None = None,
    ) -> None:
        await self._write(self.end_call, call_id, outcome, reason, utc(at), audio_path)

    async def async_get_call(self, call_id: str) -> CallRecord | None:
        return await self._read(self.get_call, call_id)

    async def async_turns(self, call_id: str) -> list[TurnRecord]:
        return await self._read(self.turns, call_id)

    async def async_calls(
        self,
        since: datetime | None = None,
        outcome: Outcome | str | None = None,
        limit: int = 100,
        until: datetime | None = None,
    ) -> list[CallRecord]:
        return await self._read(self.calls, since, outcome, limit, until)

    async def async_counts(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, int]:
        return await self._read(self.counts, since, until)

    async def async_set_audio(self, call_id: str, path: str | None, seconds: float | None) -> None:
        await self._write(self.set_audio, call_id, path, seconds)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def _call_record(row: Any) -> CallRecord:
    return CallRecord(
        id=row.id,
        transport=Transport(row.transport),
        caller=row.caller,
        started_at=row.started_at,
        ended_at=row.ended_at,
        outcome=parse_outcome(row.outcome) if row.outcome is not None else None,
        end_reason=row.end_reason,
        audio_path=row.audio_path,
        asr_engine=row.asr_engine,
        audio_seconds=row.audio_seconds,
    )


# Columns added to a table after its first release (additive: nullable, no default), which
# create_all does not add to an existing table. The hand-written step of the note above.
_ADDED_COLUMNS = ((calls, "asr_engine"), (calls, "audio_seconds"), (turns, "red_flag"))


def _add_missing_columns(conn: Any) -> None:
    for table, name in _ADDED_COLUMNS:
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        if name not in present:
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")


def _turn_record(row: Any) -> TurnRecord:
    return TurnRecord(
        id=int(row.id),
        call_id=row.call_id,
        seq=int(row.seq),
        at=row.at,
        speaker=Speaker(row.speaker),
        kind=NoteKind(row.kind),
        text=row.text,
        route=row.route,
        intent=row.intent,
        confidence=row.confidence,
        started_ms=row.started_ms,
        ended_ms=row.ended_ms,
        latency_ms=row.latency_ms,
        words=row.words,
        red_flag=row.red_flag,
    )
