"""The test calls of audio_tests/: each recording played through the voice pipeline, scored.

    python -m bot.tools.audio_tests [--stand-in-models] [--only vi|ko] [--transcripts-only]

Each call of ``audio_tests/manifest.tsv`` is played into the real pipeline in real time with
``bot.transports.simulated.run_simulated_call`` (VAD, Vosk, the call machine, Rasa, Piper, the call
record), so a run takes as long as the calls. ``--transcripts-only`` skips the call: the
recording goes through the recogniser alone and its transcript through the router (fast).

Per call it prints the expected and the got route, the transcript and its word error rate
against the manifest's text; then the totals per language: route accuracy and mean WER.

The route a call got is the first request the bot understood in it, in the order they
happened: a keypad digit 0-6 (``bot.vocabulary.branch_route``), an emergency caught in a
partial transcript, or a caller's utterance routed as ``python -m bot route`` routes it.
Utterances that route to ``fallback`` (a backchannel, an out-of-scope question, noise) do
not decide; a call in which nothing decided got ``fallback``.

WER is counted on syllables: Vietnamese writes one syllable per whitespace-separated token,
so it is the Levenshtein distance between the token lists of the manifest text and the
transcript (both put in the recogniser's form by ``bot.nlu.text.normalise``), divided by the
number of reference tokens. For Korean the tokens are the spacing units (eojeol).

The configured Vietnamese models are used unless ``--stand-in-models`` asks for the PyPI
stand-ins (Korean Vosk, English Piper); a missing model is an error, never a silent
switch. With the stand-ins, Vietnamese calls are not understood: the header says so. The
figures are figures, not a gate: the exit status is 0 unless a call crashed (1) or the
models or the manifest could not be loaded (2).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from bot.app.settings import ROOT, Settings, quiet_libraries
from bot.audio.formats import RECOGNISER, AudioChunk, Converter, read_wav
from bot.call.turn_end import example_texts
from bot.nlu.text import normalise
from bot.vocabulary import Route, branch_route

if TYPE_CHECKING:
    from bot.asr.types import SpeechModel
    from bot.session.engines import Engines
    from bot.store.calls import TurnRecord

MANIFEST = ROOT / "audio_tests" / "manifest.tsv"
COLUMNS = ("file", "language", "text", "expected_route", "digits", "made_with")
LANGUAGES = ("vi", "ko")
# After the recording ends, the call goes on in silence this long (the bot decides,
# answers, asks) before the runner hangs up.
LINGER_S = 8.0

# text -> route, as `python -m bot route` gives it.
Router = Callable[[str], str]


class ManifestError(ValueError):
    """The manifest is not as audio_tests/README.md describes it."""


class SetupError(RuntimeError):
    """A model (speech or Rasa) could not be loaded: nothing was run."""


@dataclass(frozen=True)
class AudioTestCall:
    """One row of the manifest."""

    file: str  # relative to the manifest's folder
    language: str  # vi, ko
    text: str  # what the caller says
    expected_route: str
    digits: str  # keypad presses, as bot.transports.simulated.parse_digits reads them
    made_with: str  # the synthesis recipe (audio_tests/make.py) or what recorded it
    path: Path  # the recording


def read_manifest(path: Path = MANIFEST) -> list[AudioTestCall]:
    """The manifest's calls; raises ``ManifestError`` naming the line of any bad row."""
    from bot.transports.simulated import parse_digits

    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except OSError as e:
        raise ManifestError(f"cannot read the manifest {path}: {e}") from e
    if not rows or tuple(rows[0]) != COLUMNS:
        raise ManifestError(f"{path}: the header must be {' / '.join(COLUMNS)}")
    calls = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        where = f"{path}:{number}"
        if len(cells) != len(COLUMNS):
            raise ManifestError(f"{where}: {len(cells)} cells, expected {len(COLUMNS)}")
        file, language, text, expected, digits, made_with = (c.strip() for c in cells)
        if not file or not text or not made_with:
            raise ManifestError(f"{where}: file, text and made_with must not be empty")
        if not language:
            raise ManifestError(f"{where}: no language")
        if expected not in set(Route):
            raise ManifestError(f"{where}: {expected!r} is not a route (bot.vocabulary.Route)")
        try:
            parse_digits(digits)
        except ValueError as e:
            raise ManifestError(f"{where}: digits {digits!r}: {e}") from e
        calls.append(
            AudioTestCall(file, language, text, expected, digits, made_with, path.parent / file)
        )
    return calls


