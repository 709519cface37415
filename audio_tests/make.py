#!/usr/bin/env python3
"""Regenerate the synthetic test calls of audio_tests/ from manifest.tsv.

Each row whose ``made_with`` starts with ``espeak-ng`` is a recipe, e.g.

    espeak-ng voice=vi+f2 speed=160 pitch=70 lead=0.8 trail=1.0 level=-3 band=300-3400 noise=0.015

and becomes an 8 kHz mono PCM16 WAV (a phone line's audio) in four steps:

1. ``espeak-ng -v VOICE -s SPEED -p PITCH`` speaks the row's text (22.05 kHz);
2. sox resamples it to 8 kHz, normalises its peak to ``level`` dBFS (default -3) and pads
   ``lead`` and ``trail`` seconds of silence around it;
3. with ``noise=A``: sox's pink noise at ``vol A`` is mixed under the whole call, silences
   included (0.01 is about -54 dBFS RMS: a quiet line);
4. with ``band=LO-HI``: a telephone band-pass (``sinc LO-HI``) is applied last.

sox runs with ``-R`` (its noise generator seeded) and ``-D`` (no dither), and espeak-ng is
deterministic, so the same tools give byte-identical files. Rows whose ``made_with`` is
anything else (say ``recording: ...``) are real recordings: this script leaves them alone.

Only the standard library, espeak-ng and sox are needed:

    python3 audio_tests/make.py              # regenerate every synthetic call in place
    python3 audio_tests/make.py --check      # regenerate in a temporary folder and compare
    python3 audio_tests/make.py --out DIR calls/vi01_emergency_fall.wav
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.tsv"
COLUMNS = ("file", "language", "text", "expected_route", "digits", "made_with")
RATE = 8000  # a phone line: 8 kHz mono signed 16-bit
GENERATOR = "espeak-ng"
# The tools the committed files were made with: other versions give other bytes.
TOOLS = "espeak-ng 1.51, sox 14.4.2"

_BAND = re.compile(r"^(\d+)-(\d+)$")


class RecipeError(ValueError):
    """A ``made_with`` recipe that this script cannot follow."""


@dataclass(frozen=True)
class Recipe:
    voice: str  # espeak-ng voice and variant: vi, vi+f2, vi-vn-x-south+m7, ko ...
    speed: int  # words per minute (espeak-ng -s)
    pitch: int  # 0-99 (espeak-ng -p)
    lead: float  # seconds of silence before the caller speaks
    trail: float  # seconds of silence after
    level: float = -3.0  # peak level of the speech, dBFS
    band: tuple[int, int] | None = None  # telephone band-pass, Hz
    noise: float = 0.0  # amplitude of the pink noise under the call (0: none)


@dataclass(frozen=True)
class Row:
    file: str
    language: str
    text: str
    expected_route: str
    digits: str
    made_with: str


def parse_recipe(made_with: str) -> Recipe | None:
    """The recipe of a ``made_with`` cell; None for a real recording (not made here)."""
    words = made_with.split()
    if not words or words[0] != GENERATOR:
        return None
    fields: dict[str, str] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise RecipeError(f"{made_with!r}: {word!r} is not key=value")
        fields[key] = value
    unknown = set(fields) - set(Recipe.__dataclass_fields__)
    if unknown:
        raise RecipeError(f"{made_with!r}: unknown keys {sorted(unknown)}")
    missing = {"voice", "speed", "pitch", "lead", "trail"} - set(fields)
    if missing:
        raise RecipeError(f"{made_with!r}: missing {sorted(missing)}")
    try:
        band = None
        if "band" in fields:
            match = _BAND.match(fields["band"])
            if not match:
                raise RecipeError(f"{made_with!r}: band must be LO-HI in Hz")
            band = (int(match[1]), int(match[2]))
        recipe = Recipe(
            voice=fields["voice"],
            speed=int(fields["speed"]),
            pitch=int(fields["pitch"]),
            lead=float(fields["lead"]),
            trail=float(fields["trail"]),
            level=float(fields.get("level", "-3")),
            band=band,
            noise=float(fields.get("noise", "0")),
        )
    except ValueError as e:
        if isinstance(e, RecipeError):
            raise
        raise RecipeError(f"{made_with!r}: {e}") from e
    if not (80 <= recipe.speed <= 450 and 0 <= recipe.pitch <= 99):
        raise RecipeError(f"{made_with!r}: speed 80-450, pitch 0-99")
    if not (0 <= recipe.lead <= 5 and 0 <= recipe.trail <= 5):
        raise RecipeError(f"{made_with!r}: lead and trail are 0-5 s")
    if not (-40 <= recipe.level <= 0 and 0 <= recipe.noise < 0.5):
        raise RecipeError(f"{made_with!r}: level -40..0 dBFS, noise 0..0.5")
    if recipe.band and not (0 < recipe.band[0] < recipe.band[1] < RATE // 2):
        raise RecipeError(f"{made_with!r}: band must lie within 0-{RATE // 2} Hz")
    return recipe


def read_manifest(path: Path = MANIFEST) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise SystemExit(f"{path}: the header must be {' / '.join(COLUMNS)}, got {header}")
        rows = []
        for number, cells in enumerate(reader, start=2):
            if not any(cells):
                continue
            if len(cells) != len(COLUMNS):
                raise SystemExit(f"{path}:{number}: {len(cells)} cells, expected {len(COLUMNS)}")
            rows.append(Row(*cells))
    return rows


def tool_versions() -> str:
    """The versions of espeak-ng and sox on this machine, in the form of ``TOOLS``."""
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    sox = subprocess.run(["sox", "--version"], capture_output=True, text=True).stdout
    espeak_version = re.search(r"text-to-speech:\s*(\S+)", espeak)
    sox_version = re.search(r"v(\d[\w.]*)", sox)
    return (
        f"espeak-ng {espeak_version[1] if espeak_version else '?'}, "
        f"sox {sox_version[1] if sox_version else '?'}"
    )


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")


def _frames(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getnframes()


def make_call(row: Row, recipe: Recipe, out: Path) -> None:
    """Synthesise one call into ``out`` (written whole, then moved into place)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed (apt-get install {tool})")
    out.parent.mkdir(parents=True, exist_ok=True)
    line = ["-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]
    with tempfile.TemporaryDirectory(prefix="make-call-") as tmp:
        work = Path(tmp)
        speech, padded, result = work / "speech.wav", work / "padded.wav", work / "call.wav"
        voice = ["-v", recipe.voice, "-s", str(recipe.speed), "-p", str(recipe.pitch)]
        _run(["espeak-ng", *voice, "-w", str(speech), row.text])
        _run(
            ["sox", "-R", "-D", str(speech), *line, str(padded), "rate", "-v", str(RATE)]
            + ["gain", "-n", f"{recipe.level:g}", "pad", f"{recipe.lead:g}", f"{recipe.trail:g}"]
        )
        inputs = [str(padded)]
        if recipe.noise > 0:
            noise = work / "noise.wav"
            samples = _frames(padded)
            _run(
                ["sox", "-R", "-D", "-r", str(RATE), "-c", "1", "-n", *line, str(noise)]
                + ["synth", f"{samples}s", "pinknoise"]
                + ["vol", f"{recipe.noise:g}"]
            )
            inputs = ["-m", "-v", "1", str(padded), "-v", "1", str(noise)]
        effects = ["sinc", f"{recipe.band[0]}-{recipe.band[1]}"] if recipe.band else []
        if len(inputs) > 1 or effects:
            _run(["sox", "-R", "-D", *inputs, *line, str(result), *effects])
        else:
            shutil.copyfile(padded, result)
        shutil.move(str(result), out)


def describe(path: Path) -> str:
    with wave.open(str(path), "rb") as w:
        seconds = w.getnframes() / w.getframerate()
        return f"{w.getframerate()} Hz, {w.getnchannels()} ch, {8 * w.getsampwidth()} bit, " + (
            f"{seconds:.2f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="only these rows (the manifest's file column)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--out", type=Path, help="write under this folder instead of in place")
    parser.add_argument(
        "--check", action="store_true", help="regenerate into a temporary folder and compare"
    )
    args = parser.parse_args(argv)

    base = args.manifest.resolve().parent
    rows = read_manifest(args.manifest)
    if args.files:
        wanted = set(args.files)
        unknown = wanted - {r.file for r in rows}
        if unknown:
            raise SystemExit(f"not in {args.manifest}: {', '.join(sorted(unknown))}")
        rows = [r for r in rows if r.file in wanted]

    versions = tool_versions()
    if versions != TOOLS:
        print(f"note: the committed files were made with {TOOLS}; this machine has {versions}")
    with tempfile.TemporaryDirectory(prefix="audio-tests-") as tmp:
        target = Path(tmp) if args.check else (args.out.resolve() if args.out else base)
        made, skipped, differ = 0, 0, []
        total_bytes = 0
        for row in rows:
            try:
                recipe = parse_recipe(row.made_with)
            except RecipeError as e:
                raise SystemExit(f"{row.file}: {e}") from e
            if recipe is None:
                skipped += 1
                continue
            out = target / row.file
            make_call(row, recipe, out)
            made += 1
            total_bytes += out.stat().st_size
            if args.check:
                committed = base / row.file
                if not committed.is_file() or not filecmp.cmp(committed, out, shallow=False):
                    differ.append(row.file)
            else:
                print(f"{row.file}: {describe(out)}")
        size = f"{total_bytes / 1e6:.2f} MB"
        print(f"{made} calls made ({size}), {skipped} recordings left as they are")
        if args.check:
            if differ:
                print("differ from the committed files:\n  " + "\n  ".join(differ))
                return 1
            print("every synthetic call matches its committed file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
