"""The webhooks' series on /metrics (rules §14), read from the endpoints' rows at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from license_svc.webhooks.endpoints import EndpointHealth


def webhook_metrics(found: Iterable[EndpointHealth], now: datetime) -> Iterator[Metric]:
    """Per live endpoint (at most MAX_ENDPOINTS a reseller): deliveries by outcome, failed
    attempts, the backlog and the age of its oldest pending delivery."""
    labels = ["endpoint_id", "reseller_id"]
    outcomes = CounterMetricFamily(
        "license_svc_webhook_deliveries",
        "Webhook deliveries finished, by endpoint and outcome (delivered, failed).",
        labels=[*labels, "outcome"],
    )
    attempts = CounterMetricFamily(
        "license_svc_webhook_failed_attempts",
        "Webhook attempts not answered 2xx.",
        labels=labels,
    )
    pending = GaugeMetricFamily(
        "license_svc_webhook_pending", "Webhook deliveries waiting to be sent.", labels=labels
    )
    oldest = GaugeMetricFamily(
        "license_svc_webhook_oldest_pending_seconds",
        "Age of an endpoint's oldest pending delivery (0: none pending).",
        labels=labels,
    )
    disabled = GaugeMetricFamily(
        "license_svc_webhook_endpoint_disabled",
        "1: the endpoint answered 410 Gone.",
        labels=labels,
    )
    for e in found:
        names = [e.endpoint_id, e.reseller_id]
        outcomes.add_metric([*names, "delivered"], e.delivered)
        outcomes.add_metric([*names, "failed"], e.failed)
        attempts.add_metric(names, e.failed_attempts)
        pending.add_metric(names, e.pending)
        age = (now - e.oldest_pending_at).total_seconds() if e.oldest_pending_at else 0.0
        oldest.add_metric(names, max(0.0, age))
        disabled.add_metric(names, int(e.disabled))
    yield from (outcomes, attempts, pending, oldest, disabled)
