"""A live call: the transport's audio in, the call machine in the middle, bot audio out.

This is the only place where the stages meet (docs/architecture.md, "data flows
one way"): transport audio -> ``Converter`` (line format -> 16 kHz) -> ``VoiceActivity``
-> Vosk ``Recognition`` -> ``CallMachine`` -> brain (Rasa) -> ``Speaker`` (Piper, or a
pre-rendered prompt) -> ``Converter`` -> transport; ``CallStore`` records every turn.

Each call has one ordered queue of machine events and one task that drains it, so an
interruption can never overtake the transcript it cancels (Pipecat #1323). The
engines are shared by all calls and run off the event loop: Vosk and Piper in
worker threads, Rasa on its own thread and loop (``BrainService``), so the loop
stays free to pace outgoing audio in real time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from bot import call as cm
from bot import settings
from bot.asr import Final, Partial, Recognition, SpeechModel
from bot.audio import RECOGNISER, AudioChunk, AudioFormat, Converter
from bot.replies import BotAction
from bot.store import CallStore, StoreError
from bot.tts import PromptCache, Speaker, SpeechVoice
from bot.turn_end import EndWords
from bot.vad import (
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    VadConfig,
    VadEvent,
    VoiceActivity,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Without audio (a paused microphone), the machine still needs the clock to move.
TICK_S = 0.1
# Most caller audio given to the recogniser in one call, when it has fallen behind:
# fewer thread hand-offs, while one call's backlog cannot hold a decoding thread for long.
ASR_BATCH_MS = 1000


class BrainService:
    """The Rasa brain on a thread and event loop of its own.

    Rasa's NLU and policies compute on the calling loop; on the call loop they
    would stall the real-time pacing of every call's audio."""

    def __init__(self, brain: Any) -> None:
        self.brain = brain
        self.model_path = brain.model_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="brain", daemon=True)
        self._thread.start()

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def turn(self, conversation_id: str, text: str) -> list[BotAction]:
        return await self._submit(self.brain.turn(conversation_id, text))

    async def start(self, conversation_id: str) -> list[BotAction]:
        return await self._submit(self.brain.start(conversation_id))

    async def digit(self, conversation_id: str, digit: str) -> list[BotAction]:
        return await self._submit(self.brain.digit(conversation_id, digit))

    async def route(self, text: str) -> Any:
        return await self._submit(self.brain.route(text))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class Line(Protocol):
    """What a call needs from its transport (AudioSocket, WebSocket, a simulation)."""

    format: AudioFormat  # the audio format on the wire, both ways

    async def send_audio(self, chunk: AudioChunk) -> None: ...  # queued, paced by the line

    async def stop_audio(self) -> None: ...  # drop everything queued: barge-in

    async def wait_played(self) -> None: ...  # until the queued audio has left

    async def hangup(self) -> None: ...

    async def transfer(self, route: str) -> None: ...

    async def show(self, message: dict[str, Any]) -> None: ...  # live transcript, decisions


def vad_settings() -> VadConfig:
    return VadConfig(
        aggressiveness=settings.VAD_AGGRESSIVENESS,
        min_speech_ms=settings.VAD_MIN_SPEECH_MS,
        trailing_silence_ms=settings.VAD_TRAILING_SILENCE_MS,
        pause_ms=settings.VAD_PAUSE_MS,
    )


def _call_config() -> cm.CallConfig:
    return cm.CallConfig(
        silence_timeout_s=settings.SILENCE_TIMEOUT_S,
        barge_in_min_s=settings.BARGE_IN_MIN_S,
        # The machine's own deadline is a backstop, a little after the glue's.
        brain_timeout_s=settings.BRAIN_TIMEOUT_S + 1.0,
        early_end_confidence=settings.EARLY_END_CONFIDENCE,
        end_words=EndWords.from_training_data(settings.NLU_DATA_DIR),
        early_end_min_end_rate=settings.EARLY_END_MIN_END_RATE,
    )


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


