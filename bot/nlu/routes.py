"""The route vocabulary every part of the system shares (see docs/product.md).

A route is what the bot decides to do with one caller request: ``transfer:1`` ..
``transfer:6``, ``faq:<key>``, ``operator`` or ``fallback``. This module is the
only place that maps Rasa intents to routes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Keypad branches of the 1022 switchboard, as the seed article lists them.
BRANCHES: dict[int, str] = {
    1: "Trung tâm Cấp cứu 115",
    2: "Trung tâm Kiểm soát bệnh tật (CDC) Hà Nội",
    3: "Mạng lưới thầy thuốc đồng hành",
    4: "Sở Thông tin và Truyền thông",
    5: "Sở Lao động - Thương binh và Xã hội",
    6: "Ủy ban MTTQ Việt Nam TP. Hà Nội",
}

# Intents whose meaning is "put me through to branch N".
TRANSFER_INTENTS: dict[str, int] = {
    "emergency": 1,
    "cdc": 2,
    "doctor_advice": 3,
    "report_violation": 4,
    "social_officer": 5,
    "essential_supplies": 6,
}

# Retrieval intents answered by the FAQ, each with the branch responsible for it
# (offered after the answer) and its keys.
FAQ_INTENTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "faq_social": (
        5,
        (
            "lao_dong_tu_do",
            "cham_dut_hdld",
            "giao_duc_tu_thuc",
            "tam_hoan_hdld",
            "ho_ngheo",
            "nguoi_co_cong",
            "chi_tra",
        ),
    ),
    "faq_f0": (
        3,
        (
            "f0_cach_ly_tai_nha",
            "f0_dau_hieu_nguy_hiem",
            "f0_spo2",
            "f0_thuoc",
            "f0_ket_thuc_cach_ly",
            "f0_dinh_duong",
        ),
    ),
}

OPERATOR_INTENT = "operator"
CHOOSE_BRANCH_INTENT = "choose_branch"
BRANCH_ENTITY = "branch"
# The parse-result field in which the red-flag layer (bot/nlu/red_flags.py) says why.
RED_FLAG_KEY = "red_flag"

OPERATOR = "operator"
FALLBACK = "fallback"

FAQ_KEYS: tuple[str, ...] = tuple(k for _, keys in FAQ_INTENTS.values() for k in keys)
ALL_ROUTES: tuple[str, ...] = (
    *(f"transfer:{n}" for n in BRANCHES),
    *(f"faq:{k}" for k in FAQ_KEYS),
    OPERATOR,
    FALLBACK,
)


def transfer(branch: int) -> str:
    return f"transfer:{branch}"


def branch_route(value: str | int | None) -> str:
    """A keypad digit or spoken branch number -> route (0 is the operator)."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return FALLBACK
    if number == 0:
        return OPERATOR
    return transfer(number) if number in BRANCHES else FALLBACK


@dataclass(frozen=True)
class Parse:
    """The parts of a Rasa parse result that decide a route."""

    intent: str
    confidence: float
    faq_key: str | None = None  # retrieval sub-intent, e.g. "f0_thuoc"
    branch: str | None = None  # value of the `branch` entity, "0".."6"


def route_for(parse: Parse) -> str:
    if parse.intent in TRANSFER_INTENTS:
        return transfer(TRANSFER_INTENTS[parse.intent])
    if parse.intent in FAQ_INTENTS:
        _, keys = FAQ_INTENTS[parse.intent]
        return f"faq:{parse.faq_key}" if parse.faq_key in keys else FALLBACK
    if parse.intent == OPERATOR_INTENT:
        return OPERATOR
    if parse.intent == CHOOSE_BRANCH_INTENT:
        return branch_route(parse.branch)
    # Greetings, yes/no, "alo", repeat, menu, out of scope, nlu_fallback: not a request.
    return FALLBACK


def responsible_branch(route: str) -> int | None:
    """The branch to offer after a FAQ answer, or the branch a transfer goes to."""
    if route.startswith("transfer:"):
        return int(route.split(":", 1)[1])
    if route.startswith("faq:"):
        key = route.split(":", 1)[1]
        for branch, keys in FAQ_INTENTS.values():
            if key in keys:
                return branch
    return None
