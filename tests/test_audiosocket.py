"""Asterisk AudioSocket: the sans-IO codec, the asyncio server over real sockets on
127.0.0.1, and fuzzing of the parser.

The PBX side here (``frame``, ``Pbx``) is written from the protocol's text
(docs.asterisk.org, Channel-Drivers/AudioSocket), not from bot.transports, so the
codec is checked against the specification rather than against itself. No timing
is asserted (pacing accuracy belongs in bench/); frame sizes, counts and order are.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.audio.formats import TELEPHONE, AudioChunk, AudioFormat, AudioFormatError
from bot.transports.audiosocket import (
    AudioReceived,
    AudioSocketConnection,
    AudioSocketParser,
    AudioSocketProtocolError,
    CallStarted,
    DigitPressed,
    Event,
    HungUp,
    RemoteError,
    encode_audio,
    encode_error,
    encode_hangup,
    serve,
)

pytestmark = pytest.mark.unit

CORPUS_DIR = Path(__file__).parent / "data" / "audiosocket_corpus"
LOGGER = "bot.transports.audiosocket"
TIMEOUT_S = 30  # a hung test fails instead of stalling the suite


# --- the PBX's side, from the specification -----------------------------------

HANGUP, UUID, DTMF, AUDIO, ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
FRAME_20MS = 320  # 8000 samples/s * 0.02 s * 2 bytes


def frame(kind: int, payload: bytes = b"") -> bytes:
    """type byte, 2-byte big-endian payload length, payload."""
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def header(kind: int, length: int) -> bytes:
    return bytes([kind]) + length.to_bytes(2, "big")


def pcm(byte: int, ms: int) -> bytes:
    return bytes([byte]) * (16 * ms)  # 16 bytes per ms of 8 kHz 16-bit mono


class Pbx:
    """Asterisk's end of one AudioSocket connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def dial(cls, port: int) -> Pbx:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):  # the server may cut a bad call first
            await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes] | None:
        """The next frame from the server, or None at the end of the stream."""
        try:
            head = await self.reader.readexactly(3)
            return head[0], await self.reader.readexactly(int.from_bytes(head[1:], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def read_all(self) -> bytes:
        """Every byte until the server closes (a reset ends it too)."""
        data = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await self.reader.read(65536):
                data += chunk
        return data

    async def read_frames_until_end(self) -> list[tuple[int, bytes]]:
        frames = []
        while (f := await self.read_frame()) is not None:
            frames.append(f)
        return frames

    def close(self) -> None:
        self.writer.close()


# --- the bot's side: a handler that records, with optional behaviour ------------

Behaviour = Callable[["Recorder", Event], Awaitable[None]]


class Recorder:
    def __init__(self, connection: AudioSocketConnection, behaviour: Behaviour | None) -> None:
        self.connection = connection
        self.call_id_at_start = connection.call_id
        self.behaviour = behaviour
        self.events: list[Event] = []
        self.closed = asyncio.Event()
        self.reason: str | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def on_event(self, event: Event) -> None:
        self.events.append(event)
        if self.behaviour is not None:
            await self.behaviour(self, event)

    async def on_close(self, reason: str | None) -> None:
        self.reason = reason
        self.closed.set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coroutine))


