"""The fixed texts the call speaks by itself, read from domain.yml: the one reader of it
outside Rasa. What the call says on its own (greeting, reprompt, menu, apology, transfer
notices) and every response text, for the prompt cache to render ahead of any call."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.nlu.replies import Say
from bot.vocabulary import TRANSFER_ROUTES, Route

# A response with a {slot} template changes per call: it cannot be rendered ahead.
_TEMPLATE = re.compile(r"\{\w+\}")


def transfer_response(route: Route) -> str:
    """The domain response that announces a transfer on this route."""
    return f"utter_transfer_{route.branch}" if route.branch else "utter_transfer_operator"


def domain_texts(responses: Mapping[str, list[str]], extra: Iterable[str] = ()) -> list[str]:
    """Every response text (``{slot}`` templates left out), then ``extra``; no repeats."""
    texts: dict[str, None] = {}
    for variants in responses.values():
        for text in variants:
            if not _TEMPLATE.search(text):
                texts.setdefault(text)
    for text in extra:
        texts.setdefault(text.strip())
    return list(texts)


def read_responses(path: Path) -> dict[str, list[str]]:
    """domain.yml's responses: name -> the texts of its variants, in order."""
    import yaml

    domain = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    responses: dict[str, list[str]] = {}
    for name, variants in (domain.get("responses") or {}).items():
        responses[str(name)] = [
            str(v["text"]).strip()
            for v in variants or []
            if isinstance(v, dict) and isinstance(v.get("text"), str) and v["text"].strip()
        ]
    return responses


@dataclass(frozen=True)
class Prompts:
    """The fixed texts the call speaks by itself, from domain.yml's responses."""

    greeting: Say
    silence: Say
    menu: Say
    technical_problem: Say
    transfers: Mapping[Route, Say]  # route -> its transfer notice
    texts: tuple[str, ...] = ()  # every response text that can be rendered ahead
    # The emergency transfer failed: the caller is told to dial 115 themselves.
    transfer_failed_emergency: Say | None = None
    unused_key: Say | None = None  # '#', 7-9: "phím này chưa dùng"

    @classmethod
    def from_domain(cls, path: Path) -> Prompts:
        responses = read_responses(path)

        def say(name: str) -> Say:
            try:
                return Say(responses[name][0], name)
            except (KeyError, IndexError):
                raise ValueError(f"{path}: the response {name} is missing or has no text") from None

        return cls(
            greeting=say("utter_greet"),
            silence=say("utter_silence_reprompt"),
            menu=say("utter_menu"),
            technical_problem=say("utter_technical_problem"),
            transfers={r: say(transfer_response(r)) for r in TRANSFER_ROUTES},
            texts=tuple(domain_texts(responses)),
            transfer_failed_emergency=say("utter_transfer_failed_emergency"),
            unused_key=say("utter_unused_key"),
        )
