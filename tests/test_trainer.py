"""The trainers' pages over a real socket, on the real model, a real SQLite store and a copy
of the training data: the queue, "try it", the diff, adding an example (audited, the turn
leaves the queue), dismissing, the training job (a tiny real Rasa project: a full training
takes 10-25 minutes, too long for the suite), activation refused and rollback."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app.settings import Settings
from bot.console import auth
from bot.console.app import add_console
from bot.console.trainer import add_trainer
from bot.nlu.brain import newest_model
from bot.session.brain_service import BrainService
from bot.store.calls import CallStore, utc
from bot.store.review import ReviewStore
from bot.tools.model_registry import Registry
from bot.tools.train_job import Progress, TrainingJobs, parse_progress, planned_epochs
from bot.tools.training import load_examples
from tests.config import SETTINGS
from tests.test_console import PASSWORD, _call, login

pytestmark = pytest.mark.e2e

FELL_BACK = "cho tôi hỏi chỗ tiêm vắc xin mũi ba ở đâu"
NOISE = "ờ ờ ừ"

TINY_CONFIG = """\
recipe: default.v1
assistant_id: tiny
language: vi
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: DIETClassifier
    epochs: 4
    number_of_transformer_layers: 0
policies:
  - name: RulePolicy
"""
TINY_DATA = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - xin chào
    - chào em
    - chào tổng đài
- intent: goodbye
  examples: |
    - tạm biệt
    - chào nhé
    - thôi cảm ơn
"""
TINY_DOMAIN = 'version: "3.1"\nintents:\n  - greet\n  - goodbye\n'
# The job's child process: trains the tiny project with Rasa and prints what
# `python -m bot train --candidate` prints at its end (the arguments it is given are ignored).
TINY_TRAIN = textwrap.dedent(
    """\
    import sys, time
    from pathlib import Path
    from bot.app.settings import quiet_libraries
    quiet_libraries("INFO")
    from rasa.api import train
    root = Path(sys.argv[1])
    started = time.monotonic()
    r = train(str(root / "domain.yml"), str(root / "config.yml"), [str(root / "nlu.yml")],
              output=str(root / "models"), force_training=True)
    sys.exit(r.code) if not r.model else None
    print(f"==> trained {Path(r.model).name} in {time.monotonic() - started:.0f} s", flush=True)
    """
)


def run(coroutine: Any) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 900))


@pytest.fixture(scope="module")
def service(brain) -> Iterator[BrainService]:  # type: ignore[no-untyped-def]
    """The session's model on a brain thread, as the server runs it (one model load for the
    module: the pages only parse sentences with it, no conversation)."""
    s = BrainService(brain)
    yield s
    s.close()


@pytest.fixture
def setup(tmp_path: Path, service: BrainService) -> Iterator[dict[str, Any]]:
    data = tmp_path / "nlu_data"
    shutil.copytree(SETTINGS.nlu_data, data)
    models = tmp_path / "models"
    models.mkdir()
    (models / "a-live.tar.gz").symlink_to(newest_model(SETTINGS.models_dir))
    # The pages' settings: the copy of the data, and a registry of their own.
    s = dataclasses.replace(
        SETTINGS, nlu_data=data, models_dir=models, model_registry=models / "registry.json"
    )
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    review = ReviewStore(store)
    review.add_user("huanluyen", "trainer", auth.hash_password(PASSWORD))
    review.add_user("giamsat", "supervisor", auth.hash_password(PASSWORD))
    call = _call(store, utc(), "operator", [(FELL_BACK, "fallback"), (NOISE, "fallback")])
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "config.yml").write_text(TINY_CONFIG)
    (tiny / "nlu.yml").write_text(TINY_DATA)
    (tiny / "domain.yml").write_text(TINY_DOMAIN)
    yield {
        "store": store,
        "review": review,
        "call": call,
        "data": data,
        "tiny": tiny,
        "models": models,
        "settings": s,
        "service": service,
    }
    store.close()


def app_for(setup: dict[str, Any], live_calls: int = 0) -> web.Application:
    app = web.Application()
    s: Settings = setup["settings"]
    add_console(app, setup["store"], s)
    jobs = TrainingJobs(
        log_dir=setup["tiny"] / "logs",
        command=[sys.executable, "-c", TINY_TRAIN, str(setup["tiny"])],
        max_live_calls=1,
        config=setup["tiny"] / "config.yml",
        nice=s.train_nice,
        finetune_fraction=s.finetune_epoch_fraction,
    )
    add_trainer(app, setup["service"], s, lambda: live_calls, jobs)
    return app


async def csrf(client: TestClient) -> str:
    html = await (await client.get("/console/trainer")).text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found
    return found.group(1)


