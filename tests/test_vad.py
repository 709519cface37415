"""Voice activity on real (synthesised) Vietnamese speech, with silence and clicks around it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
import webrtcvad
from numpy.typing import NDArray

from bot.audio.formats import (
    AudioChunk,
    AudioFormat,
    AudioFormatError,
    Converter,
    from_samples,
    read_wav,
    to_samples,
)
from bot.audio.vad import (
    VadConfig,
    VadEvent,
    VoiceActivity,
    VoiceEnded,
    VoicePaused,
    VoiceResumed,
    VoiceStarted,
)

pytestmark = pytest.mark.unit

Samples = NDArray[np.int16]
PHRASES = {
    "greeting": "xin chào tổng đài",
    "question": "tôi muốn hỏi về thủ tục cấp giấy phép xây dựng",
    "backchannel": "dạ",
}


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Samples]:
    """Each phrase spoken by espeak-ng, at 8 and 16 kHz PCM16, trimmed of espeak's own silence."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:  # a clear failure, not a skip: these tests need real speech
        pytest.fail("espeak-ng is not installed; it synthesises the speech these tests use")
    folder = tmp_path_factory.mktemp("speech")
    result: dict[tuple[str, int], Samples] = {}
    for name, text in PHRASES.items():
        path = folder / f"{name}.wav"
        subprocess.run([espeak, "-v", "vi", "-w", str(path), text], check=True, capture_output=True)
        voice = read_wav(path)
        for rate in (8000, 16000):
            conv = Converter(voice.format, AudioFormat(rate))
            samples = np.concatenate([to_samples(conv.convert(voice)), to_samples(conv.flush())])
            loud = np.nonzero(np.abs(samples) > 0.01 * np.abs(samples).max())[0]
            result[(name, rate)] = samples[loud[0] : loud[-1] + 1]
    return result


def silence(rate: int, seconds: float) -> Samples:
    return np.zeros(int(rate * seconds), dtype=np.int16)


def noise_burst(rate: int, seconds: float, seed: int = 3) -> Samples:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 6000, int(rate * seconds)), -32768, 32767).astype(np.int16)


def chunks(samples: Samples, rate: int, sizes: list[int]) -> Iterator[AudioChunk]:
    start, i = 0, 0
    while start < len(samples):
        size = sizes[i % len(sizes)]
        yield from_samples(samples[start : start + size], AudioFormat(rate))
        start, i = start + size, i + 1


