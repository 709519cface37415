"""Command line: ``python -m bot route|chat|call|train|eval|models``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bot.app import settings


def _load_brain(model: Path | None):  # type: ignore[no-untyped-def]
    from bot.nlu.brain import Brain, ModelNotFound

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
    from bot.nlu.brain import run
    from bot.vocabulary import Route

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
            print(f"route: {error}; routed as {Route.FALLBACK}", file=sys.stderr)
            record = {
                "text": None,
                "route": Route.FALLBACK,
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

    from bot.nlu.brain import run
    from bot.nlu.replies import HangUp, Say, Transfer

    brain = _load_brain(args.model)
    conversation = f"chat-{uuid.uuid4().hex[:8]}"

    def show(actions: list) -> bool:  # type: ignore[type-arg]
        ended = False
        for action in actions:
            if isinstance(action, Say):
                print(f"bot: {action.text}")
            elif isinstance(action, Transfer):
                where = action.route.destination
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
    from bot.tools.training import train

    train(if_changed=args.if_changed)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.tools.evaluation import evaluate

    brain = _load_brain(args.model)
    return evaluate(
        brain,
        settings.HELDOUT_FILE,
        json_out=args.json,
        plot=args.plot,
        hard=settings.EMERGENCY_HARD_FILE,
    )


def cmd_call(args: argparse.Namespace) -> int:
    import asyncio

    from bot.app.engines import load_engines
    from bot.app.speech_models import ModelMissing
    from bot.transports.simulated import run_simulated_call, write_bot_side

    if not args.recording.is_file():
        raise SystemExit(f"error: no such recording: {args.recording}")
    try:
        engines = load_engines(stand_in=args.stand_in_models, store_url=args.database)
    except ModelMissing as e:
        raise SystemExit(f"error: {e}") from e

    line, call = asyncio.run(
        run_simulated_call(engines, args.recording, args.digits, args.max_seconds)
    )
    engines.close()
    for entry in line.timeline:
        print(f"[{entry.at:6.2f}] {entry.who:6} {entry.what}")
    print(f"outcome: {line.outcome or 'no decision'}")
    if call.stats.latencies_ms:
        print("response latency: " + ", ".join(f"{x:.0f} ms" for x in call.stats.latencies_ms))
    out = args.out or args.recording.with_name(args.recording.stem + ".bot.wav")
    write_bot_side(line, out)
    print(f"bot side written to {out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from bot.app.speech_models import main as models_main

    dest = ["--dest", str(args.dest)] if args.dest and args.action == "fetch" else []
    return models_main([args.action, *dest])


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

    p = sub.add_parser("call", help="play a recording into the voice pipeline as a phone call")
    p.add_argument("recording", type=Path, help="any file soundfile reads (WAV, FLAC, OGG...)")
    p.add_argument("--digits", default="", help="keypad presses: '5' or '3@4.5,*@9' (s)")
    p.add_argument("--out", type=Path, help="the bot's side as WAV (default: NAME.bot.wav)")
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--database", help="call records URL (default: BOT_DATABASE_URL)")
    p.add_argument(
        "--stand-in-models",
        action="store_true",
        help="use the PyPI stand-in models (Korean Vosk, English Piper), for testing",
    )
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("models", help="check or fetch the Vietnamese speech models")
    p.add_argument("action", choices=["check", "fetch"])
    p.add_argument("--dest", type=Path)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "eval", help="score the held-out set (clean, no diacritics, accent-merged) and the hard set"
    )
    p.add_argument("--model", type=Path)
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="draw confidence against accuracy (PNG)"
    )
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