# --- word error rate ----------------------------------------------------------------


def syllable_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, number of reference syllables) between
    the two texts, each normalised and split on whitespace."""
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    previous = list(range(len(hyp) + 1))  # distances from ref[:0] to each hyp[:j]
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Syllable error rate: edits / reference syllables. It can exceed 1 (insertions);
    an empty reference scores 0 against an empty transcript and 1 against anything else."""
    edits, length = syllable_edits(reference, hypothesis)
    if length == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / length


# --- results --------------------------------------------------------------------------


@dataclass
class CallResult:
    call: AudioTestCall
    route: str | None = None  # None: the call crashed
    transcript: str = ""
    edits: int = 0
    syllables: int = 0
    outcome: str | None = None  # how the simulated call ended (full runs only)
    latencies_ms: list[float] = field(default_factory=list)
    asr_load: float | None = None  # recogniser seconds per second of speech (full runs only)
    seconds: float = 0.0  # wall time of this call's run
    error: str | None = None

    @property
    def crashed(self) -> bool:
        return self.error is not None

    @property
    def correct(self) -> bool:
        return not self.crashed and self.route == self.call.expected_route

    @property
    def behind(self) -> bool:
        """The recogniser could not keep up with the line: the figures are the machine's."""
        return self.asr_load is not None and self.asr_load > 1.0

    @property
    def wer(self) -> float:
        if self.syllables == 0:
            return 0.0 if self.edits == 0 else 1.0
        return self.edits / self.syllables

    def score(self, transcript: str) -> None:
        self.transcript = transcript
        self.edits, self.syllables = syllable_edits(self.call.text, transcript)


def first_decision(events: Iterable[tuple[float, str]]) -> str:
    """The first route other than fallback, in time order; fallback if there is none."""
    for _, route in sorted(events, key=lambda e: e[0]):
        if route != Route.FALLBACK:
            return route
    return Route.FALLBACK


def digit_events(digits: str) -> list[tuple[float, str]]:
    """The keypad presses that transfer (0-6), as (seconds, route)."""
    from bot.transports.simulated import parse_digits

    return [(at, branch_route(d)) for at, d in parse_digits(digits) if d.isdigit()]


# --- transcripts only -------------------------------------------------------------------


def transcribe(
    model: SpeechModel, path: Path, phrases: Sequence[str] | None = None
) -> tuple[str, float]:
    """The recogniser's transcript of a recording (decoded with a grammar of `phrases` if
    given), and when its last word ends (s; the recording's end if the engine gives no
    word times)."""
    audio = read_wav(path)
    converter = Converter(audio.format, RECOGNISER)
    return transcribe_pcm(model, converter.convert(audio).data + converter.flush().data, phrases)


def transcribe_pcm(
    model: SpeechModel, pcm: bytes, phrases: Sequence[str] | None = None
) -> tuple[str, float]:
    """``transcribe`` of RECOGNISER-format audio, fed in the 20 ms frames a call feeds."""
    from bot.asr.types import Final

    step = RECOGNISER.bytes_for_ms(20)  # the frames a call feeds
    recognition = model.recognition(phrases)
    pieces: list[Final] = []
    for start in range(0, len(pcm), step):
        frame = pcm[start : start + step]
        frame += b"\0" * (step - len(frame))
        result = recognition.accept(AudioChunk(frame, RECOGNISER))
        if isinstance(result, Final) and result.text:
            pieces.append(result)
    pieces.append(recognition.finish())
    words = [w for p in pieces for w in p.words]
    text = " ".join(p.text for p in pieces if p.text)
    return text, words[-1].end if words else len(pcm) / RECOGNISER.bytes_for_ms(1000)


