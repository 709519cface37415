"""Custom dialogue actions, written against rasa_sdk and run in-process.

Rasa 3.6 runs custom actions through an action server; ``bot.nlu.brain`` plugs the
rasa_sdk executor in directly (``InProcessActionEndpoint``) so there is no
second process to start, and the same code would run on a real action server.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from bot.nlu.routes import BRANCH_ENTITY
from bot.vocabulary import BRANCHES

# Fields of a bot event that rasa_sdk's dispatcher accepts back unchanged.
_MESSAGE_FIELDS = ("buttons", "image", "attachment", "custom", "elements", "quick_replies")


class ActionTransferBranch(Action):
    """Transfer to the branch the caller named ("nhánh năm", keypad 5); 0 is the operator."""

    def name(self) -> str:
        return "action_transfer_branch"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        value = next(tracker.get_latest_entity_values(BRANCH_ENTITY), None)
        number = int(value) if value is not None and str(value).isdigit() else None
        if number == 0:
            dispatcher.utter_message(response="utter_transfer_operator")
        elif number in BRANCHES:
            dispatcher.utter_message(response=f"utter_transfer_{number}")
        else:
            # "nhánh bảy", "nhánh mười": not a branch of this switchboard.
            dispatcher.utter_message(response="utter_menu")
        return []


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
        for message in last_bot_turn(tracker.events):
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
