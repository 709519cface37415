"""The call state machine with a fake clock: no sockets, no engines, no sleeping.

A `CallDriver` plays the part of the transport: it feeds events at given times, keeps
what the machine asked for, and finishes playback when told. The brain's replies
are typed by hand here because the machine's contract with the brain is just
"AskBrain -> BrainReplied"; the real brain is tested in test_dialogue.py.
"""

from __future__ import annotations

import pytest

from bot.call.events import (
    AskBrain,
    BrainReplied,
    CallerHungUp,
    CallStarted,
    DigitPressed,
    EndCall,
    EndUtterance,
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
)
from bot.call.machine import CallConfig, CallMachine, State
from bot.call.prompts import Prompts
from bot.nlu.replies import HangUp, Say, Transfer
from bot.vocabulary import CallEnd, NoteKind, Route
from tests.config import SETTINGS

pytestmark = pytest.mark.unit

PROMPTS = Prompts.from_domain(SETTINGS.rasa_domain)
FRAME = 0.02  # the transport ticks once per 20 ms audio frame
CONFIRM_2 = Say("Anh chị muốn được chuyển tới CDC phải không ạ?", "utter_confirm_2")


class CallDriver:
    def __init__(self, config: CallConfig | None = None) -> None:
        self.m = CallMachine(PROMPTS, config)
        self.now = 0.0
        self.log: list[tuple[float, object]] = []

    def send(self, event) -> list:
        actions = self.m.handle(event)
        self.log += [(self.now, a) for a in actions]
        return actions

    def at(self, t: float):
        self.now = t
        return t

    def run_until(self, t: float) -> list:
        """Tick every frame up to t; the actions produced on the way."""
        out = []
        while self.now + FRAME <= t + 1e-9:
            self.now = round(self.now + FRAME, 6)
            out += self.send(Tick(self.now))
        return out

    def playing(self) -> list[Play]:
        """Plays not yet finished or stopped, in order."""
        live: list[Play] = []
        for _, a in self.log:
            if isinstance(a, Play):
                live.append(a)
            elif isinstance(a, StopPlayback):
                live.clear()
        finished = {a.playback_id for _, a in self.log if isinstance(a, PlaybackFinished)}
        return [p for p in live if p.playback_id not in finished]

    def finish_playback(self) -> list:
        out = []
        for p in self.playing():
            self.log.append((self.now, PlaybackFinished(self.now, p.playback_id)))
            out += self.send(PlaybackFinished(self.now, p.playback_id))
        return out

    def greet(self) -> None:
        self.send(CallStarted(self.now))
        self.finish_playback()

    def ask(self, text: str, reply: list) -> list:
        """The caller says `text` (final transcript); the brain answers `reply`."""
        actions = self.send(FinalTranscript(self.now, text))
        request = next(a for a in actions if isinstance(a, AskBrain))
        return self.send(BrainReplied(self.now, request.request_id, tuple(reply)))


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def test_call_opens_with_the_greeting_then_listens():
    line = CallDriver()
    actions = line.send(CallStarted(0.0))
    assert [p.text for p in of(actions, Play)] == [PROMPTS.greeting.text]
    assert line.m.state is State.GREETING
    line.finish_playback()
    assert line.m.state is State.LISTENING


def test_a_request_is_asked_to_the_brain_and_its_reply_spoken():
    line = CallDriver()
    line.greet()
    asked = line.send(FinalTranscript(0.5, "tôi muốn đi xét nghiệm"))
    assert of(asked, AskBrain)[0].text == "tôi muốn đi xét nghiệm"
    assert line.m.state is State.THINKING
    req = of(asked, AskBrain)[0].request_id
    spoken = line.send(BrainReplied(0.7, req, (CONFIRM_2,)))
    assert [p.text for p in of(spoken, Play)] == [CONFIRM_2.text]
    line.finish_playback()
    assert line.m.state is State.CONFIRMING  # a yes/no question is open


