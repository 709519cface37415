"""Who may use the console: passwords, login sessions, roles, CSRF, login throttling.

- Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory
  profile); there is no default user or password: the first admin is made with
  ``python -m bot users add NAME --role admin``.
- A login gives a random session token in an HttpOnly, SameSite=Strict cookie (Secure
  behind HTTPS: ``BOT_CONSOLE_SECURE_COOKIES``); the database keeps only its hash.
- Every POST carries the session's CSRF token in a hidden field (or the X-CSRF-Token
  header, which htmx sends); the login form, before any session, uses a double-submit
  cookie.
- Failed logins are throttled per user name and per address (``BOT_LOGIN_MAX_FAILURES``
  in ``BOT_LOGIN_WINDOW_S``): further tries get 429 until the window has passed, whether
  or not the password is right.
- Anonymous requests: a page (GET) is redirected to the login page, anything else (a file,
  a POST, an htmx fragment) gets 401.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import argon2
from aiohttp import web

from bot.app import settings
from bot.store.review import ReviewStore, Session, User

COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_login_csrf"
PREFIX = "/console"
LOGIN_PATH = f"{PREFIX}/login"
_hasher = argon2.PasswordHasher()
# Verified when the user does not exist, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_KEY = "console_session"  # request[SESSION_KEY]: the logged-in Session


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise ValueError("a password has at least 10 characters")
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False
    return user is not None and not user.disabled


class Throttle:
    """Failed logins per key (a user name, an address) in a sliding window."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def blocked_for(self, keys: list[str]) -> float:
        """Seconds until a login may be tried again for these keys (0: now)."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        for key in keys:
            self._recent(key, now).append(now)
        if len(self._failures) > 10_000:  # a flood of names: forget the idle ones
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def succeeded(self, name: str) -> None:
        self._failures.pop(f"user:{name}", None)


def current(request: web.Request) -> Session:
    return request[SESSION_KEY]  # type: ignore[no-any-return]


def require(*roles: str) -> Callable[[Handler], Handler]:
    """A handler for these roles only (an admin may do everything)."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = current(request)
            if session.user.role != "admin" and session.user.role not in roles:
                raise web.HTTPForbidden(text="Tài khoản của anh chị không có quyền xem trang này.")
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.roles = roles  # type: ignore[attr-defined]
        return guarded

    return wrap


def make_middleware(store: ReviewStore, public: frozenset[str]) -> Any:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
            return await handler(request)  # not the console's
        try:
            response = await _serve(request, handler)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            # The console's errors are pages, in Vietnamese, not the API's JSON.
            response = error_page(e.status, e.text or e.reason)
        _secure(response)
        return response

    async def _serve(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public:
            response = await handler(request)
        else:
            token = request.cookies.get(COOKIE)
            session = await asyncio.to_thread(store.session, token) if token else None
            if session is None:
                if request.method == "GET" and "HX-Request" not in request.headers:
                    raise web.HTTPFound(f"{LOGIN_PATH}?next={request.path_qs}")
                raise web.HTTPUnauthorized(text="Anh chị cần đăng nhập.")
            request[SESSION_KEY] = session
            if request.method not in ("GET", "HEAD"):
                await check_csrf(request, session.csrf)
            response = await handler(request)
        return response

    return authenticate


def _secure(response: web.StreamResponse) -> None:
    if True:
        # Pages hold callers' words: not cached, not framed, no scripts from elsewhere.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )


def error_page(status: int, message: str) -> web.Response:
    from markupsafe import escape

    html = (
        '<!doctype html><html lang="vi"><meta charset="utf-8"><title>Lỗi</title>'
        '<link rel="stylesheet" href="/console/static/console.css">'
        f"<main><h1>Lỗi {status}</h1><p>{escape(message)}</p>"
        '<p><a href="/console/">Về trang đầu</a></p></main></html>'
    )
    return web.Response(text=html, status=status, content_type="text/html")


async def check_csrf(request: web.Request, expected: str) -> None:
    sent = request.headers.get("X-CSRF-Token")
    if sent is None:
        form = await request.post()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, expected):
        raise web.HTTPForbidden(text="Phiên làm việc không hợp lệ (CSRF). Anh chị tải lại trang.")


def set_session_cookie(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.CONSOLE_SESSION_HOURS * 3600),
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=settings.CONSOLE_SECURE_COOKIES,
    )


def login_csrf(request: web.Request, response: web.StreamResponse | None = None) -> str:
    """The login form's CSRF token: the cookie's, or a new one set on ``response``."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    if response is not None:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            path=LOGIN_PATH,
            httponly=True,
            samesite="Strict",
            secure=settings.CONSOLE_SECURE_COOKIES,
        )
    return token
