"""The supervisors' console: pages under /console/, server-rendered (Jinja2), with htmx
for the parts that update by themselves and wavesurfer.js for the recording.

Routes (all behind a login; see bot/console/auth.py for the rules):

  GET  /console/                 -> the calls list (a trainer's landing page may differ)
  GET  /console/login, POST      the login form; POST /console/logout
  GET  /console/calls            the calls list (filters in the query string)
  GET  /console/calls.csv        the same filtered list as CSV
  GET  /console/calls/{id}       one call: the timeline, the recording, flags
  GET  /console/calls/{id}/audio the recording (WAV, Range requests)
  POST /console/calls/{id}/flags flag a turn
  GET  /console/dashboard        today / 7 / 30 days
  GET  /console/live, /console/live/rows   calls in progress (the rows poll by htmx)
  GET  /console/audit            the audit log (admins)
  GET  /console/static/...       CSS, scripts, vendored libraries

Other pages (the trainers', issue 12) join the shell with ``add_nav`` and ``render``.
Personal data is masked for every role but admin (bot/console/pii.py).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from bot.app.settings import Settings
from bot.console import auth, charts, labels, pii
from bot.console.queries import TZ, CallFilter, Queries
from bot.store.calls import CallStore, StoreError
from bot.store.review import FLAG_KINDS, ReviewStore
from bot.tools.comparison import percent

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PER_PAGE = 25

REVIEW: web.AppKey[ReviewStore] = web.AppKey("console_review", ReviewStore)
QUERIES: web.AppKey[Queries] = web.AppKey("console_queries", Queries)
THROTTLE: web.AppKey[auth.Throttle] = web.AppKey("console_throttle", auth.Throttle)
CONFIG: web.AppKey[Settings] = web.AppKey("console_settings", Settings)
LIVE: web.AppKey[Any] = web.AppKey("console_live")  # () -> list of live call summaries


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    roles: tuple[str, ...]


NAV: list[NavItem] = [
    NavItem("/console/calls", "Cuộc gọi", ("supervisor", "trainer")),
    NavItem("/console/dashboard", "Tổng quan", ("supervisor", "trainer")),
    NavItem("/console/live", "Đang gọi", ("supervisor",)),
    NavItem("/console/audit", "Nhật ký truy cập", ()),
]
LANDING: dict[str, str] = {
    "admin": "/console/calls",
    "supervisor": "/console/calls",
    "trainer": "/console/calls",
}


def add_nav(path: str, label: str, roles: tuple[str, ...], landing_for: str | None = None) -> None:
    """Another console page in the menu (and the landing page of a role, if given)."""
    NAV.append(NavItem(path, label, roles))
    if landing_for:
        LANDING[landing_for] = path


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _local(at: datetime | str | None, fmt: str = "%d/%m/%Y %H:%M:%S") -> str:
    if isinstance(at, str):  # an ISO time from a JSON file (the model registry)
        at = datetime.fromisoformat(at) if at else None
    return at.astimezone(TZ).strftime(fmt) if at else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


_env.filters.update(local=_local, duration=_duration, route_name=labels.route_name)
_env.filters["end_reason"] = lambda reason: end_reason(reason)
_env.filters["percent"] = percent
_env.filters["capitalize_first"] = lambda text: text[:1].upper() + text[1:]
_env.globals.update(labels=labels, FLAG_KINDS=FLAG_KINDS)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A page in the console's shell (the menu for the user's role, the CSRF token)."""
    session = request.get(auth.SESSION_KEY)
    role = session.user.role if session else None
    nav = [n for n in NAV if role == "admin" or role in n.roles]
    html = _env.get_template(template).render(
        session=session,
        nav=nav,
        path=request.path,
        csrf=session.csrf if session else "",
        **context,
    )
    return web.Response(text=html, content_type="text/html", status=status)


def _unmasked(request: web.Request) -> bool:
    return bool(auth.current(request).user.role == "admin")


def _masker(request: web.Request) -> Any:
    return (lambda text: text) if _unmasked(request) else pii.mask_text


async def _audit(
    request: web.Request, action: str, call_id: str | None = None, detail: str | None = None
) -> None:
    try:
        await asyncio.to_thread(
            request.app[REVIEW].audit, auth.current(request).user.name, action, call_id, detail
        )
    except Exception as e:  # refuse what cannot be audited
        logger.error("audit log write failed: %r", e)
        raise web.HTTPServiceUnavailable(
            text="Không ghi được nhật ký truy cập; anh chị thử lại sau."
        ) from e