def test_a_transfer_happens_after_its_notice_is_spoken():
    line = CallDriver()
    line.greet()
    actions = line.ask(
        "vâng", [Say("Dạ, tôi chuyển máy.", "utter_transfer_2"), Transfer("transfer:2")]
    )
    assert of(actions, TransferCall) == []  # not before the notice is heard
    assert of(line.finish_playback(), TransferCall) == [TransferCall("transfer:2")]
    assert line.m.state is State.TRANSFERRING


def test_goodbye_hangs_up_after_speaking():
    line = CallDriver()
    line.greet()
    line.ask("thôi cảm ơn", [Say("Cảm ơn anh chị.", "utter_goodbye"), HangUp()])
    ended = of(line.finish_playback(), EndCall)
    assert ended == [EndCall("goodbye", hang_up=True, outcome=CallEnd.GOODBYE)]
    assert line.m.state is State.ENDED


def test_a_call_ends_on_the_faq_it_was_answered_with():
    # The caller heard an answer, then hung up: the bot settled the call (it was recorded as
    # a plain hang-up, and so never counted as answered).
    line = CallDriver()
    line.greet()
    answer = Say("Dạ, người bệnh cần đo SpO2 ngày hai lần ạ.", "utter_faq_f0/f0_spo2")
    line.ask(
        "đo spo hai thế nào", [answer, Say("Anh chị cần gì nữa không ạ?", "utter_anything_else")]
    )
    line.finish_playback()
    ended = of(line.send(CallerHungUp(30.0)), EndCall)
    assert ended == [EndCall("caller hung up", hang_up=False, outcome=Route.FAQ_F0_SPO2)]


def test_a_goodbye_after_an_answer_keeps_the_answer_as_the_outcome():
    line = CallDriver()
    line.greet()
    line.ask(
        "hộ nghèo được hỗ trợ gì", [Say("Dạ, hộ nghèo được hỗ trợ ạ.", "utter_faq_social/ho_ngheo")]
    )
    line.finish_playback()
    line.ask("thôi cảm ơn", [Say("Cảm ơn anh chị.", "utter_goodbye"), HangUp()])
    [ended] = of(line.finish_playback(), EndCall)
    assert ended.outcome is Route.FAQ_HO_NGHEO and ended.hang_up


# --- barge-in -------------------------------------------------------------------


def speaking_line() -> CallDriver:
    line = CallDriver()
    line.greet()
    line.ask(
        "ép không uống thuốc gì",
        [Say("Dạ, theo hướng dẫn của Bộ Y tế ...", "utter_faq_f0/f0_thuoc")],
    )
    assert line.m.state is State.SPEAKING
    return line


def test_barge_in_stops_playback_within_one_frame_of_the_minimum_length():
    config = CallConfig()
    line = speaking_line()
    began = line.at(10.0)
    # VAD confirms speech 0.2 s after it began.
    line.at(began + 0.2)
    assert line.send(SpeechStarted(line.now, began_at=began)) == []
    line.send(PartialTranscript(line.now + 0.01, "cho tôi hỏi"))
    actions = line.run_until(began + 1.0)
    stop_times = [t for t, a in line.log if isinstance(a, StopPlayback)]
    assert len(stop_times) == 1
    assert began + config.barge_in_min_s <= stop_times[0] <= began + config.barge_in_min_s + FRAME
    assert line.m.state is State.LISTENING
    assert of(actions, StopPlayback)


@pytest.mark.parametrize("word", ["dạ", "vâng", "ừ", "alo"])
def test_a_backchannel_during_bot_speech_is_not_a_barge_in(word):
    line = speaking_line()
    began = line.at(10.0)
    line.at(10.2)
    line.send(SpeechStarted(line.now, began_at=began))
    line.send(PartialTranscript(10.3, word))
    line.run_until(10.6)  # longer than barge_in_min_s, but only a backchannel
    line.send(SpeechEnded(10.6))
    after = line.send(FinalTranscript(10.65, word))
    assert not [a for _, a in line.log if isinstance(a, StopPlayback)]
    assert of(after, AskBrain) == []
    assert line.m.state is State.SPEAKING