def transcribe_call(
    call: AudioTestCall, model: SpeechModel, router: Router, phrases: Sequence[str] | None = None
) -> CallResult:
    """One call through the recogniser and the router; the digits decide by their time."""
    result = CallResult(call)
    started = time.perf_counter()
    try:
        transcript, ended = transcribe(model, call.path, phrases)
        events = digit_events(call.digits)
        if transcript:
            events.append((ended, router(transcript)))
        result.route = first_decision(events)
        result.score(transcript)
    except Exception:
        result.error = traceback.format_exc(limit=4)
    result.seconds = time.perf_counter() - started
    return result


# --- whole calls ---------------------------------------------------------------------------


def read_turns(
    turns: Iterable[TurnRecord],
) -> tuple[list[tuple[float, str]], list[tuple[float, str]], str]:
    """From a call's record: the decisions it holds (keypad digits 0-6, an emergency caught
    in a partial transcript) and the utterances the bot acted on, each at its place in the
    call (its turn number), and the transcript (every caller utterance recognised)."""
    decisions: list[tuple[float, str]] = []
    asked: list[tuple[float, str]] = []
    heard: list[str] = []
    for turn in sorted(turns, key=lambda t: t.seq):
        order = float(turn.seq)
        if turn.kind == "utterance" and turn.speaker == "caller" and turn.text:
            heard.append(turn.text)
        elif turn.kind == "digit" and turn.text and turn.text.isdigit():
            decisions.append((order, branch_route(turn.text)))
        elif turn.kind == "emergency_from_partial":
            decisions.append((order, turn.route or "transfer:1"))
        elif turn.kind == "heard" and turn.text:
            asked.append((order, turn.text))
    return decisions, asked, " ".join(heard)


async def play_call(engines: Engines, call: AudioTestCall, linger: float = LINGER_S) -> CallResult:
    """One call through ``run_simulated_call`` in real time, scored from its call record."""
    from bot.transports.simulated import run_simulated_call

    result = CallResult(call)
    started = time.perf_counter()
    try:
        store = engines.store
        if store is None:
            raise RuntimeError("the runner needs a call store to read the transcripts from")
        audio = read_wav(call.path)
        seconds = audio.duration_ms / 1000 + linger
        line, voice_call = await run_simulated_call(engines, call.path, call.digits, seconds)
        turns = await store.async_turns(voice_call.call_id)
        events, utterances, transcript = read_turns(turns)
        for order, text in utterances:
            routed: Any = await engines.brain.route(text)
            events.append((order, str(routed.route)))
        result.route = first_decision(events)
        result.outcome = line.outcome
        result.latencies_ms = list(voice_call.stats.latencies_ms)
        stats = voice_call.stats
        if stats.asr_audio_seconds:
            result.asr_load = stats.asr_seconds / stats.asr_audio_seconds
        result.score(transcript)
    except Exception:
        result.error = traceback.format_exc(limit=6)
    result.seconds = time.perf_counter() - started
    return result


async def play_calls(
    engines: Engines,
    calls: Sequence[AudioTestCall],
    linger: float = LINGER_S,
    parallel: int = 1,
    on_result: Callable[[CallResult], None] | None = None,
) -> list[CallResult]:
    """Every call, ``parallel`` at a time; ``on_result`` hears of each as it ends."""
    gate = asyncio.Semaphore(max(1, parallel))

    async def one(call: AudioTestCall) -> CallResult:
        async with gate:
            result = await play_call(engines, call, linger)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(call) for call in calls)))


# --- report ------------------------------------------------------------------------------