class Metrics:
    """Counters for the operator (server.py serves them at /metrics, Prometheus text)."""

    WINDOW = 1000  # latencies kept for the quantiles

    def __init__(self) -> None:
        self.calls_active = 0
        self.calls_total: dict[str, int] = {}
        self.calls_overflow = 0  # sent straight to an operator: the bot was at capacity
        self.outcomes: dict[str, int] = {}
        self.late_frames = 0
        self.asr_seconds = 0.0
        self.asr_audio_seconds = 0.0
        self.latencies_ms: deque[float] = deque(maxlen=self.WINDOW)

    def quantile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def prometheus(self) -> str:
        lines = [
            "# TYPE bot_calls_active gauge",
            f"bot_calls_active {self.calls_active}",
            "# TYPE bot_calls_total counter",
            *(f'bot_calls_total{{transport="{t}"}} {n}' for t, n in self.calls_total.items()),
            "# TYPE bot_calls_overflow_total counter",
            f"bot_calls_overflow_total {self.calls_overflow}",
            "# TYPE bot_call_outcomes_total counter",
            *(f'bot_call_outcomes_total{{outcome="{o}"}} {n}' for o, n in self.outcomes.items()),
            "# TYPE bot_late_frames_total counter",
            f"bot_late_frames_total {self.late_frames}",
            "# TYPE bot_asr_seconds_total counter",
            f"bot_asr_seconds_total {self.asr_seconds:.3f}",
            "# TYPE bot_asr_audio_seconds_total counter",
            f"bot_asr_audio_seconds_total {self.asr_audio_seconds:.3f}",
            "# TYPE bot_response_latency_ms summary",
        ]
        for q in (0.5, 0.95):
            value = self.quantile(q)
            if value is not None:
                lines.append(f'bot_response_latency_ms{{quantile="{q}"}} {value:.1f}')
        lines.append(f"bot_response_latency_ms_count {len(self.latencies_ms)}")
        return "\n".join(lines) + "\n"


@dataclass
class Engines:
    """Everything shared by all calls of the process, loaded once."""

    brain: BrainService
    speech: SpeechModel
    voice: SpeechVoice
    prompts: cm.Prompts
    cache: PromptCache | None = None
    store: CallStore | None = None
    phrases: list[str] | None = None  # the recogniser's vocabulary, when the model allows
    call_config: cm.CallConfig = field(default_factory=lambda: _call_config())
    vad_config: VadConfig = field(default_factory=lambda: vad_settings())
    brain_timeout_s: float = settings.BRAIN_TIMEOUT_S
    max_calls: int = settings.MAX_CALLS  # 0: no limit
    metrics: Metrics = field(default_factory=Metrics)
    # Piper and the prompt cache, on the reply's path: normal priority.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="speech")
    )
    # Vosk, one job per call at a time: below the event loop's priority (_decoding_thread).
    decoder: ThreadPoolExecutor = field(default_factory=_decoder_pool)
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


@dataclass
class CallStats:
    """Figures of one call, for the benchmark and the logs."""

    latencies_ms: list[float] = field(default_factory=list)
    asr_seconds: float = 0.0
    asr_audio_seconds: float = 0.0