# --- login ---------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    response = render(request, "login.html", error=None, next=_next(request), csrf_login="")
    token = auth.login_csrf(request, request.app[CONFIG], response)
    response.text = (response.text or "").replace("__LOGIN_CSRF__", token)
    return response


def _next(request: web.Request) -> str:
    target = request.query.get("next", "")
    # Only a path inside the console: never a redirect to another site.
    return target if target.startswith("/console/") and not target.startswith("//") else ""


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    expected = request.cookies.get(auth.LOGIN_CSRF_COOKIE, "")
    if not expected or form.get("csrf") != expected:
        raise web.HTTPForbidden(
            text="Phiên đăng nhập không hợp lệ. Anh chị tải lại trang đăng nhập."
        )
    throttle = request.app[THROTTLE]
    keys = [f"user:{name}", f"addr:{request.remote}"]
    wait = throttle.blocked_for(keys)
    store = request.app[REVIEW]

    def again(message: str, status: int) -> web.Response:
        response = render(
            request, "login.html", status=status, error=message, next=str(form.get("next", ""))
        )
        response.text = (response.text or "").replace("__LOGIN_CSRF__", expected)
        return response

    if wait > 0:
        await asyncio.to_thread(store.audit, name or "?", "login_throttled", None, request.remote)
        return again(
            f"Đăng nhập sai quá nhiều lần. Anh chị thử lại sau {int(wait // 60) + 1} phút.", 429
        )
    user = await asyncio.to_thread(store.user, name)
    ok = await asyncio.to_thread(auth.verify_password, user, password)
    if not ok or user is None:
        throttle.failed(keys)
        await asyncio.to_thread(store.audit, name or "?", "login_failed", None, request.remote)
        return again("Tên đăng nhập hoặc mật khẩu không đúng.", 401)
    throttle.succeeded(name)
    hours = request.app[CONFIG].console_session_hours
    token, _ = await asyncio.to_thread(store.open_session, user, hours)
    await asyncio.to_thread(store.audit, user.name, "login", None, request.remote)
    target = str(form.get("next", "")) if str(form.get("next", "")).startswith("/console/") else ""
    response = web.HTTPSeeOther(target or LANDING.get(user.role, "/console/calls"))
    auth.set_session_cookie(response, token, request.app[CONFIG])
    response.del_cookie(auth.LOGIN_CSRF_COOKIE, path=auth.LOGIN_PATH)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(auth.COOKIE, "")
    await asyncio.to_thread(request.app[REVIEW].close_session, token)
    await _audit(request, "logout")
    response = web.HTTPSeeOther(auth.LOGIN_PATH)
    response.del_cookie(auth.COOKIE, path=auth.PREFIX)
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(LANDING.get(auth.current(request).user.role, "/console/calls"))


# --- the calls list ----------------------------------------------------------------------


END_REASONS = {
    "caller hung up": "Người gọi gác máy",
    "server shutting down": "Máy chủ dừng",
    "internal error": "Lỗi của hệ thống",
}


def end_reason(reason: str | None) -> str:
    """The call's end reason in Vietnamese where it is one of the usual ones."""
    if not reason:
        return ""
    if reason.startswith("transferred to "):
        return f"Đã chuyển máy: {labels.route_name(reason.removeprefix('transferred to '))}"
    return END_REASONS.get(reason, reason)


def _filter(request: web.Request) -> CallFilter:
    q = request.query

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(q.get(name, "")) if q.get(name) else None
        except ValueError:
            raise web.HTTPBadRequest(text=f"Ngày không hợp lệ: {q.get(name)!r}") from None

    branch = q.get("branch", "")
    if branch and branch not in "123456":
        raise web.HTTPBadRequest(text="Nhánh là một số từ 1 đến 6.")
    outcome = q.get("outcome", "")
    if outcome and outcome not in labels.OUTCOME_FILTERS:
        raise web.HTTPBadRequest(text=f"Kết quả không hợp lệ: {outcome!r}")
    transport = q.get("transport", "")
    if transport and transport not in labels.TRANSPORTS:
        raise web.HTTPBadRequest(text=f"Đường gọi không hợp lệ: {transport!r}")
    return CallFilter(
        since=day("since"),
        until=day("until"),
        outcome=outcome,
        branch=int(branch) if branch else None,
        transport=transport,
        review=q.get("review") == "1",
        search=q.get("q", "")[:200],
    )


def _row(row: dict[str, Any], unmasked: bool) -> dict[str, Any]:
    return {
        **row,
        "caller_shown": (row.get("caller") or "")
        if unmasked
        else pii.mask_caller(row.get("caller")),
    }