def format_result(result: CallResult, index: int, total: int) -> str:
    call = result.call
    width = len(str(total))
    head = f"[{index:>{width}}/{total}] {call.language}  {call.file}"
    if result.crashed:
        error = "\n".join("        " + line for line in (result.error or "").rstrip().splitlines())
        return f"{head}\n        CRASHED\n{error}"
    mark = "ok  " if result.correct else "MISS"
    lines = [
        f"{head}",
        f"        {mark} expected {call.expected_route:<25} got {result.route:<25} "
        f"WER {result.wer:.2f} ({result.edits}/{result.syllables})",
        f"        said : {normalise(call.text)}",
        f"        heard: {result.transcript or '(nothing)'}",
    ]
    extra = []
    if call.digits:
        extra.append(f"digits {call.digits}")
    if result.outcome is not None or result.latencies_ms:
        extra.append(f"call outcome: {result.outcome or 'none yet when the runner hung up'}")
    if result.latencies_ms:
        extra.append("latency " + ", ".join(f"{x:.0f} ms" for x in result.latencies_ms))
    if result.asr_load is not None:
        extra.append(f"recogniser {result.asr_load:.2f} s per s of speech")
        if result.behind:
            extra.append("SLOWER THAN REAL TIME: the machine is overloaded, transcripts may be cut")
    if extra:
        lines.append("        " + "; ".join(extra))
    return "\n".join(lines)


@dataclass(frozen=True)
class Totals:
    calls: int
    right: int
    crashed: int
    mean_wer: float | None  # mean of the per-call WERs (calls that did not crash)
    pooled_wer: float | None  # all edits / all reference syllables

    @property
    def accuracy(self) -> float | None:
        return self.right / self.calls if self.calls else None


def totals(results: Sequence[CallResult]) -> Totals:
    done = [r for r in results if not r.crashed]
    syllables = sum(r.syllables for r in done)
    return Totals(
        calls=len(results),
        right=sum(r.correct for r in results),
        crashed=len(results) - len(done),
        mean_wer=sum(r.wer for r in done) / len(done) if done else None,
        pooled_wer=sum(r.edits for r in done) / syllables if syllables else None,
    )


def format_totals(results: Sequence[CallResult]) -> str:
    groups: list[tuple[str, list[CallResult]]] = []
    for language in sorted({r.call.language for r in results}, key=_language_order):
        groups.append((language, [r for r in results if r.call.language == language]))
    if len(groups) != 1:
        groups.append(("all", list(results)))

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    lines = [
        f"{'':<5} {'calls':>5} {'routes right':>13} {'accuracy':>9} {'mean WER':>9} "
        f"{'pooled WER':>11} {'crashed':>8}"
    ]
    for name, group in groups:
        t = totals(group)
        lines.append(
            f"{name:<5} {t.calls:>5} {f'{t.right}/{t.calls}':>13} {pct(t.accuracy):>9} "
            f"{num(t.mean_wer):>9} {num(t.pooled_wer):>11} {t.crashed:>8}"
        )
    return "\n".join(lines)


def _language_order(language: str) -> tuple[int, str]:
    return (LANGUAGES.index(language) if language in LANGUAGES else len(LANGUAGES), language)


STAND_IN_WARNING = """\
models: the STAND-INS (Korean Vosk model, English Piper voice), asked for with --stand-in-models.
  The stand-in recogniser knows Korean only: Vietnamese calls will NOT be understood, so
  their routes and WER here say nothing about the bot. Only the Korean calls and the keypad
  are meaningful. For the real figures run without --stand-in-models on a machine with the
  Vietnamese models (python -m bot models fetch)."""


# --- command line -------------------------------------------------------------------------


