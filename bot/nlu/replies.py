"""What the bot does in reply to a caller: say something, transfer, hang up.

The brain produces these; the chat command, the text endpoint and the call
state machine act on them. Kept free of Rasa so the call machine stays light.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Say:
    text: str
    response: str | None = None  # the domain response it came from, e.g. "utter_confirm_2"
    kind: str = "say"


@dataclass(frozen=True)
class Transfer:
    route: str  # "transfer:N" or "operator"
    kind: str = "transfer"


@dataclass(frozen=True)
class HangUp:
    kind: str = "hangup"


BotAction = Say | Transfer | HangUp


def action_dict(action: BotAction) -> dict[str, Any]:
    return asdict(action)
