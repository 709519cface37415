"""A whole VoiceCall on fake engines (tests/fakes.py): the real VAD, call machine, session,
prompts and call store, with a scripted recogniser, a table brain and a tone voice, so the
call's record can be checked without loading a model. Calls run in real time (a few s)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest

from bot.asr.types import Final, Partial
from bot.call.machine import CallConfig
from bot.call.prompts import Prompts
from bot.nlu.replies import HangUp, Say, Transfer
from bot.nlu.routes import RouteResult
from bot.session.line import TransferResult
from bot.store.calls import CallStore
from bot.transports import simulated
from bot.transports.simulated import SimulatedLine, run_simulated_call
from bot.vocabulary import CallEnd, NoteKind, Route, Speaker
from tests.config import SETTINGS
from tests.fakes import (
    ScriptedRecognition,
    ScriptedSpeech,
    TableBrain,
    fake_engines,
    write_caller,
)

pytestmark = pytest.mark.unit

GOODBYE = [Say("Dạ, cảm ơn anh chị đã gọi ạ.", "utter_goodbye"), HangUp()]
ANSWER = [
    Say("Dạ, người bệnh đo SpO2 ngày hai lần ạ.", "utter_faq_f0/f0_spo2"),
    Say("Anh chị cần hỗ trợ gì thêm không ạ?", "utter_anything_else"),
]


@pytest.fixture
def store(tmp_path: Path) -> CallStore:
    with CallStore(f"sqlite:///{tmp_path / 'calls.sqlite3'}") as s:
        yield s


def call(store: CallStore, tmp_path: Path, heard: list[str], replies: dict, *parts, **kw):  # type: ignore[no-untyped-def]
    brain = TableBrain(greeting=[], replies=replies)
    engines = fake_engines(brain, ScriptedSpeech(heard), store)
    recording = write_caller(tmp_path / "caller.wav", *parts)
    try:
        line, voice_call = asyncio.run(run_simulated_call(engines, recording, **kw))
    finally:
        engines.decoder.shutdown(wait=False)
    [record] = store.calls()
    return record, store.turns(record.id), brain


def test_the_bots_goodbye_is_recorded_as_a_goodbye_and_counted_as_settled(
    store: CallStore, tmp_path: Path
) -> None:
    record, turns, brain = call(
        store, tmp_path, ["thôi cảm ơn em"], {"thôi cảm ơn em": GOODBYE},
        ("silence", 4.0), ("speech", 1.0), ("silence", 3.0),
    )  # fmt: skip
    assert brain.heard == ["thôi cảm ơn em"]
    # Every end of a call used to be stored as "hangup", so no call was ever "answered".
    assert record.outcome is CallEnd.GOODBYE
    assert store.counts()["answered"] == 1


def test_an_answer_heard_whole_settles_the_call_even_if_the_caller_hangs_up(
    store: CallStore, tmp_path: Path
) -> None:
    record, _, _ = call(
        store, tmp_path, ["đo spo hai thế nào"], {"đo spo hai thế nào": ANSWER},
        ("silence", 4.0), ("speech", 1.0), ("silence", 3.0), max_seconds=9.0,
    )  # fmt: skip
    assert record.outcome is Route.FAQ_F0_SPO2
    assert store.counts()["answered"] == 1


def test_every_line_of_the_record_has_the_speaker_of_its_kind(
    store: CallStore, tmp_path: Path
) -> None:
    _, turns, _ = call(
        store, tmp_path, ["cho tôi gặp tổng đài viên"],
        {"cho tôi gặp tổng đài viên": [Say("Dạ, tôi chuyển máy ạ.", "utter_transfer_operator"),
                                       Transfer(Route.OPERATOR)]},
        ("silence", 4.0), ("speech", 1.0), ("silence", 3.0),
    )  # fmt: skip
    kinds = {t.kind: t.speaker for t in turns}
    # The call's own events were stored as the caller's words.
    assert kinds[NoteKind.CALL_STARTED] is Speaker.SYSTEM
    assert kinds[NoteKind.UTTERANCE] is Speaker.CALLER
    assert kinds[NoteKind.HEARD] is Speaker.CALLER
    assert kinds[NoteKind.SAY] is Speaker.BOT
    assert kinds[NoteKind.TRANSFER] is Speaker.BOT
    assert all(t.speaker is t.kind.speaker for t in turns)
    assert store.calls()[0].outcome is Route.OPERATOR


def test_a_keypad_transfer_needs_no_brain(store: CallStore, tmp_path: Path) -> None:
    record, turns, brain = call(store, tmp_path, [], {}, ("silence", 5.0), digits="5@3.0")
    assert record.outcome is Route.TRANSFER_5 and brain.heard == []
    assert [t.text for t in turns if t.kind is NoteKind.DIGIT] == ["5"]


# --- transfers that fail (issue 9): the caller is never dropped ------------------------


@dataclasses.dataclass
class RefusingLine(SimulatedLine):
    """A PBX that refuses the first ``refusals`` transfers (a fake at the Line seam: the
    AMI itself is exercised over sockets in test_voice_line.py)."""

    refusals: int = 1000
    tried: list[Route] = dataclasses.field(default_factory=list)

    async def transfer(self, route: Route) -> TransferResult:
        self.tried.append(route)
        if len(self.tried) <= self.refusals:
            return TransferResult.failed("refused", f"Channel does not exist ({route})")
        return await super().transfer(route)


def refused_call(
    store: CallStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusals: int, digit: str
):  # type: ignore[no-untyped-def]
    lines: list[RefusingLine] = []

    def make() -> RefusingLine:
        lines.append(RefusingLine(refusals=refusals))
        return lines[-1]

    monkeypatch.setattr(simulated, "SimulatedLine", make)
    record, turns, _ = call(
        store, tmp_path, [], {}, ("silence", 12.0), digits=f"{digit}@2.0", max_seconds=12.0
    )
    return record, turns, lines[0]


def test_a_refused_transfer_is_retried_then_an_operator_then_the_apology_and_keypad(
    store: CallStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, turns, line = refused_call(store, tmp_path, monkeypatch, 1000, "4")
    assert line.tried == [Route.TRANSFER_4, Route.TRANSFER_4, Route.OPERATOR, Route.OPERATOR]
    assert record.outcome is CallEnd.TRANSFER_FAILED
    assert record.end_reason is not None and "(refused)" in record.end_reason
    failed = [(t.route, t.text) for t in turns if t.kind is NoteKind.TRANSFER_FAILED]
    assert [r for r, _ in failed] == ["transfer:4", "transfer:4", "operator", "operator"]
    assert all("Channel does not exist" in (text or "") for _, text in failed)
    said = [t.text for t in turns if t.kind is NoteKind.SAY]
    prompts = Prompts.from_domain(SETTINGS.rasa_domain)
    assert said[-2:] == [prompts.technical_problem.text, prompts.menu.text]
    assert not line._hung_up  # the bot never hung up on the caller; the caller left


def test_an_emergency_whose_transfer_fails_is_told_115(
    store: CallStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, turns, line = refused_call(store, tmp_path, monkeypatch, 1000, "1")
    emergency = Prompts.from_domain(SETTINGS.rasa_domain).transfer_failed_emergency
    assert emergency is not None and "số một một lăm" in emergency.text
    said = [t.text for t in turns if t.kind is NoteKind.SAY]
    assert emergency.text in said
    assert line.tried[:3] == [Route.TRANSFER_1, Route.TRANSFER_1, Route.OPERATOR]


def test_a_transfer_that_goes_through_on_the_retry_is_a_transfer(
    store: CallStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, turns, line = refused_call(store, tmp_path, monkeypatch, 1, "3")
    assert line.tried == [Route.TRANSFER_3, Route.TRANSFER_3]
    assert record.outcome is Route.TRANSFER_3
    assert [t.kind for t in turns].count(NoteKind.TRANSFER_FAILED) == 1


# --- faults: each call ends with the caller hearing something and an honest record -------


class FailingRecognition(ScriptedRecognition):
    """A recogniser that breaks at the end of the first utterance (a fake at the ASR seam:
    Vosk cannot be made to fail on demand)."""

    def finish(self) -> Final:
        raise RuntimeError("decoder crashed")


class FailingSpeech(ScriptedSpeech):
    def recognition(self, phrases=None, executor=None):  # type: ignore[no-untyped-def]
        return FailingRecognition(self.script)


class SlowBrain(TableBrain):
    """A brain that never answers in time (Rasa stuck behind another conversation)."""

    async def turn(self, conversation_id: str, text: str) -> list:  # type: ignore[type-arg]
        self.heard.append(text)
        await asyncio.sleep(30)
        return []


def faulty_call(engines, tmp_path: Path, digits: str = ""):  # type: ignore[no-untyped-def]
    recording = write_caller(
        tmp_path / "caller.wav", ("silence", 3.0), ("speech", 1.0), ("silence", 6.0)
    )
    try:
        return asyncio.run(run_simulated_call(engines, recording, digits=digits, max_seconds=10))
    finally:
        engines.decoder.shutdown(wait=False)


def test_a_recogniser_that_raises_gives_the_apology_and_an_honest_record(
    store: CallStore, tmp_path: Path
) -> None:
    engines = fake_engines(TableBrain([], {}), FailingSpeech(["alo"]), store)
    line, voice_call = faulty_call(engines, tmp_path, digits="5@8.0")
    [record] = store.calls()
    turns = store.turns(record.id)
    errors = [t.text for t in turns if t.kind is NoteKind.ERROR]
    assert errors and "decoder crashed" in (errors[0] or "")
    said = [t.text for t in turns if t.kind is NoteKind.SAY]
    assert engines.prompts.technical_problem.text in said
    assert record.outcome is Route.TRANSFER_5  # the keypad still works


def test_a_brain_that_misses_its_deadline_gives_the_apology(
    store: CallStore, tmp_path: Path
) -> None:
    engines = fake_engines(SlowBrain([], {}), ScriptedSpeech(["cho tôi hỏi"]), store)
    engines = dataclasses.replace(
        engines, brain_timeout_s=0.5, call_config=CallConfig(brain_timeout_s=0.5)
    )
    line, _ = faulty_call(engines, tmp_path)
    [record] = store.calls()
    turns = store.turns(record.id)
    assert any(t.kind is NoteKind.ERROR and "brain" in (t.text or "") for t in turns)
    said = [t.text for t in turns if t.kind is NoteKind.SAY]
    assert engines.prompts.technical_problem.text in said
    assert record.outcome is CallEnd.HANGUP and record.ended_at is not None


def test_a_read_only_database_loses_the_record_not_the_call(tmp_path: Path) -> None:
    db = tmp_path / "calls.sqlite3"
    with CallStore(f"sqlite:///{db}") as make:
        make.calls()  # the file and its tables exist
    read_only = CallStore(f"sqlite:///file:{db}?mode=ro&uri=true")
    try:
        engines = fake_engines(TableBrain([], {}), ScriptedSpeech([]), read_only)
        line, _ = faulty_call(engines, tmp_path, digits="3@4.0")
    finally:
        read_only.close()
    assert line.bot_audio().duration_ms > 0  # the greeting and the notice were heard
    assert line.outcome is Route.TRANSFER_3
    with CallStore(f"sqlite:///{db}") as check:
        assert check.calls() == []  # nothing half-written, nothing invented


class NoRecogniser(ScriptedSpeech):
    """Making a recogniser fails (out of memory, a broken model file)."""

    def recognition(self, phrases=None, executor=None):  # type: ignore[no-untyped-def]
        raise MemoryError("no room for a recogniser")


def test_a_call_without_a_recogniser_still_hears_the_apology_and_has_the_keypad(
    store: CallStore, tmp_path: Path
) -> None:
    engines = fake_engines(TableBrain([], {}), NoRecogniser([]), store)
    line, _ = faulty_call(engines, tmp_path, digits="6@5.0")
    [record] = store.calls()
    turns = store.turns(record.id)
    assert any(t.kind is NoteKind.ERROR and "no room" in (t.text or "") for t in turns)
    said = [t.text for t in turns if t.kind is NoteKind.SAY]
    assert engines.prompts.technical_problem.text in said
    assert record.outcome is Route.TRANSFER_6 and line.outcome is Route.TRANSFER_6


def test_a_call_whose_start_was_cut_short_is_closed_in_the_record(
    store: CallStore, tmp_path: Path
) -> None:
    from bot.session.voice_call import VoiceCall

    class Stuck(ScriptedSpeech):
        def recognition(self, phrases=None, executor=None):  # type: ignore[no-untyped-def]
            import time

            time.sleep(2)  # the decoding threads are all busy
            return super().recognition(phrases, executor)

    engines = fake_engines(TableBrain([], {}), Stuck([]), store)

    async def scenario() -> None:
        call = VoiceCall("cut-short", SimulatedLine(), engines, "audiosocket")
        starting = asyncio.create_task(call.start())
        await asyncio.sleep(0.5)
        starting.cancel()  # the server stops while the call is being set up
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await call.closed("server shutting down")

    try:
        asyncio.run(scenario())
    finally:
        engines.decoder.shutdown(wait=False)
    record = store.get_call("cut-short")
    assert record is not None and record.ended_at is not None
    assert (record.outcome, record.end_reason) == (CallEnd.ERROR, "server shutting down")


def test_the_call_record_and_health_name_the_recogniser(store: CallStore, tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app.server import make_app

    record, _, _ = call(store, tmp_path, [], {}, ("silence", 0.5), max_seconds=0.5)
    assert record.asr_engine == "fake:script"  # ScriptedSpeech.name

    brain = TableBrain(greeting=[], replies={})
    engines = fake_engines(brain, ScriptedSpeech([]), store)

    async def health() -> dict:  # type: ignore[type-arg]
        async with TestClient(TestServer(make_app(brain, SETTINGS, engines))) as client:  # type: ignore[arg-type]
            response = await client.get("/health")
            return dict(await response.json())

    try:
        assert asyncio.run(health())["asr"] == "fake:script"
    finally:
        engines.decoder.shutdown(wait=False)


class PiecewiseRecognition(ScriptedRecognition):
    """Ends a piece of the utterance by itself, as Vosk does at a pause inside it, then
    guesses the next piece (a fake at the ASR seam: Vosk's endpointing cannot be scripted)."""

    def __init__(self, script) -> None:  # type: ignore[no-untyped-def]
        super().__init__(script)
        self._heard_ms = 0.0

    def accept(self, chunk):  # type: ignore[no-untyped-def]
        before, self._heard_ms = self._heard_ms, self._heard_ms + chunk.duration_ms
        if before < 600 <= self._heard_ms:
            return Final("mẹ tôi khó thở")
        if before < 1200 <= self._heard_ms:
            return Partial("môi tím")
        return None

    def finish(self) -> Final:
        self._heard_ms = 0.0
        return Final("môi tím tái")


class PiecewiseSpeech(ScriptedSpeech):
    def recognition(self, phrases=None, executor=None):  # type: ignore[no-untyped-def]
        return PiecewiseRecognition(self.script)


class PartialsBrain(TableBrain):
    """Records the partial transcripts the call routes."""

    def __init__(self) -> None:
        super().__init__([], {})
        self.routed: list[str] = []

    async def route(self, text: str, partial: bool = False) -> RouteResult:
        self.routed.append(text)
        return RouteResult(text, Route.FALLBACK, "", 0.0)


def test_a_partial_transcript_is_the_whole_utterance_so_far(
    store: CallStore, tmp_path: Path
) -> None:
    # The fast path (an emergency, the early end of a turn) must read "mẹ tôi khó thở môi
    # tím", not the piece after the recogniser's own break, "môi tím".
    brain = PartialsBrain()
    engines = fake_engines(brain, PiecewiseSpeech([]), store)
    recording = write_caller(tmp_path / "caller.wav", ("speech", 2.0), ("silence", 2.0))
    try:
        asyncio.run(run_simulated_call(engines, recording, max_seconds=5))
    finally:
        engines.decoder.shutdown(wait=False)
    assert brain.routed, "no partial transcript was routed"
    assert brain.routed[-1] == "mẹ tôi khó thở môi tím"
    assert "môi tím" not in brain.routed