def test_noise_shorter_than_the_minimum_is_not_a_barge_in():
    line = speaking_line()
    line.at(10.2)
    line.send(SpeechStarted(10.2, began_at=10.0))
    line.run_until(10.3)
    line.send(SpeechEnded(10.3))
    line.send(FinalTranscript(10.35, ""))  # the recogniser made nothing of it
    assert not [a for _, a in line.log if isinstance(a, StopPlayback)]
    assert line.m.state is State.SPEAKING


def test_a_long_backchannel_ends_up_as_a_barge_in():
    config = CallConfig()
    line = speaking_line()
    line.at(10.2)
    line.send(SpeechStarted(10.2, began_at=10.0))
    line.send(PartialTranscript(10.3, "dạ vâng ạ"))
    line.run_until(10.0 + config.barge_in_backchannel_max_s + 0.1)
    assert [a for _, a in line.log if isinstance(a, StopPlayback)]


def test_a_short_request_said_over_the_bot_is_answered():
    line = speaking_line()
    line.at(10.2)
    line.send(SpeechStarted(10.2, began_at=10.0))
    line.run_until(10.4)  # 0.4 s: shorter than a barge-in
    line.send(SpeechEnded(10.4))
    actions = line.send(FinalTranscript(10.45, "cấp cứu"))
    assert of(actions, StopPlayback) and of(actions, AskBrain)[0].text == "cấp cứu"


def test_a_transfer_notice_is_not_interrupted():
    line = CallDriver()
    line.greet()
    line.ask("nhánh hai", [Say("Dạ, tôi chuyển máy.", "utter_transfer_2"), Transfer("transfer:2")])
    line.at(1.2)
    line.send(SpeechStarted(1.2, began_at=1.0))
    line.send(PartialTranscript(1.3, "à mà thôi cho tôi hỏi"))
    line.run_until(3.0)
    assert not [a for _, a in line.log if isinstance(a, StopPlayback)]
    assert of(line.finish_playback(), TransferCall) == [TransferCall("transfer:2")]


# --- emergency fast path ------------------------------------------------------


def test_an_emergency_in_the_partial_transcript_transfers_without_waiting():
    line = CallDriver()
    line.greet()
    line.at(2.2)
    line.send(SpeechStarted(2.2, began_at=2.0))
    asked = line.send(PartialTranscript(2.6, "bố tôi khó thở"))
    assert of(asked, RoutePartial) == [RoutePartial("bố tôi khó thở")]
    flag = {"rule": "danger_sign", "matched": "khó thở", "route": "transfer:1"}
    actions = line.send(
        PartialRouted(2.65, "bố tôi khó thở", "transfer:1", 0.97, "emergency", flag)
    )
    assert [p.text for p in of(actions, Play)] == [PROMPTS.transfers["transfer:1"].text]
    assert of(actions, ResetRecognizer)
    # The record says why: the rule and the words that fired it.
    notes = [n for n in of(actions, Note) if n.kind == NoteKind.EMERGENCY_FROM_PARTIAL]
    assert [n.data for n in notes] == [{"route": "transfer:1", "red_flag": flag}]
    assert of(line.finish_playback(), TransferCall) == [TransferCall("transfer:1")]
    # The rest of the utterance changes nothing.
    line.send(SpeechEnded(3.5))
    assert of(line.send(FinalTranscript(3.6, "bố tôi khó thở quá cứu với")), AskBrain) == []


def test_an_emergency_partial_during_bot_speech_stops_it():
    line = speaking_line()
    line.at(10.1)
    line.send(SpeechStarted(10.1, began_at=10.0))
    line.send(PartialTranscript(10.3, "mẹ tôi ngất rồi"))
    flag = {"rule": "danger_sign", "matched": "ngất", "route": "transfer:1"}
    actions = line.send(
        PartialRouted(10.31, "mẹ tôi ngất rồi", "transfer:1", 0.9, "emergency", flag)
    )
    assert (
        of(actions, StopPlayback)
        and of(actions, Play)[0].text == PROMPTS.transfers["transfer:1"].text
    )


