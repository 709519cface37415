"""The test calls of audio_tests/: the manifest, make.py, the WER and the runner.

The runner is exercised on the Korean calls with the stand-in recogniser (the real Korean
Vosk model from PyPI): the Vietnamese model cannot be downloaded on these machines."""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import subprocess
import sys
import wave
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import soundfile
import yaml

from bot.call.machine import is_backchannel
from bot.nlu.text import fold
from bot.store.calls import TurnRecord
from bot.tools.audio_tests import (
    LANGUAGES,
    MANIFEST,
    AudioTestCall,
    ManifestError,
    first_decision,
    main,
    read_manifest,
    read_turns,
    syllable_edits,
    transcribe_call,
    word_error_rate,
)
from bot.transports.simulated import parse_digits
from bot.vocabulary import BRANCHES, Route, branch_route
from tests.config import SETTINGS

pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parent.parent
ALL_ROUTES = tuple(Route)
FALLBACK = Route.FALLBACK
AUDIO_TESTS = ROOT / "audio_tests"
MAKE = AUDIO_TESTS / "make.py"


@pytest.fixture(scope="module")
def make() -> ModuleType:
    """audio_tests/make.py, a script outside the package, loaded as a module."""
    spec = importlib.util.spec_from_file_location("audio_tests_make", MAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def calls() -> list[AudioTestCall]:
    return read_manifest()


def synthetic(make: ModuleType, call: AudioTestCall) -> Any:
    return make.parse_recipe(call.made_with)


# --- the manifest ---------------------------------------------------------------------


def test_manifest_has_the_documented_columns_and_about_thirty_vietnamese_calls(
    calls: list[AudioTestCall], make: ModuleType
) -> None:
    header = MANIFEST.read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert header == ["file", "language", "text", "expected_route", "digits", "made_with"]
    assert tuple(header) == make.COLUMNS  # make.py reads the same manifest
    files = [c.file for c in calls]
    assert len(files) == len(set(files)), "a file is listed twice"
    languages = [c.language for c in calls]
    assert set(languages) <= set(LANGUAGES)
    assert 28 <= languages.count("vi") <= 36
    assert 5 <= languages.count("ko") <= 8


def test_every_file_exists_and_synthetic_calls_are_phone_line_wavs(
    calls: list[AudioTestCall], make: ModuleType
) -> None:
    total = 0
    for call in calls:
        assert call.path.is_file(), f"{call.file} is missing: run python3 audio_tests/make.py"
        total += call.path.stat().st_size
        recipe = synthetic(make, call)
        if recipe is None:  # a real recording: any format soundfile reads
            assert soundfile.info(str(call.path)).frames > 0, call.file
            continue
        with wave.open(str(call.path), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2), call.file
            seconds = w.getnframes() / w.getframerate()
        assert 2.0 < seconds < 15.0, call.file
        assert 0.5 <= recipe.lead <= 1.5 and 0.5 <= recipe.trail <= 1.5, call.file
    assert total < 8_000_000, f"the test calls take {total} bytes: keep the set small"


def test_routes_and_digits_are_valid(calls: list[AudioTestCall]) -> None:
    for call in calls:
        assert call.expected_route in ALL_ROUTES, call.file
        presses = parse_digits(call.digits)
        if presses:
            # The keypad decides as soon as it is pressed; the speech before it in these
            # calls asks for nothing.
            first = next(branch_route(d) for _, d in presses if d.isdigit())
            assert call.expected_route == first, call.file
        elif call.language == "ko":
            assert call.expected_route == FALLBACK, call.file


def test_the_vietnamese_calls_cover_every_route_family(calls: list[AudioTestCall]) -> None:
    vi = [c for c in calls if c.language == "vi"]
    spoken = [c for c in vi if not c.digits]
    routes = {c.expected_route for c in spoken}
    assert {f"transfer:{n}" for n in BRANCHES} <= routes
    assert {"operator", FALLBACK} <= routes
    assert len({r for r in routes if r.startswith("faq:")}) >= 6
    emergencies = [c for c in spoken if c.expected_route == "transfer:1"]
    assert len(emergencies) >= 2
    assert any(re.search(r"\bnhánh (hai|ba|bốn|năm|sáu)\b", c.text) for c in spoken)
    assert any(is_backchannel(c.text) for c in spoken), "a backchannel alone"
    fallbacks = [c for c in spoken if c.expected_route == FALLBACK]
    assert len([c for c in fallbacks if not is_backchannel(c.text)]) >= 2, "out of scope"
    assert len([c for c in vi if c.digits]) >= 3


def test_the_sentences_are_new(calls: list[AudioTestCall]) -> None:
    """Not copies of the held-out set or of the training examples."""
    known = {
        fold(line.split("\t")[0])
        for line in (ROOT / "tests" / "data" / "heldout.tsv").read_text("utf-8").splitlines()
    }
    markup = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")
    for path in (ROOT / "nlu_data").rglob("*.yml"):
        for item in (yaml.safe_load(path.read_text("utf-8")) or {}).get("nlu") or []:
            block = item.get("examples") if isinstance(item, dict) else None
            for line in (block or "").splitlines():
                if line.strip().startswith("- "):
                    known.add(fold(markup.sub(r"\1", line.strip()[2:])))
    copies = [c.file for c in calls if c.language == "vi" and fold(c.text) in known]
    assert not copies


def test_made_with_is_a_recipe_make_py_can_follow(
    calls: list[AudioTestCall], make: ModuleType
) -> None:
    voices = set()
    for call in calls:
        recipe = synthetic(make, call)
        assert recipe is not None, f"{call.file}: every committed call is synthetic"
        assert recipe.voice.split("+")[0].startswith(call.language), call.file
        voices.add(recipe.voice)
    assert len(voices) >= 5
    assert make.parse_recipe("recording: site A, consented") is None
    for bad in ("espeak-ng voice=vi", "espeak-ng voice=vi speed=fast pitch=50 lead=1 trail=1"):
        with pytest.raises(make.RecipeError):
            make.parse_recipe(bad)


def test_a_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    lines = MANIFEST.read_text(encoding="utf-8").splitlines()
    cells = lines[1].split("\t")
    cells[3] = "transfer:9"
    bad = tmp_path / "manifest.tsv"
    bad.write_text("\n".join([lines[0], lines[2], "\t".join(cells)]) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"manifest.tsv:3: 'transfer:9' is not a route"):
        read_manifest(bad)
    cells[3], cells[4] = "transfer:5", "x@2"
    bad.write_text("\n".join([lines[0], "\t".join(cells)]) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="manifest.tsv:2: digits"):
        read_manifest(bad)


# --- make.py ------------------------------------------------------------------------------


def test_make_regenerates_a_call_identically(
    tmp_path: Path, calls: list[AudioTestCall], make: ModuleType
) -> None:
    # The most involved recipe (band-pass and noise) and a Korean one.
    noisy = next(c for c in calls if "band=" in c.made_with and "noise=" in c.made_with)
    korean = next(c for c in calls if c.language == "ko")
    done = subprocess.run(
        [sys.executable, str(MAKE), "--out", str(tmp_path), noisy.file, korean.file],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    same_tools = make.tool_versions() == make.TOOLS
    for call in (noisy, korean):
        made = tmp_path / call.file
        with wave.open(str(made), "rb") as new, wave.open(str(call.path), "rb") as old:
            assert new.getparams() == old.getparams(), call.file  # format and length
        if same_tools:  # espeak-ng and sox are deterministic: the very same bytes
            assert made.read_bytes() == call.path.read_bytes(), call.file


def test_make_check_finds_a_file_that_differs(
    tmp_path: Path, calls: list[AudioTestCall], make: ModuleType
) -> None:
    call = calls[0]
    header = MANIFEST.read_text(encoding="utf-8").splitlines()[0]
    row = "\t".join(
        [call.file, call.language, call.text, call.expected_route, call.digits, call.made_with]
    )
    (tmp_path / "manifest.tsv").write_text(f"{header}\n{row}\n", encoding="utf-8")
    (tmp_path / call.file).parent.mkdir(parents=True)
    shutil.copyfile(call.path, tmp_path / call.file)
    check = [sys.executable, str(MAKE), "--manifest", str(tmp_path / "manifest.tsv"), "--check"]
    if make.tool_versions() == make.TOOLS:
        assert subprocess.run(check, capture_output=True, timeout=60).returncode == 0
    with (tmp_path / call.file).open("r+b") as f:
        f.seek(-2, 2)
        f.write(b"\x01\x02")
    done = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and call.file in done.stdout


# --- word error rate and decisions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "hypothesis", "edits", "length"),
    [
        ("cứu với bố tôi ngã", "cứu với bố tôi ngã", 0, 5),
        ("Cứu với, bố tôi ngã!", "cứu với bố tôi ngã", 0, 5),  # normalised: case, punctuation
        ("nhà tôi hết gạo", "nhà tôi hết gạo rồi", 1, 4),  # an insertion
        ("nhà tôi hết gạo", "nhà hết gạo", 1, 4),  # a deletion
        ("đau lắm", "đau nắm", 1, 2),  # l/n: a different syllable
        ("ho tro", "hỗ trợ", 2, 2),  # diacritics count
        ("nối máy nhánh sáu", "", 4, 4),
        ("a", "x y z", 3, 1),
        ("một hai ba bốn", "hai ba bốn năm", 2, 4),  # shifted: 1 deletion + 1 insertion
        ("", "", 0, 0),
    ],
)
def test_syllable_edits(reference: str, hypothesis: str, edits: int, length: int) -> None:
    assert syllable_edits(reference, hypothesis) == (edits, length)


def test_word_error_rate() -> None:
    assert word_error_rate("cho tôi gặp tổng đài viên", "cho tôi gặp tổng đài viên") == 0.0
    assert word_error_rate("cho tôi gặp tổng đài viên", "cho tôi gặp tổng đài") == pytest.approx(
        1 / 6
    )
    assert word_error_rate("nhánh năm", "nhanh năm") == 0.5
    assert word_error_rate("alo", "") == 1.0
    assert word_error_rate("alo", "a lô a lô") == 4.0  # insertions: more than 1
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "alo") == 1.0


