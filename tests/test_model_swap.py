"""Activating a model while the server runs: new calls get it, calls in progress keep theirs.

A real server.py process on two registered copies of the trained model (the same weights
under two names: what is tested is which brain, with its own dialogue state, answers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.nlu.brain import newest_model
from bot.tools.model_registry import Registry
from tests.config import SETTINGS
from tests.conftest import ROOT
from tests.test_server import _free_port, post

pytestmark = pytest.mark.e2e


def _health(base: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(base + "/health", timeout=5) as r:
        return dict(json.loads(r.read()))


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    real = newest_model(SETTINGS.models_dir)
    for name in ("a-first.tar.gz", "b-second.tar.gz"):
        (tmp_path / name).symlink_to(real)
    registry = Registry(tmp_path / "registry.json")
    for name in ("a-first.tar.gz", "b-second.tar.gz"):
        registry.register(tmp_path / name, trained_by="test", kind="full")
    registry._make_active("a-first.tar.gz", "test", "activate", None, None, [])
    port = _free_port()
    env = {
        **os.environ,
        "BOT_MODELS_DIR": str(tmp_path),
        "BOT_MODEL_REGISTRY": str(registry.path),
        "BOT_MODEL_POLL_S": "0.3",
    }
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--port", str(port), "--no-voice"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            _health(base)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("server did not start:\n" + proc.stdout.read().decode())  # type: ignore[union-attr]
            time.sleep(0.5)
    yield base, registry
    proc.terminate()
    proc.wait(timeout=30)


def _kinds(body: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(a["kind"], a.get("route") or a.get("response") or "") for a in body["actions"]]


def test_activation_reaches_new_calls_and_spares_calls_in_progress(served):
    base, registry = served
    assert _health(base)["model"] == "a-first.tar.gz"
    # A call in progress: the bot asked "... CDC phải không ạ?" and waits for the answer.
    _, started = post(base + "/api/chat", {})
    talking = started["conversation_id"]
    _, asked = post(
        base + "/api/chat", {"conversation_id": talking, "text": "tôi muốn đi xét nghiệm"}
    )
    assert ("say", "utter_confirm_2") in _kinds(asked)

    registry._make_active("b-second.tar.gz", "test", "activate", "a-first.tar.gz", None, [])
    deadline = time.monotonic() + 240
    while _health(base)["model"] != "b-second.tar.gz":
        assert time.monotonic() < deadline, "the server did not switch to the activated model"
        time.sleep(0.5)

    # The call in progress finishes on the model it started with: its open question is
    # still open there, so "vâng" transfers it (on the new model it would be a stray "yes").
    _, answered = post(base + "/api/chat", {"conversation_id": talking, "text": "vâng"})
    assert ("transfer", "transfer:2") in _kinds(answered)
    # A new call is on the new model, and it works.
    _, fresh = post(base + "/api/chat", {})
    _, routed = post(
        base + "/api/chat", {"conversation_id": fresh["conversation_id"], "text": "vâng"}
    )
    assert not any(kind == "transfer" for kind, _ in _kinds(routed))
    _, direct = post(base + "/api/route", {"text": "nhà tôi hết gạo rồi"})
    assert direct["route"] == "transfer:6"


def test_a_model_that_fails_to_load_leaves_the_live_one_serving(brain, tmp_path: Path) -> None:
    import asyncio

    from bot.nlu.brain import Brain
    from bot.session.brain_service import BrainService, follow_registry

    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a model")  # a truncated copy, a disk error: Rasa cannot load it
    service = BrainService(brain)
    tries: list[Path] = []

    def load(path: Path) -> object:
        tries.append(path)
        return Brain(path)

    async def main() -> None:
        task = asyncio.create_task(follow_registry(service, lambda: broken, load, 0.05))
        await asyncio.sleep(2)
        task.cancel()
        result = await service.route("nhà tôi hết gạo rồi")
        assert result.route == "transfer:6"

    try:
        asyncio.run(main())
    finally:
        service.close()
    assert service.model_path == brain.model_path
    assert tries == [broken]  # tried once, not reloaded on every poll