def test_a_half_sentence_the_classifier_alone_calls_an_emergency_waits_for_the_end():
    # "máy đo ô xy của bố tôi…" may go on "…chín mươi tám thì có sao không": a question.
    line = CallDriver()
    line.greet()
    line.at(2.2)
    line.send(SpeechStarted(2.2, began_at=2.0))
    half = "máy đo ô xy của bố tôi"
    line.send(PartialTranscript(2.6, half))
    actions = line.send(PartialRouted(2.65, half, "transfer:1", 0.95, "emergency"))
    assert of(actions, Play) == [] and of(actions, TransferCall) == []
    assert not [n for n in of(actions, Note) if n.kind == NoteKind.EMERGENCY_FROM_PARTIAL]
    # The whole sentence goes to the brain, which decides.
    line.send(SpeechEnded(3.8))
    said = "máy đo ô xy của bố tôi chín mươi tám thì có sao không"
    assert [a.text for a in of(line.send(FinalTranscript(3.9, said)), AskBrain)] == [said]


@pytest.mark.parametrize("route, confidence", [("transfer:1", 0.5), ("transfer:2", 0.99)])
def test_other_or_unsure_partials_wait_for_the_end(route, confidence):
    line = CallDriver()
    line.greet()
    line.send(SpeechStarted(2.2, began_at=2.0))
    line.send(PartialTranscript(2.6, "tôi muốn hỏi về"))
    assert line.send(PartialRouted(2.65, "tôi muốn hỏi về", route, confidence)) == []


# --- the end of the caller's turn ------------------------------------------------------


def speaking_caller(text: str, began_at: float = 2.0) -> CallDriver:
    """A caller who has said `text` (as a partial transcript) and is still in the utterance."""
    line = CallDriver()
    line.greet()
    line.at(began_at + 0.3)
    line.send(SpeechStarted(began_at + 0.3, began_at=began_at))
    line.send(PartialTranscript(began_at + 0.5, text))
    return line


def test_a_pause_after_an_understood_request_ends_the_utterance():
    line = speaking_caller("cho tôi nói chuyện với bác sĩ")
    assert of([a for _, a in line.log], RoutePartial) == [
        RoutePartial("cho tôi nói chuyện với bác sĩ")
    ]
    routed = PartialRouted(
        2.55, "cho tôi nói chuyện với bác sĩ", "transfer:3", 0.95, "doctor_advice"
    )
    assert line.send(routed) == []  # still speaking: nothing yet
    actions = line.send(SpeechPaused(2.9))
    assert of(actions, EndUtterance) == [EndUtterance()]
    assert of(actions, Note)[0].kind == "early_end"
    # The VAD then ends the utterance; its final transcript is asked as usual.
    line.send(SpeechEnded(2.9))
    assert of(line.send(FinalTranscript(2.95, "cho tôi nói chuyện với bác sĩ")), AskBrain)


def test_a_short_answer_is_routed_at_the_pause_and_ends_the_utterance():
    line = speaking_caller("vâng")  # one word: not routed while speaking
    assert of([a for _, a in line.log], RoutePartial) == []
    assert line.send(SpeechPaused(2.8)) == [RoutePartial("vâng")]
    actions = line.send(PartialRouted(2.83, "vâng", "fallback", 0.98, "affirm"))
    assert of(actions, EndUtterance) == [EndUtterance()]


@pytest.mark.parametrize(
    "route, intent, confidence",
    [
        ("fallback", "greet", 0.99),  # a request usually follows a greeting
        ("fallback", "nlu_fallback", 0.99),
        ("fallback", "out_of_scope", 0.99),
        ("transfer:3", "doctor_advice", 0.6),  # not sure enough
    ],
)
def test_a_pause_waits_for_the_whole_silence_when_the_request_is_unclear(route, intent, confidence):
    line = speaking_caller("alo cho tôi hỏi")
    line.send(PartialRouted(2.55, "alo cho tôi hỏi", route, confidence, intent))
    assert of(line.send(SpeechPaused(2.9)), EndUtterance) == []