def _flags_text(row: dict[str, Any], review_confidence: float) -> list[str]:
    flags = []
    if row.get("fell_back"):
        flags.append("không hiểu")
    if row.get("lowest_confidence") is not None and row["lowest_confidence"] < review_confidence:
        flags.append("độ tin cậy thấp")
    if row.get("had_error") or row.get("outcome") == "error":
        flags.append("lỗi")
    if (
        row.get("outcome") == "hangup"
        and row.get("duration_s") is not None
        and row["duration_s"] < 10
    ):
        flags.append("gác máy sớm")
    if row.get("flags"):
        flags.append(f"{row['flags']} đánh dấu")
    return flags


async def calls_page(request: web.Request) -> web.Response:
    f = _filter(request)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    rows, total = await asyncio.to_thread(request.app[QUERIES].list_calls, f, page, PER_PAGE)
    unmasked = _unmasked(request)
    shown = [_row(r, unmasked) for r in rows]
    for r in shown:
        r["flag_list"] = _flags_text(r, request.app[CONFIG].review_confidence)
    query = {k: v for k, v in request.query.items() if k != "page"}
    pages = max(1, (total + PER_PAGE - 1) // PER_PAGE)
    return render(
        request,
        "calls.html",
        rows=shown,
        total=total,
        page=page,
        pages=pages,
        f=f,
        query=query,
        query_string=request.query_string,
    )


async def calls_csv(request: web.Request) -> web.StreamResponse:
    f = _filter(request)
    rows = await asyncio.to_thread(request.app[QUERIES].all_calls, f)
    await _audit(request, "export", None, f"{len(rows)} cuộc gọi; {request.query_string}")
    unmasked = _unmasked(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["call_id", "started_at", "duration_s", "caller", "transport", "outcome", "outcome_name",
         "turns", "lowest_confidence", "flags", "review"]
    )  # fmt: skip
    for raw in rows:
        r = _row(raw, unmasked)
        writer.writerow(
            [
                r["id"],
                _local(r["started_at"], "%Y-%m-%d %H:%M:%S"),
                "" if r["duration_s"] is None else f"{r['duration_s']:.1f}",
                r["caller_shown"],
                r["transport"],
                r["outcome"] or "",
                labels.route_name(r["outcome"]),
                r["turns"] or 0,
                "" if r["lowest_confidence"] is None else f"{r['lowest_confidence']:.2f}",
                r["flags"],
                "; ".join(_flags_text(r, request.app[CONFIG].review_confidence)),
            ]
        )
    # A BOM: spreadsheet programs then read the Vietnamese text as UTF-8.
    body = ("\ufeff" + out.getvalue()).encode("utf-8")
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="cuoc-goi-1022.csv"'},
    )


# --- one call ------------------------------------------------------------------------------


def _timeline(
    turns: list[dict[str, Any]], started: datetime, unmasked: bool
) -> list[dict[str, Any]]:
    """The turns to show, with a start and end in the recording for each."""
    mask = (lambda t: t) if unmasked else pii.mask_text
    shown: list[dict[str, Any]] = []
    for t in turns:
        if t["kind"] in ("response_latency",):
            # Its latency belongs to the bot turn it opened (the next "say").
            continue
        offset = (t["at"] - started).total_seconds()
        words = t["words"] if unmasked else pii.mask_words(t["words"])
        start = t["started_ms"] / 1000 if t["started_ms"] is not None else offset
        end = t["ended_ms"] / 1000 if t["ended_ms"] is not None else None
        shown.append(
            {
                **t,
                "text_shown": mask(t["text"]),
                "words_shown": words or [],
                # The rule that sent it to 115 and the caller's words (masked like the text).
                "red_flag_shown": (
                    {
                        "rule": labels.RED_FLAG_RULES.get(flag["rule"], flag["rule"]),
                        "matched": mask(flag.get("matched")),
                    }
                    if (flag := t.get("red_flag"))
                    else None
                ),
                "start": max(0.0, start),
                "end": end,
                "who": t["speaker"],  # caller, bot, or the call itself (system)
            }
        )
    latencies = [t for t in turns if t["kind"] == "response_latency"]
    for lat in latencies:  # the first bot "say" after it
        for s in shown:
            if s["kind"] == "say" and s["seq"] > lat["seq"] - 2 and s.get("latency_ms") is None:
                s["latency_ms"] = lat["latency_ms"]
                break
    # In the order they were heard: an utterance is recorded when the recogniser is done
    # with it, after the barge-in it caused.
    shown.sort(key=lambda s: s["start"])
    # A turn without an end runs until the next one starts.
    for a, b in zip(shown, shown[1:], strict=False):
        if a["end"] is None or a["end"] <= a["start"]:
            a["end"] = max(b["start"], a["start"] + 0.5)
    if shown and shown[-1]["end"] is None:
        shown[-1]["end"] = shown[-1]["start"] + 3
    return shown


