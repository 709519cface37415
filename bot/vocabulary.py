"""The words every stage of a call shares, as types: routes, call outcomes, speakers, the kinds
of line in a call record, transports, keypad keys (docs/product.md, "Routes").

Each is defined here once. A typo in a route or a note kind is a type error, not a wrong row
in the call records, and the store checks what it writes against these same definitions.
Values are the strings the call records, the JSON of ``python -m bot route`` and /metrics
have always carried, so nothing outside the code sees a difference.
"""

from __future__ import annotations

import enum


class StrEnum(str, enum.Enum):
    """An enum whose members are their strings (``enum.StrEnum`` arrived in Python 3.11)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def _missing_(cls, value: object) -> None:
        # A clear refusal for text from outside (a request, a manifest, a settings value).
        raise ValueError(
            f"{value!r} is not a {cls.__name__}; expected one of: {', '.join(m.value for m in cls)}"
        )


# --- routes ----------------------------------------------------------------------

# Keypad branches of the 1022 switchboard, as the seed article lists them.
BRANCHES: dict[int, str] = {
    1: "Trung tâm Cấp cứu 115",
    2: "Trung tâm Kiểm soát bệnh tật (CDC) Hà Nội",
    3: "Mạng lưới thầy thuốc đồng hành",
    4: "Sở Thông tin và Truyền thông",
    5: "Sở Lao động - Thương binh và Xã hội",
    6: "Ủy ban MTTQ Việt Nam TP. Hà Nội",
}
OPERATOR_NAME = "Tổng đài viên"


class Route(StrEnum):
    """What the bot decides to do with one caller request."""

    TRANSFER_1 = "transfer:1"
    TRANSFER_2 = "transfer:2"
    TRANSFER_3 = "transfer:3"
    TRANSFER_4 = "transfer:4"
    TRANSFER_5 = "transfer:5"
    TRANSFER_6 = "transfer:6"
    FAQ_LAO_DONG_TU_DO = "faq:lao_dong_tu_do"
    FAQ_CHAM_DUT_HDLD = "faq:cham_dut_hdld"
    FAQ_GIAO_DUC_TU_THUC = "faq:giao_duc_tu_thuc"
    FAQ_TAM_HOAN_HDLD = "faq:tam_hoan_hdld"
    FAQ_HO_NGHEO = "faq:ho_ngheo"
    FAQ_NGUOI_CO_CONG = "faq:nguoi_co_cong"
    FAQ_CHI_TRA = "faq:chi_tra"
    FAQ_F0_CACH_LY_TAI_NHA = "faq:f0_cach_ly_tai_nha"
    FAQ_F0_DAU_HIEU_NGUY_HIEM = "faq:f0_dau_hieu_nguy_hiem"
    FAQ_F0_SPO2 = "faq:f0_spo2"
    FAQ_F0_THUOC = "faq:f0_thuoc"
    FAQ_F0_KET_THUC_CACH_LY = "faq:f0_ket_thuc_cach_ly"
    FAQ_F0_DINH_DUONG = "faq:f0_dinh_duong"
    OPERATOR = "operator"
    FALLBACK = "fallback"

    @classmethod
    def transfer(cls, branch: int) -> Route:
        """Branch 1-6 -> ``transfer:N`` (ValueError for any other number)."""
        return cls(f"transfer:{branch}")

    @classmethod
    def faq(cls, key: str) -> Route:
        """A FAQ key (``f0_thuoc``) -> ``faq:f0_thuoc`` (ValueError for an unknown key)."""
        return cls(f"faq:{key}")

    @property
    def branch(self) -> int | None:
        """The branch a transfer goes to (1-6); None for every other route."""
        return _BRANCH_OF.get(self)

    @property
    def faq_key(self) -> str | None:
        """The FAQ key of a ``faq:`` route; None for every other route."""
        return _FAQ_KEY_OF.get(self)

    @property
    def is_transfer(self) -> bool:
        """Put through to a person: a branch 1-6 or an operator."""
        return self.branch is not None or self is Route.OPERATOR

    @property
    def destination(self) -> str:
        """Who a transfer reaches, by name (the branch, or the operator)."""
        return BRANCHES[self.branch] if self.branch is not None else OPERATOR_NAME


# Parsed once, here: nothing else splits a route's text.
_BRANCH_OF: dict[Route, int] = {Route.transfer(n): n for n in BRANCHES}
_FAQ_KEY_OF: dict[Route, str] = {
    r: r.value.split(":", 1)[1] for r in Route if r.value.startswith("faq:")
}
FAQ_ROUTES: tuple[Route, ...] = tuple(_FAQ_KEY_OF)
TRANSFER_ROUTES: tuple[Route, ...] = (*_BRANCH_OF, Route.OPERATOR)
EMERGENCY = Route.TRANSFER_1


def branch_route(value: str | int | None) -> Route:
    """A keypad digit or spoken branch number -> its route (0 is the operator)."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return Route.FALLBACK
    if number == 0:
        return Route.OPERATOR
    return Route.transfer(number) if number in BRANCHES else Route.FALLBACK