def test_speech_that_resumes_before_the_route_comes_back_is_not_cut():
    line = speaking_caller("vâng")
    line.send(SpeechPaused(2.8))
    line.send(SpeechResumed(2.82))
    assert line.send(PartialRouted(2.85, "vâng", "fallback", 0.98, "affirm")) == []
    # The next pause decides again, on what has been said by then.
    line.send(PartialTranscript(3.2, "vâng cho tôi hỏi thêm"))
    assert of(line.send(SpeechPaused(3.5)), RoutePartial) == [RoutePartial("vâng cho tôi hỏi thêm")]


def test_a_route_of_older_words_does_not_end_the_utterance():
    line = speaking_caller("cho tôi nói chuyện với bác sĩ")
    line.send(
        PartialRouted(2.55, "cho tôi nói chuyện với bác sĩ", "transfer:3", 0.95, "doctor_advice")
    )
    line.send(PartialTranscript(2.7, "cho tôi nói chuyện với bác sĩ à không"))
    actions = line.send(SpeechPaused(2.9))
    assert of(actions, EndUtterance) == []
    assert actions == [RoutePartial("cho tôi nói chuyện với bác sĩ à không")]


def test_partials_are_routed_at_most_every_interval_while_the_caller_speaks():
    line = speaking_caller("tôi muốn hỏi")  # routed at 2.5
    for t, text in [
        (2.6, "tôi muốn hỏi về"),
        (2.7, "tôi muốn hỏi về trợ"),
        (2.85, "tôi muốn hỏi về trợ cấp"),
    ]:
        line.send(PartialTranscript(t, text))
    assert [r.text for r in of([a for _, a in line.log], RoutePartial)] == [
        "tôi muốn hỏi",
        "tôi muốn hỏi về trợ cấp",
    ]


def test_no_early_end_in_keypad_only_mode():
    line = speaking_caller("vâng")
    line.send(StageFailed(2.6, "brain", "down"))
    line.send(SpeechStarted(3.0, began_at=2.9))
    line.send(PartialTranscript(3.2, "vâng"))
    assert of(line.send(SpeechPaused(3.5)), RoutePartial) == []


def early_ended_and_answering() -> CallDriver:
    """The caller paused after "cho tôi hỏi về trợ cấp"; the bot took it as the end and is
    answering."""
    line = speaking_caller("cho tôi hỏi về trợ cấp")
    line.send(PartialRouted(2.55, "cho tôi hỏi về trợ cấp", "faq:chi_tra", 0.9, "faq_social"))
    line.at(2.9)
    assert of(line.send(SpeechPaused(2.9)), EndUtterance)
    line.send(SpeechEnded(2.9))
    asked = of(line.send(FinalTranscript(2.95, "cho tôi hỏi về trợ cấp")), AskBrain)[0]
    line.send(BrainReplied(3.0, asked.request_id, (Say("Dạ, về trợ cấp...", "utter_faq"),)))
    assert line.playing()
    return line


def test_a_caller_who_only_paused_is_asked_again_with_all_they_said():
    line = early_ended_and_answering()
    line.at(3.5)
    line.send(SpeechStarted(3.5, began_at=3.3))  # 0.4 s after the early end
    line.run_until(3.9)  # a barge-in: the bot stops
    assert not line.playing()
    line.send(SpeechEnded(5.0))
    actions = line.send(FinalTranscript(5.1, "thất nghiệp ạ"))
    assert of(actions, AskBrain)[0].text == "cho tôi hỏi về trợ cấp thất nghiệp ạ"
    assert of(actions, Note)[0].kind == "rejoined"


def test_speech_long_after_an_early_end_is_a_new_request():
    line = early_ended_and_answering()
    line.at(5.0)
    line.send(SpeechStarted(5.0, began_at=4.8))  # 1.9 s after the early end
    line.run_until(5.4)
    line.send(SpeechEnded(6.0))
    assert of(line.send(FinalTranscript(6.1, "thế còn hộ nghèo")), AskBrain)[0].text == (
        "thế còn hộ nghèo"
    )


# --- keypad -------------------------------------------------------------------


