"""Every setting of the bot, in one place, read once when a command or the server starts.

``Settings.from_env()`` reads the ``BOT_*`` environment variables (an operator moves things
without code edits) into one frozen object that ``main`` passes down; nothing reads the
environment at import time, so a test or a second server in one process can hold settings
of its own. Paths are relative to the project root so the README's commands work from a
fresh clone. The call's timing defaults are the config dataclasses' own (``VadConfig``,
``CallConfig``): one source for each.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bot.audio.vad import VadConfig
from bot.call.machine import CallConfig
from bot.speech_models import ModelPaths
from bot.store.calls import resolve_url
from bot.transports.audiosocket import (
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_UUID_TIMEOUT_S,
)

ROOT = Path(__file__).resolve().parents[2]  # bot/app/settings.py -> the project root
T = TypeVar("T")

DEFAULT_TRANSFER_EXTENSIONS = (
    "transfer:1=1,transfer:2=2,transfer:3=3,transfer:4=4,transfer:5=5,transfer:6=6,operator=0"
)


class SettingsError(ValueError):
    """A BOT_* variable that cannot be read; the message names it."""


class _Env:
    """Typed reads of the environment, each failing with the variable's name."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _read(self, name: str, default: T, parse: Callable[[str], T], kind: str) -> T:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}: expected {kind}, got {raw!r}") from None

    def text(self, name: str, default: str) -> str:
        return self._read(name, default, lambda v: v, "text")

    def integer(self, name: str, default: int) -> int:
        return self._read(name, default, int, "a whole number")

    def number(self, name: str, default: float) -> float:
        return self._read(name, default, float, "a number")

    def flag(self, name: str, default: bool) -> bool:
        def parse(v: str) -> bool:
            if v.lower() in ("1", "true", "yes", "on"):
                return True
            if v.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(v)

        return self._read(name, default, parse, "1/0, true/false, yes/no or on/off")

    def path(self, name: str, default: Path | str) -> Path:
        value = Path(self.env.get(name) or default)
        return value if value.is_absolute() else ROOT / value

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """``a,b,c`` (a shell-friendly list)."""
        raw = self.env.get(name)
        if raw is None or not raw.strip():
            return default
        return tuple(filter(None, (part.strip() for part in raw.split(","))))

    def pairs(self, name: str, default: str) -> dict[str, str]:
        """``key=value,key=value`` (a shell-friendly mapping)."""
        raw = self.env.get(name) or default
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in raw.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise SettingsError(f"{name}: expected key=value, got {item!r}")
            pairs[key.strip()] = value.strip()
        return pairs


