"""What goes into a call and what comes out of it: the machine's events and actions.

Events are what happened (speech started, a transcript, a digit, the brain's reply, a
clock tick, a hang-up); actions are what the session must do (play, stop, ask the brain,
transfer, hang up, note it in the record). Plain frozen dataclasses, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.nlu.replies import BotAction
from bot.vocabulary import NoteKind, Outcome, Route, StrEnum


class Stage(StrEnum):
    """The engines a call depends on; any of them may fail."""

    BRAIN = "brain"  # Rasa
    ASR = "asr"  # the recogniser
    TTS = "tts"  # Piper


# --- events -------------------------------------------------------------------
# `at` is seconds on the call's monotonic clock.


@dataclass(frozen=True)
class CallStarted:
    at: float
    # The bot is at capacity (settings.MAX_CALLS): the caller goes straight to an operator.
    overflow: bool = False


@dataclass(frozen=True)
class SpeechStarted:
    at: float
    began_at: float  # VAD confirms speech after a minimum length; this is its start


@dataclass(frozen=True)
class SpeechEnded:
    at: float


@dataclass(frozen=True)
class SpeechPaused:
    """The caller has been silent for a short pause; the utterance is not over yet."""

    at: float


@dataclass(frozen=True)
class SpeechResumed:
    """The caller spoke again after a SpeechPaused."""

    at: float


@dataclass(frozen=True)
class PartialTranscript:
    at: float
    text: str


@dataclass(frozen=True)
class FinalTranscript:
    at: float
    text: str
    confidence: float | None = None  # None where the recogniser gives none


@dataclass(frozen=True)
class PartialRouted:
    """The NLU route of a partial transcript (asked for with RoutePartial)."""

    at: float
    text: str
    route: Route
    confidence: float
    intent: str = ""
    # Why the red-flag layer sent it to 115 ({"rule", "matched", "route"}), for the record.
    red_flag: Mapping[str, str] | None = None


@dataclass(frozen=True)
class DigitPressed:
    at: float
    digit: str


@dataclass(frozen=True)
class PlaybackFinished:
    at: float
    playback_id: int


@dataclass(frozen=True)
class BrainReplied:
    at: float
    request_id: int
    actions: tuple[BotAction, ...]


@dataclass(frozen=True)
class StageFailed:
    """Rasa, Vosk or Piper failed for this call."""

    at: float
    stage: Stage
    reason: str


@dataclass(frozen=True)
class TransferFailed:
    """The transport could not move the call (TransferCall): the caller is still here."""

    at: float
    route: Route
    reason: str  # one word (TransferResult.reason)


@dataclass(frozen=True)
class Tick:
    at: float


@dataclass(frozen=True)
class CallerHungUp:
    at: float


Event = (
    CallStarted | SpeechStarted | SpeechPaused | SpeechResumed | SpeechEnded | PartialTranscript
    | FinalTranscript | PartialRouted | DigitPressed | PlaybackFinished | BrainReplied
    | StageFailed | TransferFailed | Tick | CallerHungUp
)  # fmt: skip


# --- actions ------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    playback_id: int
    text: str
    response: str | None = None  # domain response name: its audio may be pre-rendered
    answers: int | None = None  # the AskBrain request this speaks the reply to


@dataclass(frozen=True)
class StopPlayback:
    pass


@dataclass(frozen=True)
class AskBrain:
    request_id: int
    text: str


@dataclass(frozen=True)
class RoutePartial:
    text: str


@dataclass(frozen=True)
class EndUtterance:
    """The caller has finished: end the utterance now, without waiting for the rest of the
    trailing silence (its final transcript follows as usual)."""


@dataclass(frozen=True)
class ResetRecognizer:
    """Drop what the recogniser heard so far (the utterance was acted on already)."""


@dataclass(frozen=True)
class TransferCall:
    route: Route  # a branch or the operator


@dataclass(frozen=True)
class EndCall:
    reason: str
    hang_up: bool  # False when the caller already hung up
    # What the call came to: the FAQ it was answered with, a goodbye, a hang-up, an error.
    outcome: Outcome


@dataclass(frozen=True)
class Note:
    """A line for the call record: what happened and why."""

    kind: NoteKind
    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


Action = (
    Play | StopPlayback | AskBrain | RoutePartial | EndUtterance | ResetRecognizer | TransferCall
    | EndCall | Note
)  # fmt: skip
