"""The ops page against a browser attacker (issue 23): another site's forms get no session and
sign nobody out, cookies are `__Host-`/Secure/HttpOnly/SameSite=Strict with a lifetime, sessions
expire, one principal's sign-ins cannot sign out another, the store keeps no token, and wrong
tokens are held back. Real server, real PostgreSQL, injected clock; the cross-site forms in
Debian's chromium."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from license_svc.bootstrap import Service
from license_svc.entrypoints.dashboard.server import Dashboard, start_dashboard
from tests.dashboard_support import Visitor
from tests.e2e.test_dashboard import chromium  # noqa: F401  (the browser fixture)
from tests.support import TOKENS, FakeClock

EVIL = "http://evil.example"


@pytest.fixture
def dashboard(service: Service) -> Dashboard:
    return start_dashboard(service, "127.0.0.1:0")


@pytest.fixture
def base(dashboard: Dashboard) -> str:
    return f"http://127.0.0.1:{dashboard.port}"


def attack_page(action: str, fields: dict[str, str], sandboxed: bool = False) -> str:
    inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
    form = (
        f'<form method="post" action="{action}">{inputs}</form>'
        "<script>document.forms[0].submit()</script>"
    )
    if sandboxed:  # a sandboxed frame's requests carry `Origin: null`
        escaped = form.replace('"', "&quot;")
        return f'<iframe sandbox="allow-forms allow-scripts" srcdoc="{escaped}"></iframe>'
    return form


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        try:
            yield launched
        finally:
            launched.close()


def visit_attacker(page: Any, origin: str, html: str) -> None:
    """Open `origin`/ in the page, served `html` by the test (no such server exists), and let
    its form go where it goes."""
    page.route(origin + "/", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto(origin + "/")
    page.wait_for_timeout(500)  # the form submits itself: let the navigation it starts settle
    page.wait_for_load_state()


@pytest.mark.parametrize(
    "attacker, sandboxed",
    [(EVIL, False), (EVIL, True), ("http://127.0.0.1:9", False)],
    ids=["another-site", "origin-null", "same-site-other-port"],
)
def test_a_sign_in_form_on_another_origin_gets_the_browser_no_session(
    browser: Any, base: str, attacker: str, sandboxed: bool
) -> None:
    # The attacker fetches a form of its own, for a token and pre-session pair it holds.
    own = Visitor(base).get("/login").csrf
    context = browser.new_context()
    victim = context.new_page()
    victim.goto(base + "/login")  # the victim has a pre-session cookie of its own, too
    fields = {"token": TOKENS["ops"], "csrf": own}
    visit_attacker(victim, attacker, attack_page(base + "/login", fields, sandboxed))
    names = {cookie["name"] for cookie in context.cookies(base)}
    assert not any(name.endswith("license_svc_session") for name in names), names
    victim.goto(base + "/")
    assert victim.url == base + "/login"  # no session: the sign-in form
    context.close()


def test_a_sign_out_form_on_another_site_leaves_the_browser_signed_in(
    browser: Any, base: str
) -> None:
    context = browser.new_context()
    victim = context.new_page()
    victim.goto(base + "/login")
    victim.fill("input[name=token]", TOKENS["ops"])
    victim.click("button[type=submit]")
    victim.wait_for_selector("#counts")
    visit_attacker(victim, EVIL, attack_page(base + "/logout", {}))
    victim.goto(base + "/")
    assert victim.url == base + "/" and victim.locator("#counts").count() == 1
    victim.click("text=Sign out")  # the page's own sign-out works
    assert victim.url == base + "/login"
    victim.goto(base + "/")
    assert victim.url == base + "/login"
    context.close()


def test_posts_refused_unless_origin_and_form_token_are_the_pages(base: str) -> None:
    visitor = Visitor(base)
    csrf = visitor.get("/login").csrf
    form = {"token": TOKENS["ops"], "csrf": csrf}
    for origin, headers in [
        ("null", {}),
        (EVIL, {}),
        (None, {}),
        ("", {"Sec-Fetch-Site": "cross-site"}),
        ("", {"Sec-Fetch-Site": "same-site"}),
        ("https://127.0.0.1:1", {}),
    ]:
        answer = visitor.post("/login", form, origin, **headers)
        assert answer.status == 403 and visitor.session_cookie() is None, (origin, headers)
    assert visitor.post("/login", {**form, "csrf": csrf[:-2] + "xx"}).status == 403
    assert Visitor(base).post("/login", form).status == 403  # another's form token, no cookie
    assert visitor.post("/login", form, **{"Sec-Fetch-Site": "same-origin"}).status == 303
    assert visitor.signed_in()

    logout = {"csrf": visitor.get("/").csrf}
    assert visitor.post("/logout", logout, EVIL).status == 403
    assert visitor.post("/logout", logout, "null").status == 403
    assert visitor.post("/logout", {}).status == 403  # the page's origin, no form token
    assert visitor.signed_in()
    assert visitor.post("/logout", logout).status == 303
    assert not visitor.signed_in()


def test_session_cookies_are_host_only_secure_httponly_strict_and_end(base: str) -> None:
    visitor = Visitor(base)
    answer = visitor.sign_in(TOKENS["acme"])
    assert answer.status == 303
    session = next(c for c in answer.cookies if "license_svc_session=" in c)
    attributes = {a.strip().split("=")[0]: a for a in session.split(";")[1:]}
    assert session.startswith("__Host-license_svc_session=")
    assert {"Secure", "HttpOnly", "Path"} <= attributes.keys() and "Domain" not in attributes
    assert attributes["SameSite"].strip() == "SameSite=Strict"
    assert attributes["Path"].strip() == "Path=/"
    assert attributes["Max-Age"].strip() == f"Max-Age={12 * 3600}"


def test_run_on_loopback_serves_plain_http_cookies_and_says_so(
    make_service: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "license_svc.entrypoints.dashboard"):
        dashboard = start_dashboard(make_service(dev=True), "127.0.0.1:0")
    assert any("without Secure or __Host-" in r.getMessage() for r in caplog.records)
    visitor = Visitor(f"http://127.0.0.1:{dashboard.port}")
    session = next(c for c in visitor.sign_in(TOKENS["ops"]).cookies if "session=" in c)
    assert session.startswith("license_svc_session=") and "Secure" not in session
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Max-Age=" in session


def test_a_session_ends_after_its_idle_time_and_after_its_lifetime(
    base: str, clock: FakeClock
) -> None:
    idle = Visitor(base)
    idle.sign_in(TOKENS["ops"])
    busy = Visitor(base)
    busy.sign_in(TOKENS["ops"])
    clock.advance(minutes=29)
    assert busy.signed_in()
    clock.advance(minutes=2)
    assert not idle.signed_in()  # 31 minutes without a request
    for _ in range(12 * 3 - 2):  # a request every 20 minutes, up to 12 hours
        assert busy.signed_in()
        clock.advance(minutes=20)
    assert busy.signed_in()
    clock.advance(minutes=19)  # 12 hours after its sign-in
    assert not busy.signed_in()


def test_1001_reseller_sign_ins_leave_an_ops_session_signed_in(base: str) -> None:
    ops = Visitor(base)
    assert ops.sign_in(TOKENS["ops"]).status == 303
    acme = [Visitor(base) for _ in range(1_001)]
    for visitor in acme:
        assert visitor.sign_in(TOKENS["acme"]).status == 303
    assert ops.signed_in()
    assert acme[-1].signed_in() and not acme[0].signed_in()  # its own oldest went
    assert [v.signed_in() for v in acme[-12:]] == [False] * 2 + [True] * 10


def test_the_session_store_holds_no_token_and_no_cookie_value(
    base: str, dashboard: Dashboard
) -> None:
    visitor = Visitor(base)
    visitor.sign_in(TOKENS["globex"])
    secrets = [TOKENS["globex"], visitor.cookies[visitor.session_cookie() or ""]]
    held = reachable(dashboard.sessions)
    assert not [s for s in secrets if any(s in h for h in held)]


def reachable(root: object) -> list[str]:
    """Every str and (decoded) bytes reachable from `root` through containers and attributes."""
    seen: set[int] = set()
    found: list[str] = []
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or (callable(item) and not hasattr(item, "__dict__")):
            continue
        seen.add(id(item))
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, bytes):
            found.append(item.decode("latin-1"))
        elif isinstance(item, dict):
            stack.extend([*item.keys(), *item.values()])
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.extend(vars(item).values())
    return found


def test_wrong_tokens_hold_an_address_back_even_with_the_right_one_then_let_it_go(
    base: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    visitor = Visitor(base)
    with caplog.at_level(logging.WARNING, "license_svc.entrypoints.dashboard"):
        for attempt in range(10):
            assert visitor.sign_in(f"guess-{attempt}").status == 401
    assert any("held back" in r.getMessage() for r in caplog.records)
    held = visitor.sign_in(TOKENS["ops"])
    assert held.status == 429 and int(held.headers["Retry-After"]) > 0
    assert visitor.get("/", Authorization=f"Bearer {TOKENS['ops']}").status == 429
    assert visitor.get("/", Authorization="Bearer guess-x").status == 429
    clock.advance(minutes=10)
    assert visitor.sign_in(TOKENS["ops"]).status == 303


def test_other_methods_are_told_which_the_page_takes(base: str) -> None:
    answer = Visitor(base).send("PUT", "/login", b"", {})
    assert answer.status == 405 and answer.headers["Allow"] == "GET, POST"
    assert Visitor(base).get("/logout").status == 405


def test_a_cookie_the_page_did_not_set_does_not_hide_its_own(base: str) -> None:
    visitor = Visitor(base)
    visitor.sign_in(TOKENS["ops"])
    visitor.cookies = {'other"app': "a,b;", **visitor.cookies}
    assert visitor.signed_in()