class VoiceCall:
    """One call, from the first audio frame to the transfer or hang-up."""

    def __init__(
        self, call_id: str, line: Line, engines: Engines, transport: str, caller: str | None = None
    ) -> None:
        self.call_id = call_id
        self.line = line
        self.engines = engines
        self.transport = transport
        self.caller = caller
        self.machine = cm.CallMachine(engines.prompts, engines.call_config)
        self.stats = CallStats()
        self._inbound = Converter(line.format, RECOGNISER)
        self._vad = VoiceActivity(engines.vad_config, RECOGNISER)
        self._recognition: Recognition | None = None  # built in start(), off the loop
        self._speaker = engines.speaker(line.format)
        self._events: asyncio.Queue[cm.Event | None] = asyncio.Queue()
        self._asr: asyncio.Queue[AudioChunk | str] = asyncio.Queue()
        self._plays: deque[cm.Play] = deque()
        self._play_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._speech_ended_at: float | None = None  # when the caller last stopped speaking
        self._asked_at_speech_end: dict[int, float] = {}  # AskBrain id -> that speech's end
        self._routing = False
        self._pending_partial: str | None = None
        self._ended = asyncio.Event()
        self._overflow = False  # over Engines.max_calls: nothing is recognised

    # -- from the transport ------------------------------------------------------

    def now(self) -> float:
        return self._loop.time() - self._t0

    async def start(self) -> None:
        metrics = self.engines.metrics
        metrics.calls_active += 1
        metrics.calls_total[self.transport] = metrics.calls_total.get(self.transport, 0) + 1
        await self._record_call_start()
        limit = self.engines.max_calls
        self._overflow = bool(limit) and metrics.calls_active > limit
        work = [self._run_machine(), self._run_player(), self._run_clock()]
        if self._overflow:  # no recogniser: this call is only a notice and a transfer
            metrics.calls_overflow += 1
            logger.warning("call %s: over %d calls: to an operator", self.call_id, limit)
        else:
            # Building a recogniser takes 75-160 ms: off the loop, or every other call stutters.
            self._recognition = await self._loop.run_in_executor(
                self.engines.decoder,
                Recognition,
                self.engines.speech,
                self.engines.phrases,
                self.engines.decoder,
            )
            work.append(self._run_asr())
        self._tasks += [asyncio.create_task(w) for w in work]
        self._emit(cm.CallStarted(self.now(), overflow=self._overflow))

    async def audio(self, chunk: AudioChunk) -> None:
        """One chunk of caller audio, in the line's format, in order."""
        if self._ended.is_set() or self._overflow:
            return
        pcm = self._inbound.convert(chunk)
        started_here = False
        for event in self._vad.feed(pcm):
            # A start's audio runs from the pre-roll to the end of this chunk.
            started_here = started_here or isinstance(event, SpeechStarted)
            self._on_voice(event)
        if self._vad.in_speech and not started_here:
            self._asr.put_nowait(pcm)
        self._emit(cm.Tick(self.now()))

    def _on_voice(self, event: VadEvent) -> None:
        """One VAD event: to the recogniser's queue and the machine, in that order."""
        at = self.now() - self._since(event.at_ms)
        if isinstance(event, SpeechStarted):
            self._asr.put_nowait(event.audio)
            self._emit(cm.SpeechStarted(self.now(), began_at=at))
        elif isinstance(event, SpeechPaused):
            self._emit(cm.SpeechPaused(self.now()))
        elif isinstance(event, SpeechResumed):
            self._emit(cm.SpeechResumed(self.now()))
        elif isinstance(event, SpeechEnded):
            self._speech_ended_at = at
            self._asr.put_nowait("end")
            self._emit(cm.SpeechEnded(self.now()))

    async def digit(self, digit: str) -> None:
        self._emit(cm.DigitPressed(self.now(), digit))

    async def hung_up(self) -> None:
        self._emit(cm.CallerHungUp(self.now()))

    async def closed(self, reason: str | None) -> None:
        """The transport is gone (normal end, or a protocol error with ``reason``)."""
        if not self._ended.is_set():
            self._emit(cm.CallerHungUp(self.now()))
            if reason:
                await self._note_turn(cm.Note("error", reason))
        await self.wait(timeout=5)

    async def wait(self, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- internals -----------------------------------------------------------------

    def _since(self, at_ms: int) -> float:
        """Seconds between a VAD time (ms of audio fed) and the latest audio fed."""
        return max(0.0, self._vad.fed_ms - at_ms) / 1000.0

    def _emit(self, event: cm.Event) -> None:
        self._events.put_nowait(event)

    async def _run_clock(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._emit(cm.Tick(self.now()))

    async def _run_machine(self) -> None:
        while True:
            event = await self._events.get()
            if event is None:
                return
            try:
                actions = self.machine.handle(event)
            except Exception:  # a bug must end this call, not the process
                logger.exception("call %s: state machine failed on %r", self.call_id, event)
                actions = [cm.EndCall("internal error", hang_up=True)]
            for action in actions:
                await self._act(action)

    async def _act(self, action: cm.Action) -> None:
        if isinstance(action, cm.Play):
            self._plays.append(action)
            self._play_wakeup.set()
        elif isinstance(action, cm.StopPlayback):
            self._plays.clear()
            await self.line.stop_audio()
            self._play_wakeup.set()
        elif isinstance(action, cm.AskBrain):
            if self._speech_ended_at is not None:
                self._asked_at_speech_end[action.request_id] = self._speech_ended_at
            self._spawn(self._ask(action))
        elif isinstance(action, cm.RoutePartial):
            self._route_partial(action.text)
        elif isinstance(action, cm.EndUtterance):
            # Only if the caller is still silent: had they spoken again since the pause, the
            # machine hears of it (SpeechResumed) right after this.
            ended = self._vad.end_now() if self._vad.paused else None
            if ended is not None:
                self._on_voice(ended)
        elif isinstance(action, cm.ResetRecognizer):
            self._asr.put_nowait("reset")
        elif isinstance(action, cm.TransferCall):
            await self._end(action.route, f"transferred to {action.route}", transfer=action.route)
        elif isinstance(action, cm.EndCall):
            await self._end("hangup", action.reason, hang_up=action.hang_up)
        elif isinstance(action, cm.Note):
            await self._note_turn(action)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work))

    async def _ask(self, ask: cm.AskBrain) -> None:
        try:
            actions = await asyncio.wait_for(
                self.engines.brain.turn(self.call_id, ask.text), self.engines.brain_timeout_s
            )
        except Exception as e:  # Rasa down, a bug, or the deadline: the caller hears why
            logger.warning("call %s: brain failed: %r", self.call_id, e)
            self._emit(cm.StageFailed(self.now(), "brain", repr(e)))
            return
        self._emit(cm.BrainReplied(self.now(), ask.request_id, tuple(actions)))

    def _route_partial(self, text: str) -> None:
        if self._routing:  # one at a time; the newest waits
            self._pending_partial = text
            return
        self._routing = True
        self._spawn(self._route(text))

    async def _route(self, text: str) -> None:
        try:
            result = await self.engines.brain.route(text)
            self._emit(
                cm.PartialRouted(self.now(), text, result.route, result.confidence, result.intent)
            )
        except Exception as e:  # only a shortcut: the final transcript still gets asked
            logger.warning("call %s: routing a partial failed: %r", self.call_id, e)
        finally:
            self._routing = False
            pending, self._pending_partial = self._pending_partial, None
            if pending is not None:
                self._route_partial(pending)

    async def _run_asr(self) -> None:
        recognition = self._recognition
        assert recognition is not None  # start() builds it before this task runs
        heard: list[Final] = []  # pieces of the current utterance
        later: AudioChunk | str | None = None  # taken from the queue, not yet handled
        while True:
            item, later = (later, None) if later is not None else (await self._asr.get(), None)
            if isinstance(item, AudioChunk):
                item, later = self._batch(item)
            try:
                if isinstance(item, AudioChunk):
                    started = time.perf_counter()
                    result = await recognition.accept_async(item)
                    self.stats.asr_seconds += time.perf_counter() - started
                    self.stats.asr_audio_seconds += item.duration_ms / 1000
                    if isinstance(result, Partial) and result.text:
                        self._emit(cm.PartialTranscript(self.now(), result.text))
                        await self._show({"kind": "partial", "text": result.text})
                    elif isinstance(result, Final) and result.text:
                        # Vosk ended a piece by itself (a pause inside the utterance);
                        # the VAD decides where the caller's turn ends.
                        heard.append(result)
                elif item == "end":
                    heard.append(await recognition.finish_async())
                    final = _joined(heard)
                    heard = []
                    await self._note_words(final)
                    self._emit(cm.FinalTranscript(self.now(), final.text, final.confidence))
                elif item == "reset":
                    await recognition.finish_async()
                    heard = []
            except Exception as e:
                logger.warning("call %s: recogniser failed: %r", self.call_id, e)
                self._emit(cm.StageFailed(self.now(), "asr", repr(e)))

    def _batch(self, first: AudioChunk) -> tuple[AudioChunk, AudioChunk | str | None]:
        """`first` joined with the audio queued behind it (up to ASR_BATCH_MS); and the item
        after that audio, if one was taken from the queue."""
        parts, ms = [first.data], first.duration_ms
        while ms < ASR_BATCH_MS and not self._asr.empty():
            item = self._asr.get_nowait()
            if not isinstance(item, AudioChunk) or item.format != first.format:
                return AudioChunk(b"".join(parts), first.format), item
            parts.append(item.data)
            ms += item.duration_ms
        return AudioChunk(b"".join(parts), first.format), None

    async def _run_player(self) -> None:
        while True:
            await self._play_wakeup.wait()
            self._play_wakeup.clear()
            while self._plays:
                play = self._plays[0]
                try:
                    completed = await self._play(play)
                except Exception as e:
                    logger.warning("call %s: speech failed: %r", self.call_id, e)
                    self._plays.clear()
                    self._emit(cm.StageFailed(self.now(), "tts", repr(e)))
                    break
                if not completed:
                    break  # stopped by a barge-in: the queue was cleared
                if self._plays and self._plays[0] is play:
                    self._plays.popleft()
                self._emit(cm.PlaybackFinished(self.now(), play.playback_id))

    async def _play(self, play: cm.Play) -> bool:
        """Speak one Play; False if it was stopped before the end."""
        # Response latency: end of the caller's speech -> first byte of the reply's audio.
        speech_end = self._asked_at_speech_end.pop(play.answers, None) if play.answers else None
        async for chunk in self._speaker.stream(play.text):
            if not self._plays or self._plays[0] is not play:
                return False
            if speech_end is not None:
                latency = (self.now() - speech_end) * 1000
                speech_end = None
                self.stats.latencies_ms.append(latency)
                self.engines.metrics.latencies_ms.append(latency)
                await self._note_turn(cm.Note("response_latency", data={"latency_ms": latency}))
            await self.line.send_audio(chunk)
        await self.line.wait_played()
        return bool(self._plays) and self._plays[0] is play

    async def _end(
        self, outcome: str, reason: str, *, transfer: str | None = None, hang_up: bool = False
    ) -> None:
        if self._ended.is_set():
            return
        self._ended.set()
        metrics = self.engines.metrics
        metrics.calls_active -= 1
        metrics.outcomes[outcome] = metrics.outcomes.get(outcome, 0) + 1
        metrics.late_frames += int(getattr(self.line, "late_frames", 0))
        metrics.asr_seconds += self.stats.asr_seconds
        metrics.asr_audio_seconds += self.stats.asr_audio_seconds
        try:
            if transfer is not None:
                await self.line.transfer(transfer)
            elif hang_up:
                await self.line.hangup()
        except Exception as e:
            logger.warning("call %s: ending the call failed: %r", self.call_id, e)
            reason = f"{reason}; then failed: {e!r}"
        if self.engines.store is not None:
            try:
                await self.engines.store.async_end_call(self.call_id, outcome, reason)
            except StoreError as e:
                logger.error("call %s: %s", self.call_id, e)
        self._events.put_nowait(None)

    # -- the call record -------------------------------------------------------------

    async def _record_call_start(self) -> None:
        if self.engines.store is None:
            return
        try:
            await self.engines.store.async_start_call(self.call_id, self.transport, self.caller)
        except StoreError as e:  # the call goes on without its record
            logger.error("call %s: %s", self.call_id, e)

    async def _note_words(self, final: Final) -> None:
        if not final.text:
            return
        words = [
            {"word": w.word, "start": w.start, "end": w.end, "conf": w.conf} for w in final.words
        ]
        await self._store_turn(
            speaker="caller",
            kind="utterance",
            text=final.text,
            confidence=final.confidence,
            words=words,
            started_ms=int(final.words[0].start * 1000) if final.words else None,
            ended_ms=int(final.words[-1].end * 1000) if final.words else None,
        )

    async def _note_turn(self, note: cm.Note) -> None:
        speaker = "bot" if note.kind in ("say", "transfer", "response_latency") else "caller"
        latency = note.data.get("latency_ms")
        await self._store_turn(
            speaker=speaker,
            kind=note.kind,
            text=note.text or None,
            route=note.data.get("route"),
            latency_ms=int(latency) if latency is not None else None,
        )
        await self._show({"kind": note.kind, "text": note.text, **dict(note.data)})

    async def _show(self, message: dict[str, Any]) -> None:
        try:
            await self.line.show(message)
        except Exception as e:  # the display is a courtesy; the call goes on
            logger.debug("call %s: show failed: %r", self.call_id, e)

    async def _store_turn(self, **fields: Any) -> None:
        if self.engines.store is None:
            return
        try:
            await self.engines.store.async_add_turn(self.call_id, **fields)
        except StoreError as e:  # logged; losing one line of the record must not end a call
            logger.error("call %s: %s", self.call_id, e)