def run(
    samples: Samples,
    rate: int,
    config: VadConfig | None = None,
    sizes: list[int] | None = None,
    pauses: bool = False,
) -> list[VadEvent]:
    """The events of one stream: starts and ends, and pauses and resumptions if asked."""
    vad = VoiceActivity(config or VadConfig(), AudioFormat(rate))
    events: list[VadEvent] = []
    for chunk in chunks(samples, rate, sizes or [rate // 50]):
        events += vad.feed(chunk)
    assert not vad.in_speech
    if not pauses:
        events = [e for e in events if not isinstance(e, (VoicePaused, VoiceResumed))]
    return events


def kinds(events: list[VadEvent]) -> list[type]:
    return [type(e) for e in events]


def loud_span_ms(samples: Samples, rate: int, offset_s: float) -> tuple[float, float]:
    """Where the signal is audible, in ms from the start of the stream."""
    loud = np.nonzero(np.abs(samples) > 0.01 * np.abs(samples).max())[0]
    return 1000 * (offset_s + loud[0] / rate), 1000 * (offset_s + (loud[-1] + 1) / rate)


# --- speech and silence ----------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
def test_one_utterance_gives_one_start_and_one_end(
    speech: dict[tuple[str, int], Samples], rate: int, frame_ms: int, aggressiveness: int
) -> None:
    config = VadConfig(aggressiveness=aggressiveness, frame_ms=frame_ms)
    words = speech[("greeting", rate)]
    events = run(np.concatenate([silence(rate, 1.0), words, silence(rate, 1.5)]), rate, config)
    assert kinds(events) == [VoiceStarted, VoiceEnded]
    started, ended = events
    assert isinstance(started, VoiceStarted) and isinstance(ended, VoiceEnded)
    onset, offset = loud_span_ms(words, rate, 1.0)
    # The start is the frame where the sound begins; the end follows the sound by at most
    # webrtcvad's hangover.
    assert onset - frame_ms <= started.at_ms
    if aggressiveness < 3:
        assert started.at_ms <= onset
    # The strictest mode misses the soft "x" of "xin"; the pre-roll still gives it to the
    # recogniser.
    assert started.at_ms - config.pre_roll_ms <= onset
    assert offset <= ended.at_ms <= offset + config.hangover_ms + frame_ms
    assert ended.duration_ms == ended.at_ms - started.at_ms


def test_two_utterances_a_second_apart_give_two_pairs(
    speech: dict[tuple[str, int], Samples],
) -> None:
    rate = 8000
    first, second = speech[("greeting", rate)], speech[("question", rate)]
    stream = np.concatenate(
        [silence(rate, 0.5), first, silence(rate, 1.0), second, silence(rate, 1.0)]
    )
    events = run(stream, rate)
    assert kinds(events) == [VoiceStarted, VoiceEnded, VoiceStarted, VoiceEnded]
    second_onset, _ = loud_span_ms(second, rate, 0.5 + len(first) / rate + 1.0)
    assert events[1].at_ms < events[2].at_ms
    assert second_onset - 20 <= events[2].at_ms <= second_onset
    assert isinstance(events[3], VoiceEnded) and isinstance(events[1], VoiceEnded)
    assert events[3].duration_ms > events[1].duration_ms  # the question is the longer phrase


def test_a_pause_shorter_than_the_trailing_silence_does_not_split_an_utterance(
    speech: dict[tuple[str, int], Samples],
) -> None:
    rate = 8000
    words = speech[("greeting", rate)]
    stream = np.concatenate(
        [silence(rate, 0.5), words, silence(rate, 0.4), words, silence(rate, 1.0)]
    )
    assert kinds(run(stream, rate)) == [VoiceStarted, VoiceEnded]
    # ...and splits it when the trailing silence is shorter than the pause.
    short = VadConfig(trailing_silence_ms=200, pause_ms=0)
    assert kinds(run(stream, rate, short)) == [VoiceStarted, VoiceEnded] * 2


@pytest.mark.parametrize("rate", [8000, 16000])
def test_silence_gives_no_events(rate: int) -> None:
    assert run(silence(rate, 5.0), rate) == []
    hiss = (np.random.default_rng(0).normal(0, 10, rate * 5)).astype(np.int16)  # about -70 dBFS
    assert run(hiss, rate) == []


# --- short noises ----------------------------------------------------------------------------


def raw_speech_frames(samples: Samples, rate: int, config: VadConfig) -> int:
    """Frames webrtcvad alone calls speech: shows that a click really does look like speech."""
    vad = webrtcvad.Vad(config.aggressiveness)
    size = rate * config.frame_ms // 1000
    starts = range(0, len(samples) - size + 1, size)
    return sum(bool(vad.is_speech(samples[i : i + size].tobytes(), rate)) for i in starts)


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
@pytest.mark.parametrize("source", ["noise", "speech"])
def test_a_100_ms_click_is_not_speech(
    speech: dict[tuple[str, int], Samples], aggressiveness: int, frame_ms: int, source: str
) -> None:
    rate = 8000
    config = VadConfig(aggressiveness=aggressiveness, frame_ms=frame_ms)
    if source == "noise":
        sound = noise_burst(rate, 0.4)
    else:  # the loudest stretch of real speech
        sound = speech[("question", rate)][rate // 2 : rate // 2 + int(0.4 * rate)]
    click = sound[: rate // 10]
    stream = np.concatenate([silence(rate, 1.0), click, silence(rate, 1.0)])
    assert raw_speech_frames(stream, rate, config) > 0  # webrtcvad does call it speech
    assert run(stream, rate, config) == []
    # The same sound for 400 ms is speech: the length, not the sound, made the difference.
    longer = np.concatenate([silence(rate, 1.0), sound, silence(rate, 1.0)])
    assert kinds(run(longer, rate, config)) == [VoiceStarted, VoiceEnded]


def test_min_speech_ms_sets_the_shortest_speech(speech: dict[tuple[str, int], Samples]) -> None:
    rate = 8000
    burst = np.concatenate([silence(rate, 1.0), noise_burst(rate, 0.3), silence(rate, 1.0)])
    assert kinds(run(burst, rate, VadConfig(min_speech_ms=200))) == [VoiceStarted, VoiceEnded]
    assert run(burst, rate, VadConfig(min_speech_ms=500)) == []


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_hangover_table_covers_the_installed_webrtcvad(
    speech: dict[tuple[str, int], Samples], aggressiveness: int, frame_ms: int
) -> None:
    # The VAD measures bursts net of webrtcvad's hangover; if a new webrtcvad held on longer
    # than the table says, clicks would become speech again.
    rate = 8000
    config = VadConfig(aggressiveness=aggressiveness, frame_ms=frame_ms)
    size = rate * frame_ms // 1000
    for sound in (noise_burst(rate, 0.1), noise_burst(rate, 0.5), speech[("greeting", rate)]):
        for lead in range(0, size, 23):  # the sound ends at every position within a frame
            before = np.zeros(lead + int(0.5 * rate), np.int16)
            stream = np.concatenate([before, sound, silence(rate, 1.0)])
            vad = webrtcvad.Vad(aggressiveness)
            flags = [
                vad.is_speech(stream[i : i + size].tobytes(), rate)
                for i in range(0, len(stream) - size + 1, size)
            ]
            sound_end = lead + int(0.5 * rate) + len(sound)
            after = flags[-(-sound_end // size) :]  # frames wholly after the sound
            assert sum(after) * frame_ms <= config.hangover_ms, (len(sound), lead)


# --- streaming -------------------------------------------------------------------------------


def test_chunk_sizes_do_not_change_the_events(speech: dict[tuple[str, int], Samples]) -> None:
    rate = 16000
    stream = np.concatenate(
        [
            silence(rate, 0.7),
            speech[("greeting", rate)],
            silence(rate, 1.0),
            noise_burst(rate, 0.1),
            silence(rate, 1.0),
            speech[("backchannel", rate)],
            silence(rate, 0.9),
        ]
    )
    expected = run(stream, rate, pauses=True)
    assert kinds(expected) == [VoiceStarted, VoicePaused, VoiceEnded] * 2
    random_sizes = np.random.default_rng(5).integers(1, 2000, 50).tolist()
    for sizes in ([320], [160], [480], [37], [1], [1001, 7, 333], random_sizes, [len(stream)]):
        assert run(stream, rate, sizes=sizes, pauses=True) == expected, sizes[:3]


@pytest.mark.parametrize("sizes", [[160], [37, 1000], [10**7]])
def test_start_carries_the_pre_roll_and_the_speech_so_far(
    speech: dict[tuple[str, int], Samples], sizes: list[int]
) -> None:
    rate = 8000
    config = VadConfig()
    stream = np.concatenate([silence(rate, 1.0), speech[("greeting", rate)], silence(rate, 1.0)])
    vad = VoiceActivity(config, AudioFormat(rate))
    heard: list[Samples] = []  # what a recogniser would get: the start's audio, then each chunk
    first: int | None = None  # where the start's audio begins, in samples
    for chunk in chunks(stream, rate, sizes):
        listening = vad.in_speech
        events = vad.feed(chunk)
        if listening:
            heard.append(to_samples(chunk))
        for event in events:
            if isinstance(event, VoiceStarted):
                first = (event.at_ms - config.pre_roll_ms) * rate // 1000
                heard.append(to_samples(event.audio))
                assert (
                    event.audio.samples
                    >= (config.pre_roll_ms + config.min_speech_ms) * rate // 1000
                )
    assert first is not None
    # Contiguous audio from the pre-roll on, with no gap and nothing twice.
    got = np.concatenate(heard)
    np.testing.assert_array_equal(got, stream[first : first + len(got)])
    onset, _ = loud_span_ms(speech[("greeting", rate)], rate, 1.0)
    # The strictest mode (the default) hears "xin" from its vowel, up to ~100 ms late; the
    # pre-roll still gives the recogniser the soft "x" and some silence before it.
    assert first <= (onset - config.pre_roll_ms + 100) * rate / 1000
    assert len(got) >= len(speech[("greeting", rate)])


def test_speech_ms_since_start_tracks_the_current_speech(
    speech: dict[tuple[str, int], Samples],
) -> None:
    rate = 8000
    vad = VoiceActivity(VadConfig(), AudioFormat(rate))
    durations: dict[str, int] = {}
    for name in ("backchannel", "question"):
        stream = np.concatenate([silence(rate, 0.5), speech[(name, rate)], silence(rate, 1.0)])
        seen = []
        for chunk in chunks(stream, rate, [160]):
            before = vad.speech_ms_since_start
            for event in vad.feed(chunk):
                if isinstance(event, VoiceEnded):
                    assert event.duration_ms >= before
                    durations[name] = event.duration_ms
            if vad.in_speech:
                seen.append(vad.speech_ms_since_start)
            else:
                assert vad.speech_ms_since_start == 0
        assert seen and seen == sorted(seen)  # it only grows while the speech lasts
        assert max(seen) == durations[name]
    # A backchannel is short; a question is long: a later stage can tell them apart.
    assert durations["backchannel"] < 700 < 2000 < durations["question"]


def test_reset_starts_a_new_stream(speech: dict[tuple[str, int], Samples]) -> None:
    rate = 8000
    stream = np.concatenate([silence(rate, 0.5), speech[("greeting", rate)], silence(rate, 1.0)])
    vad = VoiceActivity(VadConfig(), AudioFormat(rate))
    half = len(stream) // 2
    vad.feed(from_samples(stream[:half], AudioFormat(rate)))
    assert vad.in_speech and vad.speech_ms_since_start > 0
    vad.reset()
    assert not vad.in_speech and vad.speech_ms_since_start == 0
    assert vad.feed(from_samples(stream, AudioFormat(rate))) == run(stream, rate, pauses=True)


# --- formats and configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [
        AudioFormat(22050),
        AudioFormat(8000, "ulaw"),
        AudioFormat(16000, channels=2),
        AudioFormat(11025),
    ],
)
def test_only_pcm16_mono_at_webrtcvad_rates(fmt: AudioFormat) -> None:
    with pytest.raises(AudioFormatError, match="PCM16 mono"):
        VoiceActivity(VadConfig(), fmt)


def test_feed_refuses_another_format() -> None:
    vad = VoiceActivity(VadConfig(), AudioFormat(8000))
    with pytest.raises(AudioFormatError, match="takes pcm16/8000Hz/1ch"):
        vad.feed(AudioChunk(bytes(640), AudioFormat(16000)))


@pytest.mark.parametrize(
    "bad",
    [
        {"aggressiveness": 4},
        {"aggressiveness": -1},
        {"frame_ms": 25},
        {"min_speech_ms": -10},
        {"pre_roll_ms": -1},
        {"trailing_silence_ms": 5},
        # Silence counts from the sound, but webrtcvad reports it only after its hangover.
        {"trailing_silence_ms": 120},
        {"pause_ms": 100},
        {"pause_ms": 700},
        {"pause_ms": 800, "trailing_silence_ms": 700},
    ],
)
def test_config_is_checked(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        VadConfig(**bad)


def test_start_times_are_frame_aligned_ms(speech: dict[tuple[str, int], Samples]) -> None:
    rate = 8000
    stream = np.concatenate([silence(rate, 0.333), speech[("greeting", rate)], silence(rate, 1.0)])
    for frame_ms in (10, 20, 30):
        for event in run(stream, rate, VadConfig(frame_ms=frame_ms)):
            assert isinstance(event.at_ms, int) and event.at_ms % frame_ms == 0


# --- pauses, and the end of speech ------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000])
def test_the_trailing_silence_counts_from_the_end_of_the_sound(
    speech: dict[tuple[str, int], Samples], rate: int
) -> None:
    config = VadConfig(trailing_silence_ms=400, pause_ms=0)
    words = speech[("question", rate)]
    vad = VoiceActivity(config, AudioFormat(rate))
    reported: list[tuple[float, VoiceEnded]] = []
    for chunk in chunks(
        np.concatenate([silence(rate, 0.5), words, silence(rate, 1.0)]), rate, [rate // 100]
    ):
        for event in vad.feed(chunk):
            if isinstance(event, VoiceEnded):
                reported.append((vad.fed_ms, event))
    assert len(reported) == 1
    (when, ended) = reported[0]
    _, offset = loud_span_ms(words, rate, 0.5)
    # webrtcvad's hangover is inside the 400 ms, not added to it.
    assert 400 - config.hangover_ms <= when - offset <= 400 + config.frame_ms
    assert when - ended.at_ms == 400 - config.hangover_ms


def test_a_pause_is_reported_then_the_speech_resumes(
    speech: dict[tuple[str, int], Samples],
) -> None:
    rate = 8000
    words = speech[("greeting", rate)]
    config = VadConfig(pause_ms=250, trailing_silence_ms=700)
    stream = np.concatenate(
        [silence(rate, 0.5), words, silence(rate, 0.5), words, silence(rate, 1.0)]
    )
    events = run(stream, rate, config, pauses=True)
    assert kinds(events) == [
        VoiceStarted, VoicePaused, VoiceResumed, VoicePaused, VoiceEnded
    ]  # fmt: skip
    _, first_end = loud_span_ms(words, rate, 0.5)
    second_start, _ = loud_span_ms(words, rate, 0.5 + len(words) / rate + 0.5)
    paused, resumed, last_pause, ended = events[1:]
    assert first_end <= paused.at_ms <= first_end + config.hangover_ms + config.frame_ms
    # The strictest mode (the default) hears "xin" from its vowel: up to ~100 ms late.
    assert second_start - config.frame_ms <= resumed.at_ms <= second_start + 100
    assert last_pause.at_ms == ended.at_ms  # the last pause is the silence that ended it
    # Pauses off: the same stream gives only its start and end.
    assert kinds(run(stream, rate, VadConfig(pause_ms=0), pauses=True)) == [
        VoiceStarted, VoiceEnded
    ]  # fmt: skip


def test_end_now_ends_the_speech_at_once(speech: dict[tuple[str, int], Samples]) -> None:
    rate = 8000
    words = speech[("question", rate)]
    vad = VoiceActivity(VadConfig(), AudioFormat(rate))
    assert vad.end_now() is None  # nothing to end
    events: list[VadEvent] = []
    for chunk in chunks(
        np.concatenate([silence(rate, 0.5), words, silence(rate, 0.3)]), rate, [160]
    ):
        events += vad.feed(chunk)
    assert kinds(events) == [VoiceStarted, VoicePaused] and vad.paused
    ended = vad.end_now()
    assert isinstance(ended, VoiceEnded) and ended.at_ms == events[1].at_ms
    assert not vad.in_speech and not vad.paused and vad.end_now() is None
    # The silence that follows ends nothing more; the next words are a new utterance.
    later: list[VadEvent] = []
    for chunk in chunks(
        np.concatenate([silence(rate, 1.0), words, silence(rate, 1.0)]), rate, [160]
    ):
        later += vad.feed(chunk)
    assert kinds(later) == [VoiceStarted, VoicePaused, VoiceEnded]
