"""Everything shared by all calls of the process: the engines a call talks to, loaded once
(by ``bot.app.engines.load_engines``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.asr.vosk_engine import SpeechModel
from bot.audio.formats import AudioFormat
from bot.audio.vad import VadConfig
from bot.call.machine import CallConfig
from bot.call.prompts import Prompts
from bot.session.brain_service import BrainService
from bot.session.metrics import Metrics
from bot.store.calls import CallStore
from bot.tts.piper_voice import Speaker, SpeechVoice
from bot.tts.prompt_cache import PromptCache


@dataclass
class Engines:
    """Everything shared by all calls of the process, loaded once."""

    brain: BrainService
    speech: SpeechModel
    voice: SpeechVoice
    prompts: Prompts
    # The call's timing and the VAD's, from the settings (bot.app.engines builds them).
    call_config: CallConfig
    vad_config: VadConfig
    brain_timeout_s: float
    max_calls: int  # 0: no limit
    # The recognisers, one job per call at a time, below the event loop's priority.
    decoder: ThreadPoolExecutor
    cache: PromptCache | None = None
    store: CallStore | None = None
    phrases: list[str] | None = None  # the recogniser's vocabulary, when the model allows
    recordings: Path | None = None  # where calls are recorded; None: not recorded
    metrics: Metrics = field(default_factory=Metrics)
    # Calls in progress by id (VoiceCall), for the console's live page.
    live_calls: dict[str, Any] = field(default_factory=dict)
    # Piper and the prompt cache, on the reply's path: normal priority.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="speech")
    )
    _speakers: dict[AudioFormat, Speaker] = field(default_factory=dict)

    def close(self) -> None:
        """Stop the brain's thread, close the call store and the thread pools."""
        self.brain.close()
        if self.store is not None:
            self.store.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.decoder.shutdown(wait=False, cancel_futures=True)

    def speaker(self, fmt: AudioFormat) -> Speaker:
        if fmt not in self._speakers:
            self._speakers[fmt] = Speaker(self.voice, self.cache, fmt, self.executor)
        return self._speakers[fmt]
