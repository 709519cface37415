"""The trainers' loop in headless Chromium (Playwright, /usr/bin/chromium), on a call made
through the real voice pipeline (run_simulated_call on the stand-in engines: a Korean
recogniser and English voice, since the Vietnamese speech models cannot be downloaded here;
the real Rasa model cannot understand the Korean words, so the call falls back).

The trainer finds the turn in the queue, turns it into an example of branch 2 (the copy of
nlu_data/ gets it), sees the normalisation diff, tries a sentence, runs a training job to the
end of its progress bar, reads the comparison, activates the candidate (the running brain
service switches to it) and rolls back. The job trains a tiny real Rasa project: a real
fine-tune of the product's model takes 15 minutes or more on two cores, too long for the
suite; so the candidate compared and activated is a registered copy of the trained model
with figures showing the new sentence fixed (what bench/finetune_bench.py measured).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app.settings import ROOT
from bot.console import auth
from bot.console.app import add_console, live_calls
from bot.console.trainer import add_trainer
from bot.nlu.brain import Brain, newest_model
from bot.session.brain_service import follow_registry
from bot.session.engines import Engines
from bot.store.review import ReviewStore
from bot.tools.comparison import figures_for
from bot.tools.model_registry import Registry
from bot.tools.train_job import TrainingJobs
from bot.tools.training import load_examples
from bot.transports.simulated import run_simulated_call
from tests.config import SETTINGS
from tests.fakes import korean_speech_wav
from tests.test_console_browser import ARGS, CHROMIUM, PASSWORD
from tests.test_trainer import TINY_CONFIG, TINY_DATA, TINY_DOMAIN, TINY_TRAIN

pytestmark = pytest.mark.e2e

SENTENCE = "cho tôi hỏi chỗ tiêm vắc xin mũi ba ở đâu"
TIMEOUT_MS = 600_000


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    from bot.app.engines import load_engines

    folder = tmp_path_factory.mktemp("trainer")
    loaded = load_engines(
        SETTINGS,
        stand_in=True,
        store_url=f"sqlite:///{folder / 'calls.db'}",
        recordings=folder / "recordings",
    )
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def fell_back(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A simulated call whose request the bot did not understand (the speech after the
    greeting, which the stand-in voice spells out slowly; silence after it, for the routing)."""
    wav = korean_speech_wav(tmp_path_factory.mktemp("caller"), 16000, 14, 10)

    async def make() -> str:
        _, call = await run_simulated_call(engines, wav, "", 60)
        return str(call.call_id)

    call_id = asyncio.run(make())
    assert engines.store is not None
    routed = [t for t in engines.store.turns(call_id) if t.kind == "routed"]
    kinds = [(t.kind, t.text, t.route) for t in engines.store.turns(call_id)]
    assert routed and routed[0].route == "fallback", kinds
    ReviewStore(engines.store).add_user("huanluyen", "trainer", auth.hash_password(PASSWORD))
    return call_id