# --- keypad ------------------------------------------------------------------------

# The twelve keys of a phone keypad, as AudioSocket, the softphone and the chat API carry them.
DTMF_KEYS = frozenset("0123456789*#")
REPEAT_KEY = "*"


# --- calls and their records ---------------------------------------------------------


class Transport(StrEnum):
    """How a call reached the bot."""

    AUDIOSOCKET = "audiosocket"  # Asterisk
    WEBSOCKET = "websocket"  # the browser softphone
    SIMULATED = "simulated"  # a recording played as a call


class CallEnd(StrEnum):
    """How a call ended when it did not end on a route."""

    GOODBYE = "goodbye"  # the bot closed the call after the caller's goodbye
    HANGUP = "hangup"  # the caller hung up before anything was settled
    ERROR = "error"  # the bot failed, or the server stopped mid-call
    # A transfer did not go through, and the call ended before anyone was reached.
    TRANSFER_FAILED = "transfer_failed"


# A call's outcome: the route it was settled on (a transfer, or the FAQ it was answered with),
# or how it ended otherwise. Settled by the bot: a ``faq:`` route or a goodbye.
Outcome = Route | CallEnd


def parse_outcome(value: str) -> Outcome:
    for kind in (Route, CallEnd):
        try:
            return kind(value)
        except ValueError:
            pass
    raise ValueError(
        f"{value!r} is not an outcome; expected a route or one of: {', '.join(CallEnd)}"
    )


def settled_by_bot(outcome: Outcome | None) -> bool:
    """The seed article's "answered": the bot settled the call itself."""
    return outcome is CallEnd.GOODBYE or (
        isinstance(outcome, Route) and outcome.faq_key is not None
    )


class RedFlagRule(StrEnum):
    """The rule of the red-flag layer (bot/nlu/red_flags.py) that sent a request to 115:
    a vital reading in its danger range, a danger sign or an acute event said about
    someone now."""

    SPO2 = "spo2"
    BREATHING_RATE = "breathing_rate"
    PULSE = "pulse"
    BLOOD_PRESSURE = "blood_pressure"
    DANGER_SIGN = "danger_sign"
    ACUTE_EVENT = "acute_event"  # an accident, a poisoning, a stroke, a birth: now


class Speaker(StrEnum):
    """Who a line of the call record is about."""

    CALLER = "caller"  # the caller's words, digits, interruptions
    BOT = "bot"  # what the bot said or did on the line
    SYSTEM = "system"  # the call's own events: started, silence, errors, decisions


class NoteKind(StrEnum):
    """The kinds of line in a call record (and of live messages to the softphone page)."""

    # the caller
    UTTERANCE = "utterance"  # a final transcript, with word times
    HEARD = "heard"  # the words asked of the brain (one or more utterances)
    DIGIT = "digit"
    BARGE_IN = "barge_in"  # spoke over the bot, which stopped
    BACKCHANNEL_IGNORED = "backchannel_ignored"  # "dạ", "vâng" over the bot: not a request
    QUEUED = "queued"  # went on speaking while the brain was busy
    REJOINED = "rejoined"  # went on after a pause the bot took for the end
    PARTIAL = "partial"  # a partial transcript: shown live, not recorded
    ROUTED = "routed"  # how the brain understood a request: route, intent, confidence
    # the bot
    SAY = "say"
    TRANSFER = "transfer"
    RESPONSE_LATENCY = "response_latency"
    # the call itself
    CALL_STARTED = "call_started"
    OVERFLOW = "overflow"  # over capacity: straight to an operator
    SILENCE = "silence"
    EARLY_END = "early_end"  # a short pause ended an understood request
    EMERGENCY_FROM_PARTIAL = "emergency_from_partial"
    FINAL_DROPPED = "final_dropped"  # a transcript not acted on, and why
    REPLY_SUPERSEDED = "reply_superseded"
    STALE_REPLY = "stale_reply"
    ERROR = "error"
    TRANSFER_FAILED = "transfer_failed"  # the line could not move the call (with the reason)
    TRANSFER_RETRY = "transfer_retry"
    CALL_ENDED = "call_ended"

    @property
    def speaker(self) -> Speaker:
        return _SPEAKER_OF[self]


_SPEAKER_OF: dict[NoteKind, Speaker] = {
    **{
        k: Speaker.CALLER
        for k in (
            NoteKind.UTTERANCE,
            NoteKind.HEARD,
            NoteKind.DIGIT,
            NoteKind.BARGE_IN,
            NoteKind.BACKCHANNEL_IGNORED,
            NoteKind.QUEUED,
            NoteKind.REJOINED,
            NoteKind.PARTIAL,
            NoteKind.ROUTED,
        )
    },
    **{k: Speaker.BOT for k in (NoteKind.SAY, NoteKind.TRANSFER, NoteKind.RESPONSE_LATENCY)},
}
for _kind in NoteKind:
    _SPEAKER_OF.setdefault(_kind, Speaker.SYSTEM)
