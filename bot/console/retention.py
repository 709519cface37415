"""Retention: recordings deleted after ``BOT_RETENTION_AUDIO_DAYS``, transcripts redacted
after ``BOT_RETENTION_TEXT_DAYS`` (0: kept for ever), by a nightly job in the server and by
``python -m bot retention [--dry-run]``. What a run did goes to the audit log.

Redacting a call clears what a caller said or could be identified by: every turn's text
and word list, the caller's number, the end reason, and the notes of flags on it. The
call's shape stays (times, outcomes, routes, confidences, latencies), so the dashboard's
figures for old periods do not change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import and_, or_, select, update

from bot.app.settings import Settings
from bot.store.calls import CallStore, calls, turns, utc
from bot.store.review import ReviewStore, turn_flags

logger = logging.getLogger(__name__)

ACTOR = "retention"


@dataclass
class Report:
    audio_before: datetime | None
    text_before: datetime | None
    recordings: int = 0  # deleted (or, in a dry run, to delete)
    missing_files: int = 0  # already gone from disk
    calls_redacted: int = 0
    turns_redacted: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would " if self.dry_run else ""
        parts = []
        if self.audio_before:
            parts.append(
                f"{verb}delete {self.recordings} recordings of calls before "
                f"{self.audio_before:%Y-%m-%d %H:%M} UTC"
                + (f" ({self.missing_files} already missing)" if self.missing_files else "")
            )
        if self.text_before:
            parts.append(
                f"{verb}redact {self.turns_redacted} turns of {self.calls_redacted} calls before "
                f"{self.text_before:%Y-%m-%d %H:%M} UTC"
            )
        return "; ".join(parts) or "retention is off (both periods are 0)"


def apply(
    store: CallStore,
    audio_days: int,
    text_days: int,
    now: datetime | None = None,
    dry_run: bool = False,
) -> Report:
    now = utc(now)
    review = ReviewStore(store)
    engine = review.engine
    report = Report(
        audio_before=now - timedelta(days=audio_days) if audio_days > 0 else None,
        text_before=now - timedelta(days=text_days) if text_days > 0 else None,
        dry_run=dry_run,
    )
    if report.audio_before is not None:
        with engine.connect() as conn:
            old = conn.execute(
                select(calls.c.id, calls.c.audio_path).where(
                    calls.c.started_at < report.audio_before, calls.c.audio_path.is_not(None)
                )
            ).all()
        for call_id, path in old:
            report.recordings += 1
            if dry_run:
                continue
            try:
                Path(path).unlink()
            except FileNotFoundError:
                report.missing_files += 1
            except OSError as e:  # kept in the record, tried again next night
                logger.error("call %s: cannot delete %s: %s", call_id, path, e)
                report.recordings -= 1
                continue
            store.set_audio(call_id, None, None)
    if report.text_before is not None:
        old_calls = select(calls.c.id).where(calls.c.started_at < report.text_before)
        unredacted = and_(
            turns.c.call_id.in_(old_calls),
            # red_flag quotes the caller's words ("matched"): it goes with the text.
            or_(
                turns.c.text.is_not(None),
                turns.c.words.is_not(None),
                turns.c.red_flag.is_not(None),
            ),
        )
        with engine.begin() as conn:
            rows = conn.execute(select(turns.c.call_id).where(unredacted)).all()
            report.turns_redacted = len(rows)
            report.calls_redacted = len({r.call_id for r in rows})
            if not dry_run and rows:
                conn.execute(
                    update(turns).where(unredacted).values(text=None, words=None, red_flag=None)
                )
                conn.execute(
                    update(calls)
                    .where(calls.c.id.in_(old_calls))
                    .values(caller=None, end_reason=None)
                )
                conn.execute(
                    update(turn_flags).where(turn_flags.c.call_id.in_(old_calls)).values(note=None)
                )
    if not dry_run and (report.recordings or report.turns_redacted):
        review.audit(ACTOR, "retention", None, report.summary())
    logger.info("retention: %s", report.summary())
    return report


def _seconds_until(hour: int, now: datetime) -> float:
    from bot.console.queries import TZ

    local = now.astimezone(TZ)
    target = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    return (target - local).total_seconds()


def nightly(store: CallStore, s: Settings, clock: Callable[[], datetime] = utc) -> Any:
    """A cleanup context for the server: retention every night at ``s.retention_hour``."""

    async def job(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(_seconds_until(s.retention_hour, clock()))
                try:
                    days = (s.retention_audio_days, s.retention_text_days)
                    await asyncio.to_thread(apply, store, *days)
                except Exception:  # logged; the server and tomorrow's run go on
                    logger.exception("nightly retention failed")

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return job
