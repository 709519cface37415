"""The fixed texts the call speaks by itself, read from domain.yml (the one reader of it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.nlu.routes import BRANCHES


@dataclass(frozen=True)
class Prompts:
    """The fixed texts the call speaks by itself, from domain.yml's responses."""

    greeting: str
    silence: str
    menu: str
    technical_problem: str
    transfers: Mapping[str, str]  # route -> transfer notice
    unused_key: str = ""  # '#', 7-9: "phím này chưa dùng"

    @classmethod
    def from_domain(cls, path: Path) -> Prompts:
        import yaml

        responses = yaml.safe_load(path.read_text(encoding="utf-8"))["responses"]

        def text(name: str) -> str:
            return str(responses[name][0]["text"])

        transfers = {f"transfer:{n}": text(f"utter_transfer_{n}") for n in BRANCHES}
        transfers["operator"] = text("utter_transfer_operator")
        return cls(
            greeting=text("utter_greet"),
            silence=text("utter_silence_reprompt"),
            menu=text("utter_menu"),
            technical_problem=text("utter_technical_problem"),
            transfers=transfers,
            unused_key=text("utter_unused_key"),
        )
