"""The supervisors' console in headless Chromium (Playwright, Debian's /usr/bin/chromium), on
calls made through the real voice pipeline (run_simulated_call on the stand-in engines, as
in tests/test_voice_line.py: a Korean recogniser and an English voice, since the Vietnamese
models cannot be downloaded here), served by a real aiohttp server on a loopback port.

Each role logs in through the form; the supervisor filters the list, opens the call, plays
the recording and watches the highlight move, flags a turn, reads the dashboard (its
counters must equal the store's own counts) and watches a call appear on the live page by
itself; the trainer and the admin see what their roles allow. Screenshots at 1280x800 of
the call page and the dashboard go to build/ (copied to docs/ for the README).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import soundfile
from aiohttp import web

from bot.app.settings import Settings
from bot.console import auth
from bot.console.app import add_console, live_calls
from bot.console.queries import TZ
from bot.session.engines import Engines
from bot.store.review import ReviewStore
from bot.transports.simulated import run_simulated_call
from tests.conftest import ROOT
from tests.fakes import korean_speech_wav

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "mật khẩu thử 2026"
CCCD = "001099012345"
SPOKEN_PHONE = "không chín tám ba một hai ba bốn năm sáu"
TIMEOUT_MS = 120_000
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--autoplay-policy=no-user-gesture-required",
    # No internet here: without these Chromium keeps trying to reach Google.
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    from bot.app.engines import load_engines

    folder = tmp_path_factory.mktemp("console")
    loaded = load_engines(
        Settings.from_env(),  # BOT_MODELS_DIR may name the trained model's folder
        stand_in=True,
        store_url=f"sqlite:///{folder / 'calls.db'}",
        recordings=folder / "recordings",
    )
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Korean speech (the stand-in recogniser is Korean) after the greeting, then silence."""
    return korean_speech_wav(tmp_path_factory.mktemp("caller"), 16000, 5, 2)


@pytest.fixture(scope="module")
def call(engines: Engines, caller_wav: Path) -> str:
    """A call through the whole pipeline: greeting, speech, keypad 5 (a transfer)."""

    async def make() -> str:
        line, voice_call = await run_simulated_call(engines, caller_wav, "5@14", 40)
        assert line.outcome == "transfer:5"
        return voice_call.call_id

    call_id = asyncio.run(make())
    assert engines.store is not None
    # What a caller might also have said: a citizen ID typed into the record and a phone
    # number in the recogniser's words (the Korean stand-in cannot hear Vietnamese digits).
    engines.store.add_turn(
        call_id,
        kind="heard",
        text=f"căn cước {CCCD} số em là {SPOKEN_PHONE}",
        confidence=0.4,
    )
    review = ReviewStore(engines.store)
    for name, role in (("giamsat", "supervisor"), ("huanluyen", "trainer"), ("quantri", "admin")):
        review.add_user(name, role, auth.hash_password(PASSWORD))
    return call_id


async def serve(engines: Engines) -> tuple[web.AppRunner, str]:
    assert engines.store is not None
    app = web.Application()
    add_console(app, engines.store, Settings(), live_calls(engines))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def log_in(context: Any, base: str, name: str) -> Any:
    page = await context.new_page()
    await page.goto(f"{base}/console/calls")  # anonymous: sent to the login form
    assert "/console/login" in page.url
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/console/calls")
    return page


