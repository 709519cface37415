"""Every setting of the bot, in one place. Environment variables override defaults.

Paths are relative to the project root so the README's commands work from a
fresh clone; ``BOT_*`` variables let an operator move things without code edits.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # bot/app/settings.py -> the project root


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


# --- Telephony: Asterisk AudioSocket in, AMI Redirect out (bot/transports/) ---

# Where the AudioSocket server listens; Asterisk's dial plan names it in
# AudioSocket(uuid,host:port). The port is the protocol's usual example port.
AUDIOSOCKET_HOST = os.environ.get("BOT_AUDIOSOCKET_HOST", "127.0.0.1")
AUDIOSOCKET_PORT = int(os.environ.get("BOT_AUDIOSOCKET_PORT", "9092"))
# Largest frame payload accepted. 20 ms of 8 kHz audio is 320 bytes; a length far
# beyond that is a corrupt stream, and refusing it early bounds each call's buffer.
AUDIOSOCKET_MAX_PAYLOAD = int(os.environ.get("BOT_AUDIOSOCKET_MAX_PAYLOAD", "4096"))

# Asterisk Manager Interface: AudioSocket cannot transfer, so a transfer is an AMI
# Redirect of the caller's channel. The user needs the "call" write permission.
AMI_HOST = os.environ.get("BOT_AMI_HOST", "127.0.0.1")
AMI_PORT = int(os.environ.get("BOT_AMI_PORT", "5038"))
AMI_USERNAME = os.environ.get("BOT_AMI_USERNAME", "bot1022")
AMI_SECRET = os.environ.get("BOT_AMI_SECRET", "")
# How the bot logs in: "md5" (challenge-response, the secret never crosses the network) or
# "plain" (the secret in clear, for a manager that refuses challenges).
AMI_AUTH = os.environ.get("BOT_AMI_AUTH", "md5")
# Seconds to wait for connecting, logging in and each action's answer.
AMI_TIMEOUT = float(os.environ.get("BOT_AMI_TIMEOUT", "5"))


def _pairs(name: str, default: str) -> dict[str, str]:
    """``key=value,key=value`` from the environment (a shell-friendly mapping)."""
    raw = os.environ.get(name, default)
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{name}: expected key=value, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


# Dial-plan targets of transfers: the default context, and one extension per route.
# An entry may name its own context as ``exten@context`` (Asterisk's notation).
TRANSFER_CONTEXT = os.environ.get("BOT_TRANSFER_CONTEXT", "hotline-1022")
TRANSFER_EXTENSIONS = _pairs(
    "BOT_TRANSFER_EXTENSIONS",
    "transfer:1=1,transfer:2=2,transfer:3=3,transfer:4=4,transfer:5=5,transfer:6=6,operator=0",
)


# Call records (bot/store/calls.py). SQLite under var/ by default, created on first use; a
# PostgreSQL URL (postgresql://user:password@host/db) when several processes share them.
# A relative SQLite path (sqlite:///var/x.db) is taken from the project root, like the paths above.
DATABASE_URL = os.environ.get("BOT_DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'calls.sqlite3'}")


# --- Speech models (bot/app/speech_models.py, bot/asr/, bot/tts/) ---

# Downloaded models (git-ignored); `python -m bot models fetch` puts them here.
VOSK_MODEL = _path("BOT_VOSK_MODEL", str(MODELS_DIR / "vosk-model-small-vn-0.4"))
PIPER_VOICE = _path("BOT_PIPER_VOICE", str(MODELS_DIR / "piper" / "vi_VN-vais1000-medium.onnx"))
# Fixed prompts pre-rendered in the line's format, keyed by text, voice and format.
PROMPT_CACHE_DIR = _path("BOT_PROMPT_CACHE", str(MODELS_DIR / "prompts"))
# Seconds to wait for a model host to answer before `fetch` gives up (offline machines
# must fail fast), and for a whole download once the host has answered.
FETCH_TIMEOUT = float(os.environ.get("BOT_FETCH_TIMEOUT", "10"))
FETCH_DOWNLOAD_TIMEOUT = float(os.environ.get("BOT_FETCH_DOWNLOAD_TIMEOUT", "1800"))
# Kaldi's log verbosity inside Vosk: -1 keeps its per-load LOG lines off the console.
VOSK_LOG_LEVEL = int(os.environ.get("BOT_VOSK_LOG_LEVEL", "-1"))
# Decode with a grammar of the phrases in nlu_data/ (models with a lookahead graph only).
# A grammar only lets the recogniser say the words of those phrases: off until measured on the
# Vietnamese model (`python -m bot.tools.audio_tests --transcripts-only`, with and without
# `--vocabulary`).
ASR_VOCABULARY = os.environ.get("BOT_ASR_VOCABULARY", "").lower() in ("1", "true", "yes", "on")
# Threads that run the recognisers, and how much lower their priority is than the event
# loop's (nice steps): decoding waits, the real-time audio of every call does not.
ASR_THREADS = int(os.environ.get("BOT_ASR_THREADS", str(os.cpu_count() or 2)))
ASR_NICE = int(os.environ.get("BOT_ASR_NICE", "10"))


# --- The call's timing (bot/audio/vad.py, bot/call/machine.py) ---

# webrtcvad's aggressiveness (0-3) and how the end of an utterance is found: the
# trailing silence is the floor of the response latency, and too short a value cuts
# callers who pause mid-sentence (the call then asks again with all they said).
VAD_AGGRESSIVENESS = int(os.environ.get("BOT_VAD_AGGRESSIVENESS", "3"))
VAD_MIN_SPEECH_MS = int(os.environ.get("BOT_VAD_MIN_SPEECH_MS", "200"))
VAD_TRAILING_SILENCE_MS = int(os.environ.get("BOT_VAD_TRAILING_SILENCE_MS", "700"))
# End of turn: after this much silence the partial transcript is routed, and a request the
# NLU understands with at least this confidence ends the utterance then (1.0 or more: never).
VAD_PAUSE_MS = int(os.environ.get("BOT_VAD_PAUSE_MS", "250"))
EARLY_END_CONFIDENCE = float(os.environ.get("BOT_EARLY_END_CONFIDENCE", "0.85"))
# ...and only after a word that ends at least this share of its training examples (0: any).
EARLY_END_MIN_END_RATE = float(os.environ.get("BOT_EARLY_END_MIN_END_RATE", "0.1"))
# Calls the bot takes at once; beyond that a caller hears the operator notice (a cached
# prompt: no recogniser, no synthesis) and is transferred to an operator. 0: no limit.
# bench/voice_bench.py shows how many calls the machine keeps up with.
MAX_CALLS = int(os.environ.get("BOT_MAX_CALLS", "0"))
# Seconds of silence before a reprompt; caller speech that stops the bot; the brain's deadline.
SILENCE_TIMEOUT_S = float(os.environ.get("BOT_SILENCE_TIMEOUT_S", "8"))
BARGE_IN_MIN_S = float(os.environ.get("BOT_BARGE_IN_MIN_S", "0.5"))
BRAIN_TIMEOUT_S = float(os.environ.get("BOT_BRAIN_TIMEOUT_S", "6"))


# --- The trainers' loop (bot/tools/model_registry.py, bot/tools/train_job.py) ---

# Every trained model with its figures, and which one is live; the server re-reads it
# every MODEL_POLL_S seconds and switches new calls to a newly activated model.
MODEL_REGISTRY = _path("BOT_MODEL_REGISTRY", str(MODELS_DIR / "registry.json"))
MODEL_POLL_S = float(os.environ.get("BOT_MODEL_POLL_S", "2"))
# A training job is refused while more calls than this are up (it runs at nice 19 anyway).
TRAIN_MAX_LIVE_CALLS = int(os.environ.get("BOT_TRAIN_MAX_LIVE_CALLS", "2"))
TRAIN_NICE = int(os.environ.get("BOT_TRAIN_NICE", "19"))
# Share of the configured epochs a fine-tune from the active model runs
# (bench/finetune_bench.py measures it against a full training).
FINETUNE_EPOCH_FRACTION = float(os.environ.get("BOT_FINETUNE_EPOCH_FRACTION", "0.5"))
TRAIN_LOG_DIR = _path("BOT_TRAIN_LOG_DIR", "var/training")

# --- Recordings and the supervisors' console (bot/session/recorder.py, bot/console/) ---

# Every call recorded (caller and bot, two channels of one WAV) under RECORDINGS_DIR.
RECORD_CALLS = os.environ.get("BOT_RECORD_CALLS", "1").lower() not in ("0", "false", "no", "off")
RECORDINGS_DIR = _path("BOT_RECORDINGS_DIR", "var/recordings")
# Days before a call's recording is deleted and its transcripts redacted (0: kept for ever);
# the server's nightly job and `python -m bot retention` apply them.
RETENTION_AUDIO_DAYS = int(os.environ.get("BOT_RETENTION_AUDIO_DAYS", "90"))
RETENTION_TEXT_DAYS = int(os.environ.get("BOT_RETENTION_TEXT_DAYS", "365"))
# Hour (local time of the server) at which the nightly retention job runs.
RETENTION_HOUR = int(os.environ.get("BOT_RETENTION_HOUR", "2"))
# A caller turn below this recogniser or NLU confidence is worth a supervisor's look.
REVIEW_CONFIDENCE = float(os.environ.get("BOT_REVIEW_CONFIDENCE", "0.6"))
# Console sessions: how long a login lasts, and the login throttle (failures per window).
CONSOLE_SESSION_HOURS = float(os.environ.get("BOT_CONSOLE_SESSION_HOURS", "12"))
LOGIN_MAX_FAILURES = int(os.environ.get("BOT_LOGIN_MAX_FAILURES", "5"))
LOGIN_WINDOW_S = float(os.environ.get("BOT_LOGIN_WINDOW_S", "900"))
# Secure cookies need HTTPS; behind a TLS proxy set this to 1.
CONSOLE_SECURE_COOKIES = os.environ.get("BOT_CONSOLE_SECURE_COOKIES", "").lower() in (
    "1",
    "true",
    "yes",
    "on",
)