@pytest.mark.parametrize(
    "digit, route", [(str(n), f"transfer:{n}") for n in range(1, 7)] + [("0", "operator")]
)
def test_keypad_digits_transfer_at_any_moment(digit, route):
    line = speaking_line()  # even while the bot is speaking
    actions = line.send(DigitPressed(10.0, digit))
    assert of(actions, StopPlayback)
    assert of(actions, Play)[0].text == PROMPTS.transfers[route].text
    assert of(line.finish_playback(), TransferCall) == [TransferCall(route)]


def test_keypad_works_while_the_brain_is_thinking_and_its_late_reply_is_ignored():
    line = CallDriver()
    line.greet()
    asked = line.send(FinalTranscript(1.0, "cho tôi hỏi"))
    line.send(DigitPressed(1.2, "5"))
    late = line.send(BrainReplied(1.5, of(asked, AskBrain)[0].request_id, (CONFIRM_2,)))
    assert of(late, Play) == []
    assert of(line.finish_playback(), TransferCall) == [TransferCall("transfer:5")]


def test_star_repeats_the_last_thing_said():
    line = speaking_line()
    said = [p.text for p in line.playing()]
    actions = line.send(DigitPressed(10.0, "*"))
    assert of(actions, StopPlayback) and [p.text for p in of(actions, Play)] == said


@pytest.mark.parametrize("digit", ["#", "7", "8", "9"])
def test_unused_keys_say_so_and_read_the_menu(digit):
    # As /api/chat does (issue 13): a key the caller pressed is never met with silence.
    line = speaking_line()
    actions = line.send(DigitPressed(10.0, digit))
    assert of(actions, StopPlayback)
    assert PROMPTS.unused_key is not None
    assert PROMPTS.unused_key.text == "Dạ, phím này chưa dùng ạ."
    assert [p.text for p in of(actions, Play)] == [PROMPTS.unused_key.text, PROMPTS.menu.text]
    assert of(line.finish_playback(), TransferCall) == []


# --- silence ------------------------------------------------------------------


def test_silence_reprompts_then_reads_the_menu_then_hands_to_an_operator():
    config = CallConfig(silence_timeout_s=5.0)
    line = CallDriver(config)
    line.greet()  # listening from t=0
    line.run_until(4.9)
    assert not line.playing()
    line.run_until(5.0)
    assert [p.text for p in line.playing()] == [PROMPTS.silence.text]
    line.at(6.0)
    line.finish_playback()  # listening again from t=6
    line.run_until(11.0)
    assert [p.text for p in line.playing()] == [PROMPTS.menu.text]
    line.at(20.0)
    line.finish_playback()
    line.run_until(25.0)
    assert [p.text for p in line.playing()] == [PROMPTS.transfers["operator"].text]
    assert of(line.finish_playback(), TransferCall) == [TransferCall("operator")]


def test_speech_resets_the_silence_count():
    line = CallDriver(CallConfig(silence_timeout_s=5.0))
    line.greet()
    line.run_until(5.0)
    line.finish_playback()  # first reprompt heard
    line.ask("tôi muốn hỏi", [CONFIRM_2])
    line.finish_playback()
    start = line.now
    line.run_until(start + 5.0)
    assert [p.text for p in line.playing()] == [
        PROMPTS.silence.text
    ]  # a reprompt again, not the menu


def test_no_silence_reprompt_while_the_caller_speaks_or_the_bot_thinks():
    line = CallDriver(CallConfig(silence_timeout_s=2.0, brain_timeout_s=60.0))
    line.greet()
    line.send(SpeechStarted(0.5, began_at=0.3))
    line.run_until(4.0)
    line.send(SpeechEnded(4.0))
    line.send(FinalTranscript(4.0, "một câu hỏi dài"))
    line.run_until(10.0)  # thinking: no reprompt
    assert not line.playing()


# --- failures -----------------------------------------------------------------