def test_the_first_route_that_is_not_fallback_decides() -> None:
    assert first_decision([]) == FALLBACK
    assert first_decision([(1.0, FALLBACK)]) == FALLBACK
    assert first_decision([(3.0, "transfer:5"), (1.0, FALLBACK)]) == "transfer:5"
    assert first_decision([(4.0, "operator"), (2.0, "faq:chi_tra")]) == "faq:chi_tra"


def turn(seq: int, kind: str, text: str | None = None, route: str | None = None) -> TurnRecord:
    speaker = "bot" if kind in ("say", "transfer") else "caller"
    return TurnRecord(
        id=seq,
        call_id="c",
        seq=seq,
        at=datetime.now(timezone.utc),
        speaker=speaker,
        kind=kind,
        text=text,
        route=route,
        intent=None,
        confidence=None,
        started_ms=None,
        ended_ms=None,
        latency_ms=None,
        words=None,
    )


def test_a_call_record_gives_its_decisions_and_transcript() -> None:
    turns = [
        turn(1, "call_started"),
        turn(2, "say", "Tổng đài 1022 xin nghe"),
        turn(3, "utterance", "alo"),
        turn(4, "backchannel_ignored", "alo"),
        turn(5, "utterance", "tôi muốn hỏi"),
        turn(6, "heard", "tôi muốn hỏi"),
        turn(7, "digit", "*"),
        turn(8, "digit", "5"),
        turn(9, "emergency_from_partial", "khó thở quá", "transfer:1"),
        turn(10, "transfer", route="transfer:5"),
    ]
    decisions, asked, transcript = read_turns(reversed(turns))
    assert decisions == [(8.0, "transfer:5"), (9.0, "transfer:1")]
    assert asked == [(6.0, "tôi muốn hỏi")]
    assert transcript == "alo tôi muốn hỏi"


