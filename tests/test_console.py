"""The supervisors' console over a real loopback socket on a real SQLite database: login,
roles, CSRF, throttling, every route refusing anonymous requests, the calls list and its
filters, the CSV, the dashboard's figures against a store built for it, personal data
masking, the audit log, retention, and `python -m bot users`. (The pages in Chromium, on a
call made through the voice pipeline, are in tests/test_console_browser.py.)"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import sqlite3
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app.settings import Settings
from bot.console import auth
from bot.console.app import add_console
from bot.console.queries import TZ
from bot.console.retention import apply
from bot.store.calls import CallStore, utc
from bot.store.review import ReviewStore
from tests.conftest import run_bot

pytestmark = pytest.mark.e2e

PASSWORD = "mật khẩu thử 2026"
CCCD = "001099012345"
SPOKEN_PHONE = "không chín tám ba một hai ba bốn năm sáu"
CALLER = "0912345678"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 120))


@dataclass
class Known:
    """A store with calls whose figures are known by construction."""

    store: CallStore
    review: ReviewStore
    pii_call: str
    today: list[str]
    older: list[str]  # 3, 3, 20 and 40 days ago


def _call(
    store: CallStore,
    at: datetime,
    outcome: str | None,
    routed: list[tuple[str, str]] = (),  # type: ignore[assignment]
    latencies: list[int] = (),  # type: ignore[assignment]
    transport: str = "audiosocket",
    caller: str | None = None,
    seconds: float = 30,
) -> str:
    call_id = str(uuid.uuid4())
    store.start_call(call_id, transport, caller, at=at)
    store.add_turn(call_id, kind="call_started", at=at)
    for i, (text, route) in enumerate(routed):
        store.add_turn(call_id, kind="utterance", text=text, confidence=0.9)
        store.add_turn(call_id, kind="heard", text=text)
        store.add_turn(call_id, kind="routed", text=text, route=route, confidence=0.8)
        if i < len(latencies):
            store.add_turn(call_id, kind="response_latency", latency_ms=latencies[i])
        store.add_turn(call_id, kind="say", text="Dạ.")
    if outcome is not None:
        store.end_call(call_id, outcome, "test", at=at + timedelta(seconds=seconds))
    return call_id


@pytest.fixture
def known(tmp_path: Path) -> Iterator[Known]:
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    review = ReviewStore(store)
    for name, role in (("giamsat", "supervisor"), ("huanluyen", "trainer"), ("quantri", "admin")):
        review.add_user(name, role, auth.hash_password(PASSWORD))
    now = utc()
    # Today's calls: a minute ago, so "today" in Hanoi whatever the hour the test runs
    # (a test run in the first minutes after local midnight would see them yesterday).
    local_midnight = now.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    t = max(now - timedelta(minutes=2), local_midnight + timedelta(seconds=5))
    today = [
        _call(store, t, "faq:chi_tra", [("bao giờ được nhận tiền", "faq:chi_tra")], [800]),
        _call(store, t, "goodbye", [("alo alo", "fallback")], [1200], transport="websocket"),
        _call(store, t, "transfer:1", [("bố tôi khó thở", "transfer:1")], [400]),
        _call(store, t, "transfer:5", [("tôi muốn khiếu nại", "transfer:5")], [1000]),
        _call(store, t, "transfer:5", [("nhánh năm", "transfer:5")], [600]),
        _call(store, t, "operator", [("ừ thì", "fallback"), ("ừ thì", "fallback")]),
        _call(store, t, "hangup", seconds=4),
        _call(store, t, None),  # still running (or cut off)
    ]
    older = [
        _call(store, now - timedelta(days=3), "transfer:2", [("muốn xét nghiệm", "transfer:2")]),
        _call(store, now - timedelta(days=3), "hangup", [("ừ thì", "fallback")], [2000]),
        _call(store, now - timedelta(days=20), "faq:f0_thuoc", [("thuốc hạ sốt", "faq:f0_thuoc")]),
        _call(store, now - timedelta(days=40), "transfer:3", [("cần bác sĩ", "transfer:3")]),
    ]
    # A caller who gives a citizen ID (typed) and a phone number (spoken, as the recogniser
    # writes it), 45 days ago: in the list, out of the dashboard's periods.
    pii_call = str(uuid.uuid4())
    store.start_call(pii_call, "audiosocket", CALLER, at=now - timedelta(days=45))
    said = f"số căn cước của tôi là {CCCD} gọi lại {SPOKEN_PHONE} nhé"
    store.add_turn(
        pii_call,
        kind="utterance",
        text=said,
        confidence=0.42,
        words=[{"word": w, "start": i * 0.4, "end": i * 0.4 + 0.3, "conf": 0.9}
               for i, w in enumerate(said.split())],
    )  # fmt: skip
    store.add_turn(pii_call, kind="heard", text=said)
    store.add_turn(pii_call, kind="routed", text="x", route="fallback")
    store.end_call(
        pii_call, "operator", "test", at=now - timedelta(days=45) + timedelta(seconds=50)
    )
    yield Known(store, review, pii_call, today, older)
    store.close()


def console_app(known: Known) -> web.Application:
    app = web.Application()
    add_console(app, known.store, Settings(), throttle=auth.Throttle(3, 600))
    return app


async def login(client: TestClient, name: str, password: str = PASSWORD) -> int:
    page = await client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token, "the login form carries a CSRF token"
    response = await client.post(
        "/console/login",
        data={"name": name, "password": password, "csrf": token.group(1)},
        allow_redirects=False,
    )
    return response.status


async def csrf_of(client: TestClient, path: str = "/console/calls") -> str:
    html = await (await client.get(path)).text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found
    return found.group(1)


# --- anonymous requests, login, roles, CSRF ------------------------------------------------


def test_every_console_route_refuses_an_anonymous_request(known: Known) -> None:
    async def main() -> None:
        app = console_app(known)
        async with TestClient(TestServer(app)) as client:
            routes = [
                (r.method, r.resource.canonical)
                for r in app.router.routes()
                if r.resource is not None and r.resource.canonical.startswith("/console")
            ]
            assert len(routes) >= 14
            for method, path in routes:
                if path == auth.LOGIN_PATH:
                    continue
                url = path.replace("{call_id}", known.pii_call)
                if "static" in url:
                    url += "/vendor/htmx.min.js"
                response = await client.request(method, url, allow_redirects=False)
                body = await response.text()
                if method == "GET":
                    assert response.status == 302, (method, url)
                    assert response.headers["Location"].startswith("/console/login?next=")
                else:
                    assert response.status == 401, (method, url)
                assert CCCD not in body and "htmx" not in body
                # A fragment asked by htmx gets 401, not a redirect to a login page.
                if method == "GET":
                    hx = await client.get(
                        url, headers={"HX-Request": "true"}, allow_redirects=False
                    )
                    assert hx.status == 401, url

    run(main())


def test_login_cookie_logout_and_csrf(known: Known) -> None:
    async def main() -> None:
        async with TestClient(TestServer(console_app(known))) as client:
            # No CSRF token: refused before the password is even looked at.
            bad = await client.post(
                "/console/login", data={"name": "giamsat", "password": PASSWORD}
            )
            assert bad.status == 403
            page = await client.get("/console/login")
            token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
            assert token
            ok = await client.post(
                "/console/login",
                data={"name": "giamsat", "password": PASSWORD, "csrf": token.group(1)},
                allow_redirects=False,
            )
            assert ok.status == 303 and ok.headers["Location"] == "/console/calls"
            cookie = ok.headers["Set-Cookie"]
            assert (
                "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
            )
            page = await client.get("/console/calls")
            assert page.status == 200
            assert page.headers["Cache-Control"] == "no-store"
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            # A POST without the session's CSRF token is refused, with it accepted.
            turn = known.store.turns(known.pii_call)[0].id
            form = {"turn_id": str(turn), "kind": "bad_audio"}
            no_token = await client.post(f"/console/calls/{known.pii_call}/flags", data=form)
            assert no_token.status == 403
            assert known.review.flags(known.pii_call) == []
            token2 = await csrf_of(client)
            flagged = await client.post(
                f"/console/calls/{known.pii_call}/flags",
                data={**form, "csrf": token2},
                allow_redirects=False,
            )
            assert flagged.status == 303
            assert [f.kind for f in known.review.flags(known.pii_call)] == ["bad_audio"]
            out = await client.post("/console/logout", data={"csrf": token2}, allow_redirects=False)
            assert out.status == 303
            after = await client.get("/console/calls", allow_redirects=False)
            assert after.status == 302  # the session is gone from the database too
            actions = [e.action for e in known.review.audit_entries()]
            assert actions[:3] == ["logout", "flag", "login"]

    run(main())


def test_failed_logins_are_throttled(known: Known) -> None:
    async def main() -> None:
        async with TestClient(TestServer(console_app(known))) as client:
            for _ in range(3):
                assert await login(client, "giamsat", "sai mật khẩu rồi") == 401
            # Now even the right password waits out the window.
            assert await login(client, "giamsat") == 429
            assert await login(client, "không có ai", "sai mật khẩu rồi") == 429  # same address
            actions = [e.action for e in known.review.audit_entries()]
            assert actions.count("login_failed") == 3 and "login_throttled" in actions

    run(main())


def test_each_role_sees_its_pages(known: Known) -> None:
    async def main() -> None:
        expected = {
            # path: (supervisor, trainer, admin)
            "/console/calls": (200, 200, 200),
            "/console/dashboard": (200, 200, 200),
            "/console/live": (200, 403, 200),
            "/console/audit": (403, 403, 200),
        }
        for i, name in enumerate(("giamsat", "huanluyen", "quantri")):
            async with TestClient(TestServer(console_app(known))) as client:
                assert await login(client, name) == 303
                for path, statuses in expected.items():
                    response = await client.get(path)
                    assert response.status == statuses[i], (name, path)
                    if statuses[i] == 200:
                        menu = await response.text()
                        assert ("Nhật ký truy cập" in menu) == (name == "quantri")
                # Only supervisors (and admins) flag turns.
                token = await csrf_of(client)
                turn = known.store.turns(known.pii_call)[0].id
                flagged = await client.post(
                    f"/console/calls/{known.pii_call}/flags",
                    data={"turn_id": str(turn), "kind": "note", "note": name, "csrf": token},
                    allow_redirects=False,
                )
                assert flagged.status == (403 if name == "huanluyen" else 303), name

    run(main())


# --- the list, the CSV, masking -------------------------------------------------------------


def test_filters_search_pagination_and_csv(known: Known) -> None:
    async def main() -> None:
        async with TestClient(TestServer(console_app(known))) as client:
            assert await login(client, "giamsat") == 303

            async def ids(query: str) -> list[str]:
                html = await (await client.get(f"/console/calls?{query}")).text()
                return re.findall(r'href="/console/calls/([0-9a-f-]{36})"', html)

            everything = await ids("")
            assert len(everything) == 13
            assert everything.index(known.today[0]) < everything.index(known.pii_call)
            assert len(await ids("branch=5")) == 2
            assert len(await ids("outcome=settled")) == 3  # faq x2 (one 20 days ago), goodbye
            assert len(await ids("outcome=unfinished")) == 1
            assert await ids("transport=websocket") == [known.today[1]]
            day = (utc() - timedelta(days=3)).astimezone(TZ).date().isoformat()
            assert len(await ids(f"since={day}&until={day}")) == 2
            # Search over what callers said, with or without tone marks.
            assert set(await ids("q=khiếu nại")) == {known.today[3]}
            assert set(await ids("q=kho tho")) == {known.today[2]}
            # Needs review: fell back, operator, hang-up within 10 s, low confidence.
            review = set(await ids("review=1"))
            assert review == {
                known.today[1], known.today[5], known.today[6], known.older[1], known.pii_call
            }  # fmt: skip
            # Pagination: 25 a page.
            for i in range(15):
                _call(known.store, utc() - timedelta(days=60, minutes=i), "hangup")
            first, second = await ids(""), await ids("page=2")
            assert len(first) == 25 and len(second) == 3 and not set(first) & set(second)
            # CSV of the filtered list; a BOM for spreadsheets; masked numbers.
            response = await client.get("/console/calls.csv?branch=5")
            assert response.headers["Content-Type"].startswith("text/csv")
            text = (await response.read()).decode("utf-8-sig")
            rows = list(csv.DictReader(io.StringIO(text)))
            assert {r["call_id"] for r in rows} == {known.today[3], known.today[4]}
            assert all(r["outcome"] == "transfer:5" for r in rows)
            assert "export" in [e.action for e in known.review.audit_entries()]

    run(main())


def test_a_cccd_and_a_spoken_phone_number_never_reach_a_supervisor(known: Known) -> None:
    async def main() -> None:
        pages: dict[str, str] = {}
        for name in ("giamsat", "huanluyen", "quantri"):
            async with TestClient(TestServer(console_app(known))) as client:
                assert await login(client, name) == 303
                seen = ""
                for path in (
                    "/console/calls",
                    f"/console/calls/{known.pii_call}",
                    "/console/calls.csv",
                    "/console/calls?q=căn cước",
                ):
                    response = await client.get(path)
                    assert response.status == 200
                    seen += (await response.read()).decode("utf-8-sig")
                pages[name] = seen
        for name in ("giamsat", "huanluyen"):
            assert CCCD not in pages[name]
            assert SPOKEN_PHONE not in pages[name] and "chín tám ba" not in pages[name]
            assert CALLER not in pages[name] and "••••••••78" in pages[name]
            assert "[CCCD đã ẩn]" in pages[name] and "[số điện thoại đã ẩn]" in pages[name]
            assert '<span class="word" data-start="4.0" data-end="4.3">•••</span>' in pages[name]
        # An admin sees what was said.
        assert CCCD in pages["quantri"] and SPOKEN_PHONE in pages["quantri"]
        assert CALLER in pages["quantri"]
        viewed = [e for e in known.review.audit_entries() if e.action == "view"]
        assert {e.user_name for e in viewed} == {"giamsat", "huanluyen", "quantri"}
        assert all(e.call_id == known.pii_call for e in viewed)

    run(main())


def test_a_call_sent_to_115_by_a_red_flag_shows_the_rule_and_the_words(known: Known) -> None:
    said = f"ô xy của mẹ tôi còn tám mươi tám gọi lại {SPOKEN_PHONE}"
    call_id = known.today[0]
    flag = {"rule": "spo2", "matched": said, "route": "transfer:1"}
    known.store.add_turn(call_id, kind="routed", text=said, route="transfer:1", red_flag=flag)

    async def main() -> None:
        pages = {}
        for name in ("giamsat", "quantri"):
            async with TestClient(TestServer(console_app(known))) as client:
                assert await login(client, name) == 303
                response = await client.get(f"/console/calls/{call_id}")
                assert response.status == 200
                pages[name] = await response.text()
        assert "Cấp cứu: SpO2 thấp · «ô xy của mẹ tôi còn tám mươi tám" in pages["giamsat"]
        # The quoted words are masked as the text is: a supervisor never sees the number.
        assert SPOKEN_PHONE not in pages["giamsat"] and SPOKEN_PHONE in pages["quantri"]

    run(main())


# --- the dashboard ---------------------------------------------------------------------------


def figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="([^"]+)"><span class="n">([^<]*)</span>', html))


def test_the_dashboard_figures_equal_the_store(known: Known) -> None:
    async def main() -> None:
        async with TestClient(TestServer(console_app(known))) as client:
            assert await login(client, "giamsat") == 303
            today = figures(await (await client.get("/console/dashboard?period=today")).text())
            week = figures(await (await client.get("/console/dashboard?period=7")).text())
            month = figures(await (await client.get("/console/dashboard?period=30")).text())
            bad = await client.get("/console/dashboard?period=365")
            assert bad.status == 400
        # Built above: 8 calls today, 2 more within 7 days, 1 more within 30, 1 older.
        branches_today = {"transfer:1": "1", "transfer:5": "2"}
        assert today == {
            "received": "8",
            "settled": "2",
            **{f"transfer:{n}": branches_today.get(f"transfer:{n}", "0") for n in range(1, 7)},
            "operator": "1",
            "abandoned": "1",
            # 7 routed requests today, 3 of them fallback.
            "fallback_rate": "42.9%",
            # Latencies 400, 600, 800, 1000, 1200: median 800, p95 1000 + 0.8 * 200.
            "p50": "800 ms",
            "p95": "1160 ms",
        }
        assert week["received"] == "10" and week["transfer:2"] == "1" and week["abandoned"] == "2"
        assert week["fallback_rate"] == "44.4%"  # 4 of 9
        assert week["p50"] == f"{np.percentile([400, 600, 800, 1000, 1200, 2000], 50):.0f} ms"
        assert month["received"] == "11" and month["settled"] == "3"
        # The same figures straight from the store's own counts.
        counts = known.store.counts(since=utc() - timedelta(days=1))
        assert counts["transfer:5"] == int(today["transfer:5"])

    run(main())


def test_the_dashboard_lists_what_fell_back_masked(known: Known) -> None:
    async def main() -> None:
        known.store.add_turn(known.today[7], kind="routed", text=f"cccd {CCCD}", route="fallback")
        async with TestClient(TestServer(console_app(known))) as client:
            assert await login(client, "giamsat") == 303
            html = await (await client.get("/console/dashboard")).text()
        table = html[html.index("top-fallbacks") :]
        rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">(\d+)</td></tr>", table)
        assert rows[0] == ("ừ thì", "2") and ("alo alo", "1") in rows
        assert CCCD not in html and ("cccd [CCCD đã ẩn]", "1") in rows
        assert "<svg" in html

    run(main())


# --- audit log, retention, users ----------------------------------------------------------------


def test_the_audit_log_is_append_only(known: Known) -> None:
    known.review.audit("giamsat", "view", known.pii_call)
    db = known.store.url.split("///", 1)[1]
    with sqlite3.connect(db) as conn:
        for statement in ("UPDATE audit_log SET user_name='x'", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(statement)
    assert [e.user_name for e in known.review.audit_entries()] == ["giamsat"]


def test_retention_deletes_old_recordings_and_redacts_old_transcripts(
    known: Known, tmp_path: Path
) -> None:
    old, new = tmp_path / "old.wav", tmp_path / "new.wav"
    for path in (old, new):
        soundfile.write(path, np.zeros((1600, 2), dtype=np.int16), 16000)
    old_call = known.older[3]  # 40 days ago
    known.store.set_audio(old_call, str(old), 0.1)
    known.store.set_audio(known.today[0], str(new), 0.1)
    known.review.add_flag(known.pii_call, 1, "note", "giamsat", note=f"gọi {CCCD}")
    # The red-flag layer's record quotes the caller's words: it goes with the text.
    flag = {"rule": "danger_sign", "matched": "mẹ tôi khó thở", "route": "transfer:1"}
    known.store.add_turn(known.pii_call, kind="routed", text="x", route="transfer:1", red_flag=flag)

    dry = apply(known.store, audio_days=30, text_days=44, dry_run=True)
    assert (dry.recordings, dry.calls_redacted) == (1, 1) and old.exists()
    assert known.review.audit_entries() == []  # a dry run changes nothing, logs nothing

    report = apply(known.store, audio_days=30, text_days=44)
    assert (report.recordings, report.calls_redacted, report.turns_redacted) == (1, 1, 4)
    assert not old.exists() and new.exists()
    assert known.store.get_call(old_call).audio_path is None  # type: ignore[union-attr]
    redacted = known.store.get_call(known.pii_call)
    assert redacted is not None and redacted.caller is None and redacted.outcome == "operator"
    assert all(
        t.text is None and t.words is None and t.red_flag is None
        for t in known.store.turns(known.pii_call)
    )
    assert known.review.flags(known.pii_call)[0].note is None
    entry = known.review.audit_entries()[0]
    assert entry.user_name == "retention" and "delete 1 recordings" in entry.detail  # type: ignore[operator]
    # Search no longer finds what was redacted.
    assert apply(known.store, audio_days=30, text_days=44).turns_redacted == 0


def test_users_are_added_from_the_command_line_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    added = run_bot("users", "add", "an", "--role", "admin", "--password-stdin",
                    "--database", url, stdin=(PASSWORD + "\n").encode())  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()
    short = run_bot("users", "add", "binh", "--password-stdin", "--database", url, stdin=b"ngan\n")
    assert short.returncode != 0 and b"at least 10 characters" in short.stderr
    again = run_bot("users", "add", "an", "--password-stdin", "--database", url,
                    stdin=(PASSWORD + "\n").encode())  # fmt: skip
    assert again.returncode != 0 and b"already exists" in again.stderr
    listed = run_bot("users", "list", "--database", url)
    assert listed.stdout.decode().split() == ["an", "admin"]
    store = CallStore(url)
    user = ReviewStore(store).user("an")
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    dry = run_bot("retention", "--dry-run", "--database", url)
    assert dry.returncode == 0 and dry.stdout.decode().startswith("dry run: would delete 0")
    store.close()
