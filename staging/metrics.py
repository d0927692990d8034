"""The Prometheus endpoint: the product's state as gauges, read from the database at each
scrape, so every web process answers the same and nothing is lost when a worker restarts.

Exposition format and client: https://prometheus.github.io/client_python/collector/custom/
Protected by a bearer token (``METRICS_TOKEN``); without one the endpoint does not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis import RedisError

from integrations.models import Company, QboConnection, QboConnectionStatus
from integrations.services.qbo_traffic import bucket_label, traffic_store
from staging.imports.runs import IMPORT_KINDS
from staging.models import Run, RunState, StagedProject, SyncStatus
from staging.selectors.health import failure_classes
from staging.services.workers import workers_online


class StagingCollector(Collector):
    """Gauges per company (label ``company``: its slug); a fixed number of grouped reads
    plus one failure grouping per company with failures."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        slugs = dict(Company.objects.values_list("pk", "slug"))
        projects = GaugeMetricFamily(
            "staging_projects", "Staged projects by status.", labels=["company", "status"]
        )
        with_failures = set()
        for company_id, status, count in (
            StagedProject.objects.values_list("company_id", "status")
            .annotate(n=Count("pk"))
            .order_by()
        ):
            projects.add_metric([slugs[company_id], status], count)
            if status in (SyncStatus.FAILED, SyncStatus.NEEDS_ACTION):
                with_failures.add(company_id)
        yield projects

        oldest = GaugeMetricFamily(
            "staging_queue_oldest_seconds",
            "How long the oldest Queued project has waited.",
            labels=["company"],
        )
        for company_id, queued_at in (
            StagedProject.objects.filter(status=SyncStatus.QUEUED)
            .values_list("company_id")
            .annotate(oldest=Min("queued_at"))
            .order_by()
        ):
            if queued_at is not None:
                oldest.add_metric([slugs[company_id]], (now - queued_at).total_seconds())
        yield oldest

        failures = GaugeMetricFamily(
            "staging_failures",
            "Failed and Needs Action projects by kind (as the health page groups them).",
            labels=["company", "kind"],
        )
        for company in Company.objects.filter(pk__in=with_failures):
            for failure in failure_classes(company=company):
                failures.add_metric([company.slug, failure.name], failure.count)
        yield failures

        up = GaugeMetricFamily(
            "qbo_connection_up", "1 while QuickBooks is connected.", labels=["company"]
        )
        days = GaugeMetricFamily(
            "qbo_refresh_token_days_left",
            "Days before the QuickBooks connection lapses: unless refreshed, or at the grant's "
            "five-year limit, whichever comes first.",
            labels=["company"],
        )
        connections = list(
            QboConnection.objects.only(
                "company_id", "realm_id", "status", "refresh_expires_at", "refresh_hard_expires_at"
            )
        )
        for connection in connections:
            company_id, expires = connection.company_id, connection.ends_at
            up.add_metric(
                [slugs[company_id]], int(connection.status == QboConnectionStatus.CONNECTED)
            )
            if expires is not None:
                days.add_metric([slugs[company_id]], (expires - now) / timedelta(days=1))
        yield up
        yield days
        yield from _qbo_traffic(
            {c.realm_id: slugs[c.company_id] for c in connections if c.realm_id}
        )

        runs = GaugeMetricFamily(
            "staging_runs_last_day",
            "Runs created in the last 24 hours by kind and state.",
            labels=["kind", "state"],
        )
        for kind, state, count in (
            Run.objects.filter(created_at__gte=now - timedelta(days=1))
            .values_list("kind", "state")
            .annotate(n=Count("pk"))
            .order_by()
        ):
            runs.add_metric([kind, state], count)
        yield runs

        speed = GaugeMetricFamily(
            "staging_import_rows_per_second",
            "Rows per second of each company's latest import finished in the last 24 hours.",
            labels=["company"],
        )
        latest: dict[int, tuple[int, float]] = {}
        for company_id, processed, started, finished in (
            Run.objects.filter(
                kind__in=IMPORT_KINDS,
                state=RunState.DONE,
                finished_at__gte=now - timedelta(days=1),
                started_at__isnull=False,
            )
            .order_by("finished_at")
            .values_list("company_id", "processed", "started_at", "finished_at")
        ):
            if finished is None or started is None:
                continue
            seconds = (finished - started).total_seconds()
            if seconds > 0:
                latest[company_id] = (processed, seconds)  # the newest wins
        for company_id, (processed, seconds) in latest.items():
            speed.add_metric([slugs[company_id]], processed / seconds)
        yield speed

        workers = GaugeMetricFamily(
            "staging_workers_online", "1 when a worker reported in the last 2 minutes."
        )
        workers.add_metric([], int(workers_online()))
        yield workers


def _qbo_traffic(companies: dict[str, str]) -> Iterator[Metric]:
    """Every worker's QBO exchanges per realm, from the shared counters (qbo_traffic.py);
    nothing where there is no shared Redis."""
    store = traffic_store()
    if store is None or not companies:
        return
    try:
        totals = store.totals(companies)
        recent = store.recent_many(totals)
    except RedisError:
        return  # a scrape without these beats a failed scrape
    requests = CounterMetricFamily(
        "qbo_requests", "Requests to QuickBooks by outcome.", labels=["company", "outcome"]
    )
    latency = HistogramMetricFamily(
        "qbo_request_duration_seconds",
        "How long QuickBooks took to answer (the request and its reply).",
        labels=["company"],
    )
    last_minute = GaugeMetricFamily(
        "qbo_requests_last_minute",
        "Requests to QuickBooks in the last minute (its budget is 500 per realm).",
        labels=["company"],
    )
    throttled = GaugeMetricFamily(
        "qbo_throttled_last_hour",
        "429 answers from QuickBooks in the last hour.",
        labels=["company"],
    )
    for realm, total in totals.items():
        company = companies[realm]
        for outcome, count in total.outcomes.items():
            requests.add_metric([company, outcome], count)
        latency.add_metric(
            [company],
            [(bucket_label(bound), count) for bound, count in total.buckets],
            total.sum_seconds,
        )
        last_minute.add_metric([company], recent[realm].requests_last_minute)
        throttled.add_metric([company], recent[realm].throttled_last_hour)
    yield from (requests, latency, last_minute, throttled)


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(StagingCollector())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return HttpResponse("A bearer token is needed.\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
