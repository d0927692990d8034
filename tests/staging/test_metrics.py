"""The Prometheus endpoint (issue #16, item 4): off without a token, refused without the
right one, and the product's state as gauges per company."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from integrations.models import QboConnection
from staging.models import Run, RunKind, RunState, StagedProject, SyncStatus, WorkerHeartbeat
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory
from tests.fixtures.metrics import metric_samples

TOKEN = "metrics-token-123"


def test_metrics_are_off_without_a_token_and_refused_with_a_wrong_one(
    db: None, settings: Any
) -> None:
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401


def test_the_gauges_tell_each_companys_state(personas: Personas, settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    slug = personas.company.slug
    customer = QboCustomerFactory(company=personas.company)
    for status in (SyncStatus.SYNCED, SyncStatus.SYNCED, SyncStatus.FAILED):
        StagedProjectFactory(
            company=personas.company,
            qbo_customer=customer,
            status=status,
            failure_code="6190" if status == SyncStatus.FAILED else "",
        )
    queued = StagedProjectFactory(
        company=personas.company, qbo_customer=customer, status=SyncStatus.QUEUED
    )
    StagedProject.objects.filter(pk=queued.pk).update(
        queued_at=timezone.now() - timedelta(seconds=90)
    )
    QboConnection.objects.create(
        company=personas.company,
        realm_id="9130",
        status="connected",
        refresh_expires_at=timezone.now() + timedelta(days=30, hours=1),
    )
    WorkerHeartbeat.objects.create(hostname="w1", seen_at=timezone.now())
    finished = timezone.now() - timedelta(minutes=5)
    for seconds, rows in ((10, 100), (4, 1000)):  # the later import is the one reported
        Run.objects.create(
            company=personas.company,
            kind=RunKind.IMPORT_ALL,
            state=RunState.DONE,
            processed=rows,
            started_at=finished - timedelta(seconds=seconds),
            finished_at=finished,
        )
        finished += timedelta(minutes=1)

    answer = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert answer.status_code == 200
    samples = metric_samples(answer.content.decode())
    assert samples[("staging_projects", (("company", slug), ("status", "synced")))] == 2
    assert samples[("staging_projects", (("company", slug), ("status", "failed")))] == 1
    assert 89 <= samples[("staging_queue_oldest_seconds", (("company", slug),))] < 120
    kind = (("company", slug), ("kind", "Refused by QuickBooks"))
    assert samples[("staging_failures", kind)] == 1
    assert samples[("qbo_connection_up", (("company", slug),))] == 1
    assert 30 <= samples[("qbo_refresh_token_days_left", (("company", slug),))] < 31
    assert samples[("staging_workers_online", ())] == 1
    assert samples[("staging_import_rows_per_second", (("company", slug),))] == 250
