"""What the console asks of the call records: the filtered list of calls, one call, the
dashboard's figures. Reads only; plain SQL Core over ``bot.store.calls``'s tables, so the
same queries run on SQLite and PostgreSQL.

Definitions (the dashboard's, the list's and the tests' one source):

- received: calls started in the period. settled by the bot: ended on a ``faq:`` route or
  a goodbye. transferred: ended on ``transfer:1``..``6`` (each counted) or ``operator``.
  abandoned: the caller hung up before anything was settled (outcome ``hangup``).
- fallback rate: of the requests the brain routed (``routed`` turns) in the period's
  calls, the share routed ``fallback``.
- response latency: every ``response_latency`` turn of the period's calls (end of the
  caller's speech to the bot's first audio); p50/p95 by linear interpolation (numpy's
  default).
- needs review: a request routed ``fallback``; a caller turn below
  ``BOT_REVIEW_CONFIDENCE``; "không phải" after the bot asked "... phải không ạ?"; ended
  with an operator or an error; an error turn; or the caller hung up within 10 s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select

from bot.app import settings
from bot.store.calls import calls, turns, utc
from bot.store.review import ReviewStore

TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # Hanoi: the hotline's day starts at its midnight
HANGUP_REVIEW_S = 10
CALLER_KINDS = ("utterance", "digit", "heard", "routed")


@dataclass
class CallFilter:
    since: date | None = None  # local dates, inclusive
    until: date | None = None
    outcome: str = ""  # "", settled, transfer, operator, hangup, error, fallback, unfinished
    branch: int | None = None
    transport: str = ""
    review: bool = False
    search: str = ""

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        start = _local_midnight(self.since) if self.since else None
        end = _local_midnight(self.until + timedelta(days=1)) if self.until else None
        return start, end


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(timezone.utc)


def _turn_stats() -> Any:
    caller_conf = case(
        (
            and_(turns.c.speaker == "caller", turns.c.kind.in_(("utterance", "routed"))),
            turns.c.confidence,
        ),
        else_=None,
    )
    return (
        select(
            turns.c.call_id.label("call_id"),
            func.sum(case((turns.c.kind.in_(("utterance", "digit")), 1), else_=0)).label("turns"),
            func.min(caller_conf).label("lowest_confidence"),
            func.max(case((turns.c.route == "fallback", 1), else_=0)).label("fell_back"),
            func.max(case((turns.c.kind == "error", 1), else_=0)).label("had_error"),
        )
        .group_by(turns.c.call_id)
        .subquery("stats")
    )


def _said_no_to_confirmation() -> Any:
    asked = turns.alias("asked")
    answer = turns.alias("answer")
    return exists(
        select(literal(1))
        .select_from(answer.join(asked, asked.c.call_id == answer.c.call_id))
        .where(
            answer.c.call_id == calls.c.id,
            answer.c.kind == "heard",
            answer.c.text.like("%không phải%"),
            asked.c.kind == "say",
            asked.c.text.like("%phải không ạ%"),
            asked.c.seq < answer.c.seq,
        )
    )


class Queries:
    def __init__(self, review: ReviewStore) -> None:
        self.review = review

    @property
    def engine(self) -> Engine:
        return self.review.engine

    # --- the list ---------------------------------------------------------------------

    def _filtered(self, f: CallFilter) -> tuple[Select, Any]:
        stats = _turn_stats()
        query = select(
            calls,
            stats.c.turns,
            stats.c.lowest_confidence,
            stats.c.fell_back,
            stats.c.had_error,
        ).select_from(calls.outerjoin(stats, stats.c.call_id == calls.c.id))
        start, end = f.bounds()
        if start:
            query = query.where(calls.c.started_at >= start)
        if end:
            query = query.where(calls.c.started_at < end)
        if f.transport:
            query = query.where(calls.c.transport == f.transport)
        outcome = {
            "settled": or_(calls.c.outcome.like("faq:%"), calls.c.outcome == "goodbye"),
            "transfer": calls.c.outcome.like("transfer:%"),
            "operator": calls.c.outcome == "operator",
            "hangup": calls.c.outcome == "hangup",
            "error": calls.c.outcome == "error",
            "fallback": calls.c.outcome == "fallback",
            "unfinished": calls.c.outcome.is_(None),
        }.get(f.outcome)
        if outcome is not None:
            query = query.where(outcome)
        if f.branch:
            query = query.where(calls.c.outcome == f"transfer:{f.branch}")
        if f.review:
            quick_hangup = and_(
                calls.c.outcome == "hangup",
                calls.c.ended_at.is_not(None),
                self._seconds(calls.c.ended_at, calls.c.started_at) < HANGUP_REVIEW_S,
            )
            query = query.where(
                or_(
                    stats.c.fell_back == 1,
                    stats.c.lowest_confidence < settings.REVIEW_CONFIDENCE,
                    stats.c.had_error == 1,
                    calls.c.outcome.in_(("operator", "error")),
                    quick_hangup,
                    _said_no_to_confirmation(),
                )
            )
        if f.search.strip():
            query = query.where(self.review.search_condition(f.search))
        return query, stats

    def _seconds(self, end: Any, start: Any) -> Any:
        if self.engine.dialect.name == "postgresql":
            return func.extract("epoch", end - start)
        return (func.julianday(end) - func.julianday(start)) * 86400.0

    def list_calls(
        self, f: CallFilter, page: int = 1, per_page: int = 25
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of calls, newest first, and how many match in all."""
        query, _ = self._filtered(f)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = conn.execute(
                query.order_by(calls.c.started_at.desc(), calls.c.id)
                .limit(per_page)
                .offset((max(page, 1) - 1) * per_page)
            ).all()
        found = [dict(r._mapping) for r in rows]
        flags = self.review.flag_counts([r["id"] for r in found])
        for row in found:
            row["flags"] = flags.get(row["id"], 0)
            row["duration_s"] = (
                (row["ended_at"] - row["started_at"]).total_seconds() if row["ended_at"] else None
            )
        return found, int(total)

    def all_calls(self, f: CallFilter, limit: int = 100_000) -> list[dict[str, Any]]:
        rows, _ = self.list_calls(f, 1, limit)
        return rows

    # --- one call ---------------------------------------------------------------------

    def turns(self, call_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(turns).where(turns.c.call_id == call_id).order_by(turns.c.seq)
            ).all()
        return [dict(r._mapping) for r in rows]

    # --- the dashboard ------------------------------------------------------------------

    def dashboard(self, days: int, now: datetime | None = None) -> Dashboard:
        """Figures for today (days=1) or the last 7 / 30 local days, today included."""
        now = utc(now)
        today = now.astimezone(TZ).date()
        first = today - timedelta(days=days - 1)
        start = _local_midnight(first)
        end = _local_midnight(today + timedelta(days=1))
        in_period = and_(calls.c.started_at >= start, calls.c.started_at < end)
        with self.engine.connect() as conn:
            call_rows = conn.execute(
                select(calls.c.id, calls.c.started_at, calls.c.outcome).where(in_period)
            ).all()
            turn_rows = conn.execute(
                select(turns.c.kind, turns.c.route, turns.c.text, turns.c.latency_ms)
                .select_from(turns.join(calls, calls.c.id == turns.c.call_id))
                .where(in_period, turns.c.kind.in_(("routed", "response_latency")))
            ).all()
        board = Dashboard(days=days, first=first, last=today)
        outcomes = Counter(r.outcome for r in call_rows)
        board.received = len(call_rows)
        board.settled = sum(
            n for o, n in outcomes.items() if o and (o.startswith("faq:") or o == "goodbye")
        )
        board.branches = {n: outcomes.get(f"transfer:{n}", 0) for n in range(1, 7)}
        board.operator = outcomes.get("operator", 0)
        board.abandoned = outcomes.get("hangup", 0)
        board.other = (
            board.received
            - board.settled
            - sum(board.branches.values())
            - board.operator
            - board.abandoned
        )
        routed = [t for t in turn_rows if t.kind == "routed"]
        fell_back = [t for t in routed if t.route == "fallback"]
        board.requests = len(routed)
        board.fallbacks = len(fell_back)
        latencies = [
            t.latency_ms
            for t in turn_rows
            if t.kind == "response_latency" and t.latency_ms is not None
        ]
        if latencies:
            board.p50_ms = float(np.percentile(latencies, 50))
            board.p95_ms = float(np.percentile(latencies, 95))
        board.top_fallbacks = Counter(
            (t.text or "").strip() for t in fell_back if (t.text or "").strip()
        ).most_common(10)
        # Calls per hour of the (local) day, and the outcomes per day (per hour for today).
        board.per_hour = [0] * 24
        buckets: dict[str, Counter[str]] = {}
        for r in call_rows:
            local = r.started_at.astimezone(TZ)
            board.per_hour[local.hour] += 1
            key = f"{local.hour:02d}h" if days == 1 else local.strftime("%d/%m")
            buckets.setdefault(key, Counter())[outcome_group(r.outcome)] += 1
        if days == 1:
            keys = [f"{h:02d}h" for h in range(24)]
        else:
            keys = [(first + timedelta(days=i)).strftime("%d/%m") for i in range(days)]
        board.routes_over_time = [(k, dict(buckets.get(k, Counter()))) for k in keys]
        return board


GROUPS = ("settled", "branch", "operator", "abandoned", "other")


def outcome_group(outcome: str | None) -> str:
    if outcome and (outcome.startswith("faq:") or outcome == "goodbye"):
        return "settled"
    if outcome and outcome.startswith("transfer:"):
        return "branch"
    if outcome == "operator":
        return "operator"
    if outcome == "hangup":
        return "abandoned"
    return "other"


@dataclass
class Dashboard:
    days: int
    first: date
    last: date
    received: int = 0
    settled: int = 0
    branches: dict[int, int] = field(default_factory=dict)
    operator: int = 0
    abandoned: int = 0
    other: int = 0  # ended not understood, on an error, or still running / cut off
    requests: int = 0
    fallbacks: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    per_hour: list[int] = field(default_factory=list)
    routes_over_time: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    top_fallbacks: list[tuple[str, int]] = field(default_factory=list)

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks / self.requests if self.requests else None
