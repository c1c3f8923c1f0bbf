"""The dashboard's HTTP server: the standard library's ThreadingHTTPServer, three routes.

  GET  /        the page (ops or reseller token), filters `?reseller=&product=`
  GET  /login   the sign-in form;  POST /login  token → a session cookie;  POST /logout

A caller signs in either with an `Authorization: Bearer <token>` header on each request, or
through the form, which keeps the token server-side under a random session id (the cookie holds
only that id: HttpOnly, SameSite=Strict). Every request re-authenticates the token against the
token table, so a token removed from it stops working on the page too. The page is served
with a CSP that allows no script and no request to anywhere, not even to this server.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from license_svc.access.auth import Principal, Role, TokenTable, Unauthenticated
from license_svc.access.fields import Fields
from license_svc.config import ConfigError
from license_svc.domain.tiers import Product
from license_svc.startup import tokens_for

from . import render
from .board import Filters, Reads

if TYPE_CHECKING:
    from license_svc.bootstrap import Service

log = logging.getLogger(__name__)
COOKIE = "license_svc_dashboard"
MAX_SESSIONS = 1_000
MAX_FORM_BYTES = 4_096
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Sessions:
    """Session id → token, newest last; the oldest go first when there are too many."""

    def __init__(self) -> None:
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, token: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[sid] = token
            while len(self._tokens) > MAX_SESSIONS:
                self._tokens.popitem(last=False)
        return sid

    def token(self, sid: str) -> str | None:
        with self._lock:
            return self._tokens.get(sid)

    def close(self, sid: str) -> None:
        with self._lock:
            self._tokens.pop(sid, None)


class Dashboard:
    def __init__(self, reads: Reads, tokens: TokenTable, listen: str) -> None:
        self.reads, self.tokens, self.sessions = reads, tokens, Sessions()
        host, _, port = listen.rpartition(":")
        try:
            self.httpd = ThreadingHTTPServer((host.strip("[]"), int(port)), _handler(self))
        except (OSError, ValueError) as error:
            raise ConfigError(f"LICENSE_SVC_DASHBOARD_LISTEN={listen!r}: {error}") from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="dashboard", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("dashboard on http://%s:%d/", self.httpd.server_address[0], self.port)

    def stop(self, timeout: float = 5.0) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout)


def _handler(dashboard: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "license-svc-dashboard"

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/login":
                self._send(HTTPStatus.OK, render.login())
            elif url.path == "/":
                self._page(parse_qs(url.query))
            else:
                self._send(HTTPStatus.NOT_FOUND, render.message("Not found", "No such page."))

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path == "/login":
                self._login()
            elif path == "/logout":
                if sid := self._session_id():
                    dashboard.sessions.close(sid)
                self._redirect("/login", f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict")
            else:
                self._send(HTTPStatus.NOT_FOUND, render.message("Not found", "No such page."))

        def _login(self) -> None:
            raw = self.headers.get("Content-Length") or "0"
            length = int(raw) if raw.isdigit() else MAX_FORM_BYTES + 1
            if length > MAX_FORM_BYTES:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, render.login("Too long."))
                return
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            token = (form.get("token") or [""])[0].strip()
            try:
                principal = _authenticate(token)
            except Unauthenticated:
                self._send(HTTPStatus.UNAUTHORIZED, render.login("Unknown token."))
                return
            if not _may_see(principal):
                self._send(HTTPStatus.FORBIDDEN, render.login("The page is for ops and resellers."))
                return
            sid = dashboard.sessions.open(token)
            self._redirect("/", f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict")

        def _page(self, query: dict[str, list[str]]) -> None:
            try:
                principal = self._principal()
            except Unauthenticated as error:
                self._send(HTTPStatus.UNAUTHORIZED, render.login(str(error)))
                return
            if principal is None:
                self._redirect("/login")
                return
            if not _may_see(principal):
                text = "The dashboard is for ops and reseller tokens."
                self._send(HTTPStatus.FORBIDDEN, render.message("Not allowed", text))
                return
            filters = _filters(query)
            if filters is None:
                text = "Unknown product, or a reseller id with characters ids never hold."
                self._send(HTTPStatus.BAD_REQUEST, render.message("Bad filter", text))
                return
            try:
                page = render.board(dashboard.reads.board(principal, filters))
            except Exception:  # the page says so; the details go to the log only
                log.exception("dashboard: reading the views failed")
                text = "The views could not be read just now; try again shortly."
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, render.message("Unavailable", text))
                return
            self._send(HTTPStatus.OK, page)

        def _principal(self) -> Principal | None:
            header = self.headers.get("Authorization")
            if header is not None:
                return dashboard.tokens.authenticate((("authorization", header),))
            sid = self._session_id()
            token = dashboard.sessions.token(sid) if sid else None
            return _authenticate(token) if token else None

        def _session_id(self) -> str | None:
            try:
                morsel = SimpleCookie(self.headers.get("Cookie") or "").get(COOKIE)
            except CookieError:
                return None
            return morsel.value if morsel is not None and morsel.value else None

        def _redirect(self, where: str, cookie: str = "") -> None:
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", where)
            if cookie:
                self.send_header("Set-Cookie", cookie)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, status: HTTPStatus, html: str) -> None:
            body = html.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    def _authenticate(token: str) -> Principal:
        if not token:
            raise Unauthenticated("Missing token")
        return dashboard.tokens.authenticate((("authorization", f"Bearer {token}"),))

    return Handler


def _may_see(principal: Principal) -> bool:
    return principal.role in (Role.OPS, Role.RESELLER)


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


def start_dashboard(service: Service, listen: str, tokens: TokenTable | None = None) -> Dashboard:
    """Serve the ops dashboard page from this process's read layer (`dashboard`, `run`). Given
    the server's token table, a SIGHUP's reload changes who may sign in to the page too."""
    reads = Reads(
        service.views, service.limiter, service.clock, service.app.recorder.max_notification_id
    )
    dashboard = Dashboard(reads, tokens or tokens_for(service.settings), listen)
    dashboard.start()
    service.background.append(dashboard)
    return dashboard
