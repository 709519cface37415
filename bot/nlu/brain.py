"""The brain: the trained Rasa model, loaded once, that routes text and runs the dialogue.

``Brain.route`` answers "what would the bot do with this sentence?" (the route
table of docs/product.md). ``Brain.turn`` runs one caller turn of the dialogue
and returns typed bot actions (say, transfer, hang up) for the chat command,
the text endpoint and, later, the call state machine.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import settings
from bot.nlu.replies import BotAction, HangUp, Say, Transfer
from bot.nlu.routes import BRANCH_ENTITY, FALLBACK, Parse, route_for

settings.quiet_libraries()

from rasa.core.agent import Agent  # noqa: E402  (after quiet_libraries)
from rasa.core.channels.channel import OutputChannel, UserMessage  # noqa: E402
from rasa.utils.endpoints import EndpointConfig  # noqa: E402
from rasa_sdk.executor import ActionExecutor  # noqa: E402

logger = logging.getLogger(__name__)


class ModelNotFound(RuntimeError):
    pass


def newest_model(models_dir: Path = settings.MODELS_DIR) -> Path:
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise ModelNotFound(
            f"no trained model in {models_dir}: run `make model` (or `python -m bot train`)"
        )
    return models[-1]


def active_model() -> Path:
    """The live model: the registry's active one (bot/tools/model_registry.py), else the newest."""
    from bot.tools.model_registry import default_registry

    return default_registry().active_path()


@dataclass(frozen=True)
class RouteResult:
    text: str
    route: str
    intent: str
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "route": self.route,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
        }


# --- seams into Rasa -----------------------------------------------------------


class InProcessActionEndpoint(EndpointConfig):
    """Runs custom actions with rasa_sdk's executor in this process.

    Rasa 3.6 calls custom actions over HTTP; this endpoint receives the same JSON
    body and answers with the same JSON, without an action server to run.
    """

    def __init__(self) -> None:
        super().__init__(url="inprocess://bot.nlu.actions")
        self.executor = ActionExecutor()
        self.executor.register_package("bot.nlu.actions")

    async def request(
        self,
        method: str = "post",
        subpath: str | None = None,
        content_type: str | None = "application/json",
        compress: bool = False,
        **kwargs: Any,
    ) -> Any:
        return await self.executor.run(kwargs["json"])


class _Collector(OutputChannel):
    """Keeps each bot message whole (text and custom payload together)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    @classmethod
    def name(cls) -> str:
        return "collector"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.messages.append(dict(message))


def _to_actions(messages: list[dict[str, Any]]) -> list[BotAction]:
    actions: list[BotAction] = []
    for message in messages:
        if message.get("text"):
            actions.append(Say(message["text"], message.get("utter_action")))
        custom = message.get("custom") or {}
        if custom.get("action") == "transfer":
            actions.append(Transfer(custom["route"]))
        elif custom.get("action") == "hangup":
            actions.append(HangUp())
    return actions


def _clean(text: str) -> str:
    # A leading "/" is Rasa's syntax for injecting an intent; callers never mean it.
    return text.strip().lstrip("/").strip()


class Brain:
    """One trained model, shared by every conversation of the process."""

    def __init__(self, model_path: Path | None = None) -> None:
        self.model_path = Path(model_path) if model_path else active_model()
        if not self.model_path.exists():
            raise ModelNotFound(f"model file not found: {self.model_path}")
        self.agent = Agent.load(str(self.model_path), action_endpoint=InProcessActionEndpoint())
        if not self.agent.is_ready():
            raise ModelNotFound(f"Rasa could not load {self.model_path}")

    # -- routing ---------------------------------------------------------------

    async def parse(self, text: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.agent.parse_message(_clean(text))
        return data

    async def route(self, text: str) -> RouteResult:
        if not _clean(text):
            return RouteResult(text=text, route=FALLBACK, intent="", confidence=0.0)
        data = await self.parse(text)
        return RouteResult(
            text=text,
            route=route_for(parse_of(data)),
            intent=data["intent"].get("name") or "",
            confidence=float(data["intent"].get("confidence") or 0.0),
        )

    async def last_route(self, conversation_id: str) -> RouteResult | None:
        """How the conversation's last caller message was understood (None if none was):
        read from the dialogue's tracker, so nothing is parsed twice."""
        tracker = await self.agent.tracker_store.retrieve(conversation_id)
        message = tracker.latest_message if tracker is not None else None
        data = message.parse_data if message is not None else None
        if not data or not data.get("intent") or str(data.get("text", "")).startswith("/"):
            return None
        return RouteResult(
            text=str(data.get("text") or ""),
            route=route_for(parse_of(data)),
            intent=data["intent"].get("name") or "",
            confidence=float(data["intent"].get("confidence") or 0.0),
        )

    # -- dialogue --------------------------------------------------------------

    async def start(self, conversation_id: str) -> list[BotAction]:
        """The greeting that opens every call."""
        return await self._handle(conversation_id, "/greet")

    async def turn(self, conversation_id: str, text: str) -> list[BotAction]:
        """One caller utterance in; what the bot does, in order, out."""
        cleaned = _clean(text)
        if not cleaned:
            return []  # nothing was said: the call layer decides about silence
        return await self._handle(conversation_id, cleaned)

    async def digit(self, conversation_id: str, digit: str) -> list[BotAction]:
        """A keypad digit 0-6 goes through the same branch action as "nhánh N"."""
        return await self._handle(
            conversation_id, f'/choose_branch{{"{BRANCH_ENTITY}": "{digit}"}}'
        )

    async def _handle(self, conversation_id: str, payload: str) -> list[BotAction]:
        collector = _Collector()
        await self.agent.handle_message(UserMessage(payload, collector, sender_id=conversation_id))
        return _to_actions(collector.messages)


def parse_of(data: dict[str, Any]) -> Parse:
    """The route-deciding parts of a Rasa parse result."""
    intent = data.get("intent") or {}
    name = intent.get("name") or ""
    selector = (data.get("response_selector") or {}).get(name) or {}
    key = (selector.get("response") or {}).get("intent_response_key") or ""
    branch = next(
        (
            str(e.get("value"))
            for e in data.get("entities") or []
            if e.get("entity") == BRANCH_ENTITY
        ),
        None,
    )
    return Parse(
        intent=name,
        confidence=float(intent.get("confidence") or 0.0),
        faq_key=key.split("/", 1)[1] if "/" in key else None,
        branch=branch,
    )


_loop: asyncio.AbstractEventLoop | None = None


def run(coro: Any) -> Any:
    """Run a coroutine from synchronous code (commands, tests) on one lasting loop.

    Rasa installs uvloop's policy, whose get_event_loop() refuses to create a
    loop; the agent's locks must also live on a single loop across turns."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop.run_until_complete(coro)