@dataclass(frozen=True)
class Settings:
    # --- Rasa project files (Rasa's own names and places) ---
    rasa_config: Path = ROOT / "config.yml"  # BOT_RASA_CONFIG
    rasa_domain: Path = ROOT / "domain.yml"  # BOT_RASA_DOMAIN
    nlu_data: Path = ROOT / "nlu_data"  # BOT_NLU_DATA
    models_dir: Path = ROOT / "models"  # BOT_MODELS_DIR: trained Rasa models
    # Held-out routing set (never used for training) and Rasa test stories.
    heldout: Path = ROOT / "tests" / "data" / "heldout.tsv"  # BOT_HELDOUT
    # Development set: written like the held-out set and apart from it, for choosing a
    # setting or reading errors one by one (`bot eval --dev`); the figures we report come
    # from the held-out set, which nobody tunes on.
    dev_set: Path = ROOT / "tests" / "data" / "dev.tsv"  # BOT_DEV_SET
    # Emergencies and near-misses (issue 10): recall 100%, at most 2% false emergencies.
    emergency_hard: Path = ROOT / "tests" / "data" / "emergency_hard.tsv"  # BOT_EMERGENCY_HARD
    test_stories: Path = ROOT / "tests" / "test_stories.yml"  # BOT_TEST_STORIES
    # Whole conversations as callers have them (bot/tools/conversations.py has the format).
    conversations: Path = ROOT / "tests" / "data" / "conversations.yml"  # BOT_CONVERSATIONS
    # Generated training variants (no diacritics, Hanoi merges); rebuilt on every train.
    build_dir: Path = ROOT / "build"  # BOT_BUILD_DIR
    # How many trained models to keep in models/ (older ones are pruned after training).
    keep_models: int = 3  # BOT_KEEP_MODELS

    # --- the HTTP server ---
    host: str = "127.0.0.1"  # BOT_HOST
    port: int = 8022  # BOT_PORT
    # Longest caller utterance accepted, in characters. A minute of fast speech is about
    # 1,000 characters; anything far beyond that is not speech.
    max_utterance_chars: int = 2000  # BOT_MAX_UTTERANCE_CHARS
    log_level: str = "WARNING"  # BOT_LOG_LEVEL: Rasa's and TensorFlow's loggers
    # The bot's own loggers' level; "text" or "json" (one JSON object per line); how many
    # warnings one peer may cause a minute (a flood of bad input is a few lines).
    server_log_level: str = "INFO"  # BOT_SERVER_LOG_LEVEL
    log_format: str = "text"  # BOT_LOG_FORMAT
    log_warnings_per_peer: int = 5  # BOT_LOG_WARNINGS_PER_PEER

    # --- what the server accepts (nothing may push it over) ---
    # Host header names the HTTP server answers to ("*": any). A page on another domain that
    # resolves to this machine (DNS rebinding) sends its own name and is refused. BOT_HOST
    # is added to the default.
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")  # BOT_ALLOWED_HOSTS
    # Origins whose pages may call /api/* and open /ws besides the server's own (a request
    # without an Origin header is not from a browser page and is let through).
    allowed_origins: tuple[str, ...] = ()  # BOT_ALLOWED_ORIGINS
    # Seconds a client may take to send a request's headers, then its body; an idle
    # kept-alive connection is closed after the third.
    http_header_timeout_s: float = 10.0  # BOT_HTTP_HEADER_TIMEOUT_S
    http_body_timeout_s: float = 10.0  # BOT_HTTP_BODY_TIMEOUT_S
    http_keepalive_s: float = 15.0  # BOT_HTTP_KEEPALIVE_S
    # Open connections per transport (AudioSocket, the softphone's /ws); one more is refused
    # at once. Above max_calls on purpose: those calls still hear the operator notice.
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # BOT_MAX_CONNECTIONS
    # /api/chat conversations (and the brain's tracker store, which calls share): at most so
    # many (the least recently used dropped), dropped after so long idle; turns per chat
    # (each turn re-serialises the conversation's history).
    max_conversations: int = 1000  # BOT_MAX_CONVERSATIONS
    conversation_ttl_s: float = 1800.0  # BOT_CONVERSATION_TTL_S
    chat_max_turns: int = 50  # BOT_CHAT_MAX_TURNS
    # The softphone page: seconds to send "start" after opening /ws, and the longest silence
    # on the socket once the call runs (the page streams its microphone; a page without one
    # has only its keypad, so this is long).
    ws_start_timeout_s: float = 10.0  # BOT_WS_START_TIMEOUT_S
    ws_idle_timeout_s: float = 120.0  # BOT_WS_IDLE_TIMEOUT_S

    # --- telephony: Asterisk AudioSocket in, AMI Redirect out (bot/transports/) ---
    # Where the AudioSocket server listens; Asterisk's dial plan names it in
    # AudioSocket(uuid,host:port). The port is the protocol's usual example port.
    audiosocket_host: str = "127.0.0.1"  # BOT_AUDIOSOCKET_HOST
    audiosocket_port: int = 9092  # BOT_AUDIOSOCKET_PORT
    # Largest frame payload accepted. 20 ms of 8 kHz audio is 320 bytes; a length far beyond
    # that is a corrupt stream, and refusing it early bounds each call's buffer.
    audiosocket_max_payload: int = DEFAULT_MAX_PAYLOAD  # BOT_AUDIOSOCKET_MAX_PAYLOAD
    # Seconds Asterisk has to send the call's UUID after connecting, and the longest gap
    # between frames once the call runs (it sends one every 20 ms): past either, the
    # connection is closed and the call ended with the reason recorded.
    audiosocket_uuid_timeout_s: float = DEFAULT_UUID_TIMEOUT_S  # BOT_AUDIOSOCKET_UUID_TIMEOUT_S
    audiosocket_idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S  # BOT_AUDIOSOCKET_IDLE_TIMEOUT_S
    # Asterisk Manager Interface: AudioSocket cannot transfer, so a transfer is an AMI
    # Redirect of the caller's channel. The user needs the "call" write permission.
    ami_host: str = "127.0.0.1"  # BOT_AMI_HOST
    ami_port: int = 5038  # BOT_AMI_PORT
    ami_username: str = "bot1022"  # BOT_AMI_USERNAME
    ami_secret: str = ""  # BOT_AMI_SECRET
    # How the bot logs in: "md5" (challenge-response, the secret never crosses the network)
    # or "plain" (the secret in clear, for a manager that refuses challenges).
    ami_auth: str = "md5"  # BOT_AMI_AUTH
    # Seconds to wait for connecting, logging in and each action's answer.
    ami_timeout: float = 5.0  # BOT_AMI_TIMEOUT
    # How often the server checks its AMI login (and logs in again), so /health tells
    # whether transfers can work before a caller needs one.
    ami_check_s: float = 30.0  # BOT_AMI_CHECK_S
    # Dial-plan targets of transfers: the default context, and one extension per route. An
    # entry may name its own context as ``exten@context`` (Asterisk's notation).
    transfer_context: str = "hotline-1022"  # BOT_TRANSFER_CONTEXT
    transfer_extensions: Mapping[str, str] = field(  # BOT_TRANSFER_EXTENSIONS
        default_factory=lambda: _Env({}).pairs("", DEFAULT_TRANSFER_EXTENSIONS)
    )

    # --- call records (bot/store/) ---
    # SQLite under var/ by default, created on first use; a PostgreSQL URL
    # (postgresql://user:password@host/db) when several processes share them. A relative
    # SQLite path (sqlite:///var/x.db) is taken from the project root, like the paths above.
    database_url: str = f"sqlite:///{ROOT / 'var' / 'calls.sqlite3'}"  # BOT_DATABASE_URL
    # At start-up, close the calls a crash left open (outcome error, "server restarted").
    # Turn off when several servers share one PostgreSQL database: one would close the
    # others' calls.
    recover_open_calls: bool = True  # BOT_RECOVER_OPEN_CALLS

    # --- speech models (bot/speech_models.py, bot/asr/, bot/tts/) ---
    # Downloaded models (git-ignored); `python -m bot models fetch` puts them here.
    vosk_model: Path = ROOT / "models" / "vosk-model-small-vn-0.4"  # BOT_VOSK_MODEL
    piper_voice: Path = ROOT / "models" / "piper" / "vi_VN-vais1000-medium.onnx"  # BOT_PIPER_VOICE
    # Fixed prompts pre-rendered in the line's format, keyed by text, voice and format.
    prompt_cache: Path = ROOT / "models" / "prompts"  # BOT_PROMPT_CACHE
    # Seconds to wait for a model host to answer before `fetch` gives up (offline machines
    # must fail fast), and for a whole download once the host has answered.
    fetch_timeout: float = 10.0  # BOT_FETCH_TIMEOUT
    fetch_download_timeout: float = 1800.0  # BOT_FETCH_DOWNLOAD_TIMEOUT
    # Kaldi's log verbosity inside Vosk: -1 keeps its per-load LOG lines off the console.
    vosk_log_level: int = -1  # BOT_VOSK_LOG_LEVEL
    # Decode with a grammar of the phrases in nlu_data/ (models with a lookahead graph
    # only). A grammar only lets the recogniser say the words of those phrases: off until
    # measured on the Vietnamese model (`python -m bot.tools.audio_tests --transcripts-only`,
    # with and without `--vocabulary`).
    asr_vocabulary: bool = False  # BOT_ASR_VOCABULARY
    # Threads that run the recognisers, and how much lower their priority is than the event
    # loop's (nice steps): decoding waits, the real-time audio of every call does not.
    asr_threads: int = os.cpu_count() or 2  # BOT_ASR_THREADS
    asr_nice: int = 10  # BOT_ASR_NICE
    # Which recogniser hears the calls: "vosk" (the Vosk model above), "vietasr" (the
    # Vietnamese model embedded in the viet-asr wheel: no download), or "auto": Vosk where its
    # Vietnamese model is installed, the embedded model otherwise (bot.speech_models.asr_engine).
    asr_engine: str = "auto"  # BOT_ASR_ENGINE
    # vietasr's native log threshold: 2 prints its INFO lines on every model load, 3 warnings.
    vietasr_log_level: int = 3  # BOT_VIETASR_LOG_LEVEL

    # --- the call's timing (bot/audio/vad.py, bot/call/machine.py) ---
    # webrtcvad's aggressiveness, the shortest speech, the trailing silence that ends an
    # utterance (the floor of the response latency; too short cuts callers who pause: the
    # call then asks again with all they said) and the pause at which the partial transcript
    # is routed and an understood request may end the turn: BOT_VAD_AGGRESSIVENESS,
    # BOT_VAD_MIN_SPEECH_MS, BOT_VAD_TRAILING_SILENCE_MS, BOT_VAD_PAUSE_MS.
    vad: VadConfig = field(default_factory=VadConfig)
    # A request the NLU understands with at least this confidence ends the utterance at a
    # pause (1.0 or more: never)...
    early_end_confidence: float = CallConfig.early_end_confidence  # BOT_EARLY_END_CONFIDENCE
    # ...and only after a word that ends at least this share of its training examples (0: any).
    early_end_min_end_rate: float = CallConfig.early_end_min_end_rate  # BOT_EARLY_END_MIN_END_RATE
    # Calls the bot takes at once; beyond that a caller hears the operator notice (a cached
    # prompt: no recogniser, no synthesis) and is transferred to an operator. 0: no limit.
    # bench/voice_bench.py shows how many calls the machine keeps up with.
    max_calls: int = 0  # BOT_MAX_CALLS
    # Seconds of silence before a reprompt; caller speech that stops the bot.
    silence_timeout_s: float = CallConfig.silence_timeout_s  # BOT_SILENCE_TIMEOUT_S
    barge_in_min_s: float = CallConfig.barge_in_min_s  # BOT_BARGE_IN_MIN_S
    # The brain's deadline for one reply; the caller hears the apology after it.
    brain_timeout_s: float = CallConfig.brain_timeout_s  # BOT_BRAIN_TIMEOUT_S

    # --- recordings and the supervisors' console (bot/session/recorder.py, bot/console/) ---
    # Every call recorded (caller and bot, two channels of one WAV) under recordings_dir.
    record_calls: bool = True  # BOT_RECORD_CALLS
    recordings_dir: Path = ROOT / "var" / "recordings"  # BOT_RECORDINGS_DIR
    # Days before a call's recording is deleted and its transcripts redacted (0: kept for
    # ever); the server's nightly job (at retention_hour, Hanoi time) and
    # `python -m bot retention` apply them.
    retention_audio_days: int = 90  # BOT_RETENTION_AUDIO_DAYS
    retention_text_days: int = 365  # BOT_RETENTION_TEXT_DAYS
    retention_hour: int = 2  # BOT_RETENTION_HOUR
    # A caller turn below this recogniser or NLU confidence is worth a supervisor's look.
    review_confidence: float = 0.6  # BOT_REVIEW_CONFIDENCE
    # Console logins: how long one lasts, and the throttle (failures per window, per user
    # name and per address).
    console_session_hours: float = 12.0  # BOT_CONSOLE_SESSION_HOURS
    login_max_failures: int = 5  # BOT_LOGIN_MAX_FAILURES
    login_window_s: float = 900.0  # BOT_LOGIN_WINDOW_S
    # Secure cookies need HTTPS: on behind a TLS proxy.
    console_secure_cookies: bool = False  # BOT_CONSOLE_SECURE_COOKIES

    # --- the trainers' loop (bot/tools/model_registry.py, bot/tools/train_job.py) ---
    # Every trained model with its figures, and which one is live; the server re-reads it
    # every model_poll_s seconds and switches new calls to a newly activated model.
    model_registry: Path = ROOT / "models" / "registry.json"  # BOT_MODEL_REGISTRY
    model_poll_s: float = 2.0  # BOT_MODEL_POLL_S
    # A training job is refused while more calls than this are up (it runs at nice 19 anyway).
    train_max_live_calls: int = 2  # BOT_TRAIN_MAX_LIVE_CALLS
    train_nice: int = 19  # BOT_TRAIN_NICE
    # Share of the configured epochs a fine-tune from the active model runs
    # (bench/finetune_bench.py measures it against a full training).
    finetune_epoch_fraction: float = 0.5  # BOT_FINETUNE_EPOCH_FRACTION
    # Each training job's log, shown on the trainers' page.
    train_log_dir: Path = ROOT / "var" / "training"  # BOT_TRAIN_LOG_DIR

    @property
    def speech_models(self) -> ModelPaths:
        """The production speech models, where these settings place them."""
        return ModelPaths(self.vosk_model, self.piper_voice)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings, with every ``BOT_*`` variable of ``env`` (the process's by default)
        applied over the defaults. A variable that cannot be read is a ``SettingsError``."""
        e = _Env(os.environ if env is None else env)
        d = cls()
        return cls(
            rasa_config=e.path("BOT_RASA_CONFIG", d.rasa_config),
            rasa_domain=e.path("BOT_RASA_DOMAIN", d.rasa_domain),
            nlu_data=e.path("BOT_NLU_DATA", d.nlu_data),
            models_dir=(models := e.path("BOT_MODELS_DIR", d.models_dir)),
            heldout=e.path("BOT_HELDOUT", d.heldout),
            dev_set=e.path("BOT_DEV_SET", d.dev_set),
            emergency_hard=e.path("BOT_EMERGENCY_HARD", d.emergency_hard),
            test_stories=e.path("BOT_TEST_STORIES", d.test_stories),
            conversations=e.path("BOT_CONVERSATIONS", d.conversations),
            build_dir=e.path("BOT_BUILD_DIR", d.build_dir),
            keep_models=e.integer("BOT_KEEP_MODELS", d.keep_models),
            host=e.text("BOT_HOST", d.host),
            port=e.integer("BOT_PORT", d.port),
            max_utterance_chars=e.integer("BOT_MAX_UTTERANCE_CHARS", d.max_utterance_chars),
            log_level=e.text("BOT_LOG_LEVEL", d.log_level),
            server_log_level=e.text("BOT_SERVER_LOG_LEVEL", d.server_log_level),
            log_format=e.text("BOT_LOG_FORMAT", d.log_format),
            log_warnings_per_peer=e.integer("BOT_LOG_WARNINGS_PER_PEER", d.log_warnings_per_peer),
            allowed_hosts=e.names(
                "BOT_ALLOWED_HOSTS", (*d.allowed_hosts, e.text("BOT_HOST", d.host))
            ),
            allowed_origins=e.names("BOT_ALLOWED_ORIGINS", d.allowed_origins),
            http_header_timeout_s=e.number("BOT_HTTP_HEADER_TIMEOUT_S", d.http_header_timeout_s),
            http_body_timeout_s=e.number("BOT_HTTP_BODY_TIMEOUT_S", d.http_body_timeout_s),
            http_keepalive_s=e.number("BOT_HTTP_KEEPALIVE_S", d.http_keepalive_s),
            max_connections=e.integer("BOT_MAX_CONNECTIONS", d.max_connections),
            max_conversations=e.integer("BOT_MAX_CONVERSATIONS", d.max_conversations),
            conversation_ttl_s=e.number("BOT_CONVERSATION_TTL_S", d.conversation_ttl_s),
            chat_max_turns=e.integer("BOT_CHAT_MAX_TURNS", d.chat_max_turns),
            ws_start_timeout_s=e.number("BOT_WS_START_TIMEOUT_S", d.ws_start_timeout_s),
            ws_idle_timeout_s=e.number("BOT_WS_IDLE_TIMEOUT_S", d.ws_idle_timeout_s),
            audiosocket_host=e.text("BOT_AUDIOSOCKET_HOST", d.audiosocket_host),
            audiosocket_port=e.integer("BOT_AUDIOSOCKET_PORT", d.audiosocket_port),
            audiosocket_max_payload=e.integer(
                "BOT_AUDIOSOCKET_MAX_PAYLOAD", d.audiosocket_max_payload
            ),
            audiosocket_uuid_timeout_s=e.number(
                "BOT_AUDIOSOCKET_UUID_TIMEOUT_S", d.audiosocket_uuid_timeout_s
            ),
            audiosocket_idle_timeout_s=e.number(
                "BOT_AUDIOSOCKET_IDLE_TIMEOUT_S", d.audiosocket_idle_timeout_s
            ),
            ami_host=e.text("BOT_AMI_HOST", d.ami_host),
            ami_port=e.integer("BOT_AMI_PORT", d.ami_port),
            ami_username=e.text("BOT_AMI_USERNAME", d.ami_username),
            ami_secret=e.text("BOT_AMI_SECRET", d.ami_secret),
            ami_auth=e.text("BOT_AMI_AUTH", d.ami_auth),
            ami_timeout=e.number("BOT_AMI_TIMEOUT", d.ami_timeout),
            ami_check_s=e.number("BOT_AMI_CHECK_S", d.ami_check_s),
            transfer_context=e.text("BOT_TRANSFER_CONTEXT", d.transfer_context),
            transfer_extensions=e.pairs("BOT_TRANSFER_EXTENSIONS", DEFAULT_TRANSFER_EXTENSIONS),
            database_url=resolve_url(e.text("BOT_DATABASE_URL", d.database_url), ROOT),
            recover_open_calls=e.flag("BOT_RECOVER_OPEN_CALLS", d.recover_open_calls),
            # The speech models sit under the models directory unless placed elsewhere.
            vosk_model=e.path("BOT_VOSK_MODEL", models / d.vosk_model.name),
            piper_voice=e.path("BOT_PIPER_VOICE", models / "piper" / d.piper_voice.name),
            prompt_cache=e.path("BOT_PROMPT_CACHE", models / d.prompt_cache.name),
            fetch_timeout=e.number("BOT_FETCH_TIMEOUT", d.fetch_timeout),
            fetch_download_timeout=e.number("BOT_FETCH_DOWNLOAD_TIMEOUT", d.fetch_download_timeout),
            vosk_log_level=e.integer("BOT_VOSK_LOG_LEVEL", d.vosk_log_level),
            asr_vocabulary=e.flag("BOT_ASR_VOCABULARY", d.asr_vocabulary),
            asr_threads=e.integer("BOT_ASR_THREADS", d.asr_threads),
            asr_nice=e.integer("BOT_ASR_NICE", d.asr_nice),
            asr_engine=_asr_engine(e.text("BOT_ASR_ENGINE", d.asr_engine)),
            vietasr_log_level=e.integer("BOT_VIETASR_LOG_LEVEL", d.vietasr_log_level),
            vad=dataclasses.replace(
                d.vad,
                aggressiveness=e.integer("BOT_VAD_AGGRESSIVENESS", d.vad.aggressiveness),
                min_speech_ms=e.integer("BOT_VAD_MIN_SPEECH_MS", d.vad.min_speech_ms),
                trailing_silence_ms=e.integer(
                    "BOT_VAD_TRAILING_SILENCE_MS", d.vad.trailing_silence_ms
                ),
                pause_ms=e.integer("BOT_VAD_PAUSE_MS", d.vad.pause_ms),
            ),
            early_end_confidence=e.number("BOT_EARLY_END_CONFIDENCE", d.early_end_confidence),
            early_end_min_end_rate=e.number("BOT_EARLY_END_MIN_END_RATE", d.early_end_min_end_rate),
            max_calls=e.integer("BOT_MAX_CALLS", d.max_calls),
            silence_timeout_s=e.number("BOT_SILENCE_TIMEOUT_S", d.silence_timeout_s),
            barge_in_min_s=e.number("BOT_BARGE_IN_MIN_S", d.barge_in_min_s),
            brain_timeout_s=e.number("BOT_BRAIN_TIMEOUT_S", d.brain_timeout_s),
            record_calls=e.flag("BOT_RECORD_CALLS", d.record_calls),
            recordings_dir=e.path("BOT_RECORDINGS_DIR", d.recordings_dir),
            retention_audio_days=e.integer("BOT_RETENTION_AUDIO_DAYS", d.retention_audio_days),
            retention_text_days=e.integer("BOT_RETENTION_TEXT_DAYS", d.retention_text_days),
            retention_hour=e.integer("BOT_RETENTION_HOUR", d.retention_hour),
            review_confidence=e.number("BOT_REVIEW_CONFIDENCE", d.review_confidence),
            console_session_hours=e.number("BOT_CONSOLE_SESSION_HOURS", d.console_session_hours),
            login_max_failures=e.integer("BOT_LOGIN_MAX_FAILURES", d.login_max_failures),
            login_window_s=e.number("BOT_LOGIN_WINDOW_S", d.login_window_s),
            console_secure_cookies=e.flag("BOT_CONSOLE_SECURE_COOKIES", d.console_secure_cookies),
            model_registry=e.path("BOT_MODEL_REGISTRY", models / d.model_registry.name),
            model_poll_s=e.number("BOT_MODEL_POLL_S", d.model_poll_s),
            train_max_live_calls=e.integer("BOT_TRAIN_MAX_LIVE_CALLS", d.train_max_live_calls),
            train_nice=e.integer("BOT_TRAIN_NICE", d.train_nice),
            finetune_epoch_fraction=e.number(
                "BOT_FINETUNE_EPOCH_FRACTION", d.finetune_epoch_fraction
            ),
            train_log_dir=e.path("BOT_TRAIN_LOG_DIR", d.train_log_dir),
        )


def _asr_engine(value: str) -> str:
    value = value.strip().lower()
    if value not in ("vosk", "vietasr", "auto"):
        raise SettingsError(f"BOT_ASR_ENGINE: expected vosk, vietasr or auto, got {value!r}")
    return value


def rasa_pipeline(config: Path) -> list[dict[str, Any]]:
    """The NLU components a Rasa config (config.yml) lists, each with its settings."""
    from ruamel.yaml import YAML

    pipeline = (YAML(typ="safe").load(config.read_text(encoding="utf-8")) or {}).get("pipeline")
    return [c for c in pipeline or [] if isinstance(c, dict)]


def quiet_libraries(level: str = "WARNING") -> None:
    """Rasa phones home and TensorFlow logs at import time; neither helps a caller.

    Call from an entry point before Rasa is imported; it configures Rasa's loggers too
    (unconfigured, its structured logger prints every debug line of the dialogue policy).
    Rasa hides its training progress bars below INFO, so training asks for INFO."""
    import logging

    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.getLevelName(level))
    configure_structlog(logging.getLevelName(level))
    # The n-gram classifier answers the FAQ questions itself (bot/nlu/classifier.py); seeing
    # no ResponseSelector, Rasa would warn at every training that their examples go unused.
    warnings.filterwarnings("ignore", message=".*examples for training a response selector")