# --- the runner, transcripts only, on the Korean calls with the stand-in recogniser ----------


@pytest.fixture(scope="module")
def korean_model() -> Any:
    from bot.asr.vosk_engine import VoskModel
    from bot.speech_models import stand_in_models

    return VoskModel(stand_in_models().vosk)


def test_korean_calls_are_transcribed_by_the_stand_in_recogniser(
    calls: list[AudioTestCall], korean_model: Any, brain: Any
) -> None:
    from bot.nlu.brain import run

    def route(text: str) -> str:
        return str(run(brain.route(text)).route)

    korean = [c for c in calls if c.language == "ko"]
    results = [transcribe_call(call, korean_model, route) for call in korean]
    for result in results:
        assert not result.crashed, result.error
        assert result.transcript.strip(), f"{result.call.file}: nothing recognised"
        assert result.route in ALL_ROUTES
        assert result.syllables == len(result.call.text.split())
    assert min(r.wer for r in results) < 1.0, [(r.call.text, r.transcript) for r in results]


def test_the_runner_command_in_transcripts_only_mode(brain: Any) -> None:
    from bot.nlu.brain import run

    out = io.StringIO()
    code = main(
        ["--stand-in-models", "--only", "ko", "--transcripts-only"],
        router=lambda text: str(run(brain.route(text)).route),
        out=out,
    )
    text = out.getvalue()
    assert code == 0, text
    assert "STAND-INS" in text and "Vietnamese calls will NOT be understood" in text
    assert text.count("heard: ") == 6
    assert re.search(r"^ko\s+6\s+\d/6\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+0$", text, re.M), text


