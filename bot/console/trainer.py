"""The trainers' pages in the console's shell (issue 11's login, roles, CSRF and audit log).

/console/trainer             the queue, "try it", adding an example, the training job,
                             the models with the comparison, activate and roll back
/console/trainer/job         the job's progress (polled by htmx)
POST .../try, .../preview, .../examples, .../dismiss, .../train, .../activate, .../rollback

The engine is in bot/tools/ (examples.py, train_job.py, comparison.py, model_registry.py);
this file turns requests into calls to it, with every change written to the audit log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import and_, or_, select

from bot.app.settings import Settings
from bot.console import auth, pii
from bot.console.app import REVIEW, _audit, _masker, add_nav, render
from bot.console.labels import ROUTE_CHOICES, route_name
from bot.session.brain_service import BrainService
from bot.store.calls import turns
from bot.store.review import audit_log, turn_flags
from bot.tools import comparison, examples
from bot.tools.model_registry import ActivationRefused, Registry, RegistryError, adopt_active
from bot.tools.train_job import FINETUNE, FULL, JobRefused, TrainingJobs
from bot.vocabulary import NoteKind, Route

PREFIX = "/console/trainer"
TRAINER = "trainer"
JOBS: web.AppKey[TrainingJobs] = web.AppKey("trainer_jobs", TrainingJobs)
BRAINS: web.AppKey[dict[str, Any]] = web.AppKey("trainer_brains", dict)  # candidate brains
SERVICE: web.AppKey[BrainService] = web.AppKey("trainer_service", BrainService)
LIVE_COUNT: web.AppKey[Any] = web.AppKey("trainer_live_count")  # () -> calls up now
SETTINGS: web.AppKey[Settings] = web.AppKey("trainer_settings", Settings)
DISMISS = "trainer_dismiss"


def _settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def _registry(request: web.Request) -> Registry:
    return Registry(_settings(request).model_registry)


# --- the queue ---------------------------------------------------------------------


def queue(request: web.Request, limit: int = 50) -> list[dict[str, Any]]:
    """Turns worth a trainer's time, newest first: flagged by a supervisor, fell back,
    understood below the review threshold, or answered "không phải" (the request before
    it); dismissed ones left out. Each with the turn before and after."""
    review = request.app[REVIEW]
    dismissed = select(audit_log.c.detail).where(audit_log.c.action == DISMISS)
    flagged = select(turn_flags.c.turn_id)
    wanted = and_(
        turns.c.kind == NoteKind.ROUTED.value,
        or_(
            turns.c.id.in_(flagged),
            turns.c.route == Route.FALLBACK.value,
            turns.c.confidence < _settings(request).review_confidence,
            turns.c.intent == "deny",
        ),
    )
    query = select(turns).where(wanted).order_by(turns.c.id.desc()).limit(limit * 2)
    mask = _masker(request)
    out: list[dict[str, Any]] = []
    with review.engine.connect() as conn:
        gone = {str(d) for (d,) in conn.execute(dismissed)}
        flags = {r.turn_id: r for r in conn.execute(select(turn_flags))}
        for row in conn.execute(query):
            if str(row.id) in gone:
                continue
            around = conn.execute(
                select(turns.c.seq, turns.c.speaker, turns.c.kind, turns.c.text)
                .where(
                    turns.c.call_id == row.call_id, turns.c.seq.between(row.seq - 3, row.seq + 3)
                )
                .where(turns.c.kind.in_((NoteKind.SAY.value, NoteKind.ROUTED.value)))
                .order_by(turns.c.seq)
            ).all()
            before = [t for t in around if t.seq < row.seq][-1:]
            after = [t for t in around if t.seq > row.seq][:1]
            flag = flags.get(row.id)
            reason = (
                "Giám sát viên gắn cờ"
                if flag
                else "Không hiểu"
                if row.route == Route.FALLBACK
                else "Người gọi nói «không phải»"
                if row.intent == "deny"
                else "Độ tin cậy thấp"
            )
            out.append(
                {
                    "id": row.id,
                    "call_id": row.call_id,
                    "at": row.at,
                    "text": mask(row.text) or "",
                    "raw": row.text or "",
                    "route": row.route,
                    "intent": row.intent,
                    "confidence": row.confidence,
                    "reason": reason,
                    "expected": flag.expected_route if flag else None,
                    "before": [mask(t.text) for t in before],
                    "after": [mask(t.text) for t in after],
                }
            )
            if len(out) >= limit:
                break
    return out


# --- routing with the active and a candidate model ---------------------------------


async def _brain_for(request: web.Request, name: str) -> Any:
    service = request.app[SERVICE]
    if service.model_path.name == name:
        return service.brain
    cache = request.app[BRAINS]
    if name not in cache:
        from bot.nlu.brain import Brain

        cache.clear()  # one candidate in memory at a time
        s = _settings(request)
        cache[name] = await asyncio.to_thread(
            Brain,
            _registry(request).models_dir / name,
            s.max_conversations,
            s.conversation_ttl_s,
        )
    return cache[name]


async def _try(request: web.Request, brain: Any, text: str) -> dict[str, Any]:
    from bot.nlu.brain import parse_of
    from bot.nlu.routes import route_for

    async def parse(b: Any) -> dict[str, Any]:
        return dict(await b.parse(text))

    data = await request.app[SERVICE].on(brain, parse)
    ranking = data.get("intent_ranking") or []
    return {
        "route": route_for(parse_of(data)),
        "intent": (data.get("intent") or {}).get("name") or "",
        "confidence": float((data.get("intent") or {}).get("confidence") or 0.0),
        "top3": [(r.get("name"), float(r.get("confidence") or 0.0)) for r in ranking[:3]],
    }


def _candidate(registry: Registry) -> dict[str, Any] | None:
    active = registry.active_name()
    for entry in registry.entries():  # newest first
        if entry["name"] != active and entry.get("figures") and not entry.get("activations"):
            return entry
    return None


# --- pages --------------------------------------------------------------------------


async def page(request: web.Request) -> web.Response:
    registry = _registry(request)
    await asyncio.to_thread(adopt_active, registry, _settings(request))
    entries = registry.entries()
    candidate = _candidate(registry)
    active = next((e for e in entries if e["active"]), None)
    compared = None
    if candidate and (candidate.get("against") or {}).get("figures"):
        compared = comparison.compare(
            comparison.Figures(candidate["against"]["figures"]),
            comparison.Figures(candidate["figures"]),
        )
    problems = (
        comparison.activation_problems(
            comparison.Figures(candidate["figures"]),
            comparison.Figures(active["figures"]) if active and active.get("figures") else None,
        )
        if candidate
        else []
    )
    return render(
        request,
        "trainer.html",
        queue=await asyncio.to_thread(queue, request),
        routes=ROUTE_CHOICES,
        route_name=route_name,
        entries=entries,
        active=active,
        candidate=candidate,
        compared=compared,
        problems=problems,
        targets=comparison.TARGETS,
        variant_names=comparison.VARIANT_NAMES,
        gate_rule=comparison.gate_rule(),
        job=request.app[JOBS].current,
        message=request.query.get("m", ""),
        error=request.query.get("e", ""),
        is_admin=auth.current(request).user.role == "admin",
        finetune_fraction=_settings(request).finetune_epoch_fraction,
    )


def _back(message: str = "", error: str = "") -> web.HTTPSeeOther:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in (("m", message), ("e", error)) if v})
    return web.HTTPSeeOther(f"{PREFIX}?{query}" if query else PREFIX)


async def try_it(request: web.Request) -> web.Response:
    form = await request.post()
    text = str(form.get("text") or "")[: _settings(request).max_utterance_chars]
    registry = _registry(request)
    rows = [("Mô hình đang chạy", await _try(request, request.app[SERVICE].brain, text))]
    candidate = _candidate(registry)
    if candidate:
        brain = await _brain_for(request, candidate["name"])
        rows.append((f"Mô hình mới ({candidate['name']})", await _try(request, brain, text)))
    return render(request, "trainer_try.html", text=text, rows=rows, route_name=route_name)


async def preview(request: web.Request) -> web.Response:
    form = await request.post()
    change = examples.preview(str(form.get("text") or ""))
    return render(request, "trainer_diff.html", change=change)


async def add_example(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    route, text = str(form.get("route") or ""), str(form.get("text") or "")
    registry = _registry(request)
    s = _settings(request)
    await asyncio.to_thread(adopt_active, registry, s)  # the live model's examples, before the edit
    try:
        added = await asyncio.to_thread(examples.add_example, s, route, text)
    except examples.ExampleRefused as e:
        raise _back(error=str(e)) from e
    turn = str(form.get("turn_id") or "")
    await _audit(
        request,
        "trainer_example_added",
        str(form.get("call_id") or "") or None,
        f"{added.intent} <- «{added.change.text}» ({added.file.name})",
    )
    if turn:
        await _audit(request, DISMISS, None, turn)
    raise _back(
        message=f"Đã thêm «{added.change.text}» vào {route_name(route)} ({added.file.name})."
    )


async def dismiss(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    turn = str(form.get("turn_id") or "")
    if not turn.isdigit():
        raise web.HTTPBadRequest(text="Thiếu lượt cần bỏ qua.")
    await _audit(request, DISMISS, str(form.get("call_id") or "") or None, turn)
    raise _back(message="Đã bỏ qua lượt này.")


async def train(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    kind = str(form.get("kind") or "")
    try:
        job = await request.app[JOBS].start(
            kind, auth.current(request).user.name, int(request.app[LIVE_COUNT]())
        )
    except JobRefused as e:
        raise _back(error=str(e)) from e
    await _audit(request, "trainer_training_started", None, f"{job.kind} {job.id}")
    raise _back(message="Đã bắt đầu huấn luyện.")


async def job_status(request: web.Request) -> web.Response:
    job = request.app[JOBS].current
    log = job.log()[-4000:] if job else ""
    # Progress bars redraw with \r: keep each line's last state.
    log = "\n".join(line.split("\r")[-1] for line in log.splitlines())
    return render(request, "trainer_job.html", job=job, log=log)


async def activate(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = Path(str(form.get("model") or "")).name
    reason = str(form.get("reason") or "").strip() or None
    user = auth.current(request).user
    try:
        record = await asyncio.to_thread(
            _registry(request).activate, name, by=user.name, role=user.role, override_reason=reason
        )
    except ActivationRefused as e:
        raise _back(error="Chưa kích hoạt được: " + " ".join(e.problems)) from e
    except RegistryError as e:
        raise _back(error=str(e)) from e
    detail = f"{name} (trước: {record['previous']})"
    if record.get("overridden"):
        detail += f"; bỏ qua kiểm tra, lý do: {record['override_reason']}"
    await _audit(request, "trainer_model_activated", None, detail)
    raise _back(message=f"Đã kích hoạt {name}: cuộc gọi mới dùng mô hình này sau vài giây.")


async def rollback(request: web.Request) -> web.StreamResponse:
    try:
        record = await asyncio.to_thread(
            _registry(request).rollback, by=auth.current(request).user.name
        )
    except RegistryError as e:
        raise _back(error=str(e)) from e
    await _audit(
        request,
        "trainer_model_rolled_back",
        None,
        f"{record['model']} (trước: {record['previous']})",
    )
    raise _back(message=f"Đã quay lại {record['model']}.")


def add_trainer(
    app: web.Application,
    brain: BrainService,
    s: Settings,
    live_count: Any = lambda: 0,
    jobs: TrainingJobs | None = None,
) -> None:
    """The trainers' pages on a server that has the console (bot.console.app.add_console)."""
    if REVIEW not in app:
        return  # the console did not start (its store failed); it logged why
    app[SETTINGS] = s
    app[JOBS] = jobs or TrainingJobs(
        log_dir=s.train_log_dir,
        config=s.rasa_config,
        max_live_calls=s.train_max_live_calls,
        nice=s.train_nice,
        finetune_fraction=s.finetune_epoch_fraction,
    )
    app[BRAINS] = {}
    app[SERVICE] = brain
    app[LIVE_COUNT] = live_count
    from bot.console.app import NAV

    if not any(item.path == PREFIX for item in NAV):  # once per process, however many apps
        add_nav(PREFIX, "Huấn luyện", (TRAINER,), landing_for=TRAINER)
    r = auth.require(TRAINER)
    app.add_routes(
        [
            web.get(PREFIX, r(page)),
            web.get(f"{PREFIX}/job", r(job_status)),
            web.post(f"{PREFIX}/try", r(try_it)),
            web.post(f"{PREFIX}/preview", r(preview)),
            web.post(f"{PREFIX}/examples", r(add_example)),
            web.post(f"{PREFIX}/dismiss", r(dismiss)),
            web.post(f"{PREFIX}/train", r(train)),
            web.post(f"{PREFIX}/activate", r(activate)),
            web.post(f"{PREFIX}/rollback", r(rollback)),
        ]
    )


__all__ = ["FINETUNE", "FULL", "add_trainer", "pii", "queue"]