async def call_page(request: web.Request) -> web.Response:
    call_id = request.match_info["call_id"]
    store = request.app[QUERIES].review.calls
    record = await asyncio.to_thread(store.get_call, call_id)
    if record is None:
        raise web.HTTPNotFound(text="Không có cuộc gọi này.")
    turns = await asyncio.to_thread(request.app[QUERIES].turns, call_id)
    flags = await asyncio.to_thread(request.app[REVIEW].flags, call_id)
    await _audit(request, "view", call_id)
    unmasked = _unmasked(request)
    timeline = _timeline(turns, record.started_at, unmasked)
    by_turn: dict[int, list[Any]] = {}
    for flag in flags:
        by_turn.setdefault(flag.turn_id, []).append(flag)
    mask = (lambda t: t) if unmasked else pii.mask_text
    return render(
        request,
        "call.html",
        call=record,
        caller=(record.caller or "") if unmasked else pii.mask_caller(record.caller),
        timeline=timeline,
        flags=by_turn,
        mask=mask,
        has_audio=bool(record.audio_path and Path(record.audio_path).is_file()),
        can_flag=auth.current(request).user.role in ("supervisor", "admin"),
        duration=(record.ended_at - record.started_at).total_seconds() if record.ended_at else None,
    )


async def call_audio(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call_id"]
    record = await asyncio.to_thread(request.app[QUERIES].review.calls.get_call, call_id)
    if record is None or not record.audio_path or not Path(record.audio_path).is_file():
        raise web.HTTPNotFound(text="Cuộc gọi này không có bản ghi âm.")
    # A player fetches in ranges; the first request of a play is the one worth a line.
    if not request.http_range.start:
        await _audit(request, "play", call_id)
    return web.FileResponse(record.audio_path, headers={"Content-Type": "audio/wav"})


async def add_flag(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call_id"]
    form = await request.post()
    try:
        turn_id = int(str(form.get("turn_id", "")))
    except ValueError:
        raise web.HTTPBadRequest(text="Thiếu lượt cần đánh dấu.") from None
    kind = str(form.get("kind", ""))
    route = str(form.get("expected_route", "")) or None
    note = str(form.get("note", "")).strip()[:1000] or None
    if kind not in FLAG_KINDS:
        raise web.HTTPBadRequest(text="Loại đánh dấu không hợp lệ.")
    if route and route not in dict(labels.ROUTE_CHOICES):
        raise web.HTTPBadRequest(text="Nhánh đúng không hợp lệ.")
    turns = await asyncio.to_thread(request.app[QUERIES].turns, call_id)
    if not any(t["id"] == turn_id for t in turns):
        raise web.HTTPNotFound(text="Không có lượt này trong cuộc gọi.")
    user = auth.current(request).user.name
    await asyncio.to_thread(request.app[REVIEW].add_flag, call_id, turn_id, kind, user, note, route)
    await _audit(
        request, "flag", call_id, f"lượt {turn_id}: {kind}" + (f" -> {route}" if route else "")
    )
    if "HX-Request" in request.headers:
        flags = [
            f
            for f in await asyncio.to_thread(request.app[REVIEW].flags, call_id)
            if f.turn_id == turn_id
        ]
        return render(request, "flags.html", turn_flags=flags, mask=_masker(request))
    raise web.HTTPSeeOther(f"/console/calls/{call_id}#turn-{turn_id}")


# --- dashboard, live calls, audit ------------------------------------------------------------


PERIODS = {"today": (1, "Hôm nay"), "7": (7, "7 ngày"), "30": (30, "30 ngày")}


async def dashboard_page(request: web.Request) -> web.Response:
    period = request.query.get("period", "today")
    if period not in PERIODS:
        raise web.HTTPBadRequest(text="Khoảng thời gian là today, 7 hoặc 30.")
    days, _ = PERIODS[period]
    board = await asyncio.to_thread(request.app[QUERIES].dashboard, days)
    mask = _masker(request)
    per_hour = charts.bars(board.per_hour, [f"{h}h" for h in range(24)], "Số cuộc gọi theo giờ")
    over_time = charts.stacked(board.routes_over_time, labels.GROUPS, "Kết quả theo thời gian")
    return render(
        request,
        "dashboard.html",
        board=board,
        period=period,
        periods=PERIODS,
        per_hour=per_hour,
        over_time=over_time,
        top_fallbacks=[(mask(text), n) for text, n in board.top_fallbacks],
    )


async def live_page(request: web.Request) -> web.Response:
    return render(request, "live.html", rows=_live_rows(request))


async def live_rows(request: web.Request) -> web.Response:
    return render(request, "live_rows.html", rows=_live_rows(request))


def _live_rows(request: web.Request) -> list[dict[str, Any]]:
    mask = _masker(request)
    unmasked = _unmasked(request)
    rows = []
    for call in request.app[LIVE]():
        rows.append(
            {
                **call,
                "caller": call["caller"] if unmasked else pii.mask_caller(call["caller"]),
                "last_text": mask(call["last_text"]),
            }
        )
    return rows


@auth.require()
async def audit_page(request: web.Request) -> web.Response:
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    entries = await asyncio.to_thread(request.app[REVIEW].audit_entries, 100, (page - 1) * 100)
    users = await asyncio.to_thread(request.app[REVIEW].users)
    return render(request, "audit.html", entries=entries, users=users, page=page)


def _roles(handler: Any, *roles: str) -> Any:
    return auth.require(*roles)(handler)


def add_console(
    app: web.Application,
    store: CallStore,
    s: Settings,
    live: Any = None,
    throttle: auth.Throttle | None = None,
) -> None:
    """The console's routes under /console/ on the server's app, with its login middleware.

    Routes, not a sub-application: aiohttp 3.9's sub-application prefix match reads
    ``request.url``, which the yarl that Rasa's pins bring refuses for a Host with a port."""
    review = ReviewStore(store)
    try:
        review.engine  # noqa: B018 (creates the tables before the first request)
    except StoreError as e:
        logger.error("console not started: %s", e)
        return
    app.middlewares.append(auth.make_middleware(review, frozenset({auth.LOGIN_PATH})))
    app[REVIEW] = review
    app[QUERIES] = Queries(review, s.review_confidence)
    app[CONFIG] = s
    app[THROTTLE] = throttle or auth.Throttle(s.login_max_failures, s.login_window_s)
    app[LIVE] = live or (lambda: [])
    viewers = ("supervisor", "trainer")
    c = auth.PREFIX
    app.add_routes(
        [
            web.get(f"{c}/login", login_page),
            web.post(f"{c}/login", login),
            web.post(f"{c}/logout", logout),
            web.get(f"{c}", home),
            web.get(f"{c}/", home),
            web.get(f"{c}/calls", _roles(calls_page, *viewers)),
            web.get(f"{c}/calls.csv", _roles(calls_csv, *viewers)),
            web.get(f"{c}/calls/{{call_id}}", _roles(call_page, *viewers)),
            web.get(f"{c}/calls/{{call_id}}/audio", _roles(call_audio, *viewers)),
            web.post(f"{c}/calls/{{call_id}}/flags", _roles(add_flag, "supervisor")),
            web.get(f"{c}/dashboard", _roles(dashboard_page, *viewers)),
            web.get(f"{c}/live", _roles(live_page, "supervisor")),
            web.get(f"{c}/live/rows", _roles(live_rows, "supervisor")),
            web.get(f"{c}/audit", audit_page),
            web.static(f"{c}/static", STATIC),
        ]
    )


__all__ = ["Markup", "add_console", "add_nav", "render"]


STATES = {
    "greeting": "Đang chào",
    "listening": "Đang nghe",
    "thinking": "Đang xử lý",
    "speaking": "Bot đang nói",
    "confirming": "Chờ xác nhận",
    "transferring": "Đang chuyển máy",
    "ended": "Đã kết thúc",
}


def live_calls(engines: Any) -> Any:
    """() -> the calls in progress on these engines, as the live page shows them."""

    def summaries() -> list[dict[str, Any]]:
        if engines is None:
            return []
        rows = []
        for call in list(engines.live_calls.values()):
            state = getattr(call.machine.state, "value", str(call.machine.state))
            rows.append(
                {
                    "call_id": call.call_id,
                    "started_at": call.started_at,
                    "caller": call.caller,
                    "transport": call.transport,
                    "state": STATES.get(state, state),
                    "last_text": call.last_text,
                }
            )
        return sorted(rows, key=lambda r: r["started_at"], reverse=True)

    return summaries
