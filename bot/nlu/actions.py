"""Custom dialogue actions, written against rasa_sdk and run in-process.

Rasa 3.6 runs custom actions through an action server; ``bot.nlu.brain`` plugs the
rasa_sdk executor in directly (``InProcessActionEndpoint``) so there is no
second process to start, and the same code would run on a real action server.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from bot.nlu.routes import BRANCH_ENTITY, FAQ_INTENTS, OUT_OF_SCOPE_INTENT
from bot.vocabulary import BRANCHES

OFFERED_BRANCH_SLOT = "offered_branch"
LAST_TOPIC_SLOT = "last_topic"
# The FAQ whose answer ends with the offer of 115 rather than of its family's branch.
DANGER_SIGNS_KEY = "f0_dau_hieu_nguy_hiem"
_QUESTION = re.compile(r"^utter_(?:confirm|offer)_(\d)$")
_TOPIC = re.compile(r"^utter_(?:(?:faq_social|faq_f0)/|detail_)(\w+)$")
# Actions that neither count on the not-understood ladder nor reset it: listening,
# slot filling, a filler waited out, "alo", a stray yes asked about.
_LADDER_NEUTRAL = {
    "action_listen",
    "action_extract_slots",
    "action_session_start",
    "action_wait",
    "utter_im_here",
    "utter_ask_again",
}
LADDER = ("utter_ask_rephrase", "utter_menu_not_understood", "utter_transfer_operator")

# Fields of a bot event that rasa_sdk's dispatcher accepts back unchanged.
_MESSAGE_FIELDS = ("buttons", "image", "attachment", "custom", "elements", "quick_replies")


class ActionTransferBranch(Action):
    """Transfer to the branch the caller named ("nhánh năm", keypad 5); 0 is the operator."""

    def name(self) -> str:
        return "action_transfer_branch"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        # Any role: a number said alone carries the role "bare" (bot/nlu/components.py).
        entities = tracker.latest_message.get("entities") or []
        value = next((e.get("value") for e in entities if e.get("entity") == BRANCH_ENTITY), None)
        number = int(value) if value is not None and str(value).isdigit() else None
        if number == 0:
            dispatcher.utter_message(response="utter_transfer_operator")
        elif number in BRANCHES:
            dispatcher.utter_message(response=f"utter_transfer_{number}")
        else:
            # "nhánh bảy", "nhánh mười": not a branch of this switchboard.
            dispatcher.utter_message(response="utter_menu")
        return []


def offer_for(topic: str) -> int:
    """The branch offered after the answer on ``topic``: 115 after the danger signs."""
    if topic == DANGER_SIGNS_KEY:
        return 1
    for branch, routes in FAQ_INTENTS.values():
        if any(r.faq_key == topic for r in routes):
            return branch
    return 5


def _turn_responses(events: list[dict[str, Any]]) -> list[str]:
    """The response names the bot sent since the last user message."""
    names: list[str] = []
    for event in reversed(events):
        if event.get("event") == "user":
            break
        if event.get("event") == "bot":
            name = (event.get("metadata") or {}).get("utter_action")
            if name:
                names.append(str(name))
    names.reverse()
    return names


def _previous_turn_responses(events: list[dict[str, Any]]) -> list[str]:
    """The response names of the bot turn before the latest user message."""
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") == "user":
            return _turn_responses(events[:index])
    return []


class ActionTrackContext(Action):
    """Fills the context slots from what the bot said last (a custom slot mapping,
    run by Rasa's action_extract_slots on every caller message): the branch it
    offered or asked about ("bên đó"), and the FAQ topic it answered (follow-ups)."""

    def name(self) -> str:
        return "action_track_context"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        events: list[EventType] = []
        for response in _previous_turn_responses(tracker.applied_events()):
            question = _QUESTION.match(response)
            topic = _TOPIC.match(response)
            if question and tracker.get_slot(OFFERED_BRANCH_SLOT) != question.group(1):
                events.append(SlotSet(OFFERED_BRANCH_SLOT, question.group(1)))
            if topic and tracker.get_slot(LAST_TOPIC_SLOT) != topic.group(1):
                events.append(SlotSet(LAST_TOPIC_SLOT, topic.group(1)))
        return events


class ActionOffer(Action):
    """After a FAQ answer, offer the branch responsible for it (115 after danger signs)."""

    def name(self) -> str:
        return "action_offer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        topic = next(
            (m.group(1) for r in _turn_responses(tracker.events) if (m := _TOPIC.match(r))),
            tracker.get_slot(LAST_TOPIC_SLOT),
        )
        branch = offer_for(topic or "")
        dispatcher.utter_message(response=f"utter_offer_{branch}")
        return [SlotSet(OFFERED_BRANCH_SLOT, str(branch)), SlotSet(LAST_TOPIC_SLOT, topic)]


class ActionTransferOffered(Action):
    """Yes to an offer, or "bên đó": transfer to the branch offered last (slot)."""

    def name(self) -> str:
        return "action_transfer_offered"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        branch = tracker.get_slot(OFFERED_BRANCH_SLOT)
        if branch is not None and str(branch).isdigit() and int(branch) in BRANCHES:
            dispatcher.utter_message(response=f"utter_transfer_{branch}")
        else:
            dispatcher.utter_message(response="utter_menu")  # nothing was offered yet
        return []


class ActionFollowUp(Action):
    """A follow-up ("thế còn hồ sơ nộp ở đâu") gets the next details of the last topic,
    then the same offer as the answer it follows."""

    def name(self) -> str:
        return "action_follow_up"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        topic = tracker.get_slot(LAST_TOPIC_SLOT)
        if not topic:
            dispatcher.utter_message(response="utter_ask_topic")
            return []
        branch = offer_for(topic)
        dispatcher.utter_message(response=f"utter_detail_{topic}")
        dispatcher.utter_message(response=f"utter_offer_{branch}")
        return [SlotSet(OFFERED_BRANCH_SLOT, str(branch))]


class ActionNotUnderstood(Action):
    """The one ladder for every turn not understood (docs/product.md): once a rephrase
    (for out of scope: what 1022 does), twice the menu, the third time an operator.

    The step is counted from the dialogue itself: the not-understood turns since the
    last turn that was understood. Fillers (reverted), "alo" and a stray yes neither
    count nor reset it. It is also the RulePolicy's core fallback: it always ends by
    listening, so no reply can repeat an action until Rasa's circuit breaker trips.
    """

    def name(self) -> str:
        return "action_not_understood"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        listen = [FollowupAction("action_listen")]
        events = tracker.applied_events()
        if _acted_this_turn(events):
            return listen  # a gap in the rules after a bot action: just listen
        step = _misses_before(events) + 1
        if step >= len(LADDER):
            dispatcher.utter_message(response=LADDER[-1])
        elif step == 1 and _intent(tracker) == OUT_OF_SCOPE_INTENT:
            dispatcher.utter_message(response="utter_out_of_scope")
        else:
            dispatcher.utter_message(response=LADDER[step - 1])
        return listen


def _intent(tracker: Tracker) -> str:
    return str((tracker.latest_message.get("intent") or {}).get("name") or "")


def _acted_this_turn(events: list[dict[str, Any]]) -> bool:
    for event in reversed(events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "action" and event.get("name") not in _LADDER_NEUTRAL:
            return True
    return False


def _misses_before(events: list[dict[str, Any]]) -> int:
    """Not-understood turns in a row before the latest user message."""
    misses = 0
    seen_user = False
    for event in reversed(events):
        kind = event.get("event")
        if kind == "user":
            seen_user = True
        elif kind == "action" and seen_user:
            name = event.get("name")
            if name == "action_not_understood":
                misses += 1
            elif name not in _LADDER_NEUTRAL:
                break
    return misses


class ActionWait(Action):
    """A filler alone ("ừm", "ờ"): say nothing, and forget it, so the open question
    stays open and the not-understood ladder neither climbs nor resets."""

    def name(self) -> str:
        return "action_wait"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        return [UserUtteranceReverted()]


class ActionRepeat(Action):
    """Say the previous bot turn again, then forget the request to repeat.

    Reverting the "nói lại" turn leaves the dialogue exactly where it was, so a
    "có" after a repeated confirmation question still answers that question.
    """

    def name(self) -> str:
        return "action_repeat"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        for message in last_bot_turn(tracker.applied_events()):
            dispatcher.utter_message(**message)
        return [UserUtteranceReverted()]


def last_bot_turn(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bot messages sent between the last two user messages, ready to re-send.

    ``events`` ends with the caller's "nói lại"; earlier repeat requests were
    reverted, so the turn found is always the last real answer.
    """
    user_seen = 0
    turn: list[dict[str, Any]] = []
    for event in reversed(events):
        if event.get("event") == "user":
            user_seen += 1
            if user_seen == 2:
                break
        elif event.get("event") == "bot" and user_seen == 1:
            data = event.get("data") or {}
            message = {k: data[k] for k in _MESSAGE_FIELDS if data.get(k)}
            if event.get("text"):
                message["text"] = event["text"]
            # Keep the response's name so a repeated question is still known as one.
            utter_action = (event.get("metadata") or {}).get("utter_action")
            if utter_action:
                message["utter_action"] = utter_action
            turn.append(message)
    turn.reverse()
    if not turn:
        turn = [{"response": "utter_greet"}]
    return turn
