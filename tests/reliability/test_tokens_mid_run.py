"""OAuth trouble in the middle of a sync, with three real workers on one realm.

* The access token expires mid-run (the emulator's clock jumps an hour): the workers refresh
  once between them (the connection row is the lock) and no row fails.
* The refresh token is revoked mid-run: rows still to go fail with "Reconnect QuickBooks",
  the connection says it needs reconnecting; after a reconnect one retry syncs them, and QBO
  still holds exactly one job per project.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integrations.models import QboConnection, QboConnectionStatus
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.sync.queue import projects_retry_failed
from tests.factories import StagedProjectFactory
from tests.fixtures.qbo import connect_company
from tests.reliability.harness import (
    Disruption,
    Stack,
    audit_projects,
    drive_until_settled,
    enqueue_in_selections,
)

pytestmark = pytest.mark.worker

PROJECTS = 60
HOUR_AND_A_BIT = 3700  # access tokens live 3600 s (Intuit's OAuth 2.0 docs)


def _mapped_projects(stack: Stack, prefix: str) -> list[int]:
    parents = stack.parent_customers(3)
    return [
        StagedProjectFactory(
            company=stack.company,
            qbo_customer=parents[i % len(parents)],
            status=SyncStatus.NEEDS_SYNC,
            name=f"{prefix} Job {i:03d}",
        ).pk
        for i in range(PROJECTS)
    ]


def _slow_batches(stack: Stack) -> None:
    # Batches that take a while keep the run going when the token trouble starts.
    stack.control(
        "POST", "faults", json={"kind": "latency", "ms": 1200, "count": 6, "path": "/batch"}
    )


def _in_flight(ids: list[int]) -> bool:
    return StagedProject.objects.filter(
        pk__in=ids, status=SyncStatus.QUEUED, leased_until__isnull=False
    ).exists()


def _run_with_trouble(stack: Stack, ids: list[int], trouble: Callable[[], object]) -> None:
    """Sync in two waves: the trouble starts while the first wave is in workers' hands, and
    the second wave is clicked right after it (a sync that goes on regardless)."""
    first, second = ids[: PROJECTS // 2], ids[PROJECTS // 2 :]
    _slow_batches(stack)
    enqueue_in_selections(stack, first, [4, 6, 8, 5, 7])
    fired: list[bool] = []

    def start_trouble() -> bool:
        trouble()
        fired.append(True)
        return True

    drive_until_settled(
        stack,
        ids,
        timeout=120,
        disruptions=[
            Disruption("trouble", lambda p, t: _in_flight(first), start_trouble),
            Disruption(
                "second wave",
                lambda p, t: bool(fired),
                lambda: bool(enqueue_in_selections(stack, second, [6, 9, 5, 10])),
            ),
        ],
    )


def _token_grants(stack: Stack) -> int:
    return int(stack.counters()["routes"].get("POST token", 0))


def test_access_token_expiring_mid_run_is_refreshed_once_and_nothing_fails(
    reliability_stack: Stack,
) -> None:
    stack = reliability_stack
    ids = _mapped_projects(stack, "Expiry")
    connection = QboConnection.objects.get(company=stack.company)
    stack.control("POST", "counters/reset")
    _run_with_trouble(
        stack,
        ids,
        lambda: stack.control("POST", "clock", json={"advance_seconds": HOUR_AND_A_BIT}),
    )
    counters = stack.counters()
    audit = audit_projects(stack, ids)

    assert audit.problems == []
    assert audit.statuses == {SyncStatus.SYNCED: PROJECTS}
    assert counters["statuses"].get("401", 0) >= 1, "no request met the expired token"
    assert _token_grants(stack) == 1  # one refresh for every worker together
    refreshed = QboConnection.objects.get(pk=connection.pk)
    assert refreshed.status == QboConnectionStatus.CONNECTED
    assert refreshed.access_token != connection.access_token
    assert refreshed.refresh_token != connection.refresh_token  # the rotated one was kept


def test_revoked_refresh_token_mid_run_asks_for_reconnect_then_retry_syncs_once(
    reliability_stack: Stack,
) -> None:
    stack = reliability_stack
    ids = _mapped_projects(stack, "Revoked")
    _run_with_trouble(stack, ids, lambda: stack.control("POST", "tokens/revoke-all"))
    rows = StagedProject.objects.filter(pk__in=ids)
    failed = list(rows.filter(status=SyncStatus.FAILED))
    assert failed, "the revocation came too late to fail any row"
    assert set(rows.values_list("status", flat=True)) <= {SyncStatus.SYNCED, SyncStatus.FAILED}
    assert all("Reconnect QuickBooks" in row.status_reason for row in failed)
    connection = QboConnection.objects.get(company=stack.company)
    assert connection.status == QboConnectionStatus.NEEDS_RECONNECT
    assert "Reconnect QuickBooks" in connection.last_error
    first_audit = audit_projects(stack, ids)
    assert first_audit.problems == []

    connect_company(stack.company, stack.actor)
    summary = projects_retry_failed(
        company=stack.company, projects=StagedProject.objects.filter(pk__in=ids), actor=stack.actor
    )
    assert summary.queued == len(failed)
    drive_until_settled(stack, ids, timeout=120)
    audit = audit_projects(stack, ids)

    assert audit.problems == []
    assert audit.statuses == {SyncStatus.SYNCED: PROJECTS}
    assert audit.jobs_in_qbo == PROJECTS
    for row in failed:
        kinds = list(
            ChangeEvent.objects.filter(project_id=row.pk)
            .order_by("id")
            .values_list("kind", flat=True)
        )
        assert (
            kinds.index(EventKind.FAILED)
            < kinds.index(EventKind.RETRIED)
            < (kinds.index(EventKind.SYNCED))
        ), kinds
