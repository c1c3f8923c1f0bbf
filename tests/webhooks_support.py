"""What the webhook tests share: the room's parts around a built service, with an injected
clock and a sender that may call 127.0.0.1; fixtures for them and for real receivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.webhooks.endpoints import Endpoints
from license_svc.webhooks.router import Router
from license_svc.webhooks.sender import Policy, Sender
from license_svc.webhooks.signing import SecretBox
from license_svc.webhooks.tables import WebhookTables
from tests.helpers import unique
from tests.support import TEST_PEPPER, FakeClock
from tests.webhook_receiver import Receiver

# A time no other test's keys reach: tests whose keys end soon move their clock here first, so
# they never crowd another test's "ending soon" lists in the shared test database.
FAR_AWAY = datetime(2041, 1, 31, 9, 30, tzinfo=UTC)


@dataclass
class Hooks:
    service: Service
    clock: FakeClock
    tables: WebhookTables
    endpoints: Endpoints
    router: Router
    sender: Sender

    def route(self) -> None:
        while self.router.route_once()[0]:
            pass

    def send(self) -> list[str]:
        self.route()
        return self.sender.send_due(1_000)

    def issue(self, reseller: str, count: int, months: int = 12) -> list[UUID]:
        cmd = IssueKeys(reseller, Product.INTEGRATIONS, Tier.GROWTH, 2, months, count, unique("q"))
        return [key.key_id for key in self.service.app.issue_keys(cmd).keys]

    def endpoint(self, reseller: str, receiver: Receiver, types: list[str] | None = None) -> str:
        created = self.endpoints.create(reseller, receiver.url, types or [])
        receiver.secret = created.secret
        return created.endpoint.endpoint_id

    def delivery(self, endpoint_id: str) -> dict[str, Any]:
        page = self.endpoints.deliveries(endpoint_id, None, None, 10)
        assert len(page.deliveries) == 1, page.deliveries
        return page.deliveries[0] | {"recent": page.attempts.get(page.deliveries[0]["message_id"])}


def hooks_for(
    service: Service, clock: FakeClock, *, send_private: bool = True, **policy: Any
) -> Hooks:
    tables = WebhookTables(service.datastore)
    box = SecretBox(TEST_PEPPER.encode())
    head = service.app.recorder.max_notification_id
    return Hooks(
        service,
        clock,
        tables,
        Endpoints(tables, box, head, clock, allow_private=True),
        Router(tables, service.app, clock),
        Sender(tables, box, clock, Policy(allow_private=send_private, **policy)),
    )


def hooks_around(service: Service, clock: FakeClock) -> Iterator[Hooks]:
    """The `hooks` fixture's body: parts with a 5 s timeout, past whatever earlier tests left."""
    made = hooks_for(service, clock, timeout=5)
    made.route()  # whatever earlier tests left in the log
    yield made
    made.sender.close()


def receivers_made() -> Iterator[Callable[..., Receiver]]:
    """The `receivers` fixture's body: make receivers; all stopped afterwards."""
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()
