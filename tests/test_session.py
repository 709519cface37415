"""A whole VoiceCall on fake engines (tests/fakes.py): the real VAD, call machine, session,
prompts and call store, with a scripted recogniser, a table brain and a tone voice, so the
call's record can be checked without loading a model. Calls run in real time (a few s)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.nlu.replies import HangUp, Say, Transfer
from bot.store.calls import CallStore
from bot.transports.simulated import run_simulated_call
from bot.vocabulary import CallEnd, NoteKind, Route, Speaker
from tests.fakes import ScriptedSpeech, TableBrain, fake_engines, write_caller

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
