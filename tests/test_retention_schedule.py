"""When the server's nightly retention runs: at BOT_RETENTION_HOUR, Hanoi time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp import web

from bot.app.settings import Settings
from bot.console import retention
from bot.store.calls import CallStore

pytestmark = pytest.mark.unit


def test_the_next_run_is_at_the_hour_in_hanoi() -> None:
    # 18:30 UTC is 01:30 in Hanoi: the 02:00 run is half an hour away...
    assert retention._seconds_until(2, datetime(2026, 11, 30, 18, 30, tzinfo=timezone.utc)) == 1800
    # ...and at 02:00 exactly, the next is tomorrow's.
    at_two = datetime(2026, 11, 30, 19, 0, tzinfo=timezone.utc)
    assert retention._seconds_until(2, at_two) == 24 * 3600


def test_the_nightly_job_runs_retention_and_stops_with_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    ran = asyncio.Event()
    calls: list[tuple[int, int]] = []

    def fake_apply(_store: CallStore, audio_days: int, text_days: int) -> None:
        calls.append((audio_days, text_days))
        ran.set()

    # The job's own scheduling, on a clock one second before the hour.
    monkeypatch.setattr(retention, "apply", fake_apply)
    monkeypatch.setattr(retention, "_seconds_until", lambda hour, now: 0.05)
    s = Settings(retention_audio_days=7, retention_text_days=30)

    async def main() -> None:
        app = web.Application()
        app.cleanup_ctx.append(retention.nightly(store, s))
        runner = web.AppRunner(app)
        await runner.setup()
        await asyncio.wait_for(ran.wait(), 10)
        await runner.cleanup()  # cancels the job

    asyncio.run(main())
    assert calls[0] == (7, 30)
    store.close()