def test_the_brain_missing_its_deadline_gives_the_apology_and_the_keypad_still_works():
    config = CallConfig(brain_timeout_s=3.0)
    line = CallDriver(config)
    line.greet()
    line.send(FinalTranscript(1.0, "cho tôi hỏi"))
    line.run_until(3.9)
    assert not line.playing()
    line.run_until(4.0)
    assert [p.text for p in line.playing()] == [PROMPTS.technical_problem.text]
    assert line.m.degraded
    line.finish_playback()
    # Speech is no longer routed, but digits are.
    assert of(line.send(FinalTranscript(5.0, "nhánh ba")), AskBrain) == []
    line.send(DigitPressed(5.5, "3"))
    assert of(line.finish_playback(), TransferCall) == [TransferCall("transfer:3")]


@pytest.mark.parametrize("stage", ["brain", "asr", "tts"])
def test_a_failed_stage_is_never_silence(stage):
    line = CallDriver(CallConfig(silence_timeout_s=5.0))
    line.greet()
    actions = line.send(StageFailed(1.0, stage, "boom"))
    assert [p.text for p in of(actions, Play)] == [PROMPTS.technical_problem.text]
    line.finish_playback()
    # Then silence: the menu, then an operator.
    line.run_until(6.0)
    assert [p.text for p in line.playing()] == [PROMPTS.menu.text]
    line.finish_playback()
    line.run_until(line.now + 5.0)
    assert of(line.finish_playback(), TransferCall) == [TransferCall("operator")]


def test_a_recogniser_failing_at_the_end_of_an_utterance_still_leaves_the_silence_ladder():
    # The recogniser raised in finish(): the final of the utterance that ended never comes.
    # The failure settles it, so silence is heard again (the menu, then an operator)
    # instead of the machine waiting for that final for ever.
    line = CallDriver(CallConfig(silence_timeout_s=5.0))
    line.greet()
    line.send(SpeechStarted(1.0, began_at=0.8))
    line.send(SpeechEnded(2.0))
    actions = line.send(StageFailed(2.1, Stage.ASR, "finish() raised"))
    assert [p.text for p in of(actions, Play)] == [PROMPTS.technical_problem.text]
    line.at(2.1)
    line.finish_playback()
    line.run_until(7.5)
    assert [p.text for p in line.playing()] == [PROMPTS.menu.text]
    line.finish_playback()
    line.run_until(line.now + 5.0)
    assert of(line.finish_playback(), TransferCall) == [TransferCall("operator")]


def test_a_second_failure_goes_straight_to_an_operator():
    line = CallDriver()
    line.greet()
    line.send(StageFailed(1.0, "brain", "down"))
    actions = line.send(StageFailed(1.1, "tts", "down"))
    assert of(actions, TransferCall) == [TransferCall("operator")]
    assert of(actions, Play) == []  # nothing that could fail again stands in the way


# --- hang-up and ordering -----------------------------------------------------


def test_caller_hanging_up_mid_sentence_ends_the_call_and_nothing_follows():
    line = speaking_line()
    line.send(SpeechStarted(10.2, began_at=10.0))
    ended = line.send(CallerHungUp(10.5))
    assert of(ended, EndCall) == [EndCall("caller hung up", hang_up=False, outcome=CallEnd.HANGUP)]
    assert line.m.state is State.ENDED
    assert line.send(FinalTranscript(10.6, "alo")) == []
    assert line.send(Tick(99.0)) == []


def test_speech_while_thinking_is_asked_again_with_all_that_was_said():
    line = CallDriver()
    line.greet()
    first = of(line.send(FinalTranscript(1.0, "câu thứ nhất")), AskBrain)[0]
    assert of(line.send(FinalTranscript(1.5, "à không câu thứ hai")), AskBrain) == []
    actions = line.send(BrainReplied(2.0, first.request_id, (CONFIRM_2,)))
    assert of(actions, Play) == []  # superseded by the newer words
    # A pause mid-request looks like an end: the question is asked again, whole.
    assert of(actions, AskBrain)[0].text == "câu thứ nhất à không câu thứ hai"