def test_the_trainers_loop_in_chromium(engines: Engines, fell_back: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    from playwright.async_api import async_playwright

    assert engines.store is not None
    data = tmp_path / "nlu_data"
    shutil.copytree(SETTINGS.nlu_data, data)
    models = tmp_path / "models"
    models.mkdir()
    for name in ("a-live.tar.gz", "b-candidate.tar.gz"):
        (models / name).symlink_to(newest_model(SETTINGS.models_dir))
    # The pages' settings: the copy of the data, and a registry of their own.
    s = dataclasses.replace(
        SETTINGS, nlu_data=data, models_dir=models, model_registry=models / "registry.json"
    )
    registry = Registry(models / "registry.json")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "config.yml").write_text(TINY_CONFIG)
    (tiny / "nlu.yml").write_text(TINY_DATA)
    (tiny / "domain.yml").write_text(TINY_DOMAIN)
    service = engines.brain
    build = ROOT / "build"
    build.mkdir(exist_ok=True)

    async def main() -> None:
        app = web.Application()
        add_console(app, engines.store, s, live_calls(engines))  # type: ignore[arg-type]
        jobs = TrainingJobs(
            log_dir=tiny / "logs",
            command=[sys.executable, "-c", TINY_TRAIN, str(tiny)],
            config=tiny / "config.yml",
            max_live_calls=s.train_max_live_calls,
            nice=s.train_nice,
            finetune_fraction=s.finetune_epoch_fraction,
        )
        add_trainer(app, service, s, lambda: engines.metrics.calls_active, jobs)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        follower = asyncio.create_task(follow_registry(service, registry.active_path, Brain, 0.5))
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=ARGS
                )
                try:
                    await walk(browser, base, follower)
                finally:
                    await browser.close()
        finally:
            follower.cancel()
            await runner.cleanup()

    async def walk(browser: Any, base: str, follower: asyncio.Task[None]) -> None:
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN")
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{base}/console/trainer")
        await page.fill("input[name=name]", "huanluyen")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/console/trainer")  # the trainer's landing page
        await page.screenshot(path=str(build / "trainer-queue.png"), full_page=True)

        # The call that fell back is in the queue; the trainer writes what was meant.
        item = page.locator(".queue-item").first
        assert "Không hiểu" in await item.inner_text()
        assert fell_back in (await item.locator("a").get_attribute("href") or "")
        assert await item.locator("select[name=route]").input_value() == ""  # none chosen yet
        await item.locator("input[name=text]").fill(SENTENCE)
        await item.locator("select[name=route]").select_option("transfer:2")
        await item.locator("button", has_text="Thêm làm ví dụ").click()
        await page.wait_for_selector("p.notice")
        assert SENTENCE in await page.inner_text("p.notice")
        assert SENTENCE in load_examples(data)["cdc"]
        assert await page.locator(".queue-item").count() == 0

        # The page shows how a typed sentence will be written.
        await page.fill("#add-text", "Cho tôi hỏi mũi 3")
        await page.wait_for_selector("#diff ins")
        assert await page.locator("#diff del", has_text="3").count() == 1
        assert await page.locator("#diff ins", has_text="ba").count() == 1
        assert "cho tôi hỏi mũi ba" in await page.inner_text("#diff .normalised")

        # Try it with the live model.
        await page.fill("#try-text", "nhà tôi hết gạo rồi")
        await page.click("#try button")
        await page.wait_for_selector("table.try td.route")
        assert "Nhánh 6" in await page.inner_text("table.try td.route")
        await page.screenshot(path=str(build / "trainer-added-tried.png"), full_page=True)

        # A training job runs to the end of its progress bar.
        await page.click("button[value=finetune]")
        await page.wait_for_selector("p.notice")
        # htmx redraws the status every 2 s (the console's CSP forbids evaluated scripts,
        # so the test reads the page rather than waiting on a JavaScript predicate).
        for _ in range(TIMEOUT_MS // 1000):
            status = page.locator(".job-status")
            if await status.count() and (await status.inner_text()).strip() in ("xong", "thất bại"):
                break
            await asyncio.sleep(1)
        assert (await page.inner_text(".job-status")).strip() == "xong", await page.inner_text(
            "#job-status"
        )
        assert await page.locator("#job-status progress").get_attribute("value") == "1.0"
        await page.screenshot(path=str(build / "trainer-job.png"), full_page=True)

        # The candidate, scored: the new sentence fixed, nothing broken, then activated.
        def on_service(texts: list[str]) -> list[str]:
            # The live brain answers on its own thread's loop, as it does for calls.
            return [
                asyncio.run_coroutine_threadsafe(service.brain.route(t), service._loop)
                .result()
                .route
                for t in texts
            ]

        live = await asyncio.to_thread(figures_for, on_service, [], SETTINGS.heldout)
        answers = {t: g for rows in live.data["routed"].values() for t, _, g in rows}
        added = [(SENTENCE, "transfer:2")]
        before = figures_for(
            lambda ts: [answers.get(t, "fallback") for t in ts], added, SETTINGS.heldout
        )
        after = figures_for(
            lambda ts: [answers.get(t, "transfer:2") for t in ts], added, SETTINGS.heldout
        )
        # A worse candidate first (every fifth held-out sentence lost): refused, and why.
        n = iter(range(10**6))
        worse = figures_for(
            lambda ts: [
                "fallback" if next(n) % 5 == 0 else answers.get(t, "transfer:2") for t in ts
            ],
            added,
            SETTINGS.heldout,
        )
        registry.set_figures("a-live.tar.gz", before)
        registry.register(models / "b-candidate.tar.gz", trained_by="huanluyen", kind="finetune")
        registry.set_figures("b-candidate.tar.gz", worse)
        with registry._editing() as index:
            index["models"]["b-candidate.tar.gz"]["against"] = {
                "model": "a-live.tar.gz",
                "figures": before.data,
            }
        await page.goto(f"{base}/console/trainer")
        assert "«có dấu»" in await page.inner_text("#compare ul.problems")
        await page.click("#activate")
        await page.wait_for_selector("p.error")
        refusal = await page.inner_text("p.error")
        assert "Chưa kích hoạt được" in refusal and "«có dấu»" in refusal, refusal
        assert registry.active_name() == "a-live.tar.gz"
        await page.screenshot(path=str(build / "trainer-refused.png"), full_page=True)

        # The candidate as trained: the new sentence fixed, the rest as the live model.
        registry.set_figures("b-candidate.tar.gz", after)
        await page.goto(f"{base}/console/trainer")
        assert await page.locator("#compare ul.problems").count() == 0
        assert SENTENCE in await page.inner_text("#compare ul.fixed")
        assert await page.locator("#compare ul.broken li").count() == 0
        await page.screenshot(path=str(build / "trainer-compare.png"), full_page=True)
        await page.click("#activate")
        await page.wait_for_selector("p.notice")
        assert "Đã kích hoạt" in await page.inner_text("p.notice")
        assert registry.active_name() == "b-candidate.tar.gz"
        for _ in range(600):  # the brain service follows the registry
            if service.model_path.name == "b-candidate.tar.gz":
                break
            await asyncio.sleep(0.5)
        assert service.model_path.name == "b-candidate.tar.gz"
        assert "(đang chạy)" in await page.inner_text("tr.active-model")
        assert "b-candidate" in await page.inner_text("tr.active-model")
        await page.screenshot(path=str(build / "trainer-activated.png"), full_page=True)
        # The service's switch is asserted: stop following, or the rollback would load the
        # live model once more in a thread that asyncio.run then waits for (a minute or more).
        follower.cancel()

        # One click back.
        await page.click("#rollback")
        await page.wait_for_selector("p.notice")
        assert registry.active_name() == "a-live.tar.gz"
        assert "a-live" in await page.inner_text("tr.active-model")
        await page.screenshot(path=str(build / "trainer-rolled-back.png"), full_page=True)
        assert not errors, errors
        actions = [e.action for e in ReviewStore(engines.store).audit_entries()]  # type: ignore[arg-type]
        for action in (
            "trainer_example_added",
            "trainer_training_started",
            "trainer_model_activated",
            "trainer_model_rolled_back",
        ):
            assert action in actions

    asyncio.run(main())
