"""The whole voice line over real loopback sockets, on the real engines.

An AudioSocket client written from the protocol's specification plays the caller;
a loopback AMI server (tests/test_ami.py) plays Asterisk's manager interface. The
speech engines are the PyPI stand-ins (Korean Vosk, English Piper): the Vietnamese
models cannot be downloaded on this machine. They run the same code paths, so the
keypad, barge-in, the recogniser's transcripts, the records and the failures are
real; only Vietnamese understanding needs the real models (audio_tests/).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import struct
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.app.engines import load_engines
from bot.asr.types import Final, Partial
from bot.audio.formats import RECOGNISER, TELEPHONE, AudioChunk, Converter, read_wav
from bot.audio.vad import VadConfig
from bot.nlu.routes import RouteResult
from bot.session.engines import Engines
from bot.session.metrics import Metrics
from bot.transports.ami import AmiClient, TransferPlan
from bot.transports.asterisk import Transferer, serve_audiosocket
from bot.vocabulary import NoteKind, Route
from tests.config import SETTINGS
from tests.fakes import voiced
from tests.test_ami import KNOWN, SECRET, USER, FakeAsterisk

FRAME = 320  # 20 ms of 8 kHz PCM16
SILENCE = b"\0" * FRAME

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # the voice line is written for asyncio


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> Iterator[Engines]:
    db = tmp_path_factory.mktemp("records") / "calls.sqlite3"
    loaded = load_engines(SETTINGS, stand_in=True, store_url=f"sqlite:///{db}")
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def korean_speech(tmp_path_factory) -> bytes:
    """'Hello, please help me' in Korean, as 8 kHz PCM16 (the stand-in recogniser is Korean)."""
    assert shutil.which("espeak-ng"), "espeak-ng is installed by `make test`"
    wav = tmp_path_factory.mktemp("speech") / "ko.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(wav), "안녕하세요 도와주세요"], check=True)
    audio = read_wav(wav)
    to_line = Converter(audio.format, TELEPHONE)
    pcm = to_line.convert(audio).data + to_line.flush().data
    return pcm + b"\0" * (-len(pcm) % FRAME)


def frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


class Caller:
    """An AudioSocket peer, as Asterisk would be: UUID, paced audio, DTMF, hang-up."""

    def __init__(self, port: int, call_id: uuid.UUID) -> None:
        self.port, self.call_id = port, call_id
        self.received = bytearray()  # the bot's audio
        self.kinds: list[int] = []
        self.closed = asyncio.Event()

    async def __aenter__(self) -> Caller:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(frame(0x01, self.call_id.bytes))
        self._reading = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        self._reading.cancel()

    async def _read(self) -> None:
        try:
            while True:
                kind, length = struct.unpack(">BH", await self.reader.readexactly(3))
                payload = await self.reader.readexactly(length)
                self.kinds.append(kind)
                if kind == 0x10:
                    self.received += payload
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()

    async def play(self, pcm: bytes) -> int:
        """Send audio as a phone line does: 20 ms frames in real time; the bytes sent
        before the bot closed the line."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(0, len(pcm), FRAME):
            if self.closed.is_set():
                return i
            self.writer.write(frame(0x10, pcm[i : i + FRAME]))
            await self.writer.drain()
            await asyncio.sleep(max(0.0, start + (i // FRAME + 1) * 0.02 - loop.time()))
        return len(pcm)

    async def silence(self, seconds: float) -> None:
        await self.play(SILENCE * int(seconds / 0.02))

    async def press(self, digit: str) -> None:
        self.writer.write(frame(0x03, digit.encode()))
        await self.writer.drain()

    async def wait_for_bot_audio(self, at_least: int, timeout: float = 60) -> None:
        """Keep the line alive with silence until the bot has sent this many bytes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < at_least and not self.closed.is_set():
            assert loop.time() < deadline, f"bot sent {len(self.received)} bytes only"
            await self.silence(0.2)


@contextlib.asynccontextmanager
async def audiosocket(engines: Engines, pbx: FakeAsterisk) -> AsyncIterator[int]:
    """An AudioSocket server for these engines, transferring through `pbx`; its port."""
    transferer = Transferer(
        AmiClient("127.0.0.1", pbx.port, USER, SECRET, timeout=5),
        TransferPlan.from_mapping("hotline-1022", SETTINGS.transfer_extensions),
    )
    server = await serve_audiosocket(engines, "127.0.0.1", 0, transferer, 4096)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def line(engines: Engines) -> AsyncIterator[tuple[int, FakeAsterisk]]:
    async with FakeAsterisk() as pbx:
        pbx.astdb = {}
        async with audiosocket(engines, pbx) as port:
            yield port, pbx


def new_call(pbx: FakeAsterisk) -> uuid.UUID:
    """A call whose channel the dial plan stored in AstDB (README, "Asterisk")."""
    call_id = uuid.uuid4()
    pbx.astdb[f"DB(bot1022/{call_id})"] = KNOWN
    return call_id


async def record(engines: Engines, call_id: uuid.UUID, timeout: float = 20):
    """The call's record once it has ended."""
    assert engines.store is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        call = await engines.store.async_get_call(str(call_id))
        if call is not None and call.ended_at is not None:
            return call, await engines.store.async_turns(str(call_id))
        assert loop.time() < deadline, f"call {call_id} not ended: {call}"
        await asyncio.sleep(0.2)


async def test_greeting_then_keypad_transfer_by_ami_redirect(engines, line):
    port, pbx = line
    call_id = new_call(pbx)
    async with Caller(port, call_id) as caller:
        await caller.wait_for_bot_audio(FRAME * 25)  # half a second of the greeting
        await caller.press("3")
        while not caller.closed.is_set():
            await caller.silence(0.2)
    redirects = [a for a in pbx.actions if a["action"] == "Redirect"]
    assert [(r["channel"], r["context"], r["exten"]) for r in redirects] == [
        (KNOWN, "hotline-1022", "3")
    ]
    assert caller.kinds[-1] == 0x00  # the bot closed its side with a hang-up frame
    assert all(k in (0x10, 0x00) for k in caller.kinds)
    call, turns = await record(engines, call_id)
    assert (call.transport, call.outcome) == ("audiosocket", "transfer:3")
    kinds = [t.kind for t in turns]
    assert kinds.index("digit") < kinds.index("transfer")
    assert any(t.kind == "say" and "thầy thuốc" in (t.text or "") for t in turns)


async def test_speech_is_recognised_answered_and_recorded(engines, line, korean_speech):
    port, pbx = line
    call_id = new_call(pbx)
    async with Caller(port, call_id) as caller:
        await caller.wait_for_bot_audio(FRAME * 25)
        heard_before = len(caller.received)
        await caller.play(korean_speech)  # over the greeting: a barge-in
        await caller.silence(1.5)
        await caller.wait_for_bot_audio(heard_before + FRAME * 50, timeout=60)
        await caller.press("0")
        while not caller.closed.is_set():
            await caller.silence(0.2)
    call, turns = await record(engines, call_id)
    utterances = [t for t in turns if t.kind == "utterance"]
    assert utterances and utterances[0].text, turns
    assert utterances[0].words and utterances[0].words[0]["end"] > utterances[0].words[0]["start"]
    assert any(t.kind == "barge_in" for t in turns)
    assert any(t.kind == "response_latency" and t.latency_ms is not None for t in turns)
    assert call.outcome == "operator"


async def test_a_malformed_frame_ends_only_that_call(engines, line):
    port, pbx = line
    bad_id, good_id = new_call(pbx), new_call(pbx)
    async with Caller(port, bad_id) as bad, Caller(port, good_id) as good:
        await asyncio.gather(bad.wait_for_bot_audio(FRAME * 5), good.wait_for_bot_audio(FRAME * 5))
        bad.writer.write(frame(0x42, b"??"))  # no such frame type
        await bad.writer.drain()
        await asyncio.wait_for(bad.closed.wait(), 10)
        await good.press("6")
        while not good.closed.is_set():
            await good.silence(0.2)
    bad_call, bad_turns = await record(engines, bad_id)
    assert bad_call.outcome == "hangup"
    assert any(t.kind == "error" and "0x42" in (t.text or "") for t in bad_turns)
    good_call, _ = await record(engines, good_id)
    assert good_call.outcome == "transfer:6"


async def test_a_caller_hanging_up_mid_greeting_ends_the_call_cleanly(engines, line):
    port, pbx = line
    call_id = new_call(pbx)
    async with Caller(port, call_id) as caller:
        await caller.wait_for_bot_audio(FRAME * 10)
        caller.writer.write(frame(0x00))
        await caller.writer.drain()
        await asyncio.wait_for(caller.closed.wait(), 10)
    call, turns = await record(engines, call_id)
    assert call.outcome == "hangup"
    assert [t.kind for t in turns][-1] == "call_ended"
    assert not [a for a in pbx.actions if a["action"] == "Redirect"]


class BrokenBrain:
    """A fake at the brain's seam: Rasa failing mid-call cannot be caused otherwise."""

    model_path = Path("broken.tar.gz")

    async def turn(self, conversation_id: str, text: str):
        raise RuntimeError("Rasa is down")

    async def route(self, text: str, partial: bool = False):
        raise RuntimeError("Rasa is down")


async def test_when_the_brain_fails_the_caller_hears_the_apology_and_the_keypad_works(
    engines, korean_speech
):
    broken = Engines(**{**engines.__dict__, "brain": BrokenBrain(), "_speakers": {}})
    async with FakeAsterisk() as pbx:
        pbx.astdb = {}
        transferer = Transferer(
            AmiClient("127.0.0.1", pbx.port, USER, SECRET, timeout=5),
            TransferPlan.from_mapping("hotline-1022", SETTINGS.transfer_extensions),
        )
        server = await serve_audiosocket(broken, "127.0.0.1", 0, transferer, 4096)
        port = server.sockets[0].getsockname()[1]
        call_id = new_call(pbx)
        async with Caller(port, call_id) as caller:
            await caller.wait_for_bot_audio(FRAME * 25)
            await caller.play(korean_speech)  # over the greeting: it stops
            await caller.silence(0.5)
            stopped_at = len(caller.received)
            await caller.wait_for_bot_audio(stopped_at + FRAME * 50)  # the apology
            await caller.press("5")
            while not caller.closed.is_set():
                await caller.silence(0.2)
        server.close()
        await server.wait_closed()
    call, turns = await record(engines, call_id)
    assert any(t.kind == "error" and "Rasa is down" in (t.text or "") for t in turns), [
        (t.kind, t.text) for t in turns
    ]
    apology = engines.prompts.technical_problem.text
    assert any(t.kind == "say" and t.text == apology for t in turns)
    assert call.outcome == "transfer:5"
    assert [r["exten"] for r in pbx.actions if r["action"] == "Redirect"] == ["5"]


async def test_prompt_cache_holds_every_fixed_prompt_in_the_line_format(engines):
    assert engines.cache is not None
    for text in (
        engines.prompts.greeting.text,
        engines.prompts.technical_problem.text,
        engines.prompts.menu.text,
    ):
        chunk = engines.cache.get(text, engines.voice, TELEPHONE)
        assert isinstance(chunk, AudioChunk) and chunk.duration_ms > 500


class UnderstandsEveryPartial:
    """A fake seam around the real brain. The stand-in recogniser is Korean, and the
    Vietnamese NLU understands none of its transcripts, so the early end of turn could not
    happen here; this brain's stateless route understands every partial transcript, so the
    glue's part (pause -> route -> end now -> final -> ask) runs. Turns go to the real brain."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.routed: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    async def route(self, text: str, partial: bool = False) -> RouteResult:
        self.routed.append(text)
        return RouteResult(text, "transfer:3", "doctor_advice", 0.99)


async def test_an_understood_request_ends_at_the_short_pause(engines, line, korean_speech):
    _, pbx = line
    brain = UnderstandsEveryPartial(engines.brain)
    # The end must come from the pause and the route, never from the silence: the trailing
    # silence is longer than the test waits. The stand-in recogniser decodes at about real
    # time here, so the partial and final transcripts may come seconds after the pause.
    vad = VadConfig(pause_ms=250, trailing_silence_ms=90_000)
    # Decoding at normal priority: the server's decoders are niced (asr_nice) to keep audio
    # pacing first, and beside another test worker at full speed on two cores a niced thread
    # gets about a tenth of a core, which held this transcript back past the 14 s this test
    # once waited, in CI. That is the priority policy, not the glue this test is about.
    decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-decoder")
    understood = dataclasses.replace(engines, brain=brain, vad_config=vad, decoder=decoder)
    call_id = new_call(pbx)
    try:
        async with audiosocket(understood, pbx) as port, Caller(port, call_id) as caller:
            await caller.wait_for_bot_audio(FRAME * 25)
            await caller.play(korean_speech)
            for _ in range(600):  # silence until the utterance is asked: 60 s at most
                await caller.silence(0.1)
                kinds = [t.kind for t in await engines.store.async_turns(str(call_id))]
                if "heard" in kinds:
                    break
            await caller.press("0")
            while not caller.closed.is_set():
                await caller.silence(0.2)
    finally:
        decoder.shutdown(wait=False, cancel_futures=True)
    call, turns = await record(engines, call_id)
    kinds = [t.kind for t in turns]
    assert "early_end" in kinds, kinds
    early = turns[kinds.index("early_end")]
    assert early.route == "transfer:3" and early.text in brain.routed
    # The utterance it ended was recognised and asked like any other, before the key.
    assert "heard" in kinds, kinds
    assert kinds.index("early_end") < kinds.index("utterance") < kinds.index("heard")
    assert kinds.index("heard") < kinds.index("digit"), kinds


async def test_a_call_over_capacity_is_handed_to_an_operator(engines, line):
    _, pbx = line
    limited = dataclasses.replace(engines, max_calls=1, metrics=Metrics())
    first_id, second_id = new_call(pbx), new_call(pbx)
    async with audiosocket(limited, pbx) as port:
        async with Caller(port, first_id) as first:
            await first.wait_for_bot_audio(FRAME * 25)  # the first call is being served
            async with Caller(port, second_id) as second:
                while not second.closed.is_set():  # the notice, then the transfer
                    # Both lines carry audio, as Asterisk's do: a silent one is a dead call.
                    await asyncio.gather(second.silence(0.2), first.silence(0.2))
            await first.press("0")
            while not first.closed.is_set():
                await first.silence(0.2)
    assert len(second.received) > 0  # the caller heard the operator notice
    redirects = [(a["channel"], a["exten"]) for a in pbx.actions if a["action"] == "Redirect"]
    assert redirects == [(KNOWN, "0"), (KNOWN, "0")]
    call, turns = await record(engines, second_id)
    assert call.outcome == "operator"
    assert [t.kind for t in turns][:2] == ["call_started", "overflow"]
    assert not any(t.kind == "utterance" for t in turns)
    assert limited.metrics.calls_overflow == 1 and limited.metrics.calls_active == 0
    first_call, _ = await record(engines, first_id)
    assert first_call.outcome == "operator"


# --- transfers that fail: the caller is never dropped (issue 9) -------------------------


@contextlib.asynccontextmanager
async def audiosocket_to(engines: Engines, ami_port: int) -> AsyncIterator[int]:
    """An AudioSocket server whose AMI is at `ami_port` (maybe nothing listening)."""
    transferer = Transferer(
        AmiClient("127.0.0.1", ami_port, USER, SECRET, timeout=2),
        TransferPlan.from_mapping("hotline-1022", SETTINGS.transfer_extensions),
    )
    server = await serve_audiosocket(engines, "127.0.0.1", 0, transferer)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def dead_ami_port() -> int:
    """A loopback port where no AMI listens any more: the manager is down."""
    async with FakeAsterisk() as pbx:
        return pbx.port


async def until_said(engines: Engines, caller: Caller, call_id: uuid.UUID, text: str) -> None:
    """Keep the line alive until the bot has said `text` (bounded)."""
    assert engines.store is not None
    for _ in range(300):  # 60 s at most
        turns = await engines.store.async_turns(str(call_id))
        if any(t.kind == "say" and t.text == text for t in turns):
            return
        assert not caller.closed.is_set(), [(t.kind, t.text) for t in turns]
        await caller.silence(0.2)
    raise AssertionError(f"the bot never said {text!r}")


async def test_ami_down_falls_back_to_operator_then_apology_and_keypad(engines):
    counted = dataclasses.replace(engines, metrics=Metrics())
    call_id = uuid.uuid4()
    async with audiosocket_to(counted, await dead_ami_port()) as port:
        async with Caller(port, call_id) as caller:
            await caller.wait_for_bot_audio(FRAME * 25)
            await caller.press("4")
            await until_said(engines, caller, call_id, engines.prompts.menu.text)
            assert not caller.closed.is_set()  # still on the line, hearing the keypad menu
            caller.writer.write(frame(0x00))  # the caller gives up
            await caller.writer.drain()
            await asyncio.wait_for(caller.closed.wait(), 10)
    call, turns = await record(engines, call_id)
    assert call.outcome == "transfer_failed", call
    assert "transfer to operator failed (ami_unavailable)" in (call.end_reason or "")
    failed = [(t.route, t.kind) for t in turns if t.kind == "transfer_failed"]
    assert failed == [("transfer:4", "transfer_failed")] * 2 + [("operator", "transfer_failed")] * 2
    said = [t.text for t in turns if t.kind == "say"]
    assert engines.prompts.transfers[Route.OPERATOR].text in said
    assert engines.prompts.technical_problem.text in said
    text = counted.metrics.prometheus()
    assert 'bot_transfer_failed_total{route="transfer:4",reason="ami_unavailable"} 2' in text
    assert 'bot_call_outcomes_total{outcome="transfer_failed"} 1' in text
    assert 'outcome="transfer:4"' not in text


async def test_an_emergency_whose_transfer_fails_hears_115(engines):
    emergency = engines.prompts.transfer_failed_emergency
    assert emergency is not None
    call_id = uuid.uuid4()
    async with audiosocket_to(engines, await dead_ami_port()) as port:
        async with Caller(port, call_id) as caller:
            await caller.wait_for_bot_audio(FRAME * 25)
            await caller.press("1")
            await until_said(engines, caller, call_id, emergency.text)
            caller.writer.write(frame(0x00))
            await caller.writer.drain()
            await asyncio.wait_for(caller.closed.wait(), 10)
    assert "một một lăm" in emergency.text
    call, turns = await record(engines, call_id)
    assert call.outcome == "transfer_failed"
    assert [t.route for t in turns if t.kind == "transfer_failed"][:2] == ["transfer:1"] * 2


async def test_ami_dropping_mid_redirect_is_retried_once(engines):
    async with FakeAsterisk(on_redirect="drop_once") as pbx:
        pbx.astdb = {}
        call_id = new_call(pbx)
        async with audiosocket(engines, pbx) as port, Caller(port, call_id) as caller:
            await caller.wait_for_bot_audio(FRAME * 25)
            await caller.press("2")
            for _ in range(300):
                if caller.closed.is_set():
                    break
                await caller.silence(0.2)
    redirects = [a["exten"] for a in pbx.actions if a["action"] == "Redirect"]
    assert redirects == ["2", "2"]
    call, turns = await record(engines, call_id)
    assert call.outcome == "transfer:2"
    assert [t.kind for t in turns].count("transfer_failed") == 1
    assert "connection" in (next(t.text for t in turns if t.kind == "transfer_failed") or "")


async def test_a_reused_uuid_never_appends_to_an_ended_call(engines, line):
    port, pbx = line
    call_id = new_call(pbx)
    for _ in range(2):
        async with Caller(port, call_id) as caller:
            await caller.wait_for_bot_audio(FRAME * 10)
            caller.writer.write(frame(0x00))
            await caller.writer.drain()
            await asyncio.wait_for(caller.closed.wait(), 10)
    first, first_turns = await record(engines, call_id)
    assert [t.kind for t in first_turns].count("call_started") == 1
    assert engines.store is not None
    again = [c for c in await engines.store.async_calls(limit=50) if c.id.startswith(f"{call_id}~")]
    assert len(again) == 1 and again[0].id != first.id


class DictatedRecognition:
    """A recogniser whose partial transcripts grow by one word of ``script`` every
    ``chunks_per_word`` chunks of speech, as a streaming recogniser's do.

    A fake at the one seam that cannot be real here: no Vietnamese voice can be synthesised
    on this machine that a recogniser understands (espeak-ng's is heard as noise; the
    natural vieneu clips say no emergency). Everything after it is real: the call machine's
    fast path, the trained model with its red-flag layer, the AMI redirect, the record."""

    def __init__(self, script: str, chunks_per_word: int) -> None:
        self.words, self.per_word = script.split(), chunks_per_word
        self.fed = 0

    def _said(self) -> str:
        return " ".join(self.words[: self.fed // self.per_word])

    def accept(self, chunk: AudioChunk) -> Partial | Final | None:
        assert chunk.format == RECOGNISER
        before = self._said()
        self.fed += 1
        said = self._said()
        return Partial(said) if said != before else None

    def finish(self) -> Final:
        said, self.fed = self._said(), 0
        return Final(said)

    async def accept_async(self, chunk: AudioChunk) -> Partial | Final | None:
        return self.accept(chunk)

    async def finish_async(self) -> Final:
        return self.finish()


class DictatedSpeech:
    name = "fake:dictated"

    def __init__(self, script: str, chunks_per_word: int) -> None:
        self.script, self.per_word = script, chunks_per_word

    def vocabulary_phrases(self) -> list[str]:
        return []

    def recognition(self, phrases=None, executor=None) -> DictatedRecognition:
        return DictatedRecognition(self.script, self.per_word)


async def test_an_emergency_said_over_the_greeting_transfers_at_once(engines, line):
    # A worried relative talks over the greeting and goes on talking; the partial transcript
    # reaches the red-flag layer and the call goes to 115 before the caller stops.
    # It starts as the SpO2 how-to question; the reading makes it an emergency.
    script = (
        "alo cho tôi hỏi máy đo ô xy của bố tôi bây giờ chỉ còn tám mươi tám "
        "thì tôi phải làm thế nào hả em nhà tôi ở đội cấn"
    )
    dictated = dataclasses.replace(engines, speech=DictatedSpeech(script, chunks_per_word=15))
    speech = voiced(12.0).tobytes()  # twelve seconds of a voice that webrtcvad hears
    async with FakeAsterisk() as pbx:
        pbx.astdb = {}
        async with audiosocket(dictated, pbx) as port:
            call_id = new_call(pbx)
            async with Caller(port, call_id) as caller:
                await caller.wait_for_bot_audio(FRAME * 25)  # half a second of the greeting
                await caller.play(speech)
                while not caller.closed.is_set():
                    await caller.silence(0.2)
            redirects = [a for a in pbx.actions if a["action"] == "Redirect"]
    assert [(r["channel"], r["exten"]) for r in redirects] == [
        (KNOWN, SETTINGS.transfer_extensions[Route.TRANSFER_1])
    ]
    call, turns = await record(dictated, call_id)
    assert call.outcome == Route.TRANSFER_1
    kinds = [t.kind for t in turns]
    assert NoteKind.EMERGENCY_FROM_PARTIAL in kinds
    assert kinds.index(NoteKind.EMERGENCY_FROM_PARTIAL) < kinds.index(NoteKind.TRANSFER)
    assert NoteKind.ROUTED not in kinds  # the brain was never asked about a final transcript
    fast = turns[kinds.index(NoteKind.EMERGENCY_FROM_PARTIAL)]
    # Decided on the words so far, with the caller still talking.
    assert fast.text and "ô xy" in fast.text and "đội cấn" not in fast.text
    # Why: the red-flag layer's rule and the caller's words, in the record.
    assert fast.red_flag is not None and fast.red_flag["rule"] == "spo2"
    assert "ô xy" in fast.red_flag["matched"]