def test_queue_try_preview_add_and_dismiss(setup: dict[str, Any]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app_for(setup))) as client:
            assert await login(client, "huanluyen") == 303
            page = await (await client.get("/console/trainer")).text()
            assert FELL_BACK in page and NOISE in page and "Không hiểu" in page
            token = await csrf(client)
            tried = await (
                await client.post(
                    "/console/trainer/try", data={"text": "nhà tôi hết gạo rồi", "csrf": token}
                )
            ).text()
            assert "Nhánh 6" in tried and "essential_supplies" in tried
            diff = await (
                await client.post(
                    "/console/trainer/preview", data={"text": "Cho tôi hỏi mũi 3", "csrf": token}
                )
            ).text()
            assert (
                "cho tôi hỏi mũi ba" in diff and "<del>3</del>" in diff and "<ins>ba</ins>" in diff
            )
            # The fell-back turn becomes an example of branch 2 (CDC).
            turn = re.search(r'name="turn_id" value="(\d+)"', page.split(FELL_BACK, 1)[1])
            assert turn
            added = await client.post(
                "/console/trainer/examples",
                data={
                    "text": FELL_BACK,
                    "route": "transfer:2",
                    "turn_id": turn.group(1),
                    "csrf": token,
                },
                allow_redirects=False,
            )
            assert added.status == 303 and "m=" in added.headers["Location"]
            assert FELL_BACK in load_examples(setup["data"])["cdc"]
            # The same sentence for another route is refused, with the reason on the page.
            again = await client.post(
                "/console/trainer/examples",
                data={"text": FELL_BACK.upper(), "route": "transfer:3", "csrf": token},
            )
            assert "trùng" in await again.text()
            noise = re.search(r'name="turn_id" value="(\d+)"', page.split(NOISE, 1)[1])
            assert noise
            await client.post(
                "/console/trainer/dismiss", data={"turn_id": noise.group(1), "csrf": token}
            )
            page = await (await client.get("/console/trainer")).text()
            queue = page.split('id="queue"', 1)[1].split("</section>", 1)[0]
            assert FELL_BACK not in queue and NOISE not in queue
            actions = [e.action for e in setup["review"].audit_entries()]
            assert "trainer_example_added" in actions and actions.count("trainer_dismiss") == 2
            # A supervisor has no trainers' pages.
            await client.post("/console/logout", data={"csrf": token})
            assert await login(client, "giamsat") == 303
            assert (await client.get("/console/trainer", allow_redirects=False)).status == 403

    run(main())


def test_training_is_refused_while_calls_are_up(setup: dict[str, Any]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app_for(setup, live_calls=2))) as client:
            assert await login(client, "huanluyen") == 303
            token = await csrf(client)
            page = await (
                await client.post(
                    "/console/trainer/train", data={"kind": "finetune", "csrf": token}
                )
            ).text()
            assert "Đang có 2 cuộc gọi" in page

    run(main())


def test_a_training_job_runs_to_the_end_with_its_progress(setup: dict[str, Any]) -> None:
    async def main() -> None:
        app = app_for(setup)
        async with TestClient(TestServer(app)) as client:
            assert await login(client, "huanluyen") == 303
            token = await csrf(client)
            started = await client.post(
                "/console/trainer/train", data={"kind": "full", "csrf": token}
            )
            assert "Đã bắt đầu" in await started.text()
            again = await client.post(
                "/console/trainer/train", data={"kind": "full", "csrf": token}
            )
            assert "mỗi lần chỉ chạy một lượt" in await again.text()
            from bot.console.trainer import JOBS

            job = await app[JOBS].wait()
            assert job is not None and job.status == "succeeded", job.log() if job else ""
            status = await (await client.get("/console/trainer/job")).text()
            assert "4/4 vòng" in status and 'value="1.0"' in status and job.model in status
            assert (setup["tiny"] / "models" / str(job.model)).is_file()
            # Rasa's own progress bars gave the epochs as they went.
            assert parse_progress(job.log(), 4, 1.0).epochs_done == 4

    run(main())


def test_progress_is_read_from_rasas_bars(tmp_path: Path) -> None:
    log = (
        "Starting to train component 'DIETClassifier'.\n"
        "Epochs:   0%|  | 0/40 [00:00<?, ?it/s]\rEpochs:  50%|# | 20/40 [00:10<00:10]\r"
        "Epochs: 100%|##| 40/40 [00:20<00:00]\n"
        "Starting to train component 'ResponseSelector'.\n"
        "Epochs:  10%|  | 3/30 [00:01<00:09]\r"
    )
    p = parse_progress(log, 100, 30.0)
    assert (p.epochs_done, p.stage) == (43, "ResponseSelector")
    assert p.remaining_s == pytest.approx(30.0 / 43 * 57)
    # A config of its own: the product's epochs change with tuning (config.yml).
    config = tmp_path / "config.yml"
    config.write_text(
        "pipeline:\n- name: WhitespaceTokenizer\n- name: DIETClassifier\n  epochs: 40\n"
        "- name: ResponseSelector\n  epochs: 31\n"
    )
    assert planned_epochs(config) == 71 and planned_epochs(config, 0.5) == 20 + 16


def test_activation_without_figures_is_refused_and_audited_rollback(setup: dict[str, Any]) -> None:
    registry = Registry(setup["models"] / "registry.json")
    (setup["models"] / "b-new.tar.gz").symlink_to(newest_model(SETTINGS.models_dir))

    async def main() -> None:
        async with TestClient(TestServer(app_for(setup))) as client:
            assert await login(client, "huanluyen") == 303
            token = await csrf(client)  # the page registers the live model
            registry.register(
                setup["models"] / "b-new.tar.gz", trained_by="huanluyen", kind="finetune"
            )
            refused = await client.post(
                "/console/trainer/activate", data={"model": "b-new.tar.gz", "csrf": token}
            )
            assert "Chưa kích hoạt được" in await refused.text()
            assert registry.active_name() == "a-live.tar.gz"
            back = await client.post("/console/trainer/rollback", data={"csrf": token})
            assert "no earlier model" in await back.text()

    run(main())


def test_a_pipeline_without_epochs_shows_its_stage_then_done(tmp_path: Path) -> None:
    # The product's classifier trains in one go: no progress bar to read.
    log = "Starting to train component 'NgramIntentClassifier'.\n"
    p = parse_progress(log, planned_epochs(SETTINGS.rasa_config), 12.0)
    assert (p.epochs_planned, p.fraction, p.stage) == (0, 0.0, "NgramIntentClassifier")
    assert Progress(0, 0, 40.0, 0.0, "xong", done=True).fraction == 1.0
