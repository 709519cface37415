"""Loading the engines every call shares, once per process, from the settings."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.app import settings
from bot.asr.vosk_engine import SpeechModel
from bot.audio.vad import (
    VadConfig,
)
from bot.call.machine import CallConfig
from bot.call.prompts import Prompts
from bot.call.turn_end import EndWords
from bot.session.brain_service import BrainService
from bot.session.engines import Engines
from bot.store.calls import CallStore
from bot.tts.prompt_cache import PromptCache


def vad_settings() -> VadConfig:
    return VadConfig(
        aggressiveness=settings.VAD_AGGRESSIVENESS,
        min_speech_ms=settings.VAD_MIN_SPEECH_MS,
        trailing_silence_ms=settings.VAD_TRAILING_SILENCE_MS,
        pause_ms=settings.VAD_PAUSE_MS,
    )


def _call_config() -> CallConfig:
    return CallConfig(
        silence_timeout_s=settings.SILENCE_TIMEOUT_S,
        barge_in_min_s=settings.BARGE_IN_MIN_S,
        # The machine's own deadline is a backstop, a little after the glue's.
        brain_timeout_s=settings.BRAIN_TIMEOUT_S + 1.0,
        early_end_confidence=settings.EARLY_END_CONFIDENCE,
        end_words=EndWords.from_training_data(settings.NLU_DATA_DIR),
        early_end_min_end_rate=settings.EARLY_END_MIN_END_RATE,
    )


logger = logging.getLogger(__name__)


def _decoding_thread() -> None:
    """Decoding yields the CPU to the event loop, which paces every call's audio: when the
    cores are short, transcripts come later, but no caller hears the bot stutter. (Linux
    gives each thread its own nice value.)"""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.nice(0) + settings.ASR_NICE)
    except OSError as e:  # not Linux, or not allowed: decoding at normal priority
        logger.warning("recogniser threads keep their priority: %s", e)


def _decoder_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=settings.ASR_THREADS, thread_name_prefix="decoder", initializer=_decoding_thread
    )


def load_engines(
    stand_in: bool = False,
    store_url: str | None = None,
    vocabulary: bool = settings.ASR_VOCABULARY,
    brain: BrainService | None = None,
    recordings: Path | None = settings.RECORDINGS_DIR if settings.RECORD_CALLS else None,
) -> Engines:
    """Load everything a voice call needs, once per process.

    ``stand_in`` is the explicit choice of the PyPI stand-in models (tests, benchmarks);
    without it the configured Vietnamese models are required and a missing one raises
    ``ModelMissing`` saying what is missing and how to get it. Every fixed prompt of
    domain.yml is rendered into the prompt cache here, so none costs synthesis in a call.
    """
    from bot.app.speech_models import configured, require_piper, require_vosk, stand_in_models
    from bot.audio.formats import TELEPHONE
    from bot.nlu.brain import Brain
    from bot.tts.piper_voice import Voice

    paths = stand_in_models() if stand_in else configured()
    speech = SpeechModel(require_vosk(paths.vosk))
    onnx, config = require_piper(paths.piper)
    voice = Voice(onnx, config)
    cache = PromptCache(settings.PROMPT_CACHE_DIR)
    engines = Engines(
        brain=brain or BrainService(Brain()),
        speech=speech,
        voice=voice,
        prompts=Prompts.from_domain(settings.DOMAIN_FILE),
        cache=cache,
        store=CallStore(store_url),
        phrases=speech.vocabulary_phrases() if vocabulary else None,
        call_config=_call_config(),
        vad_config=vad_settings(),
        brain_timeout_s=settings.BRAIN_TIMEOUT_S,
        max_calls=settings.MAX_CALLS,
        decoder=_decoder_pool(),
        recordings=recordings,
    )
    if engines.recordings is not None and engines.store is not None:
        from bot.session.recorder import recover

        recover(engines.store)  # recordings left open by a server that was killed
    counts = cache.render_all(engines.speaker(TELEPHONE))
    logger.info("prompt cache: %d rendered, %d already cached", counts.rendered, counts.cached)
    return engines
