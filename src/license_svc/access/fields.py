"""One validation layer for the text of every request, at the adapter, before anything is read
or written.

Every text field is one of a few kinds, and `LIMITS` names each field's kind and length limit
(the README's "Request fields" table is this table):

- ids (`account_id`, `reseller_id`, `session_id`, `request_id`, …): 1..limit characters of
  `ID_ALPHABET` (ASCII letters, digits and `- _ . : @ + = /`), surrounding spaces trimmed;
- free text (`reason`): any Unicode text except control characters (C0, DEL, C1) and
  surrogates, surrounding whitespace trimmed;
- key ids: the text form of a UUID; dates: `YYYY-MM-DD`; timestamps: within years 1..9999.

Activation codes are not validated here: anything that is not the exact form of a key is the
dialog's `Invalid key format` (a failed attempt), however long and whatever it holds.

A violation is collected as a (field, description) pair and all of a request's violations are
raised together as one `BadRequest` (INVALID_ARGUMENT with field violations), so nothing reaches
the store, the views or the attempt limiter. Text that passes holds no NUL, so it can never
poison a PostgreSQL text column or a view.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TypeVar
from uuid import UUID

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

T = TypeVar("T")
V = TypeVar("V")


class BadRequest(Exception):
    """A malformed request: one or more fields are missing or out of range."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {d}" for f, d in violations))
        self.violations = violations


ID_ALPHABET = string.ascii_letters + string.digits + "-_.:@+=/"
ID = "id"
TEXT = "text"
# field → (kind, most characters). One place: servicers pass the field's name only.
LIMITS: dict[str, tuple[str, int]] = {
    "account_id": (ID, 128),
    "session_id": (ID, 200),
    "reseller_id": (ID, 128),
    "request_id": (ID, 200),
    "batch_id": (ID, 128),
    "subscription_id": (ID, 200),
    "billing_event_id": (ID, 200),
    "page_token": (ID, 1000),  # base64url of what the page continues (the query, the last row)
    "event_types": (ID, 64),
    "reason": (TEXT, 500),
    "connection_id": (ID, 200),  # seat leases (rules §12)
    "holder": (ID, 200),
}
DEFAULT_LIMITS = {ID: 128, TEXT: 500}
MAX_KEY_ID = 64  # a UUID's text is 36 characters; braces and urn:uuid: prefixes stay well below

_ID_RE = re.compile("[" + re.escape(ID_ALPHABET) + "]+")
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Control characters (C0, DEL, C1) and lone surrogates: what a NUL does to PostgreSQL text, the
# rest do to logs, terminals and dashboards.
_FORBIDDEN_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MIN_SECONDS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
_MAX_SECONDS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


def limit_of(field: str, kind: str) -> int:
    found = LIMITS.get(field.split("[", 1)[0])
    return found[1] if found else DEFAULT_LIMITS[kind]


def forbidden_character(value: str) -> str | None:
    """A description of the first character text may not hold, or None if it holds none."""
    found = _FORBIDDEN_RE.search(value)
    if found is None:
        return None
    return f"must not contain control characters or surrogates (found U+{ord(found.group()):04X})"


class Fields:
    """The violations of one request: check each field, then `done()` raises them all."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append((field, description))

    def done(self) -> None:
        if self.violations:
            raise BadRequest(self.violations)

    def merge(self, error: BadRequest) -> None:
        self.violations += error.violations

    def parse(self, parse: Callable[[V], T], value: V) -> T | None:
        """`parse(value)`, or None with its violations kept for `done()`."""
        try:
            return parse(value)
        except BadRequest as error:
            self.merge(error)
            return None

    # -- text ------------------------------------------------------------------------------

    def identifier(self, value: str, field: str, *, required: bool = True) -> str:
        """An id: letters, digits and `- _ . : @ + = /`, surrounding spaces trimmed (only spaces:
        str.strip() would also drop controls such as U+0085). '' when absent and optional."""
        value = value.strip(" ")
        limit = limit_of(field, ID)
        if not value:
            if required:
                self.add(field, "is required")
        elif len(value) > limit:
            self.add(field, f"must be at most {limit} characters")
        elif not _ID_RE.fullmatch(value):
            self.add(field, "must contain only letters, digits and - _ . : @ + = /")
        return value

    def text(self, value: str, field: str, *, required: bool = False) -> str:
        """Free text (e.g. a reason): no control characters or surrogates, trimmed."""
        limit = limit_of(field, TEXT)
        if len(value) > 4 * limit:  # don't scan megabytes to say it is too long
            self.add(field, f"must be at most {limit} characters")
            return ""
        problem = forbidden_character(value)
        value = value.strip()
        if problem is not None:
            self.add(field, problem)
        elif not value:
            if required:
                self.add(field, "is required")
        elif len(value) > limit:
            self.add(field, f"must be at most {limit} characters")
        return value

    def identifiers(self, values: list[str], field: str) -> list[str]:
        """A repeated id field: each checked as `field[i]`."""
        return [self.identifier(v, f"{field}[{i}]") for i, v in enumerate(values)]

    # -- structured text -------------------------------------------------------------------

    def key_id(self, value: str, field: str = "key_id", *, required: bool = True) -> UUID | None:
        return self.uuid(value, field, "key id", required=required)

    def uuid(self, value: str, field: str, what: str, *, required: bool = True) -> UUID | None:
        """An id in UUID form (`what` names it in the refusal), or None when empty."""
        value = value.strip(" ")
        if not value:
            if required:
                self.add(field, "is required")
            return None
        if len(value) <= MAX_KEY_ID and forbidden_character(value) is None:
            try:
                return UUID(value)
            except ValueError:
                pass
        self.add(field, f"must be a {what} (UUID)")
        return None

    def day(self, value: str, field: str) -> date | None:
        """`YYYY-MM-DD` (UTC), or None when empty (the caller's default applies)."""
        if not value:
            return None
        if _DAY_RE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.add(field, "must be a date YYYY-MM-DD")
        return None

    def timestamp(self, message: Message, field: str, *, required: bool = False) -> datetime | None:
        """`message.field`, an instant in years 1..9999 (what datetime holds), or None when
        unset. Out of that range `ToDatetime` would raise, and the caller answer INTERNAL."""
        if not message.HasField(field):
            if required:
                self.add(field, "is required")
            return None
        value: timestamp_pb2.Timestamp = getattr(message, field)
        if not _MIN_SECONDS <= value.seconds <= _MAX_SECONDS or not 0 <= value.nanos < 10**9:
            self.add(field, "must be a timestamp between years 1 and 9999")
            return None
        return value.ToDatetime(tzinfo=UTC)