def build_parser(s: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.tools.audio_tests",
        description="Play the test calls of audio_tests/ through the bot and score them.",
    )
    parser.add_argument(
        "--stand-in-models",
        action="store_true",
        help="use the PyPI stand-in models (Korean Vosk, English Piper) instead of the "
        "configured Vietnamese ones",
    )
    parser.add_argument("--only", metavar="LANG", help="only the calls in this language (vi, ko)")
    parser.add_argument(
        "--transcripts-only",
        action="store_true",
        help="recogniser and router only, no call: fast, but no VAD, barge-in or dialogue",
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="default: %(default)s")
    parser.add_argument(
        "--engine",
        choices=("vosk", "vietasr", "auto"),
        help="the recogniser (default: BOT_ASR_ENGINE); with --stand-in-models, "
        "auto and vosk mean the Korean stand-in",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        help="instead of the manifest: score every NAME.wav of this folder against its "
        "NAME.txt, clean, through 8 kHz μ-law and with white noise at 20 and 10 dB SNR "
        "(a WER table, with the recogniser's CPU per second of audio)",
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=LINGER_S,
        help="seconds a call goes on after its recording ends (default: %(default)s)",
    )
    parser.add_argument(
        "--parallel", type=int, default=1, help="calls played at once (default: %(default)s)"
    )
    parser.add_argument(
        "--vocabulary",
        action=argparse.BooleanOptionalAction,
        default=s.asr_vocabulary,
        help="decode with a grammar of the phrases in nlu_data/ (default: BOT_ASR_VOCABULARY); "
        "run with and without to measure what it does to word errors and routes",
    )
    return parser


def main(
    argv: list[str] | None = None, *, router: Router | None = None, out: TextIO | None = None
) -> int:
    """``router``: route text with this instead of loading the trained model (tests pass
    the one they have loaded); transcripts-only runs only."""
    s = Settings.from_env()  # read once, here, and passed down
    args = build_parser(s).parse_args(argv)
    s = dataclasses.replace(s, asr_vocabulary=args.vocabulary)
    out = out or sys.stdout
    if args.folder is not None:
        return score_folder_command(
            args.folder, args.engine or s.asr_engine, args.stand_in_models, out, s
        )
    try:
        calls = read_manifest(args.manifest)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.only:
        calls = [c for c in calls if c.language == args.only]
        if not calls:
            print(f"error: no {args.only!r} calls in {args.manifest}", file=sys.stderr)
            return 2

    from bot.errors import ModelMissing
    from bot.speech_models import asr_engine, require_vosk, stand_in_models

    try:
        paths = stand_in_models() if args.stand_in_models else s.speech_models
        engine = asr_engine(args.engine or s.asr_engine, paths.vosk)
        if engine == "vosk":
            require_vosk(paths.vosk)
    except ModelMissing as e:
        print(f"error: {e}", file=sys.stderr)
        if not args.stand_in_models:
            print(
                "(to run the test calls on this machine anyway, ask for the stand-in models "
                "with --stand-in-models: they do not understand Vietnamese)",
                file=sys.stderr,
            )
        return 2

    mode = (
        "transcripts only (recogniser + router, no call)"
        if args.transcripts_only
        else (
            f"whole calls in real time ({args.parallel} at a time, {args.linger:g} s after each "
            "recording)"
        )
    )
    print(f"audio tests: {len(calls)} calls from {args.manifest}", file=out)
    print(f"mode: {mode}", file=out)
    if args.stand_in_models:
        print(STAND_IN_WARNING, file=out)
    else:
        print(f"models: the configured ones (recogniser: {engine})", file=out)
    print(file=out, flush=True)

    shown = 0
    started = time.perf_counter()

    def show(result: CallResult) -> None:
        nonlocal shown
        shown += 1
        print(format_result(result, shown, len(calls)), file=out, flush=True)

    try:
        if args.transcripts_only:
            model = _load_model(s, engine, args.stand_in_models)
            print(f"recogniser: {model.name}", file=out)
            results = _run_transcripts(calls, model, router, show, s, out)
        else:
            results = _run_calls(
                calls, args.stand_in_models, args.linger, args.parallel, show, s, engine
            )
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(file=out)
    print(format_totals(results), file=out)
    behind = [r for r in results if r.behind]
    if behind:
        print(
            f"warning: in {len(behind)} of {len(results)} calls the recogniser ran slower than "
            "real time (a busy machine, or --parallel too high): their latencies are the "
            "machine's, and speech not yet recognised when the runner hung up is missing "
            "from their transcripts and routes",
            file=out,
        )
    crashed = [r.call.file for r in results if r.crashed]
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=out)
    print(f"ran in {time.perf_counter() - started:.0f} s (models loaded included)", file=out)
    return 1 if crashed else 0


