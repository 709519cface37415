"""Shared fixtures. Tests run against the real trained model in models/
(`make test` trains it first when its inputs changed)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


TIERS = ("unit", "engines", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test belongs to exactly one tier (pyproject.toml), so `make test-fast` can run
    the quick ones; a module that forgot its ``pytestmark`` is an error, not a silent skip."""
    untiered = sorted(
        {
            item.nodeid.split("::")[0]
            for item in items
            if sum(1 for t in TIERS if item.get_closest_marker(t)) != 1
        }
    )
    if untiered:
        raise pytest.UsageError(
            f"give each test module exactly one tier ({', '.join(TIERS)}) with pytestmark: "
            + ", ".join(untiered)
        )


@pytest.fixture(scope="session")
def brain():  # type: ignore[no-untyped-def]
    from bot.app.settings import quiet_libraries
    from tests.config import SETTINGS

    quiet_libraries(SETTINGS.log_level)  # before Rasa is imported, as the entry points do
    from bot.errors import ModelMissing
    from bot.nlu.brain import Brain, newest_model

    try:
        return Brain(newest_model(SETTINGS.models_dir))
    except ModelMissing as e:  # a clear failure, not a skip: the suite needs the model
        pytest.fail(f"{e}")


class Conversation:
    """One caller's conversation with the real dialogue, turn by turn."""

    def __init__(self, brain) -> None:  # type: ignore[no-untyped-def]
        from bot.nlu.brain import run

        self._run = run
        self.brain = brain
        self.id = f"test-{uuid.uuid4().hex[:12]}"
        self.greeting = run(brain.start(self.id))

    def say(self, text: str) -> list:  # type: ignore[type-arg]
        return self._run(self.brain.turn(self.id, text))

    def press(self, digit: str) -> list:  # type: ignore[type-arg]
        return self._run(self.brain.digit(self.id, digit))


@pytest.fixture
def conversation(brain) -> Conversation:  # type: ignore[no-untyped-def]
    return Conversation(brain)


def run_bot(
    *args: str, stdin: bytes = b"", timeout: float = 600
) -> subprocess.CompletedProcess[bytes]:
    """`python -m bot ARGS` as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def rasa_bin() -> Iterator[str]:
    yield str(Path(sys.executable).parent / "rasa")
