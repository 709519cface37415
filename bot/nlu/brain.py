"""The brain: the trained Rasa model, loaded once, that routes text and runs the dialogue.

``Brain.route`` answers "what would the bot do with this sentence?" (the route
table of docs/product.md). ``Brain.turn`` runs one caller turn of the dialogue
and returns typed bot actions (say, transfer, hang up) for the chat command,
the text endpoint and, later, the call state machine.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Entry points call bot.app.settings.quiet_libraries() before this import: Rasa and
# TensorFlow configure logging when they are imported.
from rasa.core.agent import Agent
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from rasa_sdk.executor import ActionExecutor

from bot.errors import ModelMissing
from bot.nlu.components import BARE_ROLE
from bot.nlu.red_flags import red_flag
from bot.nlu.replies import BotAction, HangUp, Say, Transfer
from bot.nlu.routes import (
    BRANCH_ENTITY,
    CHOOSE_BRANCH_INTENT,
    FAQ_INTENTS,
    OPERATOR_INTENT,
    RED_FLAG_KEY,
    RESTORED_TEXT_KEY,
    TRANSFER_INTENTS,
    Parse,
    RouteResult,
    route_for,
)
from bot.nlu.text import normalise, strip_diacritics
from bot.vocabulary import DTMF_KEYS, REPEAT_KEY, Route

logger = logging.getLogger(__name__)


def newest_model(models_dir: Path) -> Path:
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise ModelMissing(
            f"no trained model in {models_dir}: run `make model` (or `python -m bot train`)"
        )
    return models[-1]


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


class BoundedTrackerStore(InMemoryTrackerStore):
    """Rasa's in-memory tracker store with bounds: at most ``max_conversations`` kept (the
    least recently used dropped first), each dropped after ``ttl_s`` idle. Rasa's own keeps
    every conversation for ever, so /api/chat could grow the process without end."""

    def __init__(
        self,
        max_conversations: int = 1000,  # BOT_MAX_CONVERSATIONS
        ttl_s: float = 1800.0,  # BOT_CONVERSATION_TTL_S
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(Domain.empty())  # Agent.load puts the model's domain in
        self.store: OrderedDict[str, str] = OrderedDict()
        self.max_conversations = max_conversations
        self.ttl_s = ttl_s
        self._clock = clock
        self._used: dict[str, float] = {}

    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(tracker)
        self._touch(tracker.sender_id)
        while len(self.store) > self.max_conversations:
            self.forget(next(iter(self.store)))

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        self._expire()
        if sender_id in self.store:
            self._touch(sender_id)
        return await super().retrieve(sender_id)

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        self._expire()
        return await super().retrieve_full_tracker(sender_id)

    def forget(self, sender_id: str) -> None:
        self.store.pop(sender_id, None)
        self._used.pop(sender_id, None)

    def _touch(self, sender_id: str) -> None:
        self.store.move_to_end(sender_id)
        self._used[sender_id] = self._clock()

    def _expire(self) -> None:
        # The store is in order of use: the idle ones are at its front.
        cutoff = self._clock() - self.ttl_s
        while self.store:
            oldest = next(iter(self.store))
            if self._used.get(oldest, cutoff) > cutoff:
                return
            self.forget(oldest)


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
            actions.append(Transfer(Route(custom["route"])))  # a typed route from here on
        elif custom.get("action") == "hangup":
            actions.append(HangUp())
    return actions


# Of the twelve keys of a phone keypad (DTMF_KEYS), 0-6 are routes, * repeats, the rest
# are unused here.
_BRANCH_KEYS = "0123456"
# A request at least this sure counts as one need of several in one breath.
_NEED_CONFIDENCE = 0.8
_EMERGENCY_INTENT = "emergency"
# "không phải, tôi muốn hỏi về …": a no, then the request that replaces the question.
_CORRECTION = re.compile(
    r"^(?:da |u |o )?(?:khong phai|khong dung|nham roi|sai roi|khong)"
    r"(?: (?:dau|roi|a|em|chi|anh|the|cai do|y toi))* (?P<rest>.+)$"
)
_CORRECTION_CONFIDENCE = 0.6
# "tôi muốn hỏi về …", "cho tôi hỏi …": the request is the question after it.
_QUESTION_PREAMBLE = re.compile(
    r"^(?:(?:tôi|em|chị|anh|mình|cháu|bác) )?(?:(?:muốn|cần|xin) )?(?:cho (?:tôi|em|chị|mình) )?"
    r"hỏi(?: thăm)?(?: về| là)? "
)
# Words that join two needs said in one breath.
_JOINS = re.compile(
    r" (?:va|voi ca|voi lai|roi con|con nua la|them nua la|ngoai ra|con them|va ca|dong thoi) "
)


def _request_of(data: dict[str, Any], min_confidence: float) -> Route | None:
    """The route of a parse if it is a request (a transfer, a FAQ, the operator, a key)."""
    parse = parse_of(data)
    request_intents = {*TRANSFER_INTENTS, *FAQ_INTENTS, OPERATOR_INTENT, CHOOSE_BRANCH_INTENT}
    if parse.intent not in request_intents or parse.confidence < min_confidence:
        return None
    route = route_for(parse)
    return None if route == Route.FALLBACK else route


def _split_at(words: list[str], folded: list[str]) -> list[str]:
    """Pieces of the utterance between joining words, in the caller's own spelling."""
    text = " ".join(folded)
    pieces, start = [], 0
    for match in _JOINS.finditer(text):
        left = len(text[: match.start()].split())
        joint = len(match.group(0).split())
        pieces.append(" ".join(words[start:left]))
        start = left + joint
    pieces.append(" ".join(words[start:]))
    return [p for p in pieces if len(p.split()) >= 3]