def _load_router(s: Settings) -> Router:
    quiet_libraries(s.log_level)  # before Rasa is imported
    from bot.errors import ModelMissing
    from bot.nlu.brain import Brain, newest_model, run

    try:
        brain = Brain(newest_model(s.models_dir))
    except ModelMissing as e:
        raise SetupError(str(e)) from e

    def route(text: str) -> str:
        return str(run(brain.route(text)).route)

    return route


def _grammar_note(model: SpeechModel, phrases: Sequence[str]) -> str:
    """What --vocabulary does with this model, in one line."""
    note = f"{len(phrases)} phrases from nlu_data/ with words the model knows; "
    if not phrases:
        return note + "no grammar"
    if not getattr(model, "supports_grammar", False):
        return note + "no grammar: the model has no lookahead graph (HCLr.fst, Gr.fst)"
    return note + "decoding with that grammar"


def _load_model(s: Settings, engine: str, stand_in: bool) -> SpeechModel:
    from bot.app.engines import load_speech_model
    from bot.errors import ModelMissing

    try:
        return load_speech_model(s, engine, stand_in)
    except ModelMissing as e:
        raise SetupError(str(e)) from e


def _run_transcripts(
    calls: Sequence[AudioTestCall],
    model: SpeechModel,
    router: Router | None,
    show: Callable[[CallResult], None],
    s: Settings,
    out: TextIO | None = None,
) -> list[CallResult]:
    phrases = model.vocabulary_phrases(example_texts(s.nlu_data)) if s.asr_vocabulary else None
    if s.asr_vocabulary:
        print(f"vocabulary: {_grammar_note(model, phrases or [])}\n", file=out)
    route = router or _load_router(s)
    results = []
    for call in calls:
        result = transcribe_call(call, model, route, phrases)
        show(result)
        results.append(result)
    return results


def _run_calls(
    calls: Sequence[AudioTestCall],
    stand_in: bool,
    linger: float,
    parallel: int,
    show: Callable[[CallResult], None],
    s: Settings,
    engine: str | None = None,
) -> list[CallResult]:
    from bot.app.engines import load_engines
    from bot.errors import ModelMissing

    with tempfile.TemporaryDirectory(prefix="audio-tests-") as folder:
        # The test calls' records go to a scratch database, not the supervisor's.
        try:
            quiet_libraries(s.log_level)  # before Rasa is imported
            engines = load_engines(
                s,
                stand_in=stand_in,
                store_url=f"sqlite:///{folder}/calls.sqlite3",
                asr_engine=engine,
            )
        except ModelMissing as e:
            raise SetupError(str(e)) from e
        try:
            return asyncio.run(play_calls(engines, calls, linger, parallel, show))
        finally:
            engines.close()


# --- a folder of recordings: WER per condition ------------------------------------------------

CONDITIONS = ("clean", "μ-law 8 kHz", "20 dB SNR", "10 dB SNR")
NOISE_SEED = 1022  # the same noise on every run: figures that can be compared


@dataclass(frozen=True)
class Recording:
    name: str
    wav: Path
    text: str


@dataclass
class ConditionScore:
    edits: int = 0
    syllables: int = 0
    cpu_seconds: float = 0.0
    audio_seconds: float = 0.0
    per_file: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    @property
    def wer(self) -> float | None:
        return self.edits / self.syllables if self.syllables else None

    @property
    def cpu_per_audio_second(self) -> float | None:
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds else None


def read_folder(folder: Path) -> list[Recording]:
    """Every NAME.wav with a NAME.txt beside it (its transcript), by name."""
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder")
    found = []
    for wav in sorted(folder.glob("*.wav")):
        text = wav.with_suffix(".txt")
        if text.is_file():
            found.append(Recording(wav.stem, wav, text.read_text(encoding="utf-8").strip()))
    if not found:
        raise ManifestError(f"{folder}: no NAME.wav with a NAME.txt transcript beside it")
    return found


