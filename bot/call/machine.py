"""One phone call as a state machine, written without I/O (h11's habit).

Events come in (speech started, a transcript, a keypad digit, playback finished,
the brain's reply, a clock tick, a hang-up); actions go out (play this text,
stop playing, ask the brain, transfer, hang up, note this in the call record).
Time is passed in with every event, never read, so every timing rule here
(barge-in, silence reprompts, the brain's deadline) is tested with a fake clock.
The transport glue (bot/session/voice_call.py) turns audio, VAD, Vosk, Rasa and Piper into
these events and carries out the actions.

States: greeting -> listening <-> thinking -> speaking -> listening/confirming ...
-> transferring or ended.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.call.events import (
    Action,
    AskBrain,
    BrainReplied,
    CallerHungUp,
    CallStarted,
    DigitPressed,
    EndCall,
    EndUtterance,
    Event,
    FinalTranscript,
    Note,
    PartialRouted,
    PartialTranscript,
    Play,
    PlaybackFinished,
    ResetRecognizer,
    RoutePartial,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    Stage,
    StageFailed,
    StopPlayback,
    Tick,
    TransferCall,
    TransferFailed,
)
from bot.call.prompts import Prompts
from bot.call.turn_end import EndWords
from bot.nlu.replies import BotAction, HangUp, Say, Transfer
from bot.vocabulary import EMERGENCY, CallEnd, NoteKind, Outcome, Route, branch_route


class State(enum.Enum):
    GREETING = "greeting"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    CONFIRMING = "confirming"  # listening for the answer to a yes/no question
    TRANSFERRING = "transferring"
    ENDED = "ended"


# --- configuration ------------------------------------------------------------


@dataclass(frozen=True)
class CallConfig:
    # Silence while listening: reprompt, then read the keypad menu, then an operator.
    silence_timeout_s: float = 8.0
    # Caller speech during bot speech stops playback once it has lasted this long...
    barge_in_min_s: float = 0.5
    # ...unless all the words heard so far are backchannels; past this, it always does.
    barge_in_backchannel_max_s: float = 1.5
    # A partial transcript routed to the emergency branch with at least this
    # confidence, by the red-flag layer's rules (bot/nlu/red_flags.py), transfers without
    # waiting for the end of the utterance. The classifier alone is not enough on a
    # half-sentence: "máy đo ô xy của bố tôi…" scores as an emergency before the reading
    # that tells a question from one; such a request goes at the end of the utterance.
    emergency_confidence: float = 0.8
    emergency_min_words: int = 3
    # While the caller speaks, a partial transcript is routed at most this often (each
    # costs the brain ~30 ms); at a pause, the latest one is routed at once.
    partial_route_interval_s: float = 0.3
    # End of turn: at a short pause (VadConfig.pause_ms), a partial transcript the NLU
    # understands with at least this confidence ends the utterance without waiting for the
    # whole trailing silence. A request that names a route counts; of the rest, only
    # these complete dialogue acts ("greet" is not one: a request usually follows it).
    # 1.0 or more: never end early.
    early_end_confidence: float = 0.9
    early_end_intents: frozenset[str] = frozenset(
        {"affirm", "deny", "repeat", "ask_menu", "goodbye"}
    )
    # And only when the last word often ends a request in the training data (share of its
    # occurrences at the end, bot/call/turn_end.py): "cho tôi hỏi về" waits. None: no such check.
    end_words: EndWords | None = None
    early_end_min_end_rate: float = 0.1
    # Speech that starts this soon after an early end continues that utterance: the bot
    # asks again with all of it (the caller had only paused).
    rejoin_s: float = 1.0
    # The brain must answer within this; otherwise the caller hears the apology.
    brain_timeout_s: float = 6.0


# Words a caller says while listening that are not a request (Hanoi backchannels).
BACKCHANNELS = frozenset(
    "dạ vâng ừ ừm ờ à alo a lô vâng ạ ừ ạ ậy thế ok okay rồi".split()
)  # fmt: skip
_WORD = re.compile(r"\w+", re.UNICODE)


def is_backchannel(text: str) -> bool:
    words = _WORD.findall(text.lower())
    return bool(words) and all(w in BACKCHANNELS for w in words)


def understood(text: str, route: str, intent: str, confidence: float, config: CallConfig) -> bool:
    """Whether `text`, parsed this way by the NLU, is a whole request, so that a short
    pause may end the caller's turn (bench/endpoint_bench.py measures this rule)."""
    if confidence < config.early_end_confidence:
        return False
    if route == Route.FALLBACK and intent not in config.early_end_intents:
        return False
    words = config.end_words
    return words is None or words.may_end(text, config.early_end_min_end_rate)


