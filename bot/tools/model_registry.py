"""Every trained model, kept with its figures, and which one is live.

A JSON index beside the models (``models/registry.json``, BOT_MODEL_REGISTRY): one entry
per model (file, date, kind, base model, who trained it, training seconds, the examples it
was trained on, its figures from bot/tools/comparison.py) and the history of activations.
The running server watches the index and switches to the active model without a restart
(bot/session/brain_service.py); ``python -m bot models list|activate|rollback`` edits it
from a shell with the same rules as the console.

Without an index (or with no active model in it) the newest model in models/ is live,
as before the registry existed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.app.settings import Settings
from bot.tools.comparison import Figures, activation_problems

ADMIN = "admin"


class RegistryError(RuntimeError):
    """A model is unknown or its file is gone (the message says which)."""


class ActivationRefused(RuntimeError):
    def __init__(self, model: str, problems: list[str]) -> None:
        super().__init__(f"{model}: " + " ".join(problems))
        self.problems = problems


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Registry:
    path: Path

    @property
    def models_dir(self) -> Path:
        return self.path.parent

    # -- storage: one writer at a time (flock), atomic replace ------------------

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"active": None, "models": {}, "history": []}
        except ValueError as e:
            raise RegistryError(f"{self.path}: not valid JSON ({e})") from e
        return data if isinstance(data, dict) else {"active": None, "models": {}, "history": []}

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            yield data
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)

    # -- reading ----------------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        """Every registered model, newest first, with ``name`` and ``active`` filled in."""
        data = self.read()
        out = [
            {**entry, "name": name, "active": name == data.get("active")}
            for name, entry in data["models"].items()
        ]
        return sorted(out, key=lambda e: str(e.get("trained_at", "")), reverse=True)

    def entry(self, name: str) -> dict[str, Any]:
        entry = self.read()["models"].get(name)
        if entry is None:
            raise RegistryError(f"model {name!r} is not registered (python -m bot models list)")
        return dict(entry, name=name)

    def active_name(self) -> str | None:
        name = self.read().get("active")
        return str(name) if name else None

    def active_path(self) -> Path:
        """The live model: the registry's active one, or the newest file in models/."""
        name = self.active_name()
        if name and (self.models_dir / name).is_file():
            return self.models_dir / name
        from bot.nlu.brain import newest_model

        return newest_model(self.models_dir)

    def figures(self, name: str) -> Figures | None:
        data = self.entry(name).get("figures")
        return Figures(data) if data else None

    def examples(self, name: str) -> dict[str, list[str]]:
        return dict(self.entry(name).get("examples") or {})

    # -- writing ----------------------------------------------------------------

    def register(
        self,
        model: Path,
        *,
        trained_by: str,
        kind: str,
        base: str | None = None,
        seconds: float | None = None,
        examples: dict[str, list[str]] | None = None,
        figures: Figures | None = None,
    ) -> None:
        with self._editing() as data:
            data["models"][model.name] = {
                "trained_at": now(),
                "trained_by": trained_by,
                "kind": kind,
                "base": base,
                "seconds": round(seconds, 1) if seconds is not None else None,
                "examples": examples or {},
                "figures": figures.data if figures else None,
                "activations": [],
            }

    def set_figures(self, name: str, figures: Figures) -> None:
        with self._editing() as data:
            if name not in data["models"]:
                raise RegistryError(f"model {name!r} is not registered")
            data["models"][name]["figures"] = figures.data

    def adopt(self, model: Path, by: str = "system") -> None:
        """Register a model trained outside the registry (``make model``) without figures."""
        if model.name not in self.read()["models"]:
            self.register(model, trained_by=by, kind="full")

    def activate(
        self, name: str, *, by: str, role: str = "trainer", override_reason: str | None = None
    ) -> dict[str, Any]:
        """Make ``name`` the live model if it passes the gate (its figures against the
        active model's); an admin may override with a reason. Returns the history record."""
        if not (self.models_dir / name).is_file():
            raise RegistryError(f"model file not found: {self.models_dir / name}")
        self.entry(name)  # registered?
        previous = self.active_name()
        candidate = self.figures(name)
        # The live model itself compares equal to itself: activating it again always passes.
        active = self.figures(previous) if previous else None
        if candidate is None:
            problems = ["Mô hình chưa được chấm điểm trên bộ kiểm tra độc lập."]
        elif previous and active is None:
            problems = ["Mô hình đang chạy chưa được chấm điểm: không so sánh được."]
        else:
            problems = activation_problems(candidate, active)
        if problems:
            if role != ADMIN or not (override_reason or "").strip():
                raise ActivationRefused(name, problems)
        return self._make_active(name, by, "activate", previous, override_reason, problems)

    def rollback(self, *, by: str) -> dict[str, Any]:
        """Back to the model that was live before the current one (it passed the gate then)."""
        data = self.read()
        current = data.get("active")
        for record in reversed(data["history"]):
            if record["model"] == current and record.get("previous"):
                target = record["previous"]
                if not (self.models_dir / target).is_file():
                    raise RegistryError(f"model file not found: {self.models_dir / target}")
                return self._make_active(target, by, "rollback", current, None, [])
        raise RegistryError("no earlier model to roll back to")

    def _make_active(
        self,
        name: str,
        by: str,
        action: str,
        previous: str | None,
        reason: str | None,
        overridden: list[str],
    ) -> dict[str, Any]:
        record = {
            "at": now(),
            "by": by,
            "action": action,
            "model": name,
            "previous": previous,
            "override_reason": reason if overridden else None,
            "overridden": overridden,
        }
        with self._editing() as data:
            data["active"] = name
            data["history"].append(record)
            data["models"][name].setdefault("activations", []).append(
                {"at": record["at"], "by": by, "action": action}
            )
        return record

    def prunable(self, keep: int) -> list[Path]:
        """Model files that may be deleted: never live, and not among the ``keep`` newest."""
        data = self.read()
        live = {r["model"] for r in data["history"]} | {data.get("active")}
        files = sorted(self.models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
        return [p for p in files[:-keep] if p.name not in live] if keep else []


def default_registry(s: Settings) -> Registry:
    return Registry(s.model_registry)


# --- what the command line and the console share ------------------------------------


def added_examples(registry: Registry, model: str, since: str | None) -> list[tuple[str, str]]:
    """(text, route) of the examples ``model`` was trained on that ``since`` was not."""
    from bot.tools.examples import route_of_intent

    before = registry.examples(since) if since else {}
    seen = {(i, t) for i, texts in before.items() for t in texts}
    out = []
    for intent, texts in registry.examples(model).items():
        route = route_of_intent(intent)
        if route is None:
            continue
        out += [(t, route) for t in texts if (intent, t) not in seen]
    return out if before else []


def adopt_active(registry: Registry, s: Settings) -> str:
    """Make sure the live model is registered and named active, so that a newer candidate
    never goes live just by being the newest file. The examples are snapshotted from
    nlu_data/ when the model was trained from nlu_data/ as it is now (fingerprint.json)."""
    from bot.tools.training import _read_fingerprint, fingerprint, load_examples

    live = registry.active_path()
    data = registry.read()
    if live.name not in data["models"]:
        saved = _read_fingerprint(s.models_dir)
        same = saved.get("model") == live.name and saved.get("fingerprint") == fingerprint(s)
        registry.register(
            live, trained_by="?", kind="full", examples=load_examples(s.nlu_data) if same else {}
        )
    if registry.active_name() is None:
        registry._make_active(live.name, "system", "adopt", None, None, [])
    return live.name


def train_candidate(s: Settings, by: str, finetune: bool, epoch_fraction: float) -> str:
    """Train, register and score a candidate against the live model; never activates it."""
    import time

    from bot.nlu.brain import Brain
    from bot.tools.comparison import rescore_added, score_model
    from bot.tools.training import load_examples, train

    registry = default_registry(s)
    active = adopt_active(registry, s)
    examples = load_examples(s.nlu_data)
    started = time.monotonic()
    model = train(
        s,
        finetune_from=registry.models_dir / active if finetune else None,
        epoch_fraction=epoch_fraction,
    )
    seconds = time.monotonic() - started
    registry.register(
        model,
        trained_by=by,
        kind="finetune" if finetune else "full",
        base=active if finetune else None,
        seconds=seconds,
        examples=examples,
    )
    added = added_examples(registry, model.name, active)
    print(f"==> scoring {model.name} and {active} ({len(added)} new examples)", flush=True)
    figures = score_model(Brain(model), added, s.heldout)
    registry.set_figures(model.name, figures)
    base_brain = Brain(registry.models_dir / active)
    base = registry.figures(active) or score_model(base_brain, [], s.heldout)
    from bot.nlu.brain import run

    base = rescore_added(base, lambda ts: [str(run(base_brain.route(t)).route) for t in ts], added)
    with registry._editing() as data:
        data["models"][model.name]["against"] = {"model": active, "figures": base.data}
        if not data["models"][active].get("figures"):
            data["models"][active]["figures"] = base.data
    print(f"==> candidate {model.name}: {figures.summary()}", flush=True)
    print(f"==> trained {model.name} in {seconds:.0f} s", flush=True)
    return model.name