def condition_audio(pcm: bytes, condition: str, rng: np.random.Generator) -> bytes:
    """16 kHz PCM16 ``pcm`` as heard in ``condition``: through a G.711 μ-law phone line
    (8 kHz, converted as the line's edge does), or with white noise at an SNR over the
    whole recording's mean power."""
    from bot.audio.formats import AudioFormat

    chunk = AudioChunk(pcm, RECOGNISER)
    if condition == "clean":
        return pcm
    if condition == "μ-law 8 kHz":
        line = AudioFormat(8000, "ulaw")
        down, up = Converter(RECOGNISER, line), Converter(line, RECOGNISER)
        on_line = down.convert(chunk).data + down.flush().data
        return up.convert(AudioChunk(on_line, line)).data + up.flush().data
    snr_db = float(condition.split()[0])
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    power = float(np.mean(samples**2)) if samples.size else 0.0
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), samples.shape)
    return np.clip(np.round(samples + noise), -32768, 32767).astype(np.int16).tobytes()


def score_folder(model: SpeechModel, recordings: Sequence[Recording]) -> dict[str, ConditionScore]:
    """Each recording in each condition through ``model``, decoded on this thread (its CPU
    time is the recogniser's cost: the audio is prepared before the clock starts)."""
    rng = np.random.default_rng(NOISE_SEED)
    scores = {c: ConditionScore() for c in CONDITIONS}
    for recording in recordings:
        audio = read_wav(recording.wav)
        converter = Converter(audio.format, RECOGNISER)
        pcm = converter.convert(audio).data + converter.flush().data
        for condition in CONDITIONS:
            heard = condition_audio(pcm, condition, rng)
            started = time.thread_time()
            text, _ = transcribe_pcm(model, heard)
            score = scores[condition]
            score.cpu_seconds += time.thread_time() - started
            score.audio_seconds += len(heard) / RECOGNISER.bytes_for_ms(1000)
            edits, syllables = syllable_edits(recording.text, text)
            score.edits += edits
            score.syllables += syllables
            score.per_file[recording.name] = (edits, syllables, text)
    return scores


def format_folder_scores(scores: dict[str, ConditionScore], recordings: Sequence[Recording]) -> str:
    width = max(len(r.name) for r in recordings)
    lines = [f"{'condition':<12} {'WER':>6} {'edits/syll.':>11} {'CPU s per audio s':>18}"]
    for condition, score in scores.items():
        wer = "-" if score.wer is None else f"{100 * score.wer:.1f}%"
        cpu = score.cpu_per_audio_second
        lines.append(
            f"{condition:<12} {wer:>6} {f'{score.edits}/{score.syllables}':>11} "
            f"{'-' if cpu is None else f'{cpu:.3f}':>18}"
        )
    lines += ["", f"{'recording':<{width}}  " + "  ".join(f"{c:>12}" for c in scores)]
    for recording in recordings:
        cells = []
        for score in scores.values():
            edits, syllables, _ = score.per_file[recording.name]
            cells.append(f"{f'{edits}/{syllables}':>12}")
        lines.append(f"{recording.name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def score_folder_command(
    folder: Path, engine: str, stand_in: bool, out: TextIO, s: Settings
) -> int:
    try:
        recordings = read_folder(folder)
        model = _load_model(s, engine, stand_in)
    except (ManifestError, SetupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = sum(read_wav(r.wav).duration_ms for r in recordings) / 1000
    print(f"recogniser: {model.name}", file=out)
    print(f"recordings: {len(recordings)} from {folder} ({seconds:.1f} s)", file=out)
    print("WER counts syllables (edits / reference syllables, both normalised)\n", file=out)
    scores = score_folder(model, recordings)
    print(format_folder_scores(scores, recordings), file=out)
    for recording in recordings:
        print(f"\n{recording.name}\n  said : {normalise(recording.text)}", file=out)
        for condition, score in scores.items():
            print(f"  {condition:<12}: {score.per_file[recording.name][2]}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