def test_the_console_in_chromium(engines: Engines, call: str, caller_wav: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    from playwright.async_api import async_playwright

    assert engines.store is not None
    store = engines.store
    record = store.get_call(call)
    assert record is not None and record.audio_path and record.audio_seconds
    info = soundfile.info(record.audio_path)
    assert info.channels == 2 and abs(info.duration - record.audio_seconds) < 0.01
    turns = store.turns(call)
    kinds = [t.kind for t in turns]
    # The routed line needs the Korean stand-in recogniser to have heard something; the
    # keypad press is certain.
    assert "say" in kinds and "digit" in kinds, kinds
    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    errors: list[str] = []

    async def main() -> None:
        runner, base = await serve(engines)
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=ARGS
                )
                try:
                    await supervisor(browser, base)
                    await trainer(browser, base)
                    await admin(browser, base)
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()

    async def new_context(browser: Any, csp: bool = False) -> Any:
        # bypass_csp: Playwright's wait_for_function evaluates its predicate as a string, which
        # the console's CSP (script-src 'self', no eval) rightly refuses; tests/test_console.py
        # checks the header itself.
        context = await browser.new_context(
            viewport={"width": 1280, "height": 800}, locale="vi-VN", bypass_csp=not csp
        )
        context.set_default_timeout(TIMEOUT_MS)
        return context

    async def supervisor(browser: Any, base: str) -> None:
        context = await new_context(browser)
        page = await log_in(context, base, "giamsat")
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Filter the list: simulated calls transferred to branch 5.
        await page.select_option("select[name=transport]", "simulated")
        await page.select_option("select[name=branch]", "5")
        await page.click("form.filters button[type=submit]")
        await page.wait_for_url("**transport=simulated**")
        rows = page.locator("table.calls tbody tr")
        assert await rows.count() == 1
        assert "Nhánh 5" in await rows.first.inner_text()
        await page.select_option("select[name=branch]", "2")
        await page.click("form.filters button[type=submit]")
        await page.wait_for_url("**branch=2**")
        assert "Không có cuộc gọi nào" in await page.inner_text("table.calls")

        # The call: its recording, played; the highlight follows it.
        await page.goto(f"{base}/console/calls/{call}")
        html = await page.content()
        assert CCCD not in html and SPOKEN_PHONE not in html and "[CCCD đã ẩn]" in html
        await page.wait_for_function("window.consoleStats && window.consoleStats.ready")
        greeting = page.locator(".turn.kind-say").first
        greeting_id = await greeting.get_attribute("id")
        await greeting.locator(".meta").click()  # plays from the greeting's start
        await page.wait_for_function(
            f"window.consoleStats.turn === '{greeting_id}' && window.consoleStats.time > 0.3"
        )
        assert await page.locator(f"#{greeting_id}.playing").count() == 1
        await page.screenshot(path=str(build / "console-call.png"))
        # It moves on to the next turns by itself as the recording plays.
        await page.wait_for_function(
            f"window.consoleStats.turn && window.consoleStats.turn !== '{greeting_id}'"
        )
        assert await page.locator(f"#{greeting_id}.playing").count() == 0
        # A caller turn with word times: a click plays from it, the words light up in turn.
        words = page.locator(".turn.kind-utterance .word")
        if await words.count():
            utterance = page.locator(".turn.kind-utterance").first
            await utterance.locator(".meta").click()
            await page.wait_for_function("window.consoleStats.word !== null")
            assert await page.locator(".word.playing").count() == 1
        await page.click("#play")  # pause

        # Flag the keypad press: the wrong route, the one it should have had, a note.
        routed = page.locator(".turn.kind-digit").first
        routed_id = (await routed.get_attribute("id") or "").removeprefix("turn-")
        await routed.locator("summary").click()
        await routed.locator("select[name=kind]").select_option("wrong_route")
        await routed.locator("select[name=expected_route]").select_option("transfer:5")
        await routed.locator("input[name=note]").fill("người gọi cần nhánh năm")
        await routed.locator("button[type=submit]").click()
        await routed.locator(".flags li").wait_for()
        assert "Sai nhánh" in await routed.locator(".flags").inner_text()
        flags = ReviewStore(store).flags(call)
        assert [(f.turn_id, f.kind, f.expected_route, f.by_user) for f in flags] == [
            (int(routed_id), "wrong_route", "transfer:5", "giamsat")
        ]

        # The CSV of the list, as downloaded: masked too.
        async with page.expect_download() as download_info:
            await page.goto(f"{base}/console/calls")
            await page.click("text=Tải CSV")
        download = await download_info.value
        csv_text = Path(await download.path()).read_text(encoding="utf-8-sig")
        assert call in csv_text and CCCD not in csv_text

        # The dashboard: its counters are the store's.
        await page.goto(f"{base}/console/dashboard?period=today")
        shown = {
            await f.get_attribute("data-figure"): (await f.locator(".n").inner_text())
            for f in await page.locator(".figure").all()
        }
        now = datetime.now(TZ)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        counts = store.counts(since=midnight, until=midnight + timedelta(days=1))
        assert shown["received"] == str(counts["received"]) != "0"
        assert shown["settled"] == str(counts["answered"])
        assert shown["operator"] == str(counts["operator"])
        assert shown["abandoned"] == str(counts["hangup"])
        for n in range(1, 7):
            assert shown[f"transfer:{n}"] == str(counts[f"transfer:{n}"]), n
        await page.screenshot(path=str(build / "console-dashboard.png"), full_page=False)

        # Live calls: a new call appears by itself (htmx polling) and goes when it ends.
        await page.goto(f"{base}/console/live")
        assert "Không có cuộc gọi nào" in await page.inner_text("#live-rows")
        live = asyncio.create_task(run_simulated_call(engines, caller_wav, "0@6", 20))
        await page.locator("#live-rows tr[data-call]").wait_for()
        assert "Mô phỏng" in await page.inner_text("#live-rows")
        await live  # ends by the keypad's 0 or, on a starved machine, by hanging up
        await page.locator("#live-rows tr[data-call]").wait_for(state="detached")
        await context.close()

    async def trainer(browser: Any, base: str) -> None:
        context = await new_context(browser)
        page = await log_in(context, base, "huanluyen")
        await page.goto(f"{base}/console/calls/{call}")
        assert await page.locator(".flag-form").count() == 0  # reads, does not flag
        assert CCCD not in await page.content()
        response = await page.goto(f"{base}/console/live")
        assert response is not None and response.status == 403
        await context.close()

    async def admin(browser: Any, base: str) -> None:
        # Under the console's own CSP: its scripts and the vendored libraries must run.
        context = await new_context(browser, csp=True)
        page = await log_in(context, base, "quantri")
        refused: list[str] = []
        page.on(
            "console", lambda m: refused.append(m.text) if "Content Security" in m.text else None
        )
        await page.goto(f"{base}/console/calls/{call}")
        assert CCCD in await page.content()  # admins see what was said
        await page.locator("#waveform div").first.wait_for(state="attached")  # wavesurfer ran
        await page.goto(f"{base}/console/live")
        await page.wait_for_load_state("networkidle")
        assert not refused, refused
        await page.goto(f"{base}/console/audit")
        log = await page.inner_text("table.audit")
        for action in ("view", "play", "flag", "export", "login"):
            assert action in log, action
        await context.close()

    asyncio.run(asyncio.wait_for(main(), 900))
    assert not errors, errors