def _only_the_last_question(actions: list[BotAction]) -> list[BotAction]:
    """Several needs answered in one turn: a question asked before a later answer
    was never heard as the open one; keep only the last."""
    last_say = max((i for i, a in enumerate(actions) if isinstance(a, Say)), default=-1)
    return [
        a
        for i, a in enumerate(actions)
        if not (
            isinstance(a, Say)
            and i < last_say
            and (a.response or "").startswith(("utter_offer_", "utter_confirm_"))
        )
    ]


def _clean(text: str) -> str:
    # A leading "/" is Rasa's syntax for injecting an intent; callers never mean it.
    return text.strip().lstrip("/").strip()


class Brain:
    """One trained model, shared by every conversation of the process."""

    def __init__(
        self, model_path: Path, max_conversations: int = 1000, conversation_ttl_s: float = 1800.0
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.exists():
            raise ModelMissing(f"model file not found: {self.model_path}")
        self.tracker_store = BoundedTrackerStore(max_conversations, conversation_ttl_s)
        self.agent = Agent.load(
            str(self.model_path),
            action_endpoint=InProcessActionEndpoint(),
            tracker_store=self.tracker_store,
        )
        if not self.agent.is_ready():
            raise ModelMissing(f"Rasa could not load {self.model_path}")

    # -- routing ---------------------------------------------------------------

    async def parse(self, text: str) -> dict[str, Any]:
        """Rasa's parse result; text typed without any diacritics is read twice, as
        typed and with its marks given back (bot/nlu/diacritics.py)."""
        typed: dict[str, Any] = await self.agent.parse_message(_clean(text))
        restored = typed.get(RESTORED_TEXT_KEY)
        if not restored:
            return typed
        return read_typed_text(typed, await self.agent.parse_message(restored))

    async def route(self, text: str, partial: bool = False) -> RouteResult:
        """The route of ``text``. ``partial``: a transcript still growing (the voice
        line's fast path), where a number alone is no key yet ("cho tôi một…" goes on),
        and a red flag the rest of the sentence may take back waits for it ("khó thở có…
        phải là dấu hiệu nặng không": ``red_flag(text, partial=True)``)."""
        if not _clean(text):
            return RouteResult(text=text, route=Route.FALLBACK, intent="", confidence=0.0)
        data = await self.parse(text)
        if partial and (
            _bare_key(data) or (data.get(RED_FLAG_KEY) and red_flag(text, partial=True) is None)
        ):
            return RouteResult(text=text, route=Route.FALLBACK, intent="", confidence=0.0)
        return _route_result(text, data)

    async def last_route(self, conversation_id: str) -> RouteResult | None:
        """How the conversation's last caller message was understood (None if none was):
        read from the dialogue's tracker, so nothing is parsed twice."""
        tracker = await self.agent.tracker_store.retrieve(conversation_id)
        message = tracker.latest_message if tracker is not None else None
        data = message.parse_data if message is not None else None
        if not data or not data.get("intent") or str(data.get("text", "")).startswith("/"):
            return None
        return _route_result(str(data.get("text") or ""), data)

    # -- dialogue --------------------------------------------------------------

    async def start(self, conversation_id: str) -> list[BotAction]:
        """The greeting that opens every call."""
        return await self._handle(conversation_id, "/greet")

    async def turn(self, conversation_id: str, text: str) -> list[BotAction]:
        """One caller utterance in; what the bot does, in order, out.

        An utterance may hold more than one request: a correction ("không phải, tôi
        muốn hỏi về …") answers the open question with the new request; two needs in
        one breath are answered one after the other, an emergency alone and first."""
        cleaned = _clean(text)
        if not cleaned:
            return []  # nothing was said: the call layer decides about silence
        actions: list[BotAction] = []
        for request in await self._requests_in(cleaned):
            done = await self._handle(conversation_id, request)
            actions += done
            if any(isinstance(a, (Transfer, HangUp)) for a in done):
                break
        return _only_the_last_question(actions)

    async def _requests_in(self, text: str) -> list[str]:
        words = normalise(text).split()
        folded = strip_diacritics(" ".join(words)).split()
        correction = _CORRECTION.match(" ".join(folded))
        pieces = _split_at(words, folded)
        if not correction and len(pieces) < 2:
            return [text]  # the common case costs no extra parse
        whole = await self.parse(text)
        if parse_of(whole).intent == _EMERGENCY_INTENT:
            return [text]
        if correction and parse_of(whole).intent not in (*TRANSFER_INTENTS, *FAQ_INTENTS):
            rest = " ".join(words[len(folded) - len(correction.group("rest").split()) :])
            new_request = await self._best_request(rest)
            if new_request:
                return [new_request]
        needs: list[tuple[str, Route]] = []
        for piece in pieces if len(pieces) >= 2 else []:
            route = _request_of(await self.parse(piece), _NEED_CONFIDENCE)
            if route and route not in [r for _, r in needs]:
                needs.append((piece, route))
        if len(needs) < 2:
            return [text]
        emergency = [p for p, r in needs if r == Route.TRANSFER_1]
        if emergency:
            return emergency[:1]
        # Answers first, then at most one transfer: a transfer ends the conversation.
        answers = [p for p, r in needs if r.faq_key]
        others = [p for p, r in needs if not r.faq_key]
        return answers + others[:1]

    async def _best_request(self, text: str) -> str | None:
        """``text`` or its question without the preamble ("tôi muốn hỏi về …"), whichever
        is the surer request; None if neither is one. "Tôi muốn …" leans to a transfer."""
        candidates = [text]
        question = _QUESTION_PREAMBLE.sub("", text, count=1)
        if question != text:
            candidates.append(question)
        best: tuple[float, str] | None = None
        for candidate in candidates:
            if len(candidate.split()) < 3:
                continue
            data = await self.parse(candidate)
            if _request_of(data, _CORRECTION_CONFIDENCE):
                confidence = parse_of(data).confidence
                if best is None or confidence > best[0]:
                    best = (confidence, candidate)
        return best[1] if best else None

    async def digit(self, conversation_id: str, digit: str) -> list[BotAction]:
        """A keypad key, as on the phone: 0-6 go through the same branch action as
        "nhánh N", * repeats, '#' and 7-9 say the key is not used and read the menu."""
        if digit not in DTMF_KEYS:
            raise ValueError(f"not a keypad key: {digit!r}")
        if digit == REPEAT_KEY:
            return await self._handle(conversation_id, "/repeat")
        if digit not in _BRANCH_KEYS:
            return await self._handle(conversation_id, "/unused_key")
        return await self._handle(
            conversation_id, f'/choose_branch{{"{BRANCH_ENTITY}": "{digit}"}}'
        )

    async def forget(self, conversation_id: str) -> None:
        """Drop a conversation's history (a call that ended, a chat that expired)."""
        self.tracker_store.forget(conversation_id)

    async def _handle(self, conversation_id: str, payload: str) -> list[BotAction]:
        collector = _Collector()
        # The caller's text is read here, so typed text gets its second reading too;
        # a "/intent" payload is the bot's own, for Rasa to unpack.
        data = None if payload.startswith("/") else await self.parse(payload)
        await self.agent.handle_message(
            UserMessage(payload, collector, sender_id=conversation_id, parse_data=data)
        )
        return _to_actions(collector.messages)


def _bare_key(data: dict[str, Any]) -> bool:
    """A key found from a number said alone (bot/nlu/components.py)."""
    return (data.get("intent") or {}).get("name") == CHOOSE_BRANCH_INTENT and any(
        e.get("entity") == BRANCH_ENTITY and e.get("role") == BARE_ROLE
        for e in data.get("entities") or []
    )


def _route_result(text: str, data: dict[str, Any]) -> RouteResult:
    """A parse result as the route it decides, with why (red flag) and how it was read."""
    return RouteResult(
        text=text,
        route=route_for(parse_of(data)),
        intent=data["intent"].get("name") or "",
        confidence=float(data["intent"].get("confidence") or 0.0),
        red_flag=data.get(RED_FLAG_KEY),
        restored_text=data.get(RESTORED_TEXT_KEY),
    )


def read_typed_text(typed: dict[str, Any], restored: dict[str, Any]) -> dict[str, Any]:
    """Of the two readings of a message typed without diacritics, the one to act on.

    The restored reading routes better (README, "Typed text"), but an emergency heard
    in the text as typed is never given up for it: "ren dau" restored as "rên đâu"
    ("groaning where") loses the chest pain of "rên đau". Nor is a key named in it: the
    key rules read unmarked digits themselves, and the restorer may give a digit its
    other meaning ("noi may sau", put me through to six, restored as "sau", after). The
    result keeps the text as typed, and the restored text beside it."""
    as_typed = parse_of(typed)
    if route_for(as_typed) == Route.TRANSFER_1 or as_typed.intent == CHOOSE_BRANCH_INTENT:
        return typed
    return {**restored, "text": typed.get("text", ""), RESTORED_TEXT_KEY: restored.get("text")}


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