def test_a_slow_transcript_is_not_taken_for_silence():
    line = CallDriver(CallConfig(silence_timeout_s=5.0))
    line.greet()
    line.send(SpeechStarted(1.2, began_at=1.0))
    line.run_until(2.0)
    line.send(SpeechEnded(2.0))
    line.run_until(12.0)  # the recogniser is slow under load: 10 s for the final
    assert not line.playing()
    asked = line.send(FinalTranscript(12.0, "cho tôi hỏi"))
    assert of(asked, AskBrain)


def test_a_pause_after_a_word_that_seldom_ends_a_request_waits():
    from bot.call.turn_end import EndWords

    words = EndWords({"ạ": 10, "về": 0}, {"ạ": 11, "về": 40})
    line = CallDriver(CallConfig(end_words=words, early_end_min_end_rate=0.1))
    line.greet()
    line.send(SpeechStarted(2.3, began_at=2.0))
    line.send(PartialTranscript(2.5, "cho tôi hỏi về"))
    line.send(PartialRouted(2.55, "cho tôi hỏi về", "faq:chi_tra", 0.97, "faq_social"))
    assert of(line.send(SpeechPaused(2.8)), EndUtterance) == []
    line.send(SpeechResumed(3.0))
    line.send(PartialTranscript(3.6, "cho tôi hỏi về trợ cấp ạ"))
    line.send(PartialRouted(3.65, "cho tôi hỏi về trợ cấp ạ", "faq:chi_tra", 0.97, "faq_social"))
    assert of(line.send(SpeechPaused(3.9)), EndUtterance) == [EndUtterance()]


def test_a_call_over_capacity_goes_straight_to_an_operator():
    line = CallDriver()
    actions = line.send(CallStarted(0.0, overflow=True))
    assert [n.kind for n in of(actions, Note)][:2] == ["call_started", "overflow"]
    assert [p.text for p in of(actions, Play)] == [PROMPTS.transfers["operator"].text]
    assert of(line.finish_playback(), TransferCall) == [TransferCall("operator")]


def test_going_on_before_the_first_part_is_transcribed_still_rejoins():
    line = speaking_caller("cho tôi hỏi về trợ cấp")
    line.send(PartialRouted(2.55, "cho tôi hỏi về trợ cấp", "faq:chi_tra", 0.9, "faq_social"))
    assert of(line.send(SpeechPaused(2.9)), EndUtterance)
    line.send(SpeechEnded(2.9))
    line.send(SpeechStarted(3.2, began_at=3.0))  # before the first part's final
    first = line.send(FinalTranscript(3.25, "cho tôi hỏi về trợ cấp"))
    assert of(first, AskBrain)[0].text == "cho tôi hỏi về trợ cấp"  # the first part, alone
    line.send(SpeechEnded(4.0))
    second = line.send(FinalTranscript(4.1, "thất nghiệp"))
    # The brain is still on the first part: the queue asks again with all of it.
    assert of(second, Note)[0].kind == "queued"
    reply = line.send(BrainReplied(4.2, of(first, AskBrain)[0].request_id, (CONFIRM_2,)))
    assert of(reply, AskBrain)[0].text == "cho tôi hỏi về trợ cấp thất nghiệp"


def test_a_backchannel_ended_early_is_not_joined_to_the_next_request():
    line = speaking_line()  # the bot is talking
    line.at(10.1)
    line.send(SpeechStarted(10.1, began_at=10.0))
    line.send(PartialTranscript(10.2, "vâng"))
    line.send(SpeechPaused(10.5))
    assert of(line.send(PartialRouted(10.52, "vâng", "fallback", 0.99, "affirm")), EndUtterance)
    line.send(SpeechEnded(10.5))
    assert of(line.send(FinalTranscript(10.55, "vâng")), Note)[0].kind == "backchannel_ignored"
    line.send(SpeechStarted(11.0, began_at=10.8))  # 0.3 s later: a new request
    line.send(SpeechEnded(12.0))
    asked = of(line.send(FinalTranscript(12.1, "cho tôi gặp tổng đài viên")), AskBrain)
    assert asked[0].text == "cho tôi gặp tổng đài viên"
