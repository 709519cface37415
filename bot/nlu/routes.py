"""Rasa's intents -> the route vocabulary (``bot.vocabulary.Route``; see docs/product.md).

This module is the only place that maps Rasa intents, retrieval responses and the
``branch`` entity to routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.vocabulary import Route, branch_route

# Intents whose meaning is "put me through to branch N".
TRANSFER_INTENTS: dict[str, Route] = {
    "emergency": Route.TRANSFER_1,
    "cdc": Route.TRANSFER_2,
    "doctor_advice": Route.TRANSFER_3,
    "report_violation": Route.TRANSFER_4,
    "social_officer": Route.TRANSFER_5,
    "essential_supplies": Route.TRANSFER_6,
}

# Retrieval intents answered by the FAQ, each with the branch responsible for it
# (offered after the answer) and its routes.
FAQ_INTENTS: dict[str, tuple[int, tuple[Route, ...]]] = {
    "faq_social": (
        5,
        (
            Route.FAQ_LAO_DONG_TU_DO,
            Route.FAQ_CHAM_DUT_HDLD,
            Route.FAQ_GIAO_DUC_TU_THUC,
            Route.FAQ_TAM_HOAN_HDLD,
            Route.FAQ_HO_NGHEO,
            Route.FAQ_NGUOI_CO_CONG,
            Route.FAQ_CHI_TRA,
        ),
    ),
    "faq_f0": (
        3,
        (
            Route.FAQ_F0_CACH_LY_TAI_NHA,
            Route.FAQ_F0_DAU_HIEU_NGUY_HIEM,
            Route.FAQ_F0_SPO2,
            Route.FAQ_F0_THUOC,
            Route.FAQ_F0_KET_THUC_CACH_LY,
            Route.FAQ_F0_DINH_DUONG,
        ),
    ),
}

OPERATOR_INTENT = "operator"
# Understood, but not the hotline's business: the first rung of the not-understood
# ladder says so (utter_out_of_scope) instead of "please say it again".
OUT_OF_SCOPE_INTENT = "out_of_scope"
CHOOSE_BRANCH_INTENT = "choose_branch"
BRANCH_ENTITY = "branch"
# The parse-result field in which the red-flag layer (bot/nlu/red_flags.py) says why.
RED_FLAG_KEY = "red_flag"
# The parse-result field with the marks given back to text typed without any
# (bot/nlu/diacritics.py); absent when nothing was restored.
RESTORED_TEXT_KEY = "restored_text"
# Rasa names a retrieval intent's responses utter_<intent>/<key>.
_RESPONSE_PREFIX = "utter_"


@dataclass(frozen=True)
class Parse:
    """The parts of a Rasa parse result that decide a route."""

    intent: str
    confidence: float
    faq_key: str | None = None  # retrieval sub-intent, e.g. "f0_thuoc"
    branch: str | None = None  # value of the `branch` entity, "0".."6"


@dataclass(frozen=True)
class RouteResult:
    """What the brain decides for one sentence (``python -m bot route``, /api/route)."""

    text: str
    route: Route
    intent: str
    confidence: float
    # Why the red-flag layer sent this to 115 (bot/nlu/red_flags.py), so a supervisor
    # sees the rule and the words: {"rule", "matched", "route"}; None when it did not fire.
    red_flag: dict[str, str] | None = None
    # Text typed without diacritics is read a second time with its marks given back
    # (bot/nlu/diacritics.py); the restored text, so a supervisor sees how it was read.
    restored_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "text": self.text,
            "route": self.route,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
        }
        if self.red_flag:
            record["red_flag"] = self.red_flag
        if self.restored_text:
            record[RESTORED_TEXT_KEY] = self.restored_text
        return record


def _faq_route(intent: str, key: str | None) -> Route | None:
    """The FAQ route of a retrieval intent's key; None if the key is not of that family
    (a selector key from the other family is not trusted)."""
    if intent not in FAQ_INTENTS or key is None:
        return None
    _, routes = FAQ_INTENTS[intent]
    return next((r for r in routes if r.faq_key == key), None)


def route_for(parse: Parse) -> Route:
    if parse.intent in TRANSFER_INTENTS:
        return TRANSFER_INTENTS[parse.intent]
    if parse.intent in FAQ_INTENTS:
        return _faq_route(parse.intent, parse.faq_key) or Route.FALLBACK
    if parse.intent == OPERATOR_INTENT:
        return Route.OPERATOR
    if parse.intent == CHOOSE_BRANCH_INTENT:
        return branch_route(parse.branch)
    # Greetings, yes/no, "alo", repeat, menu, out of scope, nlu_fallback: not a request.
    return Route.FALLBACK


def route_of_response(response: str | None) -> Route | None:
    """The FAQ route a domain response answers (``utter_faq_f0/f0_thuoc`` -> faq:f0_thuoc)."""
    if not response or not response.startswith(_RESPONSE_PREFIX) or "/" not in response:
        return None
    intent, key = response[len(_RESPONSE_PREFIX) :].split("/", 1)
    return _faq_route(intent, key)


def responsible_branch(route: Route) -> int | None:
    """The branch to offer after a FAQ answer, or the branch a transfer goes to."""
    if route.branch is not None:
        return route.branch
    for branch, routes in FAQ_INTENTS.values():
        if route in routes:
            return branch
    return None
