"""Loading the engines every call shares, once per process, from the settings."""

from __future__ import annotations

import functools
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.app.settings import Settings
from bot.asr.types import SpeechModel
from bot.call.machine import CallConfig
from bot.call.prompts import Prompts
from bot.call.turn_end import EndWords, example_texts
from bot.session.brain_service import BrainService
from bot.session.engines import Engines
from bot.store.calls import CallStore
from bot.tts.prompt_cache import PromptCache

logger = logging.getLogger(__name__)

# The machine's own deadline for the brain is a backstop, a little after the session's.
BRAIN_BACKSTOP_S = 1.0


def call_config(s: Settings) -> CallConfig:
    return CallConfig(
        silence_timeout_s=s.silence_timeout_s,
        barge_in_min_s=s.barge_in_min_s,
        brain_timeout_s=s.brain_timeout_s + BRAIN_BACKSTOP_S,
        early_end_confidence=s.early_end_confidence,
        end_words=EndWords.from_training_data(s.nlu_data),
        early_end_min_end_rate=s.early_end_min_end_rate,
    )


def _decoding_thread(nice: int) -> None:
    """Decoding yields the CPU to the event loop, which paces every call's audio: when the
    cores are short, transcripts come later, but no caller hears the bot stutter. (Linux
    gives each thread its own nice value.)"""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.nice(0) + nice)
    except OSError as e:  # not Linux, or not allowed: decoding at normal priority
        logger.warning("recogniser threads keep their priority: %s", e)


def decoder_pool(s: Settings) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=s.asr_threads,
        thread_name_prefix="decoder",
        initializer=functools.partial(_decoding_thread, s.asr_nice),
    )


def load_speech_model(
    s: Settings, engine: str | None = None, stand_in: bool = False
) -> SpeechModel:
    """The recogniser ``engine`` (default: the settings' ``asr_engine``, ``BOT_ASR_ENGINE``:
    vosk, vietasr, auto) names.

    With ``stand_in`` (the PyPI stand-in models), "auto" means the stand-in Vosk model
    (Korean); an explicit "vietasr" is still the embedded Vietnamese model."""
    from bot.errors import ModelMissing
    from bot.speech_models import asr_engine, require_vosk, stand_in_models

    vosk_path = stand_in_models().vosk if stand_in else s.vosk_model
    try:
        chosen = asr_engine(engine or s.asr_engine, vosk_path)
    except ValueError as e:
        raise ModelMissing(str(e)) from e
    if chosen == "vietasr":
        from bot.asr.vietasr_engine import VietasrModel

        try:
            return VietasrModel(log_level=s.vietasr_log_level)
        except ImportError as e:
            raise ModelMissing(
                f"vietasr: the viet-asr package is not installed ({e}): "
                "pip install -r requirements.txt"
            ) from e
    from bot.asr.vosk_engine import VoskModel

    return VoskModel(require_vosk(vosk_path), log_level=s.vosk_log_level)


def load_engines(
    s: Settings,
    stand_in: bool = False,
    store_url: str | None = None,
    brain: BrainService | None = None,
    asr_engine: str | None = None,
    stand_in_voice: bool = False,
    recordings: Path | None = None,
) -> Engines:
    """Load everything a voice call needs, once per process.

    ``stand_in`` is the explicit choice of the PyPI stand-in models (tests, benchmarks);
    ``stand_in_voice`` swaps the voice alone for the stand-in (English) one, where the
    Vietnamese voice cannot be had. Otherwise the configured Vietnamese models are required
    and a missing one raises ``ModelMissing`` saying what is missing and how to get it.
    ``asr_engine`` (default: the settings', ``BOT_ASR_ENGINE``) picks the recogniser
    (``load_speech_model``). Every fixed prompt of domain.yml is rendered into the prompt cache
    here, so none costs synthesis in a call. ``store_url`` overrides the settings' database
    (a test's own file), ``recordings`` the folder calls are
    recorded in (when ``record_calls`` is on).
    """
    from bot.audio.formats import TELEPHONE
    from bot.nlu.brain import Brain, newest_model
    from bot.speech_models import require_piper, stand_in_models
    from bot.tts.piper_voice import Voice

    paths = stand_in_models() if stand_in or stand_in_voice else s.speech_models
    onnx, config = require_piper(paths.piper)  # first: a missing voice is said at once
    speech = load_speech_model(s, asr_engine, stand_in)
    logger.info("speech recogniser: %s", speech.name)
    logger.info("voice: %s%s", onnx, " (the stand-in, asked for)" if stand_in_voice else "")
    voice = Voice(onnx, config)
    cache = PromptCache(s.prompt_cache)
    engines = Engines(
        brain=brain or BrainService(Brain(newest_model(s.models_dir))),
        speech=speech,
        voice=voice,
        prompts=Prompts.from_domain(s.rasa_domain),
        cache=cache,
        store=CallStore(store_url or s.database_url),
        phrases=speech.vocabulary_phrases(example_texts(s.nlu_data)) if s.asr_vocabulary else None,
        call_config=call_config(s),
        vad_config=s.vad,
        brain_timeout_s=s.brain_timeout_s,
        max_calls=s.max_calls,
        decoder=decoder_pool(s),
        recordings=s.recordings_dir if s.record_calls and recordings is None else recordings,
    )
    if engines.recordings is not None and engines.store is not None:
        from bot.session.recorder import recover

        recover(engines.store)  # recordings left open by a server that was killed
    counts = cache.render_all(engines.speaker(TELEPHONE), engines.prompts.texts)
    logger.info("prompt cache: %d rendered, %d already cached", counts.rendered, counts.cached)
    return engines
