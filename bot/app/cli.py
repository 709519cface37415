"""Command line: ``python -m bot route|chat|call|train|eval|models|users|retention``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from bot.app.settings import ROOT, Settings, quiet_libraries
from bot.errors import ModelMissing
from bot.store.calls import resolve_url


def _load_brain(s: Settings, model: Path | None):  # type: ignore[no-untyped-def]
    quiet_libraries(s.log_level)  # before Rasa is imported
    from bot.nlu.brain import Brain
    from bot.tools.model_registry import default_registry

    try:
        # The live model: the registry's active one, else the newest in models/.
        return Brain(model or default_registry(s).active_path())
    except ModelMissing as e:
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

    brain = _load_brain(args.settings, args.model)
    # Bytes: a UTF-8 character is at most 4 bytes.
    limit = args.settings.max_utterance_chars * 4
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
                if len(text) > args.settings.max_utterance_chars:
                    error = (
                        f"line {number}: too long ({len(text)} characters; "
                        f"at most {args.settings.max_utterance_chars})"
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

    brain = _load_brain(args.settings, args.model)
    if args.script:
        return _chat_script(brain, args.script)
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


def _chat_script(brain: Any, script: Path) -> int:
    """Replay a conversation file, printing each turn and action; 1 if a turn's
    expectations were not met (bot/tools/conversations.py has the format)."""
    from bot.nlu.brain import run
    from bot.tools.conversations import ScriptError, load, replay

    try:
        conversations = load(script)
    except (OSError, ScriptError) as e:
        raise SystemExit(f"error: {e}") from e
    failed = 0
    for conversation in conversations:
        results = replay(brain, conversation, run, show=print)
        if any(r.problems for r in results):
            failed += 1
        print()
    print(f"{len(conversations) - failed} of {len(conversations)} conversations as expected")
    return 1 if failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from bot.tools.training import train

    s: Settings = args.settings
    fraction = s.finetune_epoch_fraction if args.epoch_fraction is None else args.epoch_fraction
    if args.candidate or args.finetune:
        from bot.tools.model_registry import train_candidate

        train_candidate(s, args.by, args.finetune, fraction)
        return 0
    model = train(s, if_changed=args.if_changed)
    from bot.tools.model_registry import default_registry

    registry = default_registry(s)
    if registry.path.exists() and registry.active_name() != model.name:
        # The developer's path (`make model`): the model trained from the data as it is
        # goes live, recorded in the registry. Trainers use --candidate and activate.
        registry.adopt(model, by=args.by)
        registry._make_active(model.name, args.by, "train", registry.active_name(), None, [])
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.tools.evaluation import evaluate, fallback_threshold

    brain = _load_brain(args.settings, args.model)
    return evaluate(
        brain,
        args.settings.dev_set if args.dev else args.settings.heldout,
        json_out=args.json,
        plot=args.plot,
        hard=args.settings.emergency_hard,
        threshold=fallback_threshold(args.settings.rasa_config),
    )


def cmd_call(args: argparse.Namespace) -> int:
    import asyncio

    from bot.app.engines import load_engines
    from bot.errors import ModelMissing
    from bot.transports.simulated import run_simulated_call, write_bot_side

    if not args.recording.is_file():
        raise SystemExit(f"error: no such recording: {args.recording}")
    try:
        quiet_libraries(args.settings.log_level)
        engines = load_engines(
            args.settings,
            stand_in=args.stand_in_models,
            # A relative SQLite path is the project's, as in BOT_DATABASE_URL.
            store_url=resolve_url(args.database, ROOT) if args.database else None,
            stand_in_voice=args.stand_in_voice,
        )
    except ModelMissing as e:
        hint = (
            ""
            if args.stand_in_models or args.stand_in_voice
            else "\n(without the Vietnamese voice, --stand-in-voice speaks in the English "
            "stand-in; the recogniser stays the Vietnamese one)"
        )
        raise SystemExit(f"error: {e}{hint}") from e
    print(f"recogniser: {engines.speech.name}")

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


def _percent(figures: dict | None, variant: str) -> str:  # type: ignore[type-arg]
    if not figures:
        return "—"
    return f"{figures['variants'][variant]['accuracy']:.1%}"


def cmd_models(args: argparse.Namespace) -> int:
    if args.action in ("list", "activate", "rollback"):
        return _models_registry(args)
    from bot.speech_models import (
        FETCH_COMMAND,
        FetchFailed,
        asr_engine_note,
        check,
        fetch,
        under,
    )

    s: Settings = args.settings
    if args.action == "check":
        print(asr_engine_note(s.asr_engine, s.vosk_model))
        missing = check(s.speech_models)
        for line in missing:
            print(f"missing: {line}")
        if missing:
            print(f"get them with: {FETCH_COMMAND}")
        return 1 if missing else 0
    paths = s.speech_models if args.dest is None else under(args.dest)
    timeout = s.fetch_timeout if args.timeout is None else args.timeout
    try:
        fetched = fetch(paths, timeout=timeout, download_timeout=s.fetch_download_timeout)
    except FetchFailed as e:
        print(e, file=sys.stderr)
        return 1
    print("\n".join(f"fetched: {line}" for line in fetched) or "all speech models in place")
    return 0


def _models_registry(args: argparse.Namespace) -> int:
    from bot.tools.model_registry import (
        ADMIN,
        ActivationRefused,
        RegistryError,
        adopt_active,
        default_registry,
    )

    registry = default_registry(args.settings)
    try:
        if args.action == "list":
            if registry.models_dir.is_dir() and any(registry.models_dir.glob("*.tar.gz")):
                adopt_active(registry, args.settings)
            print(
                f"{'':2}{'model':42} {'trained (UTC)':25} {'kind':8} {'by':10} "
                f"{'clean':>6} {'no-dia':>6} {'merged':>6} {'emerg.':>6}  activated"
            )
            for e in registry.entries():
                f = e.get("figures")
                emergency = f"{f['emergency_recall']:.0%}" if f else "—"
                acts = e.get("activations") or []
                last = f"{acts[-1]['at']} by {acts[-1]['by']}" if acts else "never"
                print(
                    f"{'*' if e['active'] else ' ':2}{e['name']:42} {e.get('trained_at', ''):25} "
                    f"{e.get('kind', ''):8} {e.get('trained_by', ''):10} "
                    f"{_percent(f, 'clean'):>6} {_percent(f, 'no_diacritics'):>6} "
                    f"{_percent(f, 'accent_merged'):>6} {emergency:>6}  {last}"
                )
            return 0
        if args.action == "activate":
            if not args.model:
                raise SystemExit("error: name the model to activate (python -m bot models list)")
            adopt_active(registry, args.settings)
            role = ADMIN if args.override else "trainer"
            record = registry.activate(
                Path(args.model).name, by=args.by, role=role, override_reason=args.override
            )
        else:
            record = registry.rollback(by=args.by)
    except ActivationRefused as e:
        print("activation refused:", *e.problems, sep="\n  ", file=sys.stderr)
        print("  (an admin may override: --override 'the reason')", file=sys.stderr)
        return 1
    except RegistryError as e:
        raise SystemExit(f"error: {e}") from e
    print(f"{record['action']}: {record['model']} is live (was {record['previous']})")
    if record.get("overridden"):
        print(f"  overridden by {record['by']}: {record['override_reason']}")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from bot.console.auth import hash_password
    from bot.store.calls import CallStore
    from bot.store.review import ReviewStore

    review = ReviewStore(CallStore(args.database or args.settings.database_url))
    if args.action == "list":
        for user in review.users():
            print(f"{user.name}\t{user.role}" + ("\t(disabled)" if user.disabled else ""))
        return 0
    if not args.name:
        raise SystemExit(f"error: users {args.action} needs a NAME")
    if args.password_stdin:  # for scripts: the first line of standard input
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("error: the passwords differ")
    try:
        hashed = hash_password(password)
        if args.action == "add":
            review.add_user(args.name, args.role, hashed)
            review.audit("cli", "user_added", None, f"{args.name} ({args.role})")
            print(f"user {args.name} added ({args.role})")
        elif not review.set_password(args.name, hashed):
            raise SystemExit(f"error: no user {args.name!r}")
        else:
            review.audit("cli", "password_set", None, args.name)
            print(f"password of {args.name} changed; their sessions are closed")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from bot.console.retention import apply
    from bot.store.calls import CallStore

    s = args.settings
    store = CallStore(args.database or s.database_url)
    audio_days = s.retention_audio_days if args.audio_days is None else args.audio_days
    text_days = s.retention_text_days if args.text_days is None else args.text_days
    report = apply(store, audio_days, text_days, dry_run=args.dry_run)
    store.close()
    print(("dry run: " if args.dry_run else "") + report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("route", help="route each line of standard input; one JSON object per line")
    p.add_argument("--model", type=Path, help="model file (default: newest in models/)")
    p.set_defaults(func=cmd_route)

    p = sub.add_parser("chat", help="talk to the bot in the terminal, as a caller would")
    p.add_argument("--model", type=Path)
    p.add_argument(
        "--script",
        type=Path,
        help="replay a conversation file (YAML as tests/data/conversations.yml, or one "
        "caller turn a line) printing each turn and action",
    )
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("train", help="generate spoken variants and train the Rasa model")
    p.add_argument(
        "--if-changed",
        action="store_true",
        help="skip training when data, domain, config and NLU code are unchanged",
    )
    p.add_argument(
        "--candidate",
        action="store_true",
        help="register and score the new model against the live one; do not activate it",
    )
    p.add_argument(
        "--finetune",
        action="store_true",
        help="a candidate fine-tuned from the live model's weights (implies --candidate)",
    )
    p.add_argument(
        "--epoch-fraction",
        type=float,
        default=None,
        help="share of the configured epochs a fine-tune runs (BOT_FINETUNE_EPOCH_FRACTION)",
    )
    p.add_argument("--by", default=os.environ.get("USER", "shell"), help="who trains (registry)")
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
    p.add_argument(
        "--stand-in-voice",
        action="store_true",
        help="swap only the voice for the English stand-in (where the Vietnamese Piper voice "
        "cannot be had); the recogniser is still BOT_ASR_ENGINE's",
    )
    p.set_defaults(func=cmd_call)

    p = sub.add_parser(
        "models",
        help="speech models (check, fetch); trained Rasa models (list, activate, rollback)",
    )
    p.add_argument("action", choices=["check", "fetch", "list", "activate", "rollback"])
    p.add_argument("model", nargs="?", help="activate: the model file's name")
    p.add_argument("--dest", type=Path, help="models directory to fetch into (default: settings)")
    p.add_argument("--timeout", type=float, help="seconds for a host to answer (BOT_FETCH_TIMEOUT)")
    p.add_argument("--by", default=os.environ.get("USER", "shell"), help="who (registry)")
    p.add_argument(
        "--override",
        metavar="REASON",
        help="activate although the gate refuses (an admin's decision, recorded with the reason)",
    )
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("users", help="console users: add, passwd, list")
    p.add_argument("action", choices=["add", "passwd", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["supervisor", "trainer", "admin"], default="supervisor")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--database", help="call records URL (default: BOT_DATABASE_URL)")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("retention", help="delete old recordings, redact old transcripts")
    p.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    p.add_argument("--audio-days", type=int, help="default: BOT_RETENTION_AUDIO_DAYS")
    p.add_argument("--text-days", type=int, help="default: BOT_RETENTION_TEXT_DAYS")
    p.add_argument("--database", help="call records URL (default: BOT_DATABASE_URL)")
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser(
        "eval",
        help="score the held-out set (clean, no diacritics, accent-merged) and the hard set",
    )
    p.add_argument("--model", type=Path)
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="draw confidence against accuracy (PNG)"
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="score the development set (BOT_DEV_SET) instead: tune on it, report the held-out",
    )
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.settings = Settings.from_env()  # read once, here, and passed down
    return int(args.func(args))
