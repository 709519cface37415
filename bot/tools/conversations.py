"""Whole conversations as data: replayed against the real dialogue, turn by turn.

A conversation file (YAML) holds what callers say and, for each turn, what the bot
must do. ``python -m bot chat --script FILE`` replays it, printing every turn and
action, so a trainer can check a dialogue change without a phone;
``tests/test_conversations.py`` runs ``tests/data/conversations.yml`` the same way.

    conversations:
    - name: a yes with nothing open is asked about once
      covers: [issue-13.2]           # the product rule or issue failure it tests
      turns:
      - say: vâng                     # or `key: "5"` (one key of the keypad)
        responses: [utter_ask_again]  # the responses said, in order (optional)
        transfer: null                # a route, or null for "no transfer" (optional)
        hangup: false                 # (optional)
        not_responses: [utter_goodbye]  # none of these is said (optional)

A response name may end with "*" to match a prefix ("utter_faq_f0/*"). A plain
text file works too: one caller turn a line, "[5]" for a key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.nlu.replies import BotAction, HangUp, Say, Transfer
from bot.vocabulary import Route

_UNSET = object()


@dataclass(frozen=True)
class Turn:
    say: str | None = None
    key: str | None = None
    responses: list[str] | None = None
    not_responses: list[str] = field(default_factory=list)
    transfer: Any = _UNSET  # a route, None for "no transfer", or unset
    hangup: bool | None = None


@dataclass(frozen=True)
class Conversation:
    name: str
    turns: list[Turn]
    covers: list[str] = field(default_factory=list)


@dataclass
class TurnResult:
    turn: Turn
    actions: list[BotAction]
    problems: list[str]


class ScriptError(ValueError):
    """A conversation file that cannot be read as conversations."""


def _turn(raw: Any, where: str) -> Turn:
    if isinstance(raw, str):
        return Turn(say=raw)
    if not isinstance(raw, dict) or ("say" in raw) == ("key" in raw):
        raise ScriptError(f"{where}: a turn needs exactly one of `say` or `key`")
    unknown = set(raw) - {"say", "key", "responses", "not_responses", "transfer", "hangup"}
    if unknown:
        raise ScriptError(f"{where}: unknown field(s) {sorted(unknown)}")
    return Turn(
        say=str(raw["say"]) if "say" in raw else None,
        key=str(raw["key"]) if "key" in raw else None,
        responses=list(raw["responses"]) if "responses" in raw else None,
        not_responses=list(raw.get("not_responses") or []),
        transfer=raw["transfer"] if "transfer" in raw else _UNSET,
        hangup=raw.get("hangup"),
    )


def load(path: Path) -> list[Conversation]:
    """Conversations from a YAML file, or one conversation from a plain text file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix not in (".yml", ".yaml"):
        turns = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                turns.append(Turn(key=line[1:-1].strip()))
            else:
                turns.append(Turn(say=line))
        return [Conversation(name=path.name, turns=turns)]
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("conversations"), list):
        raise ScriptError(f"{path}: expected a mapping with a `conversations` list")
    conversations = []
    for n, raw in enumerate(data["conversations"], start=1):
        if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list):
            raise ScriptError(f"{path}: conversation {n} needs `name` and a `turns` list")
        name = str(raw.get("name") or f"conversation {n}")
        turns = [_turn(t, f"{path}: {name}, turn {i}") for i, t in enumerate(raw["turns"], 1)]
        conversations.append(Conversation(name, turns, [str(c) for c in raw.get("covers") or []]))
    return conversations


def _matches(name: str | None, pattern: str) -> bool:
    name = name or ""
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def check(turn: Turn, actions: list[BotAction]) -> list[str]:
    """What the bot did that the turn says it must not have."""
    problems = []
    said = [a.response for a in actions if isinstance(a, Say)]
    routes = [a.route for a in actions if isinstance(a, Transfer)]
    hung_up = any(isinstance(a, HangUp) for a in actions)
    if turn.responses is not None and not (
        len(said) == len(turn.responses)
        and all(_matches(s, p) for s, p in zip(said, turn.responses, strict=True))
    ):
        problems.append(f"said {said}, expected {turn.responses}")
    for pattern in turn.not_responses:
        if any(_matches(s, pattern) for s in said):
            problems.append(f"said {pattern}, which it must not")
    if turn.transfer is not _UNSET:
        expected = [] if turn.transfer is None else [turn.transfer]
        if routes != expected:
            problems.append(f"transferred to {routes}, expected {expected}")
    if turn.hangup is not None and hung_up != turn.hangup:
        problems.append(f"hang-up {hung_up}, expected {turn.hangup}")
    return problems


def replay(
    brain: Any,
    conversation: Conversation,
    run: Callable[[Any], Any],
    show: Callable[[str], None] | None = None,
) -> list[TurnResult]:
    """Play one conversation against ``brain`` (bot.nlu.brain.Brain), a new caller."""
    conversation_id = f"script-{uuid.uuid4().hex[:12]}"
    out = show or (lambda _: None)
    out(f"== {conversation.name}")
    _show_actions(run(brain.start(conversation_id)), out)
    results = []
    for turn in conversation.turns:
        if turn.key is not None:
            out(f"caller presses: {turn.key}")
            actions = run(brain.digit(conversation_id, turn.key))
        else:
            out(f"caller: {turn.say}")
            actions = run(brain.turn(conversation_id, turn.say or ""))
        _show_actions(actions, out)
        problems = check(turn, actions)
        for problem in problems:
            out(f"  !! {problem}")
        results.append(TurnResult(turn, actions, problems))
    return results


def _show_actions(actions: Iterable[BotAction], out: Callable[[str], None]) -> None:
    said_any = False
    for action in actions:
        if isinstance(action, Say):
            said_any = True
            out(f"bot: {action.text}  [{action.response}]")
        elif isinstance(action, Transfer):
            out(f"  -> transfer to {action.route} ({Route(action.route).destination})")
        elif isinstance(action, HangUp):
            out("  -> hang up")
    if not said_any:
        out("bot: (listens)")
