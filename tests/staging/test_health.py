"""The integration health page (issue #16, item 1): healthy, reconnect needed, failures by
kind with one-click retry; bounded reads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import LinarcConnection, QboConnection
from staging.models import StagedProject, SyncStatus, WorkerHeartbeat
from staging.selectors.health import failure_classes
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory

URL = "/portfolio/integration/erp/health/"


def _connect(personas: Personas, *, status: str = "connected", days: int = 90) -> QboConnection:
    return QboConnection.objects.create(
        company=personas.company,
        realm_id="9130",
        status=status,
        refresh_expires_at=timezone.now() + timedelta(days=days, hours=1),
        last_error="" if status == "connected" else "The refresh token was revoked.",
    )


def _failures(personas: Personas) -> dict[str, list[StagedProject]]:
    customer = QboCustomerFactory(company=personas.company)

    def rows(n: int, **fields: Any) -> list[StagedProject]:
        return [
            StagedProjectFactory(company=personas.company, qbo_customer=customer, **fields)
            for _ in range(n)
        ]

    return {
        "unavailable": rows(
            3,
            status=SyncStatus.FAILED,
            status_reason="QuickBooks did not answer after several tries (503).",
        ),
        "refused": rows(
            2, status=SyncStatus.FAILED, failure_code="6190", status_reason="Subscription ended"
        ),
        "duplicate": rows(
            1,
            status=SyncStatus.NEEDS_ACTION,
            failure_code="6240",
            status_reason='The name "X" is already used in QuickBooks by another record.',
        ),
        "synced": rows(4, status=SyncStatus.SYNCED),
    }


def test_a_healthy_integration_says_so(personas: Personas) -> None:
    _connect(personas)
    LinarcConnection.objects.create(company=personas.company, base_url="https://api.linarc.test")
    WorkerHeartbeat.objects.create(hostname="w1", seen_at=timezone.now())
    page = personas.client_for(personas.viewer).get(URL).content.decode()
    assert "Everything is working" in page
    assert "Connected</strong> to company 9130" in page
    assert "expires in 90 days" in page


def test_reconnect_needed_and_an_expiring_token_are_called_out(personas: Personas) -> None:
    _connect(personas, status="needs_reconnect")
    admin = personas.client_for(personas.admin).get(URL).content.decode()
    assert "Some things need attention" in admin
    assert "Needs reconnecting.</strong> The refresh token was revoked." in admin
    assert "Reconnect QuickBooks" in admin
    viewer = personas.client_for(personas.viewer).get(URL).content.decode()
    assert "Reconnect QuickBooks" not in viewer

    QboConnection.objects.filter(company=personas.company).update(
        status="connected", refresh_expires_at=timezone.now() + timedelta(days=9, hours=1)
    )
    page = personas.client_for(personas.admin).get(URL).content.decode()
    assert '<p class="warn">The connection expires in 9 days' in page


def test_failures_are_grouped_by_kind_with_advice(personas: Personas) -> None:
    _failures(personas)
    classes = {c.name: c for c in failure_classes(company=personas.company)}
    assert {name: c.count for name, c in classes.items()} == {
        "QuickBooks unavailable": 3,
        "Refused by QuickBooks": 2,
        "Duplicate name in QuickBooks": 1,
    }
    assert classes["Refused by QuickBooks"].codes == ("6190",)
    assert classes["Duplicate name in QuickBooks"].retryable is False
    page = personas.client_for(personas.viewer).get(URL).content.decode()
    assert "Link the existing record with Manual Mapping" in page
    assert "Retry these" not in page  # a viewer reads only


def test_retry_a_kind_queues_only_its_rows(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    rows = _failures(personas)
    client = personas.client_for(personas.operator)
    with django_capture_on_commit_callbacks():
        answer = client.post(
            reverse("portfolio:integration_health_retry"),
            {"name": "QuickBooks unavailable"},
            follow=True,
        )
    assert "Retrying 3 projects: QuickBooks unavailable." in answer.content.decode()
    statuses = {
        kind: {p.status for p in StagedProject.objects.filter(pk__in=[r.pk for r in group])}
        for kind, group in rows.items()
    }
    assert statuses["unavailable"] == {SyncStatus.QUEUED}
    assert statuses["refused"] == {SyncStatus.FAILED}
    gone = client.post(reverse("portfolio:integration_health_retry"), {"name": "Nope"}, follow=True)
    assert "No failed projects of that kind are left." in gone.content.decode()


@pytest.mark.parametrize("rows", [10, 300])
def test_the_page_reads_a_fixed_number_of_times(
    personas: Personas, django_assert_max_num_queries: Any, rows: int
) -> None:
    _connect(personas)
    customer = QboCustomerFactory(company=personas.company)
    StagedProject.objects.bulk_create(
        StagedProject(
            company=personas.company,
            linarc_id=f"h{n}",
            qbo_customer=customer,
            status=SyncStatus.FAILED if n % 3 else SyncStatus.QUEUED,
            failure_code=str(6000 + n % 7),
            queued_at=timezone.now(),
        )
        for n in range(rows)
    )
    client = personas.client_for(personas.operator)
    client.get(URL)
    with django_assert_max_num_queries(16):
        assert client.get(URL, HTTP_HX_REQUEST="true").status_code == 200
