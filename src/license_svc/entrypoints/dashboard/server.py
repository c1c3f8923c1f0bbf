"""The dashboard's routes, over the HTTP front of wire.py:

  GET  /        the page (ops or reseller token), filters `?reseller=&product=`
  GET  /login   the sign-in form;  POST /login  token → a session cookie;  POST /logout

A caller signs in either with an `Authorization: Bearer <token>` header on each request, or
through the form, which opens a server-side session (sessions.py: the store keeps no token and
no cookie value). Each request re-checks the token against the token table, so a token removed
by a reload stops working on the page too. Every POST must come from the page itself: its
Origin and a form token bound to a cookie (guard.py). Token checks pass a limiter (guard.py).

Cookies are `__Host-` named, `Secure; HttpOnly; SameSite=Strict; Path=/` with a `Max-Age`: the
page is meant to be reached over TLS (a TLS-terminating proxy in front; browsers also keep
`Secure` cookies for http://localhost). Only a plain-HTTP `run` on loopback drops `Secure` and
the prefix (browsers other than Chromium refuse them over http), and its start-up line says so.

Why the standard library and not a framework: see docs/operations.md ("The ops dashboard").
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from http import HTTPStatus
from ipaddress import ip_address
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from license_svc import netaddr
from license_svc.access.auth import Principal, Role, TokenTable, Unauthenticated
from license_svc.access.fields import Fields
from license_svc.config import ConfigError
from license_svc.domain.tiers import Product
from license_svc.startup import tokens_for

from . import render
from .board import Filters, Reads
from .guard import FormTokens, LimiterBounds, SignInLimiter, same_origin
from .sessions import Bounds, Full, Sessions
from .wire import HttpFront, Limits, Request, Response

if TYPE_CHECKING:
    from license_svc.bootstrap import Service

log = logging.getLogger(__name__)
PRE_SESSION = re.compile(r"[A-Za-z0-9_-]{43}")  # what token_urlsafe(32) makes
PRE_SESSION_SECONDS = 3_600  # a sign-in form's life
HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),  # frame-ancestors' older spelling
    ("Referrer-Policy", "same-origin"),  # "no-referrer" makes the page's own POSTs `Origin: null`
    ("Cache-Control", "no-store"),
    ("Content-Type", "text/html; charset=utf-8"),
]


class Dashboard:
    def __init__(
        self,
        reads: Reads,
        tokens: TokenTable,
        listen: str,
        *,
        plain_http: bool = False,
        limits: Limits | None = None,
        sessions: Bounds | None = None,
        sign_ins: LimiterBounds | None = None,
    ) -> None:
        self.reads, self.tokens, self.plain_http = reads, tokens, plain_http
        self.sessions = Sessions(reads.clock, sessions or Bounds())
        self.limiter = SignInLimiter(reads.clock, sign_ins or LimiterBounds())
        self.forms = FormTokens()
        prefix, flags = ("", "") if plain_http else ("__Host-", "; Secure")
        self.session_cookie, self.pre_cookie = (
            f"{prefix}license_svc_session",
            f"{prefix}license_svc_pre",
        )
        self._flags = f"Path=/{flags}; HttpOnly; SameSite=Strict"
        try:
            address = netaddr.parse(listen)
            self.front = HttpFront(address.host, address.port, self.answer, limits or Limits())
        except (OSError, ValueError) as error:
            raise ConfigError(f"LICENSE_SVC_DASHBOARD_LISTEN={listen!r}: {error}") from None

    @property
    def port(self) -> int:
        return self.front.address[1]

    def start(self) -> None:
        self.front.start()
        cookies = (
            "plain-HTTP loopback (development): session cookies without Secure or __Host-"
            if self.plain_http
            else "session cookies __Host-, Secure: reach it over TLS or on localhost"
        )
        log.info("dashboard on http://%s:%d/ (%s)", self.front.address[0], self.port, cookies)

    def stop(self, timeout: float = 5.0) -> None:
        self.front.stop(timeout)

    def answer(self, request: Request) -> Response:
        path = urlsplit(request.target).path
        if request.method == "GET" and path == "/login":
            return self._form(request)
        if request.method == "GET" and path == "/":
            return self._page(request)
        if request.method == "POST" and path in ("/login", "/logout"):
            if not same_origin(request.headers, self.plain_http):
                return _html(HTTPStatus.FORBIDDEN, render.message("Refused", CROSS_ORIGIN))
            return self._login(request) if path == "/login" else self._logout(request)
        if path in ALLOWED:
            text = f"{path} takes {ALLOWED[path]} only."
            allow = ("Allow", ALLOWED[path])
            return _html(HTTPStatus.METHOD_NOT_ALLOWED, render.message("Not allowed", text), allow)
        return _html(HTTPStatus.NOT_FOUND, render.message("Not found", "No such page."))

    def _form(
        self,
        request: Request,
        status: HTTPStatus = HTTPStatus.OK,
        text: str = "",
        *headers: tuple[str, str],
    ) -> Response:
        """The sign-in form, its token bound to the browser's pre-session cookie (kept if it
        has one, so two tabs' forms both work; made if not)."""
        pre = self._cookie_value(request, self.pre_cookie) or ""
        if not PRE_SESSION.fullmatch(pre):
            pre = secrets.token_urlsafe(32)
        page = render.login(text, self.forms.token("login", pre))
        cookie = self._cookie(self.pre_cookie, pre, PRE_SESSION_SECONDS)
        return _html(status, page, cookie, *headers)

    def _login(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        pre = self._cookie_value(request, self.pre_cookie)
        if not self.forms.check("login", pre, (form.get("csrf") or [""])[0]):
            return self._form(request, HTTPStatus.FORBIDDEN, "The form expired; sign in again.")
        token = (form.get("token") or [""])[0].strip()
        principal = self._check_token(request, f"Bearer {token}")
        if isinstance(principal, Response):
            return principal
        if principal.role not in (Role.OPS, Role.RESELLER):
            return self._form(request, HTTPStatus.FORBIDDEN, "The page is for ops and resellers.")
        sid = secrets.token_urlsafe(32)
        try:
            self.sessions.open(sid, principal, hashlib.sha256(token.encode()).digest())
        except Full as full:
            log.warning("dashboard sign-in refused: %s", full)
            text = "Too many sessions are open; try again later."
            return self._form(request, HTTPStatus.SERVICE_UNAVAILABLE, text)
        lifetime = int(self.sessions.bounds.absolute.total_seconds())
        return _redirect(
            "/", self._cookie(self.session_cookie, sid, lifetime), self._cookie(self.pre_cookie)
        )

    def _logout(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        sid = self._cookie_value(request, self.session_cookie)
        if not self.forms.check("logout", sid, (form.get("csrf") or [""])[0]):
            return _html(HTTPStatus.FORBIDDEN, render.message("Refused", CROSS_ORIGIN))
        assert sid is not None
        self.sessions.close(sid)
        return _redirect("/login", self._cookie(self.session_cookie))

    def _page(self, request: Request) -> Response:
        sid = None
        header = request.headers.get_all("Authorization") or []
        if len(header) > 1:
            return self._form(request, HTTPStatus.UNAUTHORIZED, "One Authorization header.")
        if header:
            principal: Principal | Response | None = self._check_token(request, header[0])
        else:
            sid = self._cookie_value(request, self.session_cookie)
            principal = self._session(sid) if sid else None
        if isinstance(principal, Response):
            return principal
        if principal is None:
            return _redirect("/login")
        if principal.role not in (Role.OPS, Role.RESELLER):
            text = "The dashboard is for ops and reseller tokens."
            return _html(HTTPStatus.FORBIDDEN, render.message("Not allowed", text))
        filters = _filters(parse_qs(urlsplit(request.target).query))
        if filters is None:
            text = "Unknown product, or a reseller id with characters ids never hold."
            return _html(HTTPStatus.BAD_REQUEST, render.message("Bad filter", text))
        try:
            board = self.reads.board(principal, filters)
        except Exception:  # the page says so; the details go to the log only
            log.exception("dashboard: reading the views failed")
            text = "The views could not be read just now; try again shortly."
            return _html(HTTPStatus.SERVICE_UNAVAILABLE, render.message("Unavailable", text))
        logout = self.forms.token("logout", sid) if sid else ""
        return _html(HTTPStatus.OK, render.board(board, logout))

    def _check_token(self, request: Request, header: str) -> Principal | Response:
        """The token's principal, or the answer refusing it; failures feed the limiter."""
        wait = self.limiter.wait(request.client)
        if wait is not None:
            retry = ("Retry-After", str(int(wait.total_seconds()) + 1))
            text = "Too many failed sign-ins; try again later."
            return self._form(request, HTTPStatus.TOO_MANY_REQUESTS, text, retry)
        try:
            return self.tokens.authenticate((("authorization", header),))
        except Unauthenticated:
            self.limiter.failed(request.client)
            return self._form(request, HTTPStatus.UNAUTHORIZED, "Unknown token.")

    def _session(self, sid: str) -> Principal | None:
        session = self.sessions.find(sid)
        if session is None:
            return None
        try:
            current = self.tokens.principal_of_digest(session.token_digest)
        except Unauthenticated:
            current = None
        if current != session.principal:  # the token left the table, or changed role
            self.sessions.close(sid)
            return None
        return current

    def _cookie(self, name: str, value: str = "", seconds: int = 0) -> tuple[str, str]:
        return ("Set-Cookie", f"{name}={value}; Max-Age={seconds}; {self._flags}")

    @staticmethod
    def _cookie_value(request: Request, name: str) -> str | None:
        """The named cookie's value. Read by hand: SimpleCookie gives up on a whole header
        when another site's cookie on the same host is one it cannot parse."""
        for header in request.headers.get_all("Cookie") or []:
            for pair in header.split(";"):
                key, _, value = pair.strip().partition("=")
                if key == name and value:
                    return value
        return None


CROSS_ORIGIN = "A form may be sent only from this page itself."
ALLOWED = {"/": "GET", "/login": "GET, POST", "/logout": "POST"}


def _html(status: HTTPStatus, page: str, *headers: tuple[str, str]) -> Response:
    return Response(status, page.encode(), [*HEADERS, *headers])


def _redirect(where: str, *cookies: tuple[str, str]) -> Response:
    return Response(HTTPStatus.SEE_OTHER, b"", [("Location", where), *cookies])


def _filters(query: dict[str, list[str]]) -> Filters | None:
    """The page's filters, checked like the gRPC request fields they stand for (None: refused)."""
    check = Fields()
    reseller = check.identifier((query.get("reseller") or [""])[0], "reseller_id", required=False)
    if check.violations:
        return None
    # One spelling (cloud_pos), the others accepted: cloud-pos, CLOUD_POS, PRODUCT_CLOUD_POS.
    product_text = (query.get("product") or [""])[0].strip().lower().replace("-", "_")
    product_text = product_text.removeprefix("product_")
    if not product_text:
        return Filters(reseller, None)
    try:
        return Filters(reseller, Product(product_text))
    except ValueError:
        return None


def _loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    try:
        return host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        return False


def start_dashboard(service: Service, listen: str, tokens: TokenTable | None = None) -> Dashboard:
    """Serve the ops dashboard page from this process's read layer (`dashboard`, `run`). Given
    the server's token table, a SIGHUP's reload changes who may sign in to the page too. Only
    `run` on a loopback address serves plain-HTTP cookies."""
    reads = Reads(
        service.views, service.limiter, service.clock, service.app.recorder.max_notification_id
    )
    plain = service.settings.dev and _loopback(listen)
    dashboard = Dashboard(reads, tokens or tokens_for(service.settings), listen, plain_http=plain)
    dashboard.start()
    service.background.append(dashboard)
    return dashboard