# --- the machine --------------------------------------------------------------


class CallMachine:
    """The rules of one call. ``handle(event) -> actions``; nothing else."""

    def __init__(self, prompts: Prompts, config: CallConfig | None = None) -> None:
        self.prompts = prompts
        self.config = config or CallConfig()
        self.state = State.GREETING
        self.degraded = False  # after a stage failed: keypad and operator only
        # A FAQ answer heard to its end settles the call, whatever the caller does after it.
        self._faq_playing: dict[int, Route] = {}  # playback id -> the FAQ it answers
        self._answered: Route | None = None  # the last FAQ the caller heard whole
        self._next_id = 0
        self._playing: set[int] = set()
        self._after_playback: BotAction | None = None  # a transfer or hang-up to do next
        self._last_said: list[Play] = []
        self._asking: bool = False  # the bot's last words were a yes/no question
        self._listening_since = 0.0
        self._silences = 0
        self._speech_began: float | None = None  # caller speech in progress
        self._partial = ""
        self._utterance_consumed = False  # acted on from a partial; ignore its final
        self._waiting_for: int | None = None  # brain request id
        self._asked_at = 0.0
        self._queued_text: str | None = None  # a transcript that arrived while thinking
        self._asked_text = ""  # the words of the question in flight
        self._paused = False  # the caller is in a short pause inside the utterance
        self._routed: PartialRouted | None = None  # the route of the current partial
        self._last_route_at = float("-inf")
        # Utterances ended whose final transcript has not come yet: while any is due, the
        # recogniser is at work, which is not silence. Finals arrive in the order of the
        # utterances, so each is known by its place among those due (rejoining, below).
        self._finals_due = 0
        # Rejoining a caller who had only paused where the bot ended the utterance early.
        self._early_end_at: float | None = None  # when the last utterance was ended early
        self._early_final: int | None = None  # place of that utterance's final
        self._early_asked = False  # ...which was asked on its own
        self._continuation_final: int | None = None  # place of the final that goes on from it
        self._transfer_failures: dict[str, int] = {}  # route -> failed attempts

    # -- public ----------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        if self.state is State.ENDED:
            return []
        if isinstance(event, CallerHungUp):
            return self._end(
                "caller hung up", hang_up=False, outcome=self._answered or CallEnd.HANGUP
            )
        return _HANDLERS[type(event)](self, event)

    # -- events ------------------------------------------------------------------

    def _on_call_started(self, e: CallStarted) -> list[Action]:
        if e.overflow:
            # No recogniser is spared for this call: the keypad and speech are not heard.
            self.degraded = True
            notes = [Note(NoteKind.CALL_STARTED), Note(NoteKind.OVERFLOW)]
            return [*notes, *self._transfer_now(Route.OPERATOR, e.at)]
        return [Note(NoteKind.CALL_STARTED), *self._say([self.prompts.greeting], e.at)]

    def _on_speech_started(self, e: SpeechStarted) -> list[Action]:
        self._speech_began = e.began_at
        self._partial = ""
        self._paused = False
        self._routed = None
        self._utterance_consumed = False
        early, self._early_end_at = self._early_end_at, None
        if early is not None and e.began_at - early <= self.config.rejoin_s:
            self._continuation_final = self._finals_due + 1
        return self._check_barge_in(e.at)

    def _on_speech_paused(self, e: SpeechPaused) -> list[Action]:
        if self._speech_began is None:
            return []
        self._paused = True
        if self._routed is not None and self._routed.text == self._partial:
            return self._end_early(e.at)
        if self._partial and not self.degraded and not self._utterance_consumed:
            self._last_route_at = e.at
            return [RoutePartial(self._partial)]  # its answer may end the utterance
        return []

    def _on_speech_resumed(self, e: SpeechResumed) -> list[Action]:
        self._paused = False
        return []

    def _on_tick(self, e: Tick) -> list[Action]:
        if self._speech_began is not None:
            return self._check_barge_in(e.at)
        if self.state is State.THINKING and e.at - self._asked_at >= self.config.brain_timeout_s:
            self._waiting_for = None
            return self._fail(Stage.BRAIN, "no answer within the deadline", e.at)
        if (
            self.state in (State.LISTENING, State.CONFIRMING)
            and not self._playing
            and not self._finals_due  # not silence: the recogniser is still at work
        ):
            if e.at - self._listening_since >= self.config.silence_timeout_s:
                return self._on_silence(e.at)
        return []

    def _on_partial_transcript(self, e: PartialTranscript) -> list[Action]:
        if self._utterance_consumed or not e.text.strip() or e.text == self._partial:
            return []
        self._partial = e.text
        actions = self._check_barge_in(e.at)
        if self.degraded:
            return actions
        due = e.at - self._last_route_at >= self.config.partial_route_interval_s
        if self._paused or (due and len(e.text.split()) >= self.config.emergency_min_words):
            self._last_route_at = e.at
            actions.append(RoutePartial(e.text))
        return actions

    def _on_partial_routed(self, e: PartialRouted) -> list[Action]:
        if self._utterance_consumed:
            return []
        if e.text == self._partial and self._speech_began is not None:
            self._routed = e
        emergency = (
            self.state not in (State.TRANSFERRING, State.THINKING)
            and e.route == EMERGENCY
            and e.red_flag is not None
            and e.confidence >= self.config.emergency_confidence
            and len(e.text.split()) >= self.config.emergency_min_words
        )
        if not emergency:
            # At a pause, the route of what was said so far may end the utterance.
            return self._end_early(e.at) if self._paused and self._routed is e else []
        # Emergency heard in the partial transcript: act now, ignore the rest of it.
        self._utterance_consumed = True
        why = {"route": e.route, **({"red_flag": dict(e.red_flag)} if e.red_flag else {})}
        actions: list[Action] = [Note(NoteKind.EMERGENCY_FROM_PARTIAL, e.text, why)]
        actions += self._stop_playback()
        actions.append(ResetRecognizer())
        return actions + self._transfer_now(EMERGENCY, e.at)

    def _on_speech_ended(self, e: SpeechEnded) -> list[Action]:
        began, self._speech_began = self._speech_began, None
        self._paused = False
        self._finals_due += 1  # the recogniser sends one final per ended utterance
        if began is None:
            return []
        # During bot speech, short speech was no barge-in; its final transcript
        # decides whether it was a backchannel or a (short) request.
        self._listening_since = e.at
        return []

    def _on_final_transcript(self, e: FinalTranscript) -> list[Action]:
        self._finals_due = max(0, self._finals_due - 1)
        is_early = self._early_final == 1
        continuing = self._continuation_final == 1 and self._early_asked
        self._early_final = _countdown(self._early_final)
        self._continuation_final = _countdown(self._continuation_final)
        actions = self._final_actions(e, continuing)
        if is_early:
            self._early_asked = any(isinstance(a, AskBrain) for a in actions)
        return actions

    def _final_actions(self, e: FinalTranscript, continuing: bool) -> list[Action]:
        self._listening_since = e.at
        if self._utterance_consumed:
            self._utterance_consumed = False
            return [Note(NoteKind.FINAL_DROPPED, e.text)] if e.text.strip() else []
        text = e.text.strip()
        if not text:
            return []  # noise the recogniser made nothing of
        if self._playing and is_backchannel(text):
            return [Note(NoteKind.BACKCHANNEL_IGNORED, text)]
        if self.state is State.TRANSFERRING or isinstance(self._after_playback, Transfer):
            return [Note(NoteKind.FINAL_DROPPED, text, {"why": "transferring"})]
        self._silences = 0
        if self.degraded:
            return [Note(NoteKind.FINAL_DROPPED, text, {"why": "degraded: keypad only"})]
        if continuing and self._waiting_for is None:
            # The caller had only paused where the bot ended the utterance early: the
            # question is all of it. (While the brain is still busy, the queue below joins.)
            return [
                Note(NoteKind.REJOINED, text),
                *self._stop_playback(),
                *self._ask(f"{self._asked_text} {text}", e.at),
            ]
        if self._waiting_for is not None:
            # The caller went on after a pause the VAD took for the end: ask again,
            # after the current reply, with everything said since that question.
            self._queued_text = f"{self._queued_text or self._asked_text} {text}"
            return [Note(NoteKind.QUEUED, text)]
        # A short request said over the bot (no barge-in yet): stop and answer it.
        return [*self._stop_playback(), *self._ask(text, e.at)]

    def _on_brain_replied(self, e: BrainReplied) -> list[Action]:
        if e.request_id != self._waiting_for:
            return [Note(NoteKind.STALE_REPLY, data={"request_id": e.request_id})]
        self._waiting_for = None
        if self._queued_text is not None:
            # The caller spoke again before the answer came: answer all they said.
            text, self._queued_text = self._queued_text, None
            return [Note(NoteKind.REPLY_SUPERSEDED), *self._ask(text, e.at)]
        if not e.actions:  # the dialogue chose to listen
            self._listen(e.at)
            return []
        return self._say(list(e.actions), e.at, answers=e.request_id)

    def _on_playback_finished(self, e: PlaybackFinished) -> list[Action]:
        self._playing.discard(e.playback_id)
        self._answered = self._faq_playing.pop(e.playback_id, self._answered)
        if self._playing:
            return []
        after, self._after_playback = self._after_playback, None
        if isinstance(after, Transfer):
            self.state = State.TRANSFERRING
            return [Note(NoteKind.TRANSFER, data={"route": after.route}), TransferCall(after.route)]
        if isinstance(after, HangUp):
            return self._end("goodbye", hang_up=True, outcome=self._answered or CallEnd.GOODBYE)
        if self.state in (State.SPEAKING, State.GREETING):
            self._listen(e.at)
        return []

    def _on_digit_pressed(self, e: DigitPressed) -> list[Action]:
        note = Note(NoteKind.DIGIT, e.digit)
        if self.state is State.TRANSFERRING:
            return [note]
        if e.digit == "*":
            return [note, *self._stop_playback(), *self._replay(e.at)]
        route = branch_route(e.digit)
        if route == Route.FALLBACK:  # '#', 7-9: as /api/chat says, not used here; the menu
            unused = [self.prompts.unused_key] if self.prompts.unused_key else []
            menu: list[BotAction] = [*unused, self.prompts.menu]
            return [note, *self._stop_playback(), *self._say(menu, e.at)]
        # The keypad works without the brain: it must, when the brain is down.
        self._utterance_consumed = self._speech_began is not None
        return [note, *self._stop_playback(), *self._transfer_now(route, e.at)]

    def _on_transfer_failed(self, e: TransferFailed) -> list[Action]:
        """A transfer did not go through: retry once, then an operator, then the apology
        and the keypad; an emergency first hears 115 read out. Never a silent hang-up."""
        failures = self._transfer_failures[e.route] = self._transfer_failures.get(e.route, 0) + 1
        operator_failed = self._transfer_failures.get(Route.OPERATOR, 0) >= 2
        if failures == 1:
            self.state = State.TRANSFERRING
            return [Note(NoteKind.TRANSFER_RETRY, data={"route": e.route}), TransferCall(e.route)]
        if e.route is EMERGENCY and self.prompts.transfer_failed_emergency is not None:
            # The caller must reach 115 even if nothing here can connect them.
            say: list[BotAction] = [self.prompts.transfer_failed_emergency]
            if not operator_failed:
                say.append(Transfer(Route.OPERATOR))
            return self._say(say, e.at)
        if e.route is not Route.OPERATOR and not operator_failed:
            return self._transfer_now(Route.OPERATOR, e.at)
        # Nobody can be reached: the caller keeps the keypad (a branch may still go through).
        self.degraded = True
        self._silences = 1  # the next silence reads the menu
        return self._say([self.prompts.technical_problem, self.prompts.menu], e.at)

    def _on_stage_failed(self, e: StageFailed) -> list[Action]:
        if e.stage is Stage.BRAIN and self._waiting_for is None:
            # A question already given up on (its deadline passed here first, or a transfer
            # overtook it): its failure is not a second one, which would end the call.
            return [Note(NoteKind.STALE_REPLY, e.reason, {"stage": e.stage})]
        # A failed stage settles what the machine waited for from it: the brain's answer, or
        # the recogniser's finals (a final that will never come would hold off the silence
        # ladder for ever). A final that does come later is harmless (max(0, ...) above).
        self._waiting_for = None
        if e.stage is Stage.ASR:
            self._finals_due = 0
            self._early_final = self._continuation_final = None
        return self._fail(e.stage, e.reason, e.at)

    # -- helpers -------------------------------------------------------------------

    def _end_early(self, now: float) -> list[Action]:
        """End the utterance at this pause if its partial transcript is understood."""
        routed = self._routed
        if (
            routed is None
            or self.degraded
            or self._utterance_consumed
            or not understood(
                routed.text, routed.route, routed.intent, routed.confidence, self.config
            )
        ):
            return []
        self._paused = False
        self._early_end_at = now
        self._early_final = self._finals_due + 1  # its SpeechEnded follows this action
        self._early_asked = False
        data = {"route": routed.route, "intent": routed.intent, "confidence": routed.confidence}
        return [Note(NoteKind.EARLY_END, routed.text, data), EndUtterance()]

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _listen(self, now: float) -> None:
        self.state = State.CONFIRMING if self._asking else State.LISTENING
        self._listening_since = now

    def _ask(self, text: str, now: float) -> list[Action]:
        request = self._new_id()
        self._waiting_for = request
        self._asked_at = now
        self._asked_text = text
        self.state = State.THINKING
        return [Note(NoteKind.HEARD, text), AskBrain(request, text)]

    def _say(
        self, actions: list[BotAction], now: float, answers: int | None = None
    ) -> list[Action]:
        out: list[Action] = []
        plays: list[Play] = []
        for action in actions:
            if isinstance(action, Say):
                play = Play(self._new_id(), action.text, action.response, answers)
                if action.route is not None:
                    self._faq_playing[play.playback_id] = action.route
                plays.append(play)
                self._playing.add(play.playback_id)
                out += [Note(NoteKind.SAY, action.text, {"response": action.response}), play]
            else:
                self._after_playback = action
        if plays:
            self._last_said = plays
            last = plays[-1].response or ""
            self._asking = last.startswith(("utter_confirm_", "utter_offer_", "utter_anything"))
            if self.state is not State.GREETING:
                self.state = State.SPEAKING
        elif self._after_playback is not None:
            # A transfer or hang-up with nothing to say first.
            out += self._on_playback_finished(PlaybackFinished(now, -1))
        return out

    def _replay(self, now: float) -> list[Action]:
        if not self._last_said:
            return []
        return self._say([Say(p.text, p.response) for p in self._last_said], now)

    def _stop_playback(self) -> list[Action]:
        if not self._playing:
            return []
        self._playing.clear()
        self._faq_playing.clear()  # an answer cut short settles nothing
        return [StopPlayback()]

    def _transfer_now(self, route: Route, now: float) -> list[Action]:
        self._waiting_for = None
        self._queued_text = None
        return self._say([self.prompts.transfers[route], Transfer(route)], now)

    def _check_barge_in(self, now: float) -> list[Action]:
        began = self._speech_began
        if began is None or not self._playing or self.state is State.TRANSFERRING:
            return []
        spoken = now - began
        if spoken < self.config.barge_in_min_s:
            return []
        if is_backchannel(self._partial) and spoken < self.config.barge_in_backchannel_max_s:
            return []
        if isinstance(self._after_playback, Transfer):
            return []  # a decided transfer goes ahead; its notice is not interrupted
        # Barge-in: stop talking at once and listen to the caller.
        self._after_playback = None
        self._listen(now)
        return [Note(NoteKind.BARGE_IN, self._partial), *self._stop_playback()]

    def _on_silence(self, now: float) -> list[Action]:
        self._silences += 1
        if self._silences == 1:
            return [
                Note(NoteKind.SILENCE, data={"count": 1}),
                *self._say([self.prompts.silence], now),
            ]
        if self._silences == 2:
            return [
                Note(NoteKind.SILENCE, data={"count": 2}),
                *self._say([self.prompts.menu], now),
            ]
        return [
            Note(NoteKind.SILENCE, data={"count": self._silences}),
            *self._transfer_now(Route.OPERATOR, now),
        ]

    def _fail(self, stage: Stage, reason: str, now: float) -> list[Action]:
        note = Note(NoteKind.ERROR, f"{stage}: {reason}", {"stage": stage})
        if self.degraded:
            # A second failure: a person takes over at once, with no notice that
            # might itself fail to play (the call must never go silent).
            self.state = State.TRANSFERRING
            return [note, *self._stop_playback(), TransferCall(Route.OPERATOR)]
        self.degraded = True
        self._silences = 1  # the next silence reads the menu, the one after: operator
        apology = self.prompts.technical_problem
        return [note, *self._stop_playback(), *self._say([apology], now)]

    def _end(self, reason: str, hang_up: bool, outcome: Outcome) -> list[Action]:
        self.state = State.ENDED
        return [
            Note(NoteKind.CALL_ENDED, reason, {"outcome": outcome}),
            EndCall(reason, hang_up, outcome),
        ]


def _countdown(place: int | None) -> int | None:
    """A place among the finals due, once one final has come."""
    return place - 1 if place is not None and place > 1 else None


# Every event's handler, in one table.
_HANDLERS: dict[type, Callable[[CallMachine, Any], list[Action]]] = {
    CallStarted: CallMachine._on_call_started,
    SpeechStarted: CallMachine._on_speech_started,
    SpeechPaused: CallMachine._on_speech_paused,
    SpeechResumed: CallMachine._on_speech_resumed,
    SpeechEnded: CallMachine._on_speech_ended,
    PartialTranscript: CallMachine._on_partial_transcript,
    FinalTranscript: CallMachine._on_final_transcript,
    PartialRouted: CallMachine._on_partial_routed,
    DigitPressed: CallMachine._on_digit_pressed,
    PlaybackFinished: CallMachine._on_playback_finished,
    BrainReplied: CallMachine._on_brain_replied,
    StageFailed: CallMachine._on_stage_failed,
    TransferFailed: CallMachine._on_transfer_failed,
    Tick: CallMachine._on_tick,
}
