"""What a recogniser hands over, and the interface every engine implements."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of this Recognition's audio
    end: float
    conf: float  # Vosk's posterior, 0..1


@dataclass(frozen=True)
class Partial:
    """The decoder's current guess for the utterance so far; it may still change."""

    text: str


@dataclass(frozen=True)
class Final:
    """A finished utterance. ``confidence`` is the mean word confidence (0 when empty)."""

    text: str
    words: tuple[Word, ...] = ()
    confidence: float = 0.0
