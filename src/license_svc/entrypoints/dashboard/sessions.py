"""The page's sign-in sessions, in memory (a restart signs everyone out).

The store holds no secret a memory dump could replay: a session is found by the SHA-256 of its
cookie's value, and keeps its principal and the SHA-256 of the token it signed in with (the
token table compares the same digest), so each request re-checks that token against the table
and a token removed by a reload ends its sessions at once.

Bounds, chosen so that no principal can push out another's sessions:
- `per_principal` (10) sessions each: a principal's next sign-in ends its own oldest session;
- `others` (10,000) sessions of resellers together: past that a reseller sign-in is refused
  (nobody is signed out for it) until sessions expire;
- `ops` (1,000) sessions of ops principals, counted apart, so resellers can never take their room.
A session ends after `idle` (30 minutes) without a request, and `absolute` (12 hours) after its
sign-in, whichever comes first; the clock is injected.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from license_svc.access.auth import Principal, Role


@dataclass(frozen=True)
class Bounds:
    per_principal: int = 10
    others: int = 10_000
    ops: int = 1_000
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)


@dataclass
class Session:
    principal: Principal
    token_digest: bytes  # SHA-256 of the token: re-checked against the token table each request
    started: datetime
    seen: datetime


class Full(Exception):
    """No room for one more session of this kind; nobody else's was ended to make room."""


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class Sessions:
    def __init__(self, clock: Callable[[], datetime], bounds: Bounds = Bounds()) -> None:
        self.bounds = bounds
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[bytes, Session] = {}
        self._owned: dict[Principal, OrderedDict[bytes, None]] = {}  # oldest first
        self._counts = {True: 0, False: 0}  # by is_ops

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, session_id: str, principal: Principal, token_digest: bytes) -> None:
        """Keep a new session under `session_id` (a fresh random value the caller made), or
        raise Full. Its principal's oldest session ends if it holds `per_principal` already."""
        now = self._clock()
        is_ops = principal.role is Role.OPS
        bound = self.bounds.ops if is_ops else self.bounds.others
        with self._lock:
            owned = self._owned.get(principal)
            if owned is not None and len(owned) >= self.bounds.per_principal:
                self._end(next(iter(owned)))
            elif self._counts[is_ops] >= bound:
                self._sweep(now)
                if self._counts[is_ops] >= bound:
                    raise Full(f"{bound:,} {'ops' if is_ops else 'reseller'} sessions are open")
            key = _key(session_id)
            self._sessions[key] = Session(principal, token_digest, now, now)
            self._owned.setdefault(principal, OrderedDict())[key] = None
            self._counts[is_ops] += 1

    def find(self, session_id: str) -> Session | None:
        """The live session of this cookie value (its idle time starts again), else None."""
        now = self._clock()
        key = _key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if self._expired(session, now):
                self._end(key)
                return None
            session.seen = now
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._end(_key(session_id))

    def _expired(self, session: Session, now: datetime) -> bool:
        return (
            now - session.seen >= self.bounds.idle or now - session.started >= self.bounds.absolute
        )

    def _sweep(self, now: datetime) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            self._end(key)

    def _end(self, key: bytes) -> None:
        session = self._sessions.pop(key, None)
        if session is None:
            return
        owned = self._owned[session.principal]
        owned.pop(key, None)
        if not owned:
            del self._owned[session.principal]
        self._counts[session.principal.role is Role.OPS] -= 1
