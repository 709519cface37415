"""A live call: the transport's audio in, the call machine in the middle, bot audio out.

This is the only place where the stages meet. Audio flows one way: transport audio ->
``Converter`` (line format -> 16 kHz) -> ``VoiceActivity`` -> the recogniser -> ``CallMachine``
-> the brain -> ``Speaker`` (Piper, or a pre-rendered prompt) -> ``Converter`` -> transport;
``CallStore`` records every turn. Decisions flow back in exactly two places, both through
the machine's actions: at a pause the machine may end the utterance early (``EndUtterance``:
the partial transcript was routed and understood, so the VAD closes the utterance without
waiting for the rest of the silence), and an emergency heard in a partial drops the rest of
the utterance (``DropUtterance`` to the recogniser). Nothing else reaches upstream.

Each call has one ordered queue of machine events and one task that drains it, so an
interruption can never overtake the transcript it cancels (Pipecat #1323). The
engines are shared by all calls and run off the event loop: Vosk and Piper in
worker threads, Rasa on its own thread and loop (``BrainService``), so the loop
stays free to pace outgoing audio in real time.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.asr.types import Final, Partial, Recognition
from bot.audio.formats import RECOGNISER, AudioChunk, Converter
from bot.audio.vad import (
    VadEvent,
    VoiceActivity,
    VoiceEnded,
    VoicePaused,
    VoiceResumed,
    VoiceStarted,
)
from bot.call import events as ev
from bot.call.machine import CallMachine
from bot.session.engines import Engines
from bot.session.line import Line, TransferResult
from bot.session.recorder import CallRecorder, SpeechClock, recording_path
from bot.store.calls import DuplicateCall, StoreError, utc
from bot.vocabulary import CallEnd, NoteKind, Outcome, Route

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UtteranceEnded:
    """The VAD heard the end of the utterance: the recogniser hands over its final."""


@dataclass(frozen=True)
class DropUtterance:
    """The utterance was acted on already (an emergency from a partial): forget it."""


# What the recogniser's worker is given, in order: caller audio, and where utterances end.
AsrWork = AudioChunk | UtteranceEnded | DropUtterance

# Without audio (a paused microphone), the machine still needs the clock to move.
TICK_S = 0.1
# Most caller audio given to the recogniser in one call, when it has fallen behind:
# fewer thread hand-offs, while one call's backlog cannot hold a decoding thread for long.
ASR_BATCH_MS = 1000


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
        self.machine = CallMachine(engines.prompts, engines.call_config)
        self.stats = CallStats()
        self._inbound = Converter(line.format, RECOGNISER)
        self._vad = VoiceActivity(engines.vad_config, RECOGNISER)
        self._recognition: Recognition | None = None  # built in start(), off the loop
        self._speaker = engines.speaker(line.format)
        self._events: asyncio.Queue[ev.Event | None] = asyncio.Queue()
        self._asr: asyncio.Queue[AsrWork] = asyncio.Queue()
        self._plays: deque[ev.Play] = deque()
        self._play_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._speech_ended_at: float | None = None  # when the caller last stopped speaking
        self._asked_at_speech_end: dict[int, float] = {}  # AskBrain id -> that speech's end
        self._routing = False
        self._pending_partial: str | None = None
        self._ended = asyncio.Event()  # no more audio or events are taken
        self._finished = asyncio.Event()  # ...and the end is carried out and recorded
        self._overflow = False  # over Engines.max_calls: nothing is recognised
        self._deaf = False  # no recogniser could be made: keypad only
        self._transfer_failed: tuple[Route, TransferResult] | None = None  # the last one
        self._recorder: CallRecorder | None = None  # opened in start() if calls are recorded
        self._speech_clock = SpeechClock()  # recogniser time -> call time, for word times
        self.started_at = utc()
        self.last_text = ""  # the latest transcript or bot line, for the live page

    # -- from the transport ------------------------------------------------------

    def now(self) -> float:
        return self._loop.time() - self._t0

    async def start(self) -> None:
        metrics = self.engines.metrics
        no_asr: Exception | None = None
        metrics.calls_active += 1
        metrics.calls_total[self.transport] = metrics.calls_total.get(self.transport, 0) + 1
        self._open_recording()
        self.engines.live_calls[self.call_id] = self
        limit = self.engines.max_calls
        self._overflow = bool(limit) and metrics.calls_active > limit
        await self._record_call_start()  # after the limit: an overflow call hears no recogniser
        # The coroutines are made only once start() gets that far (a cut-short start
        # leaves none never awaited).
        work = [self._run_machine, self._run_player, self._run_clock]
        if self._overflow:  # no recogniser: this call is only a notice and a transfer
            metrics.calls_overflow += 1
            logger.warning("call %s: over %d calls: to an operator", self.call_id, limit)
        else:
            # Building a recogniser takes 75-160 ms: off the loop, or every other call stutters.
            speech, decoder = self.engines.speech, self.engines.decoder
            try:
                self._recognition = await self._loop.run_in_executor(
                    decoder, speech.recognition, self.engines.phrases, decoder
                )
            except Exception as e:  # the caller still gets the greeting, apology and keypad
                logger.error("call %s: no recogniser: %r", self.call_id, e)
                no_asr = e
            else:
                work.append(self._run_asr)
        self._tasks += [asyncio.create_task(w()) for w in work]
        self._emit(ev.CallStarted(self.now(), overflow=self._overflow))
        if no_asr is not None:
            self._deaf = True  # nothing to hear with: audio is dropped, the keypad works
            self._emit(ev.StageFailed(self.now(), ev.Stage.ASR, repr(no_asr)))

    async def audio(self, chunk: AudioChunk) -> None:
        """One chunk of caller audio, in the line's format, in order."""
        if self._ended.is_set():
            return
        pcm = self._inbound.convert(chunk)
        if self._recorder is not None:
            self._recorder.caller(pcm)
        if self._overflow or self._deaf:
            return
        started_here = False
        for event in self._vad.feed(pcm):
            # A start's audio runs from the pre-roll to the end of this chunk.
            started_here = started_here or isinstance(event, VoiceStarted)
            self._on_voice(event)
        if self._vad.in_speech and not started_here:
            self._asr.put_nowait(pcm)
            self._speech_clock.fed(pcm.duration_ms, self._vad.fed_ms)
        self._emit(ev.Tick(self.now()))

    def _on_voice(self, event: VadEvent) -> None:
        """One VAD event: to the recogniser's queue and the machine, in that order."""
        at = self.now() - self._since(event.at_ms)
        if isinstance(event, VoiceStarted):
            self._asr.put_nowait(event.audio)
            self._speech_clock.fed(event.audio.duration_ms, self._vad.fed_ms)
            self._emit(ev.SpeechStarted(self.now(), began_at=at))
        elif isinstance(event, VoicePaused):
            self._emit(ev.SpeechPaused(self.now()))
        elif isinstance(event, VoiceResumed):
            self._emit(ev.SpeechResumed(self.now()))
        elif isinstance(event, VoiceEnded):
            self._speech_ended_at = at
            self._asr.put_nowait(UtteranceEnded())
            self._emit(ev.SpeechEnded(self.now()))

    async def digit(self, digit: str) -> None:
        self._emit(ev.DigitPressed(self.now(), digit))

    async def hung_up(self) -> None:
        self._emit(ev.CallerHungUp(self.now()))

    async def closed(self, reason: str | None) -> None:
        """The transport is gone (normal end, or a protocol error with ``reason``)."""
        if not self._tasks and not self._ended.is_set():
            # start() never finished (the caller left while the call was being set up, or
            # the server stopped): no machine runs to hear of it, so end the record here.
            why = reason or "caller hung up before the call was answered"
            await self._end(CallEnd.ERROR if reason else CallEnd.HANGUP, why)
            return
        if not self._ended.is_set():
            self._emit(ev.CallerHungUp(self.now()))
            if reason:
                await self._note_turn(ev.Note(NoteKind.ERROR, reason))
        await self.wait(timeout=5)

    async def wait(self, timeout: float | None = None) -> None:
        """Until the call has ended and its end is recorded (or ``timeout``), then stop its
        tasks. Cancelling them earlier could cut the transfer or the record's last write."""
        try:
            await asyncio.wait_for(self._finished.wait(), timeout)
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

    def _emit(self, event: ev.Event) -> None:
        self._events.put_nowait(event)

    async def _run_clock(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._emit(ev.Tick(self.now()))

    async def _run_machine(self) -> None:
        while True:
            event = await self._events.get()
            if event is None:
                return
            try:
                actions = self.machine.handle(event)
            except Exception:  # a bug must end this call, not the process
                logger.exception("call %s: state machine failed on %r", self.call_id, event)
                actions = [ev.EndCall("internal error", hang_up=True, outcome=CallEnd.ERROR)]
            for action in actions:
                await self._act(action)

    async def _act(self, action: ev.Action) -> None:
        if isinstance(action, ev.Play):
            self._plays.append(action)
            self._play_wakeup.set()
        elif isinstance(action, ev.StopPlayback):
            self._plays.clear()
            await self.line.stop_audio()
            if self._recorder is not None:
                self._recorder.bot_stopped()
            self._play_wakeup.set()
        elif isinstance(action, ev.AskBrain):
            if self._speech_ended_at is not None:
                self._asked_at_speech_end[action.request_id] = self._speech_ended_at
            self._spawn(self._ask(action))
        elif isinstance(action, ev.RoutePartial):
            self._route_partial(action.text)
        elif isinstance(action, ev.EndUtterance):
            # Only if the caller is still silent: had they spoken again since the pause, the
            # machine hears of it (VoiceResumed) right after this.
            ended = self._vad.end_now() if self._vad.paused else None
            if ended is not None:
                self._on_voice(ended)
        elif isinstance(action, ev.ResetRecognizer):
            self._asr.put_nowait(DropUtterance())
        elif isinstance(action, ev.TransferCall):
            await self._transfer(action.route)
        elif isinstance(action, ev.EndCall):
            await self._end(action.outcome, action.reason, hang_up=action.hang_up)
        elif isinstance(action, ev.Note):
            await self._note_turn(action)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work))

    async def _ask(self, ask: ev.AskBrain) -> None:
        try:
            actions = await asyncio.wait_for(
                self.engines.brain.turn(self.call_id, ask.text), self.engines.brain_timeout_s
            )
        except Exception as e:  # Rasa down, a bug, or the deadline: the caller hears why
            logger.warning("call %s: brain failed: %r", self.call_id, e)
            self._emit(ev.StageFailed(self.now(), ev.Stage.BRAIN, repr(e)))
            return
        self._emit(ev.BrainReplied(self.now(), ask.request_id, tuple(actions)))
        await self._note_understood()

    async def _note_understood(self) -> None:
        """The route, intent and confidence the brain gave the last request, for review."""
        try:
            routed = await self.engines.brain.last_route(self.call_id)
        except Exception as e:  # only the record misses it; the call goes on
            logger.debug("call %s: no route to record: %r", self.call_id, e)
            return
        if routed is not None:
            await self._store_turn(
                kind=NoteKind.ROUTED,
                text=routed.text,
                route=routed.route,
                intent=routed.intent,
                confidence=routed.confidence,
                red_flag=routed.red_flag,
            )

    def _route_partial(self, text: str) -> None:
        if self._routing:  # one at a time; the newest waits
            self._pending_partial = text
            return
        self._routing = True
        self._spawn(self._route(text))

    async def _route(self, text: str) -> None:
        try:
            result = await self.engines.brain.route(text, partial=True)  # no bare numbers
            self._emit(
                ev.PartialRouted(
                    self.now(),
                    text,
                    result.route,
                    result.confidence,
                    result.intent,
                    result.red_flag,
                )
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
        later: AsrWork | None = None  # taken from the queue, not yet handled
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
                        await self._heard_so_far(heard, result.text)
                    elif isinstance(result, Final) and result.text:
                        # Vosk ended a piece by itself (a pause inside the utterance);
                        # the VAD decides where the caller's turn ends.
                        heard.append(result)
                        await self._heard_so_far(heard, "")
                elif isinstance(item, UtteranceEnded):
                    heard.append(await recognition.finish_async())
                    final = _joined(heard)
                    heard = []
                    await self._note_words(final)
                    self._emit(ev.FinalTranscript(self.now(), final.text, final.confidence))
                elif isinstance(item, DropUtterance):
                    await recognition.finish_async()
                    heard = []
            except Exception as e:
                logger.warning("call %s: recogniser failed: %r", self.call_id, e)
                self._emit(ev.StageFailed(self.now(), ev.Stage.ASR, repr(e)))

    async def _heard_so_far(self, pieces: list[Final], partial: str) -> None:
        """Tell the machine the whole utterance so far: the pieces Vosk already ended and
        its guess for the current one. The latest piece alone would hide "mẹ tôi khó thở"
        behind "môi tím"; and a recogniser behind the audio ends a piece inside one batch,
        whose words would then never reach the machine before the utterance's end."""
        text = " ".join(t for t in (_joined(pieces).text, partial) if t)
        if text:
            self._emit(ev.PartialTranscript(self.now(), text))
            await self._show({"kind": "partial", "text": text})

    def _batch(self, first: AudioChunk) -> tuple[AudioChunk, AsrWork | None]:
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
                    self._emit(ev.StageFailed(self.now(), ev.Stage.TTS, repr(e)))
                    break
                if not completed:
                    break  # stopped by a barge-in: the queue was cleared
                if self._plays and self._plays[0] is play:
                    self._plays.popleft()
                self._emit(ev.PlaybackFinished(self.now(), play.playback_id))

    async def _play(self, play: ev.Play) -> bool:
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
                note = ev.Note(NoteKind.RESPONSE_LATENCY, data={"latency_ms": latency})
                await self._note_turn(note)
            await self.line.send_audio(chunk)
            if self._recorder is not None:
                self._recorder.bot(chunk)
        await self.line.wait_played()
        return bool(self._plays) and self._plays[0] is play

    async def _transfer(self, route: Route) -> None:
        """Ask the line to move the call; only a transfer that went through ends it."""
        if self._ended.is_set():
            return
        try:
            result = await self.line.transfer(route)
        except Exception as e:  # a bug in a line: the caller is still there, so fall back
            logger.exception("call %s: transfer to %s failed", self.call_id, route)
            result = TransferResult.failed("error", repr(e))
        if result.ok:
            await self._end(route, f"transferred to {route}")
            return
        self._transfer_failed = (route, result)
        failures = self.engines.metrics.transfer_failures
        failures[(route, result.reason)] = failures.get((route, result.reason), 0) + 1
        note = ev.Note(
            NoteKind.TRANSFER_FAILED, result.detail, {"route": route, "reason": result.reason}
        )
        await self._note_turn(note)
        self._emit(ev.TransferFailed(self.now(), route, result.reason))

    async def _end(self, outcome: Outcome, reason: str, *, hang_up: bool = False) -> None:
        if self._ended.is_set():
            return
        self._ended.set()
        self.engines.live_calls.pop(self.call_id, None)
        if self._transfer_failed is not None and outcome in (CallEnd.HANGUP, CallEnd.GOODBYE):
            # Ended without reaching anyone after a transfer failed: say so in the record.
            route, failed = self._transfer_failed
            outcome = CallEnd.TRANSFER_FAILED
            reason = f"{reason}, after the transfer to {route} failed ({failed.reason}): " + (
                failed.detail
            )
        metrics = self.engines.metrics
        metrics.calls_active -= 1
        metrics.outcomes[outcome] = metrics.outcomes.get(outcome, 0) + 1
        metrics.late_frames += self.line.late_frames
        metrics.asr_seconds += self.stats.asr_seconds
        metrics.asr_audio_seconds += self.stats.asr_audio_seconds
        try:
            if hang_up:
                await self.line.hangup()
        except Exception as e:
            logger.warning("call %s: ending the call failed: %r", self.call_id, e)
            reason = f"{reason}; then failed: {e!r}"
        if self.engines.store is not None:
            try:
                await self.engines.store.async_end_call(self.call_id, outcome, reason)
            except StoreError as e:
                logger.error("call %s: %s", self.call_id, e)
        await self._close_recording()
        self._events.put_nowait(None)
        self._finished.set()
        forget = getattr(self.engines.brain, "forget", None)
        if forget is not None:  # the dialogue's history is of no use once the call is over
            try:
                await forget(self.call_id)
            except Exception as e:  # noqa: BLE001  (only memory is at stake)
                logger.debug("call %s: forgetting the dialogue failed: %r", self.call_id, e)

    # -- the call record -------------------------------------------------------------

    async def _record_call_start(self) -> None:
        if self.engines.store is None:
            return
        path = str(self._recorder.path) if self._recorder is not None else None
        try:
            # Which recogniser heard the call (none for a call over the limit).
            asr = None if self._overflow else self.engines.speech.name
            try:
                await self.engines.store.async_start_call(
                    self.call_id, self.transport, self.caller, asr_engine=asr, audio_path=path
                )
            except DuplicateCall:
                # A reused id (a PBX replaying a UUID): never append to another call's
                # record; this call gets its own id (the line keeps the transport's).
                old, self.call_id = self.call_id, f"{self.call_id}~{uuid.uuid4().hex[:8]}"
                logger.warning("call %s: id already recorded; recording as %s", old, self.call_id)
                await self.engines.store.async_start_call(
                    self.call_id, self.transport, self.caller, asr_engine=asr, audio_path=path
                )
        except StoreError as e:  # the call goes on without its record
            logger.error("call %s: %s", self.call_id, e)

    def _open_recording(self) -> None:
        if self.engines.recordings is None:
            return
        path = recording_path(self.engines.recordings, self.call_id, utc())
        try:
            self._recorder = CallRecorder(path, self.line.format)
        except (OSError, RuntimeError) as e:  # the call goes on unrecorded
            logger.error("call %s: cannot record to %s: %s", self.call_id, path, e)

    async def _close_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        try:
            seconds = await asyncio.to_thread(recorder.close)
            if self.engines.store is not None:
                await self.engines.store.async_set_audio(self.call_id, str(recorder.path), seconds)
        except (OSError, RuntimeError, StoreError) as e:
            logger.error("call %s: recording not finished: %s", self.call_id, e)

    async def _note_words(self, final: Final) -> None:
        if not final.text:
            return
        # Times in the call's recording: the recogniser heard only the speech.
        at = self._speech_clock.call_seconds
        words = [
            {
                "word": w.word,
                "start": round(at(w.start), 3),
                "end": round(at(w.end), 3),
                "conf": w.conf,
            }
            for w in final.words
        ]
        await self._store_turn(
            kind=NoteKind.UTTERANCE,
            text=final.text,
            confidence=final.confidence,
            words=words,
            started_ms=int(at(final.words[0].start) * 1000) if final.words else None,
            ended_ms=int(at(final.words[-1].end) * 1000) if final.words else None,
        )

    async def _note_turn(self, note: ev.Note) -> None:
        latency = note.data.get("latency_ms")
        await self._store_turn(
            kind=note.kind,
            text=note.text or None,
            route=note.data.get("route"),
            latency_ms=int(latency) if latency is not None else None,
            red_flag=note.data.get("red_flag"),
        )
        await self._show({"kind": note.kind, "text": note.text, **dict(note.data)})

    async def _show(self, message: dict[str, Any]) -> None:
        if message.get("text") and message.get("kind") in ("partial", "heard", "say", "digit"):
            self.last_text = str(message["text"])
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
        return Final("")
    words = tuple(w for p in pieces for w in p.words)
    confs = [p.confidence for p in pieces if p.confidence is not None]
    confidence = min(confs) if confs else None  # the weakest piece speaks for the whole
    return Final(" ".join(p.text for p in pieces), words, confidence)