def _joined(pieces: list[Final]) -> Final:
    pieces = [p for p in pieces if p.text]
    if not pieces:
        return Final("", (), 0.0)
    words = tuple(w for p in pieces for w in p.words)
    confidence = min(p.confidence for p in pieces)
    return Final(" ".join(p.text for p in pieces), words, confidence)


def load_engines(
    stand_in: bool = False,
    store_url: str | None = None,
    vocabulary: bool = settings.ASR_VOCABULARY,
    brain: BrainService | None = None,
) -> Engines:
    """Load everything a voice call needs, once per process.

    ``stand_in`` is the explicit choice of the PyPI stand-in models (tests, benchmarks);
    without it the configured Vietnamese models are required and a missing one raises
    ``ModelMissing`` saying what is missing and how to get it. Every fixed prompt of
    domain.yml is rendered into the prompt cache here, so none costs synthesis in a call.
    """
    from bot.audio import TELEPHONE
    from bot.brain import Brain
    from bot.models import configured, require_piper, require_vosk, stand_in_models
    from bot.tts import Voice

    paths = stand_in_models() if stand_in else configured()
    speech = SpeechModel(require_vosk(paths.vosk))
    onnx, config = require_piper(paths.piper)
    voice = Voice(onnx, config)
    cache = PromptCache(settings.PROMPT_CACHE_DIR)
    engines = Engines(
        brain=brain or BrainService(Brain()),
        speech=speech,
        voice=voice,
        prompts=cm.Prompts.from_domain(settings.DOMAIN_FILE),
        cache=cache,
        store=CallStore(store_url),
        phrases=speech.vocabulary_phrases() if vocabulary else None,
    )
    counts = cache.render_all(engines.speaker(TELEPHONE))
    logger.info("prompt cache: %d rendered, %d already cached", counts.rendered, counts.cached)
    return engines
