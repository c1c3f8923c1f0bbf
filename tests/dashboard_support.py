"""A browser-less visitor of the dashboard page: keeps the cookies it is given (Secure or not:
it is a test client on loopback), reads the form tokens off the pages, and sends what a
browser on the page would send — or, told to, what another site would."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass, field
from http.client import HTTPMessage
from urllib.parse import urlencode, urlsplit

CSRF = re.compile(r'name="csrf" value="([^"]*)"')


@dataclass
class Answer:
    status: int
    headers: HTTPMessage
    body: str

    @property
    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []

    @property
    def csrf(self) -> str:
        found = CSRF.search(self.body)
        return found.group(1) if found else ""


@dataclass
class Visitor:
    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0

    def get(self, path: str, **headers: str) -> Answer:
        return self.send("GET", path, b"", headers)

    def post(
        self, path: str, form: dict[str, str], origin: str | None = "", **headers: str
    ) -> Answer:
        """A form POST; `origin` '' sends the page's own Origin, None sends none."""
        if origin is not None:
            headers["Origin"] = origin or self.base
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.send("POST", path, urlencode(form).encode(), headers)

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        url = urlsplit(self.base)
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=self.timeout)
        try:
            sent = {k.replace("_", "-"): v for k, v in headers.items()}
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            answer = Answer(response.status, response.headers, response.read().decode())
        finally:
            connection.close()
        for cookie in answer.cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if value and "Max-Age=0" not in cookie:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return answer

    def sign_in(self, token: str, **post: str | None) -> Answer:
        form = self.get("/login")
        return self.post("/login", {"token": token, "csrf": form.csrf}, **post)  # type: ignore[arg-type]

    def session_cookie(self) -> str | None:
        return next((k for k in self.cookies if k.endswith("license_svc_session")), None)

    def signed_in(self) -> bool:
        answer = self.get("/")
        return answer.status == 200 and "catalog view at position" in answer.body
