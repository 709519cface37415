"""Command line: ``python -m bot route|chat|train|eval``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bot import settings


def _load_brain(model: Path | None):  # type: ignore[no-untyped-def]
    from bot.brain import Brain, ModelNotFound

    try:
        return Brain(model)
    except ModelNotFound as e:
        raise SystemExit(f"error: {e}") from e


def read_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[bytes | None, int]]:
    """Yield each line without its end-of-line; None for a line longer than ``limit``
    bytes, which is skipped without ever being held in memory whole."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            size = len(line)
            while line and not line.endswith(b"\n"):
                line = stream.readline(1 << 16)
                size += len(line)
            yield None, size
            continue
        yield line.rstrip(b"\r\n"), len(line)


def cmd_route(args: argparse.Namespace) -> int:
    from bot.brain import run
    from bot.routes import FALLBACK

    brain = _load_brain(args.model)
    # Bytes: a UTF-8 character is at most 4 bytes.
    limit = settings.MAX_UTTERANCE_CHARS * 4
    errors = 0
    out = sys.stdout
    for number, (raw, size) in enumerate(read_lines(sys.stdin.buffer, limit), start=1):
        error = None
        text: str | None = None
        if raw is None:
            error = f"line {number}: too long ({size} bytes; at most {limit})"
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                error = f"line {number}: not valid UTF-8 ({e.reason} at byte {e.start})"
            else:
                if len(text) > settings.MAX_UTTERANCE_CHARS:
                    error = (
                        f"line {number}: too long ({len(text)} characters; "
                        f"at most {settings.MAX_UTTERANCE_CHARS})"
                    )
                    text = None
        if error:
            errors += 1
            print(f"route: {error}; routed as {FALLBACK}", file=sys.stderr)
            record = {
                "text": None,
                "route": FALLBACK,
                "intent": "",
                "confidence": 0.0,
                "error": error,
            }
        else:
            record = run(brain.route(text or "")).as_dict()
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return 1 if errors else 0


def cmd_chat(args: argparse.Namespace) -> int:
    import uuid

    from bot.brain import run
    from bot.replies import HangUp, Say, Transfer
    from bot.routes import BRANCHES, responsible_branch

    brain = _load_brain(args.model)
    conversation = f"chat-{uuid.uuid4().hex[:8]}"

    def show(actions: list) -> bool:  # type: ignore[type-arg]
        ended = False
        for action in actions:
            if isinstance(action, Say):
                print(f"bot: {action.text}")
            elif isinstance(action, Transfer):
                branch = responsible_branch(action.route)
                where = BRANCHES[branch] if branch else "tổng đài viên"
                print(f"  -> transfer to {action.route} ({where})")
                ended = True
            elif isinstance(action, HangUp):
                print("  -> hang up")
                ended = True
        return ended

    interactive = sys.stdin.isatty()
    show(run(brain.start(conversation)))
    while True:
        try:
            text = input("bạn: " if interactive else "")
        except EOFError:
            return 0
        if not interactive:
            print(f"bạn: {text}")
        if show(run(brain.turn(conversation, text))):
            return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bot.training import train

    train(if_changed=args.if_changed)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluation import evaluate

    brain = _load_brain(args.model)
    return evaluate(brain, settings.HELDOUT_FILE, json_out=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("route", help="route each line of standard input; one JSON object per line")
    p.add_argument("--model", type=Path, help="model file (default: newest in models/)")
    p.set_defaults(func=cmd_route)

    p = sub.add_parser("chat", help="talk to the bot in the terminal, as a caller would")
    p.add_argument("--model", type=Path)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("train", help="generate spoken variants and train the Rasa model")
    p.add_argument(
        "--if-changed",
        action="store_true",
        help="skip training when data, domain, config and NLU code are unchanged",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="score the held-out set: clean, no diacritics, accent-merged")
    p.add_argument("--model", type=Path)
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