class Bot:
    """The server plus every call's recorder, by call UUID."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour
        self.calls: dict[uuid.UUID, Recorder] = {}
        self.server: asyncio.Server | None = None

    def factory(self, connection: AudioSocketConnection) -> Recorder:
        recorder = Recorder(connection, self.behaviour)
        assert connection.call_id is not None
        self.calls[connection.call_id] = recorder
        return recorder

    async def __aenter__(self) -> Bot:
        self.server = await serve(self.factory, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def call(self, call_id: uuid.UUID) -> Recorder:
        await until(lambda: call_id in self.calls)
        return self.calls[call_id]


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, TIMEOUT_S))


def chunk(data: bytes) -> AudioChunk:
    return AudioChunk(data, TELEPHONE)


# --- the server, over real sockets ---------------------------------------------


def test_handler_sees_a_call_in_order() -> None:
    async def main() -> None:
        call_id = uuid.uuid4()
        a, b, c = pcm(1, 20), pcm(2, 20), pcm(3, 10)
        async with Bot() as bot:
            pbx = await Pbx.dial(bot.port)
            await pbx.send(frame(UUID, call_id.bytes) + frame(AUDIO, a))
            stream = frame(AUDIO, b) + frame(DTMF, b"7") + frame(AUDIO, c) + frame(HANGUP)
            for i in range(0, len(stream), 7):  # frames cut across many writes
                await pbx.send(stream[i : i + 7])
            call = await bot.call(call_id)
            await asyncio.wait_for(call.closed.wait(), 10)
            assert await pbx.read_all() == b""  # the caller hung up: nothing more to say
            pbx.close()
        assert call.call_id_at_start == call_id
        assert call.events == [
            CallStarted(call_id),
            AudioReceived(chunk(a)),
            AudioReceived(chunk(b)),
            DigitPressed("7"),
            AudioReceived(chunk(c)),
            HungUp(),
        ]
        assert call.reason is None

    run(main())


def test_outgoing_audio_arrives_as_20ms_frames() -> None:
    speech, tail = pcm(5, 400), pcm(6, 30)  # 20 whole frames, then 1.5 frames

    async def speak(call: Recorder, event: Event) -> None:
        if isinstance(event, CallStarted):
            await call.connection.send_audio(chunk(speech))
            await call.connection.send_audio(chunk(tail))

            async def then_hang_up() -> None:
                await call.connection.wait_played()
                await call.connection.hangup()

            call.spawn(then_hang_up())

    async def main() -> None:
        call_id = uuid.uuid4()
        async with Bot(speak) as bot:
            pbx = await Pbx.dial(bot.port)
            await pbx.send(frame(UUID, call_id.bytes))
            frames = await pbx.read_frames_until_end()
            pbx.close()
            call = await bot.call(call_id)
            await asyncio.wait_for(call.closed.wait(), 10)
        audio = [payload for kind, payload in frames if kind == AUDIO]
        assert [kind for kind, _ in frames] == [AUDIO] * 22 + [HANGUP]
        assert {len(payload) for payload in audio} == {FRAME_20MS}
        # The last partial frame is padded with silence to a whole 20 ms.
        assert b"".join(audio) == speech + tail + bytes(2 * FRAME_20MS - len(tail))
        assert frames[-1] == (HANGUP, b"")
        assert call.connection.frames_sent == 22
        assert call.connection.late_frames >= 0  # counted; its value is a benchmark's business
        assert call.reason is None

    run(main())


def test_stop_audio_cuts_playback_short() -> None:
    long_prompt, answer = pcm(1, 10_000), pcm(2, 40)  # 500 frames, then 2 frames

    async def barge_in(call: Recorder, event: Event) -> None:
        if isinstance(event, CallStarted):
            await call.connection.send_audio(chunk(long_prompt))
        elif isinstance(event, DigitPressed):
            await call.connection.stop_audio()
            await call.connection.send_audio(chunk(answer))

            async def then_hang_up() -> None:
                await call.connection.wait_played()
                await call.connection.hangup()

            call.spawn(then_hang_up())

    async def main() -> None:
        call_id = uuid.uuid4()
        async with Bot(barge_in) as bot:
            pbx = await Pbx.dial(bot.port)
            await pbx.send(frame(UUID, call_id.bytes))
            first = [await pbx.read_frame() for _ in range(5)]
            await pbx.send(frame(DTMF, b"#"))
            rest = await pbx.read_frames_until_end()
            pbx.close()
            call = await bot.call(call_id)
            await asyncio.wait_for(call.closed.wait(), 10)
        frames = [f for f in first if f is not None] + rest
        kinds = [kind for kind, _ in frames]
        payloads = [payload for kind, payload in frames if kind == AUDIO]
        prompt_frames = sum(p == long_prompt[:FRAME_20MS] for p in payloads)
        assert kinds[-1] == HANGUP
        assert {len(p) for p in payloads} == {FRAME_20MS}
        assert 5 <= prompt_frames < 500  # the rest of the prompt was dropped...
        assert payloads[prompt_frames:] == [answer[:FRAME_20MS], answer[FRAME_20MS:]]  # ...at once

    run(main())


async def fail_on_nine(call: Recorder, event: Event) -> None:
    if event == DigitPressed("9"):
        raise RuntimeError("handler bug on digit 9")


BAD_UUID = uuid.UUID("11111111-2222-3333-4444-555555555555")
START = frame(UUID, BAD_UUID.bytes)

# (bytes the bad call sends, whether it then closes its sending side, the reason logged,
# whether the call's UUID is known when it fails)
BAD_CALLS = {
    "unknown-type-byte": (START + frame(0x42), False, "unknown frame type 0x42", True),
    "length-beyond-payload-then-eof": (
        START + header(AUDIO, 320) + bytes(100),
        True,
        "stream ended inside a frame of type 0x10: 100 of 320 payload bytes",
        True,
    ),
    "uuid-of-15-bytes": (frame(UUID, bytes(15)), False, "UUID frame of 15 bytes", False),
    "odd-length-audio": (START + frame(AUDIO, bytes(321)), False, "audio frame of 321 bytes", True),
    "60kB-frame": (
        START + frame(AUDIO, bytes(60_000)),
        False,
        "claims 60000 payload bytes; the maximum is 4096",
        True,
    ),
    "handler-exception": (
        START + frame(DTMF, b"9"),
        False,
        "internal error: RuntimeError: handler bug on digit 9",
        True,
    ),
    "pbx-error-frame": (
        START + frame(ERROR, b"\x02"),
        False,
        "the PBX reported an error (code 0x02)",
        True,
    ),
}


@pytest.mark.parametrize("case", BAD_CALLS, ids=list(BAD_CALLS))
def test_a_bad_call_ends_alone_with_a_logged_reason(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, half_close, reason, uuid_known = BAD_CALLS[case]
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        good_id = uuid.uuid4()
        async with Bot(fail_on_nine) as bot:
            good = await Pbx.dial(bot.port)
            await good.send(frame(UUID, good_id.bytes) + frame(AUDIO, pcm(1, 20)))
            good_call = await bot.call(good_id)
            await until(lambda: len(good_call.events) == 2)

            bad = await Pbx.dial(bot.port)
            await bad.send(data)
            if half_close:
                bad.writer.write_eof()
            answer = await bad.read_all()  # returns once the server closed the bad call
            bad.close()
            # Where the server read everything before closing, its 0x00 arrives; where
            # the bad call's bytes were still unread, the kernel resets the connection.
            assert answer in (b"", frame(HANGUP))
            if half_close:
                assert answer == frame(HANGUP)

            await good.send(frame(AUDIO, pcm(2, 20)) + frame(DTMF, b"1") + frame(HANGUP))
            await asyncio.wait_for(good_call.closed.wait(), 10)
            good.close()
            if uuid_known:
                bad_call = await bot.call(BAD_UUID)
                await asyncio.wait_for(bad_call.closed.wait(), 10)
                assert bad_call.reason is not None and reason in bad_call.reason

        assert good_call.events == [
            CallStarted(good_id),
            AudioReceived(chunk(pcm(1, 20))),
            AudioReceived(chunk(pcm(2, 20))),
            DigitPressed("1"),
            HungUp(),
        ]
        assert good_call.reason is None

    run(main())
    ended = [r.getMessage() for r in caplog.records if "ended:" in r.getMessage()]
    assert len(ended) == 1, ended  # only the bad call ended with a reason
    assert reason in ended[0]
    assert (str(BAD_UUID) in ended[0]) == uuid_known
    if not uuid_known:
        assert "no UUID yet" in ended[0]


@pytest.mark.parametrize("how", ["hangup-frame", "socket-closed"])
def test_caller_hanging_up_mid_playback_ends_cleanly(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def speak(call: Recorder, event: Event) -> None:
        if isinstance(event, CallStarted):
            await call.connection.send_audio(chunk(pcm(3, 10_000)))

    async def main() -> None:
        call_id = uuid.uuid4()
        async with Bot(speak) as bot:
            pbx = await Pbx.dial(bot.port)
            await pbx.send(frame(UUID, call_id.bytes))
            assert [await pbx.read_frame() for _ in range(3)] == [(AUDIO, pcm(3, 20))] * 3
            if how == "hangup-frame":
                await pbx.send(frame(HANGUP))
            pbx.close()
            call = await bot.call(call_id)
            await asyncio.wait_for(call.closed.wait(), 10)
            assert call.events == [CallStarted(call_id), HungUp()]
            assert call.reason is None
            assert call.connection.closed and not call.connection.playing
            assert call.connection.frames_sent < 500

            # The server goes on taking calls.
            next_id = uuid.uuid4()
            pbx = await Pbx.dial(bot.port)
            await pbx.send(frame(UUID, next_id.bytes) + frame(HANGUP))
            next_call = await bot.call(next_id)
            await asyncio.wait_for(next_call.closed.wait(), 10)
            pbx.close()

    run(main())
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not problems, [r.getMessage() for r in problems]


def test_audio_after_the_call_closed_is_dropped() -> None:
    async def main() -> None:
        call_id = uuid.uuid4()
        async with Bot() as bot:
            pbx = await Pbx.dial(bot.port)
            await pbx.send(frame(UUID, call_id.bytes) + frame(HANGUP))
            call = await bot.call(call_id)
            await asyncio.wait_for(call.closed.wait(), 10)
            await call.connection.send_audio(chunk(pcm(1, 100)))  # a speaker racing the hang-up
            await call.connection.hangup()  # and a second end: both harmless
            assert call.connection.frames_sent == 0
            pbx.close()

    run(main())


# --- the parser and encoders, without sockets ----------------------------------

CALL_ID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")  # the protocol page's example
VALID = (
    frame(UUID, CALL_ID.bytes)
    + frame(AUDIO, pcm(1, 20))
    + frame(DTMF, b"5")
    + frame(ERROR)
    + frame(ERROR, b"\x01")
    + frame(AUDIO, b"")
    + frame(AUDIO, pcm(2, 1))
    + frame(HANGUP)
)
VALID_EVENTS: list[Event] = [
    CallStarted(CALL_ID),
    AudioReceived(chunk(pcm(1, 20))),
    DigitPressed("5"),
    RemoteError(None),
    RemoteError(1),
    AudioReceived(chunk(b"")),
    AudioReceived(chunk(pcm(2, 1))),
    HungUp(),
]


def feed_all(pieces: list[bytes], parser: AudioSocketParser | None = None) -> list[Event]:
    parser = parser or AudioSocketParser()
    return [event for piece in pieces for event in parser.feed(piece)]


def test_every_split_of_a_valid_stream_gives_the_same_events() -> None:
    assert feed_all([VALID]) == VALID_EVENTS
    assert feed_all([VALID[i : i + 1] for i in range(len(VALID))]) == VALID_EVENTS
    for cut in range(len(VALID) + 1):
        assert feed_all([VALID[:cut], VALID[cut:]]) == VALID_EVENTS, cut


def test_every_two_cut_split_of_a_short_stream() -> None:
    short = frame(UUID, CALL_ID.bytes) + frame(DTMF, b"#") + frame(AUDIO, b"\x01\x02") + frame(0)
    expected = [
        CallStarted(CALL_ID),
        DigitPressed("#"),
        AudioReceived(chunk(b"\x01\x02")),
        HungUp(),
    ]
    for i, j in itertools.combinations_with_replacement(range(len(short) + 1), 2):
        assert feed_all([short[:i], short[i:j], short[j:]]) == expected, (i, j)


def test_all_dtmf_digits() -> None:
    digits = "0123456789*#ABCD"
    stream = frame(UUID, CALL_ID.bytes) + b"".join(frame(DTMF, d.encode()) for d in digits)
    assert feed_all([stream])[1:] == [DigitPressed(d) for d in digits]


def test_end_of_stream_is_a_hang_up_between_frames() -> None:
    parser = AudioSocketParser()
    assert parser.feed(frame(UUID, CALL_ID.bytes)) == [CallStarted(CALL_ID)]
    assert parser.call_id == CALL_ID
    assert parser.feed_eof() == [HungUp()]
    assert parser.ended
    assert parser.feed_eof() == []  # once only


def test_end_of_stream_after_a_hang_up_frame_adds_nothing() -> None:
    parser = AudioSocketParser()
    assert parser.feed(frame(UUID, CALL_ID.bytes) + frame(HANGUP))[-1] == HungUp()
    assert parser.feed_eof() == []


U = frame(UUID, CALL_ID.bytes)
VIOLATIONS = {
    "unknown-type": (U + frame(0x42), "unknown frame type 0x42"),
    "unknown-type-alone": (b"\x02", "unknown frame type 0x02"),
    "other-rate-audio": (U + frame(0x12, bytes(640)), "rate other than 8 kHz"),
    "uuid-15": (frame(UUID, bytes(15)), "UUID frame of 15 bytes"),
    "uuid-17": (frame(UUID, bytes(17)), "UUID frame of 17 bytes"),
    "second-uuid": (U + U, "a second UUID frame"),
    "audio-before-uuid": (frame(AUDIO, bytes(320)), "audio frame before the call's UUID"),
    "dtmf-before-uuid": (frame(DTMF, b"1"), "DTMF frame before the call's UUID"),
    "dtmf-two-bytes": (U + frame(DTMF, b"12"), "DTMF frame of 2 bytes"),
    "dtmf-empty": (U + frame(DTMF), "DTMF frame of 0 bytes"),
    "dtmf-not-a-digit": (U + frame(DTMF, b"x"), "not one of 0-9 * # A-D"),
    "dtmf-lowercase": (U + frame(DTMF, b"a"), "not one of 0-9 * # A-D"),
    "odd-audio": (U + frame(AUDIO, bytes(321)), "audio frame of 321 bytes"),
    "oversize": (U + frame(AUDIO, bytes(4098)), "claims 4098 payload bytes; the maximum is 4096"),
    "oversize-header-only": (U + header(AUDIO, 60_000), "claims 60000 payload bytes"),
    "hangup-with-payload": (U + frame(HANGUP, b"\x00"), "hang-up frame with a 1-byte payload"),
    "error-long-payload": (U + frame(ERROR, b"\x01\x02"), "error frame with a 2-byte payload"),
    "data-after-hangup": (U + frame(HANGUP) + frame(AUDIO, bytes(2)), "data after hang-up"),
}


@pytest.mark.parametrize("case", VIOLATIONS, ids=list(VIOLATIONS))
def test_protocol_violations_raise_protocol_error(case: str) -> None:
    stream, message = VIOLATIONS[case]
    with pytest.raises(AudioSocketProtocolError, match=message.replace("*", r"\*")):
        AudioSocketParser().feed(stream)
    # The same byte by byte: the violation is found wherever the reads split.
    parser = AudioSocketParser()
    with pytest.raises(AudioSocketProtocolError, match=message.replace("*", r"\*")):
        for i in range(len(stream)):
            parser.feed(stream[i : i + 1])


def test_data_after_hang_up_in_a_later_read() -> None:
    parser = AudioSocketParser()
    parser.feed(U + frame(HANGUP))
    with pytest.raises(AudioSocketProtocolError, match="data after hang-up"):
        parser.feed(b"\x10")


def test_events_before_a_violation_are_kept() -> None:
    with pytest.raises(AudioSocketProtocolError) as caught:
        AudioSocketParser().feed(U + frame(AUDIO, pcm(1, 20)) + frame(0x42))
    assert caught.value.events == [CallStarted(CALL_ID), AudioReceived(chunk(pcm(1, 20)))]


def test_a_failed_parser_stays_failed() -> None:
    parser = AudioSocketParser()
    with pytest.raises(AudioSocketProtocolError):
        parser.feed(b"\x42")
    with pytest.raises(AudioSocketProtocolError, match="already failed: unknown frame type 0x42"):
        parser.feed(U)
    with pytest.raises(AudioSocketProtocolError, match="already failed"):
        parser.feed_eof()


def test_end_of_stream_inside_a_frame_is_a_violation() -> None:
    parser = AudioSocketParser()
    parser.feed(U + header(AUDIO, 320) + bytes(100))
    with pytest.raises(AudioSocketProtocolError, match="100 of 320 payload bytes"):
        parser.feed_eof()
    parser = AudioSocketParser()
    parser.feed(U + b"\x10\x01")
    with pytest.raises(AudioSocketProtocolError, match=r"inside a frame header \(2 of 3 bytes\)"):
        parser.feed_eof()


def test_maximum_payload_is_configurable() -> None:
    parser = AudioSocketParser(max_payload=320)
    assert parser.feed(U + frame(AUDIO, bytes(320)))[-1] == AudioReceived(chunk(bytes(320)))
    with pytest.raises(
        AudioSocketProtocolError, match="claims 322 payload bytes; the maximum is 320"
    ):
        parser.feed(header(AUDIO, 322))
    with pytest.raises(ValueError):
        AudioSocketParser(max_payload=0)


def test_encode_audio_makes_20ms_frames_and_pads_the_last() -> None:
    data = bytes(range(256)) * 3  # 768 bytes: 2 whole frames and 128 bytes
    encoded = encode_audio(chunk(data))
    assert encoded == (
        frame(AUDIO, data[:320])
        + frame(AUDIO, data[320:640])
        + frame(AUDIO, data[640:] + bytes(192))
    )
    assert encode_audio(chunk(b"")) == b""


def test_encode_audio_refuses_other_formats() -> None:
    with pytest.raises(AudioFormatError, match="convert"):
        encode_audio(AudioChunk(bytes(640), AudioFormat(16000)))
    with pytest.raises(AudioFormatError):
        encode_audio(AudioChunk(bytes(160), AudioFormat(8000, "ulaw")))


def test_encode_hangup_and_error() -> None:
    assert encode_hangup() == b"\x00\x00\x00"
    assert encode_error() == b"\xff\x00\x00"
    assert encode_error(4) == b"\xff\x00\x01\x04"
    with pytest.raises(ValueError):
        encode_error(256)


# --- fuzzing ------------------------------------------------------------------
# Whatever bytes arrive, in whatever pieces, the parser raises nothing but
# AudioSocketProtocolError, and its outcome (events, and the error if any) does not depend on
# how the stream was cut into reads.

Outcome = tuple[list[Event], str | None]


def outcome(pieces: list[bytes], eof: bool = True) -> Outcome:
    parser = AudioSocketParser()
    events: list[Event] = []
    try:
        for piece in pieces:
            events += parser.feed(piece)
        if eof:
            events += parser.feed_eof()
    except AudioSocketProtocolError as e:
        return events + e.events, str(e)
    return events, None


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# The corpus: small streams that reach the parser's corners, one file each. It was
# made by hand from the protocol's text with `_seed_corpus` below (regenerate with
# `.venv/bin/python -m tests.test_audiosocket --write-corpus`); inputs that
# hypothesis shrinks to in a failure belong there too, as further files.
# "valid-*" files must parse to the end; "invalid-*" files must raise AudioSocketProtocolError.
CORPUS = sorted(CORPUS_DIR.glob("*.bin"))


def _seed_corpus() -> dict[str, bytes]:
    digits = b"".join(frame(DTMF, bytes([d])) for d in b"0123456789*#ABCD")
    return {
        "valid-full-call": VALID,
        "valid-all-digits-then-eof": U + digits,
        "valid-eof-without-hangup": U + frame(AUDIO, pcm(7, 20)),
        "valid-max-payload-audio": U + frame(AUDIO, bytes(4096)),
        "valid-hangup-before-uuid": frame(HANGUP),
        "valid-empty": b"",
        "invalid-unknown-type": U + frame(0x42),
        "invalid-rate-16k": U + frame(0x12, bytes(640)),
        "invalid-uuid-15": frame(UUID, bytes(15)),
        "invalid-second-uuid": U + U,
        "invalid-audio-before-uuid": frame(AUDIO, bytes(320)),
        "invalid-odd-audio": U + frame(AUDIO, bytes(321)),
        "invalid-dtmf-lowercase": U + frame(DTMF, b"a"),
        "invalid-dtmf-two-bytes": U + frame(DTMF, b"12"),
        "invalid-oversize-60k-header": U + header(AUDIO, 60_000) + bytes(10),
        "invalid-data-after-hangup": U + frame(HANGUP) + b"\x10",
        "invalid-truncated-payload": U + header(AUDIO, 320) + bytes(100),
        "invalid-truncated-header": U + b"\x10\x01",
        "invalid-hangup-with-payload": U + frame(HANGUP, b"\x00"),
        "invalid-error-long-payload": U + frame(ERROR, b"\x01\x02"),
    }


def with_corpus_examples(test: Callable[..., None]) -> Callable[..., None]:
    for path in CORPUS:
        data = path.read_bytes()
        test = example(data=data, cuts=[])(test)
        test = example(data=data, cuts=list(range(len(data))))(test)  # byte by byte
    return test


FUZZ = settings(
    max_examples=300,
    deadline=None,  # the machine is shared; speed is not the property under test
    database=None,  # no .hypothesis/ directory in the tree
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=20))
@with_corpus_examples
def test_fuzz_arbitrary_bytes_any_split(data: bytes, cuts: list[int]) -> None:
    assert outcome(cut(data, cuts)) == outcome([data])


# Random bytes rarely get past the first frame; these build streams of plausible frames
# (right and wrong types and lengths) after a valid UUID, to reach the deeper states.
any_frame = st.tuples(
    st.sampled_from([HANGUP, UUID, DTMF, AUDIO, ERROR, 0x02, 0x11, 0x42]),
    st.binary(max_size=40) | st.sampled_from([b"1", b"#", b"x", bytes(16), bytes(320)]),
).map(lambda kp: frame(*kp))


@FUZZ
@given(
    frames=st.lists(any_frame, max_size=12),
    tail=st.binary(max_size=5),
    cuts=st.lists(st.integers(0, 1500), max_size=20),
    eof=st.booleans(),
)
def test_fuzz_plausible_frames_any_split(
    frames: list[bytes], tail: bytes, cuts: list[int], eof: bool
) -> None:
    data = U + b"".join(frames) + tail
    assert outcome(cut(data, cuts), eof) == outcome([data], eof)


def spec_encode(event: Event) -> bytes:
    if isinstance(event, AudioReceived):
        return frame(AUDIO, event.chunk.data)
    if isinstance(event, DigitPressed):
        return frame(DTMF, event.digit.encode())
    if isinstance(event, RemoteError):
        return frame(ERROR, b"" if event.code is None else bytes([event.code]))
    raise AssertionError(event)


middle_event = st.one_of(
    st.binary(max_size=700).map(lambda b: AudioReceived(chunk(b[: len(b) // 2 * 2]))),
    st.sampled_from("0123456789*#ABCD").map(DigitPressed),
    st.one_of(st.none(), st.integers(0, 255)).map(RemoteError),
)


@FUZZ
@given(
    call_id=st.uuids(),
    middle=st.lists(middle_event, max_size=15),
    hang_up_frame=st.booleans(),
    cuts=st.lists(st.integers(0, 12_000), max_size=30),
)
def test_fuzz_valid_streams_round_trip(
    call_id: uuid.UUID, middle: list[Event], hang_up_frame: bool, cuts: list[int]
) -> None:
    data = frame(UUID, call_id.bytes) + b"".join(spec_encode(e) for e in middle)
    data += frame(HANGUP) if hang_up_frame else b""  # else the socket closing hangs up
    assert outcome(cut(data, cuts)) == ([CallStarted(call_id), *middle, HungUp()], None)


def test_corpus_is_present() -> None:
    assert {p.stem for p in CORPUS} >= set(_seed_corpus()), "run --write-corpus"


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_replays(path: Path) -> None:
    data = path.read_bytes()
    whole = outcome([data])
    assert outcome([data[i : i + 1] for i in range(len(data))]) == whole
    events, error = whole
    if path.stem.startswith("valid-"):
        assert error is None and events[-1] == HungUp()
    else:
        assert path.stem.startswith("invalid-") and error is not None


if __name__ == "__main__" and sys.argv[1:] == ["--write-corpus"]:
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    for name, data in _seed_corpus().items():
        (CORPUS_DIR / f"{name}.bin").write_bytes(data)
        print(f"{name}.bin: {len(data)} bytes")


# --- bounds: nothing holds a connection for ever (issue 9) ----------------------------


def test_a_connection_without_a_uuid_is_closed() -> None:
    async def main() -> None:
        bot = Bot()
        server = await serve(bot.factory, "127.0.0.1", 0, uuid_timeout_s=0.3)
        port = server.sockets[0].getsockname()[1]
        try:
            silent = await Pbx.dial(port)  # connects, says nothing
            assert await silent.read_frames_until_end() == [(HANGUP, b"")]
            silent.close()
        finally:
            server.close()
            await server.wait_closed()
        assert bot.calls == {}

    run(main())


def test_a_call_that_goes_quiet_is_ended_with_the_reason() -> None:
    async def main() -> None:
        bot = Bot()
        server = await serve(bot.factory, "127.0.0.1", 0, idle_timeout_s=0.3)
        port = server.sockets[0].getsockname()[1]
        try:
            call_id = uuid.uuid4()
            pbx = await Pbx.dial(port)
            await pbx.send(frame(UUID, call_id.bytes) + frame(AUDIO, pcm(1, 20)))
            call = await bot.call(call_id)
            await asyncio.wait_for(call.closed.wait(), 10)
            assert call.reason is not None and "nothing from the PBX" in call.reason
            assert await pbx.read_frames_until_end() == [(HANGUP, b"")]
            pbx.close()
        finally:
            server.close()
            await server.wait_closed()

    run(main())


def test_connections_beyond_the_cap_are_refused_and_the_others_go_on() -> None:
    async def main() -> None:
        bot = Bot()
        server = await serve(bot.factory, "127.0.0.1", 0, max_connections=2)
        port = server.sockets[0].getsockname()[1]
        try:
            first, second = uuid.uuid4(), uuid.uuid4()
            a, b = await Pbx.dial(port), await Pbx.dial(port)
            await a.send(frame(UUID, first.bytes))
            await b.send(frame(UUID, second.bytes))
            await bot.call(first)
            await bot.call(second)
            third = await Pbx.dial(port)
            assert await third.read_frames_until_end() == [(HANGUP, b"")]
            third.close()
            await a.send(frame(DTMF, b"5"))  # the calls in progress still work
            await until(lambda: DigitPressed("5") in bot.calls[first].events)
            await a.send(frame(HANGUP))
            await asyncio.wait_for(bot.calls[first].closed.wait(), 10)
            fourth_id = uuid.uuid4()  # a freed place is taken again
            fourth = await Pbx.dial(port)
            await fourth.send(frame(UUID, fourth_id.bytes))
            await bot.call(fourth_id)
            for pbx in (b, fourth):
                await pbx.send(frame(HANGUP))
                pbx.close()
            a.close()
        finally:
            server.close()
            await server.wait_closed()

    run(main())


def test_many_refusals_from_one_peer_log_a_few_lines(caplog: pytest.LogCaptureFixture) -> None:
    from bot.app import logs

    async def main() -> None:
        bot = Bot()
        server = await serve(bot.factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            for _ in range(30):
                pbx = await Pbx.dial(port)
                await pbx.send(frame(0x42, b"??"))
                await pbx.read_all()
                pbx.close()
        finally:
            server.close()
            await server.wait_closed()

    logs.peers = logs.PeerLimiter(per_minute=5)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        run(main())
    lines = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert len(lines) == 5, [r.getMessage() for r in lines]
    assert all(r.exc_info is None for r in lines)
