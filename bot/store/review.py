"""The console's own records, next to the calls: users, login sessions, flags on turns,
the audit log, and the full-text index of what callers said.

Tables are new (the calls and turns tables are only read, and redacted by retention), so
the schema stays additive. Every method is one short transaction, like ``CallStore``.

- ``users``: console users, roles ``supervisor`` | ``trainer`` | ``admin``, an argon2 hash.
- ``console_sessions``: one row per login (the cookie holds a random token, the table its
  SHA-256, so a stolen database gives no live session), with the session's CSRF token.
- ``turn_flags``: a supervisor's flag on a turn (wrong route, wrong answer, bad audio, a
  note) and the route it should have had: the trainers' queue reads it.
- ``audit_log``: who viewed, played, exported, flagged which call, when; and what retention
  did. Append-only: the database refuses UPDATE and DELETE on it (triggers).
- ``turns_fts`` (SQLite FTS5, external content on ``turns``, kept by triggers); on
  PostgreSQL an expression GIN index on ``to_tsvector('simple', text)``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.store.calls import CallStore, StoreError, UTCDateTime, utc

logger = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("supervisor", "trainer", "admin")
FLAG_KINDS: dict[str, str] = {
    "wrong_route": "Sai nhánh",
    "wrong_answer": "Trả lời sai",
    "bad_audio": "Âm thanh kém",
    "note": "Ghi chú",
}

metadata = MetaData()
_ID = BigInteger().with_variant(Integer, "sqlite")  # the rowid on SQLite

users = Table(
    "users",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", _ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

turn_flags = Table(
    "turn_flags",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("call_id", Text, nullable=False),
    Column("turn_id", _ID, nullable=False),
    Column("kind", Text, nullable=False),
    Column("note", Text),
    Column("expected_route", Text),
    Column("by_user", Text, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_turn_flags_call", "call_id"),
    Index("ix_turn_flags_at", "at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("user_name", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("call_id", Text),
    Column("detail", Text),
    Index("ix_audit_log_at", "at"),
)

_SQLITE_DDL = (
    # Append-only audit log.
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    # Full-text search over turns.text; unicode61 folds case and, with remove_diacritics 2,
    # Vietnamese tone marks, so "het gao" finds "hết gạo".
    "CREATE VIRTUAL TABLE IF NOT EXISTS turns_fts USING fts5(text, content='turns', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS turns_fts_insert AFTER INSERT ON turns BEGIN "
    "INSERT INTO turns_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS turns_fts_delete AFTER DELETE ON turns BEGIN "
    "INSERT INTO turns_fts(turns_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS turns_fts_update AFTER UPDATE OF text ON turns BEGIN "
    "INSERT INTO turns_fts(turns_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO turns_fts(rowid, text) VALUES (new.id, new.text); END",
)
_POSTGRES_DDL = (
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE INDEX IF NOT EXISTS ix_turns_text_fts ON turns "
    "USING gin (to_tsvector('simple', coalesce(text, '')))",
)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    password_hash: str
    disabled: bool


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class Flag:
    id: int
    call_id: str
    turn_id: int
    kind: str
    note: str | None
    expected_route: str | None
    by_user: str
    at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    user_name: str
    action: str
    call_id: str | None
    detail: str | None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ReviewStore:
    """The console's tables, on the call store's database."""

    def __init__(self, calls: CallStore) -> None:
        self.calls = calls
        self._ready = False

    @property
    def engine(self) -> Engine:
        engine = self.calls.engine()
        if not self._ready:
            try:
                with engine.begin() as conn:
                    if conn.dialect.name == "sqlite":
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                    metadata.create_all(conn)
                    self._extras(conn)
            except SQLAlchemyError as e:
                raise StoreError(f"cannot create the console's tables: {e}") from e
            self._ready = True
        return engine

    @staticmethod
    def _extras(conn: Connection) -> None:
        if conn.dialect.name == "sqlite":
            new_index = (
                conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name='turns_fts'").first()
                is None
            )
            for ddl in _SQLITE_DDL:
                conn.exec_driver_sql(ddl)
            if new_index:  # turns recorded before the console existed
                conn.exec_driver_sql("INSERT INTO turns_fts(turns_fts) VALUES ('rebuild')")
        elif conn.dialect.name == "postgresql":
            for ddl in _POSTGRES_DDL:
                conn.exec_driver_sql(ddl)

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    # --- users ------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password_hash: str) -> int:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        if not name or len(name) > 64 or not name.isprintable() or name.strip() != name:
            raise ValueError("a user name is 1-64 printable characters, no outer spaces")
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    insert(users).values(
                        name=name,
                        role=role,
                        password_hash=password_hash,
                        created_at=utc(),
                        disabled=False,
                    )
                )
                return int(result.inserted_primary_key[0])
        except IntegrityError as e:
            raise ValueError(f"user {name!r} already exists") from e

    def set_password(self, name: str, password_hash: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(users).where(users.c.name == name).values(password_hash=password_hash)
            )
            if result.rowcount:  # every open session of that user ends
                ids = select(users.c.id).where(users.c.name == name).scalar_subquery()
                conn.execute(delete(console_sessions).where(console_sessions.c.user_id == ids))
            return bool(result.rowcount)

    def user(self, name: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        return None if row is None else _user(row)

    def users(self) -> list[User]:
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(users).order_by(users.c.name))]

    # --- sessions ---------------------------------------------------------------------

    def open_session(self, user: User, hours: float) -> tuple[str, str]:
        """A new login: (the cookie's token, the session's CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utc()
        with self.engine.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
            conn.execute(
                insert(console_sessions).values(
                    token_hash=_token_hash(token),
                    user_id=user.id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + timedelta(hours=hours),
                )
            )
        return token, csrf

    def session(self, token: str) -> Session | None:
        query = (
            select(users, console_sessions.c.csrf, console_sessions.c.expires_at)
            .join(users, users.c.id == console_sessions.c.user_id)
            .where(console_sessions.c.token_hash == _token_hash(token))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.expires_at <= utc() or row.disabled:
            return None
        return Session(_user(row), row.csrf, row.expires_at)

    def close_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(console_sessions).where(console_sessions.c.token_hash == _token_hash(token))
            )

    # --- flags ------------------------------------------------------------------------

    def add_flag(
        self,
        call_id: str,
        turn_id: int,
        kind: str,
        by_user: str,
        note: str | None = None,
        expected_route: str | None = None,
    ) -> int:
        if kind not in FLAG_KINDS:
            raise ValueError(f"unknown flag {kind!r}; expected one of {', '.join(FLAG_KINDS)}")
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(turn_flags).values(
                    call_id=call_id,
                    turn_id=turn_id,
                    kind=kind,
                    note=note or None,
                    expected_route=expected_route or None,
                    by_user=by_user,
                    at=utc(),
                )
            )
            return int(result.inserted_primary_key[0])

    def flags(self, call_id: str | None = None, limit: int = 500) -> list[Flag]:
        """Flags of one call in order, or the newest of all calls (the trainers' queue)."""
        query = select(turn_flags)
        if call_id is not None:
            query = query.where(turn_flags.c.call_id == call_id).order_by(turn_flags.c.id)
        else:
            query = query.order_by(turn_flags.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [Flag(**dict(r._mapping)) for r in conn.execute(query)]

    def flag_counts(self, call_ids: Sequence[str]) -> dict[str, int]:
        from sqlalchemy import func

        if not call_ids:
            return {}
        query = (
            select(turn_flags.c.call_id, func.count())
            .where(turn_flags.c.call_id.in_(list(call_ids)))
            .group_by(turn_flags.c.call_id)
        )
        with self.engine.connect() as conn:
            return {cid: int(n) for cid, n in conn.execute(query)}

    # --- audit log --------------------------------------------------------------------

    def audit(
        self, user_name: str, action: str, call_id: str | None = None, detail: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(audit_log).values(
                    at=utc(), user_name=user_name, action=action, call_id=call_id, detail=detail
                )
            )

    def audit_entries(self, limit: int = 200, offset: int = 0) -> list[AuditEntry]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [AuditEntry(**dict(r._mapping)) for r in conn.execute(query)]

    # --- full-text search ---------------------------------------------------------------

    def search_condition(self, words: str) -> Any:
        """A WHERE clause on calls.id: calls whose callers said all of ``words``."""
        from bot.store.calls import calls, turns

        terms = [w for w in words.split() if w]
        if self.dialect == "sqlite":
            # Each word quoted: FTS5 syntax in a search box would be an error, not a query.
            match = " ".join('"' + w.replace('"', '""') + '"' for w in terms)
            ids = text(
                "SELECT t.call_id FROM turns_fts JOIN turns t ON t.id = turns_fts.rowid "
                "WHERE turns_fts MATCH :match AND t.speaker = 'caller'"
            ).bindparams(match=match)
            return calls.c.id.in_(ids.columns(call_id=Text).subquery().select())
        if self.dialect == "postgresql":
            vector = text("to_tsvector('simple', coalesce(turns.text, ''))")
            query = text("plainto_tsquery('simple', :q)").bindparams(q=" ".join(terms))
            ids = select(turns.c.call_id).where(
                turns.c.speaker == "caller",
                vector.op("@@")(query),
            )
            return calls.c.id.in_(ids)
        like = [turns.c.text.ilike(f"%{w}%") for w in terms]
        return calls.c.id.in_(select(turns.c.call_id).where(turns.c.speaker == "caller", *like))


def _user(row: Any) -> User:
    return User(
        id=int(row.id),
        name=row.name,
        role=row.role,
        password_hash=row.password_hash,
        disabled=bool(row.disabled),
    )
