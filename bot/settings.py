"""Every setting of the bot, in one place. Environment variables override defaults.

Paths are relative to the project root so the README's commands work from a
fresh clone; ``BOT_*`` variables let an operator move things without code edits.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _path(name: str, default: str) -> Path:
    value = Path(os.environ.get(name, default))
    return value if value.is_absolute() else ROOT / value


# Rasa project files (Rasa's own names and places).
CONFIG_FILE = _path("BOT_RASA_CONFIG", "config.yml")
DOMAIN_FILE = _path("BOT_RASA_DOMAIN", "domain.yml")
NLU_DATA_DIR = _path("BOT_NLU_DATA", "nlu_data")
MODELS_DIR = _path("BOT_MODELS_DIR", "models")
# Held-out routing set (never used for training) and Rasa test stories.
HELDOUT_FILE = _path("BOT_HELDOUT", "tests/data/heldout.tsv")
TEST_STORIES_FILE = _path("BOT_TEST_STORIES", "tests/test_stories.yml")
# Generated training variants (no diacritics, Hanoi merges); rebuilt on every train.
BUILD_DIR = _path("BOT_BUILD_DIR", "build")

# How many trained models to keep in models/ (older ones are pruned after training).
KEEP_MODELS = int(os.environ.get("BOT_KEEP_MODELS", "3"))

# The text endpoint of server.py.
HOST = os.environ.get("BOT_HOST", "127.0.0.1")
PORT = int(os.environ.get("BOT_PORT", "8022"))

# Longest caller utterance accepted, in characters. A minute of fast speech is
# about 1,000 characters; anything far beyond that is not speech.
MAX_UTTERANCE_CHARS = int(os.environ.get("BOT_MAX_UTTERANCE_CHARS", "2000"))


LOG_LEVEL = os.environ.get("BOT_LOG_LEVEL", "WARNING")


def quiet_libraries(level: str = LOG_LEVEL) -> None:
    """Rasa phones home and TensorFlow logs at import time; neither helps a caller.

    Call before importing Rasa; it configures Rasa's loggers too (unconfigured,
    its structured logger prints every debug line of the dialogue policy). Rasa
    hides its training progress bars below INFO, so training asks for INFO."""
    import logging

    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.getLevelName(level))
    configure_structlog(logging.getLevelName(level))
