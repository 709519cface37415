"""Voice activity: where the caller's speech starts and ends, from webrtcvad's frame decisions.

webrtcvad says "speech" or "not speech" for each 10, 20 or 30 ms frame. This module turns those
decisions into events: a burst becomes speech once it has lasted `min_speech_ms` (shorter ones
are clicks and line noise), and speech ends after `trailing_silence_ms` without it. Times are in
ms of audio since the start of the stream (not wall-clock time), so results do not depend on how
the audio was cut into chunks, and tests can check them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import webrtcvad

from bot.audio.formats import AudioChunk, AudioFormat, AudioFormatError

VAD_RATES = (8000, 16000, 32000, 48000)  # the rates webrtcvad accepts
FRAME_MS = (10, 20, 30)  # the frame lengths webrtcvad accepts
_WIDTH = 2  # bytes per sample: PCM16 mono only

# webrtcvad keeps answering "speech" for a few frames after a sound stops: its hangover after a
# long burst (kOverHangMax2 in WebRTC's vad_core.c) plus the 10-20 ms that its filters smear the
# end of a sound into (measured on speech and noise bursts at every alignment; tests/test_vad.py
# checks the installed library against this). A 100 ms click thus reads as 180-260 ms of
# "speech"; bursts are measured net of this tail, or `min_speech_ms` would not mean what it
# says. Frames, keyed by aggressiveness, then frame_ms.
_HANGOVER_FRAMES: dict[int, dict[int, int]] = {
    0: {10: 16, 20: 8, 30: 6},
    1: {10: 16, 20: 8, 30: 6},
    2: {10: 11, 20: 6, 30: 4},
    3: {10: 11, 20: 6, 30: 4},
}


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = 3  # webrtcvad's mode, 0 (lets most through) .. 3 (strictest)
    frame_ms: int = 20  # length of each frame webrtcvad judges
    min_speech_ms: int = 200  # shorter bursts are noise (clicks, line pops)
    # Silence after the sound, net of webrtcvad's hangover: this much ends an utterance...
    trailing_silence_ms: int = 700
    # ...and this much is a pause, when a later stage may end the utterance early (a request
    # the NLU already understands). 0: no pauses reported.
    pause_ms: int = 250
    pre_roll_ms: int = 200  # audio kept from before the detected start, for the recogniser
    # Silence this short inside a burst that has not yet become speech does not break it: a
    # quiet stop consonant between two syllables reads as one or two frames of silence.
    max_gap_ms: int = 100

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, not {self.aggressiveness}")
        if self.frame_ms not in FRAME_MS:
            raise ValueError(
                f"frame_ms must be one of {FRAME_MS} (webrtcvad's), not {self.frame_ms}"
            )
        for name in ("min_speech_ms", "pre_roll_ms", "max_gap_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        # Silence is counted from the last frame webrtcvad called speech, which is its
        # hangover after the sound: a shorter setting could never be met.
        floor = self.hangover_ms + self.frame_ms
        if self.trailing_silence_ms < floor:
            raise ValueError(
                f"trailing_silence_ms ({self.trailing_silence_ms}) must be at least webrtcvad's "
                f"hangover plus one frame ({floor} ms at aggressiveness {self.aggressiveness})"
            )
        if self.pause_ms and not floor <= self.pause_ms < self.trailing_silence_ms:
            raise ValueError(
                f"pause_ms ({self.pause_ms}) must be 0, or from {floor} ms up to less than "
                f"trailing_silence_ms ({self.trailing_silence_ms})"
            )

    @property
    def hangover_ms(self) -> int:
        """How long webrtcvad goes on saying "speech" after a sound stops."""
        return _HANGOVER_FRAMES[self.aggressiveness][self.frame_ms] * self.frame_ms


@dataclass(frozen=True)
class VoiceStarted:
    """Speech has lasted `min_speech_ms`; it began at `at_ms`.

    Reported once the burst has lasted `min_speech_ms` plus webrtcvad's hangover
    (`VadConfig.hangover_ms`; 320 ms after it began, with the defaults).

    `audio` is what the recogniser needs so far: from `max(0, at_ms - pre_roll_ms)` to the end
    of the audio fed (or to the end of this utterance, if it ended within the same `feed`). Give
    it to the recogniser, then every later chunk until `VoiceEnded`. It is left out of equality
    so that events compare by their times, whatever the chunking.
    """

    at_ms: int
    audio: AudioChunk = field(compare=False, repr=False)


@dataclass(frozen=True)
class VoiceEnded:
    """Speech ended at `at_ms` (the end of its last speech frame, webrtcvad's hangover
    included), after `duration_ms` of speech. Reported once the silence, net of that
    hangover, reaches `trailing_silence_ms`, or at once by `VoiceActivity.end_now()`."""

    at_ms: int
    duration_ms: int


@dataclass(frozen=True)
class VoicePaused:
    """The speech has been silent for `pause_ms` (net of the hangover) since `at_ms`; it is
    not over yet. Reported once per pause."""

    at_ms: int


@dataclass(frozen=True)
class VoiceResumed:
    """Speech came back, at `at_ms`, after a VoicePaused and before the end."""

    at_ms: int


VadEvent = VoiceStarted | VoicePaused | VoiceResumed | VoiceEnded


class VoiceActivity:
    """Speech events for one stream of PCM16 mono audio: one instance per call."""

    def __init__(self, config: VadConfig, fmt: AudioFormat) -> None:
        if fmt.encoding != "pcm16" or fmt.channels != 1 or fmt.rate not in VAD_RATES:
            raise AudioFormatError(
                f"voice activity needs PCM16 mono audio at one of {VAD_RATES} Hz, not {fmt}; "
                "convert it first (bot.audio.formats.Converter)"
            )
        self.config = config
        self.format = fmt
        self._frame_samples = fmt.rate * config.frame_ms // 1000
        self._frame_bytes = self._frame_samples * _WIDTH
        self._pre_roll_samples = fmt.rate * config.pre_roll_ms // 1000
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next chunk fed is time zero of a new stream."""
        self._vad = webrtcvad.Vad(self.config.aggressiveness)  # its noise model adapts: start anew
        self._frames = 0  # frames judged so far
        self._received = 0  # samples fed so far
        self._audio = bytearray()  # recent audio: pre-roll, a burst being judged, a partial frame
        self._audio_start = 0  # sample index of _audio[0]
        self._burst_start: int | None = None  # first frame of the current burst or speech
        self._last_speech = 0  # last frame judged speech in that burst or speech
        self._speaking = False
        self._paused = False  # a VoicePaused was reported for the current silence

    @property
    def in_speech(self) -> bool:
        """Between a VoiceStarted and its VoiceEnded."""
        return self._speaking

    @property
    def paused(self) -> bool:
        """In speech, and silent since a VoicePaused."""
        return self._paused

    def end_now(self) -> VoiceEnded | None:
        """End the current speech at once (a later stage decided the caller has finished);
        None when not in speech. The next sound starts a new utterance."""
        if not self._speaking:
            return None
        return self._end()

    @property
    def fed_ms(self) -> float:
        """Milliseconds of audio fed so far: the clock that the events' times count on."""
        return 1000.0 * self._received / self.format.rate

    @property
    def speech_ms_since_start(self) -> int:
        """How long the current speech has lasted (0 when not in speech): lets a later stage
        ignore short backchannels ("dạ", "vâng") while the bot is talking."""
        if not self._speaking or self._burst_start is None:
            return 0
        return (self._last_speech + 1 - self._burst_start) * self.config.frame_ms

    def feed(self, chunk: AudioChunk) -> list[VadEvent]:
        """Judge every whole frame the chunk completes (any chunk size; the rest waits)."""
        if chunk.format != self.format:
            raise AudioFormatError(
                f"chunk is {chunk.format}, but this detector takes {self.format}"
            )
        self._audio += chunk.data
        self._received += chunk.samples
        events: list[VadEvent] = []
        # A start's audio runs to the end of this feed, or to the end of its utterance.
        started: tuple[int, int] | None = None  # (index in events, first sample)
        while (self._received - self._frames * self._frame_samples) >= self._frame_samples:
            offset = (self._frames * self._frame_samples - self._audio_start) * _WIDTH
            frame = bytes(self._audio[offset : offset + self._frame_bytes])
            event = self._judge(self._vad.is_speech(frame, self.format.rate))
            if event is None:
                continue
            if isinstance(event, VoiceStarted):
                started = (len(events), self._pre_roll_from(event.at_ms))
            elif isinstance(event, VoiceEnded) and started is not None:
                index, first = started
                events[index] = self._started(
                    events[index], first, self._frames * self._frame_samples
                )
                started = None
            events.append(event)
        if started is not None:
            index, first = started
            events[index] = self._started(events[index], first, self._received)
        self._trim()
        return events

    def _judge(self, speech: bool) -> VadEvent | None:
        """Advance the state machine by the frame just judged; frames are counted from 0."""
        frame = self._frames
        self._frames += 1
        cfg = self.config
        if speech:
            if self._burst_start is None:
                self._burst_start = frame
            self._last_speech = frame
            if self._paused:
                self._paused = False
                return VoiceResumed(frame * cfg.frame_ms)
            lasted = (frame + 1 - self._burst_start) * cfg.frame_ms
            if not self._speaking and lasted >= cfg.min_speech_ms + cfg.hangover_ms:
                self._speaking = True
                # The audio is filled in by feed(), which knows where this feed ends.
                empty = AudioChunk(b"", self.format)
                return VoiceStarted(self._burst_start * cfg.frame_ms, empty)
            return None
        if self._burst_start is None:
            return None
        silent_ms = (frame - self._last_speech) * cfg.frame_ms
        if not self._speaking:
            if silent_ms > cfg.max_gap_ms:
                self._burst_start = None  # a burst too short to be speech: noise
            return None
        # The last "speech" frame is webrtcvad's hangover after the sound: count the silence
        # from the sound, so that a setting means what it says.
        silent_ms += cfg.hangover_ms
        if silent_ms >= cfg.trailing_silence_ms:
            return self._end()
        if cfg.pause_ms and not self._paused and silent_ms >= cfg.pause_ms:
            self._paused = True
            return VoicePaused((self._last_speech + 1) * cfg.frame_ms)
        return None

    def _end(self) -> VoiceEnded:
        ended = VoiceEnded(
            at_ms=(self._last_speech + 1) * self.config.frame_ms,
            duration_ms=self.speech_ms_since_start,
        )
        self._speaking = False
        self._paused = False
        self._burst_start = None
        return ended

    def _pre_roll_from(self, at_ms: int) -> int:
        """Sample index where the audio of a start at `at_ms` begins."""
        start = at_ms * self.format.rate // 1000
        return max(start - self._pre_roll_samples, self._audio_start)

    def _started(self, event: VadEvent, from_sample: int, to_sample: int) -> VoiceStarted:
        assert isinstance(event, VoiceStarted)  # feed() calls this for starts only
        first, last = from_sample - self._audio_start, to_sample - self._audio_start
        audio = bytes(self._audio[first * _WIDTH : last * _WIDTH])
        return VoiceStarted(event.at_ms, AudioChunk(audio, self.format))

    def _trim(self) -> None:
        """Keep the pre-roll before the next frame, or before the burst being judged."""
        keep_from = self._frames * self._frame_samples - self._pre_roll_samples
        if self._burst_start is not None and not self._speaking:
            keep_from = self._burst_start * self._frame_samples - self._pre_roll_samples
        drop = keep_from - self._audio_start
        if drop > 0:
            del self._audio[: drop * _WIDTH]
            self._audio_start += drop