def test_the_runner_never_falls_back_to_the_stand_ins_silently() -> None:
    from bot.speech_models import check

    if not any("Vosk" in line for line in check(SETTINGS.speech_models)):
        pytest.skip("the Vietnamese Vosk model is installed here")
    done = subprocess.run(
        # Vosk asked for by name: "auto" would take the embedded Vietnamese model here.
        [
            sys.executable,
            "-m",
            "bot.tools.audio_tests",
            "--engine",
            "vosk",
            "--only",
            "ko",
            "--transcripts-only",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 2
    assert "Vosk model" in done.stderr and "--stand-in-models" in done.stderr
    assert "audio tests:" not in done.stdout  # nothing was run


def test_the_runner_says_what_the_vocabulary_does_with_the_model(brain: Any) -> None:
    from bot.nlu.brain import run

    out = io.StringIO()
    code = main(
        ["--stand-in-models", "--only", "ko", "--transcripts-only", "--vocabulary"],
        router=lambda text: str(run(brain.route(text)).route),
        out=out,
    )
    text = out.getvalue()
    assert code == 0, text
    # The Korean stand-in knows no word of the Vietnamese training data: no grammar, said so.
    assert "vocabulary: 0 phrases from nlu_data/ with words the model knows; no grammar" in text
    assert text.count("heard: ") == 6


def test_a_folder_of_recordings_is_scored_per_condition_on_vietasr(tmp_path: Path) -> None:
    from bot.tools.vieneu_clips import DEST, bad_files, expected_hashes

    if bad_files(DEST, expected_hashes()):
        pytest.fail(f"the vieneu clips are not in {DEST}: run `make test`")
    # Two of the six clips, and a WAV without a transcript, which is left out.
    for name in ("Ly (nữ miền Bắc)", "Đoan (nữ miền Nam)"):
        for ext in (".wav", ".txt"):
            shutil.copy(DEST / f"{name}{ext}", tmp_path / f"{name}{ext}")
    shutil.copy(DEST / "Ly (nữ miền Bắc).wav", tmp_path / "untranscribed.wav")
    out = io.StringIO()
    assert main(["--folder", str(tmp_path), "--engine", "vietasr"], out=out) == 0
    text = out.getvalue()
    assert "recogniser: vietasr:embedded-0.1.0.dev11" in text
    assert "recordings: 2 from" in text
    for condition in ("clean", "μ-law 8 kHz", "20 dB SNR", "10 dB SNR"):
        row = re.search(rf"^{condition}\s+([\d.]+)%\s+(\d+)/34\s+([\d.]+)$", text, re.M)
        assert row, text
        assert float(row.group(3)) > 0  # the recogniser's CPU per audio second, measured
    clean = re.search(r"^clean\s+([\d.]+)%", text, re.M)
    assert clean and float(clean.group(1)) <= 10.0, text  # both were 0/34 when measured


def test_a_folder_without_transcripts_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    assert main(["--folder", str(tmp_path), "--engine", "vietasr"], out=io.StringIO()) == 2
