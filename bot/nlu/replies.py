"""What the bot does in reply to a caller: say something, transfer, hang up.

The brain produces these; the chat command, the text endpoint and the call
state machine act on them. Kept free of Rasa so the call machine stays light.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bot.nlu.routes import route_of_response
from bot.vocabulary import Route


@dataclass(frozen=True)
class Say:
    text: str
    response: str | None = None  # the domain response it came from, e.g. "utter_confirm_2"
    kind: str = "say"

    @property
    def route(self) -> Route | None:
        """The FAQ route this answers, if it is a FAQ answer."""
        return route_of_response(self.response)


@dataclass(frozen=True)
class Transfer:
    route: Route  # a branch or the operator
    kind: str = "transfer"


@dataclass(frozen=True)
class HangUp:
    kind: str = "hangup"


BotAction = Say | Transfer | HangUp


def action_dict(action: BotAction) -> dict[str, Any]:
    return asdict(action)
