"""A whole VoiceCall on fake engines (tests/fakes.py) records itself: the caller and the bot
on two channels of one WAV, on the caller's clock, its path and length in the call record;
and each request with the route, intent and confidence the brain gave it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bot.nlu.replies import HangUp, Say
from bot.nlu.routes import RouteResult
from bot.store.calls import CallStore
from bot.transports.simulated import run_simulated_call
from bot.vocabulary import NoteKind, Route, Speaker
from tests.fakes import ScriptedSpeech, TableBrain, fake_engines, write_caller

pytestmark = pytest.mark.unit

ASKED = "đo spo2 thế nào"
GOODBYE = [Say("Dạ, cảm ơn anh chị đã gọi ạ.", "utter_goodbye"), HangUp()]


class UnderstandingBrain(TableBrain):
    """A table brain that also says how it understood the last request, as Rasa does."""

    async def last_route(self, conversation_id: str) -> RouteResult | None:
        return (
            RouteResult(self.heard[-1], Route.FAQ_F0_SPO2, "faq_f0", 0.93) if self.heard else None
        )


class RedFlagBrain(TableBrain):
    """A table brain whose red-flag layer fired on the last request, as Rasa's does."""

    FLAG = {"rule": "danger_sign", "matched": "khó thở", "route": "transfer:1"}

    async def last_route(self, conversation_id: str) -> RouteResult | None:
        return RouteResult(self.heard[-1], Route.TRANSFER_1, "emergency", 1.0, self.FLAG)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    with CallStore(f"sqlite:///{tmp_path / 'calls.sqlite3'}") as s:
        yield s


def make_call(
    store: CallStore,
    tmp_path: Path,
    recordings: Path | None,
    brain: type[TableBrain] = UnderstandingBrain,
    said: str = ASKED,
) -> str:
    engines = fake_engines(brain([], {said: GOODBYE}), ScriptedSpeech([said]), store)
    engines.recordings = recordings
    caller = write_caller(
        tmp_path / "caller.wav", ("silence", 4.0), ("speech", 1.0), ("silence", 3.0)
    )
    try:
        _, call = asyncio.run(run_simulated_call(engines, caller))
    finally:
        engines.decoder.shutdown(wait=False)
    return call.call_id


def test_a_call_is_recorded_on_two_channels_with_each_request_routed(
    store: CallStore, tmp_path: Path
) -> None:
    call_id = make_call(store, tmp_path, tmp_path / "recordings")
    record = store.get_call(call_id)
    assert record is not None and record.audio_path is not None
    assert Path(record.audio_path).parent.parent == tmp_path / "recordings"
    data, rate = soundfile.read(record.audio_path, dtype="int16")
    assert data.shape[1] == 2 and record.audio_seconds == pytest.approx(len(data) / rate)
    caller, bot = np.abs(data[:, 0]), np.abs(data[:, 1])
    assert caller[: int(3.5 * rate)].max() == 0  # silence before the caller spoke
    assert caller[int(4.1 * rate) : int(4.9 * rate)].max() > 1000  # the caller's speech
    assert bot[: int(1.0 * rate)].max() > 1000  # the greeting, from the start
    assert bot[int(5.0 * rate) :].max() > 1000  # the goodbye, after the request
    turns = store.turns(call_id)
    kinds = [t.kind for t in turns]
    routed = [t for t in turns if t.kind is NoteKind.ROUTED]
    assert [(t.text, t.route, t.intent, t.confidence) for t in routed] == [
        (ASKED, "faq:f0_spo2", "faq_f0", 0.93)
    ]
    assert routed[0].speaker is Speaker.CALLER
    assert kinds.index(NoteKind.HEARD) < kinds.index(NoteKind.ROUTED)


def test_recording_switched_off_records_nothing(store: CallStore, tmp_path: Path) -> None:
    call_id = make_call(store, tmp_path, None)
    record = store.get_call(call_id)
    assert record is not None and record.audio_path is None and record.audio_seconds is None
    assert not list(tmp_path.rglob("*.wav"))[1:]  # only the caller's own file


def test_why_a_request_went_to_115_is_in_the_call_record(store: CallStore, tmp_path: Path) -> None:
    call_id = make_call(store, tmp_path, None, RedFlagBrain, "mẹ tôi khó thở")
    routed = [t for t in store.turns(call_id) if t.kind is NoteKind.ROUTED]
    assert [(t.route, t.red_flag) for t in routed] == [("transfer:1", RedFlagBrain.FLAG)]
