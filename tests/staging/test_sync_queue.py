from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from staging.models import ChangeEvent, EventKind, Run, StagedProject, SyncStatus
from staging.services.sync import (
    NO_CUSTOMER,
    projects_claim,
    projects_enqueue_sync,
    projects_requeue_stale,
    sync_preview,
)
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory


def _mixed_rows(personas: Personas) -> dict[str, StagedProject]:
    customer = QboCustomerFactory(company=personas.company)
    make = StagedProjectFactory
    return {
        "needs_sync": make(
            company=personas.company, qbo_customer=customer, status=SyncStatus.NEEDS_SYNC
        ),
        "failed": make(company=personas.company, qbo_customer=customer, status=SyncStatus.FAILED),
        "unmapped": make(company=personas.company, status=SyncStatus.NEEDS_ACTION),
        "synced": make(company=personas.company, qbo_customer=customer, status=SyncStatus.SYNCED),
        "deleted": make(
            company=personas.company,
            qbo_customer=customer,
            status=SyncStatus.NEEDS_SYNC,
            deleted_in_linarc=True,
        ),
        "foreign": make(company=personas.other_company, status=SyncStatus.NEEDS_SYNC),
    }


def test_preview_counts_eligible_rows_and_explains_the_rest(personas: Personas) -> None:
    _mixed_rows(personas)
    summary = sync_preview(company=personas.company, projects=StagedProject.objects.all())
    assert summary.queued == 2
    assert summary.skipped == {
        NO_CUSTOMER: 1,
        "Already synced, no changes": 1,
        "Deleted in Linarc": 1,
    }
    assert "No QBO customer selected (1)" in summary.describe()


def test_enqueue_queues_only_eligible_rows_of_the_company(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:
    rows = _mixed_rows(personas)
    with django_capture_on_commit_callbacks() as callbacks:
        summary = projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=personas.operator
        )
    assert summary.queued == 2 and len(callbacks) == 1
    queued = set(
        StagedProject.objects.filter(status=SyncStatus.QUEUED).values_list("pk", flat=True)
    )
    assert queued == {rows["needs_sync"].pk, rows["failed"].pk}
    rows["foreign"].refresh_from_db()
    assert rows["foreign"].status == SyncStatus.NEEDS_SYNC
    run = Run.objects.get(pk=summary.run_id)
    assert run.total == 2
    assert ChangeEvent.objects.filter(kind=EventKind.QUEUED, actor=personas.operator).count() == 2


def test_enqueue_twice_queues_nothing_the_second_time(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:
    _mixed_rows(personas)
    with django_capture_on_commit_callbacks():
        first = projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=None
        )
        second = projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=None
        )
    assert (first.queued, second.queued) == (2, 0)
    assert second.skipped["Already queued"] == 2


def test_claim_is_exclusive_while_the_lease_holds(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:
    rows = _mixed_rows(personas)
    with django_capture_on_commit_callbacks():
        projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=None
        )
    ids = [rows["needs_sync"].pk, rows["failed"].pk]
    _lease, claimed = projects_claim(project_ids=ids)
    assert len(claimed) == 2
    _, again = projects_claim(project_ids=ids)
    assert again == []  # a re-delivered task finds the rows held and does nothing
    # The worker dies: once the lease expires the reaper hands the rows back, same attempt.
    attempt = StagedProject.objects.get(pk=ids[0]).attempt_id
    StagedProject.objects.filter(pk__in=ids).update(leased_until=timezone.now() - timedelta(1))
    with django_capture_on_commit_callbacks() as callbacks:
        assert sorted(projects_requeue_stale()) == sorted(ids)
    assert len(callbacks) == 1
    assert StagedProject.objects.get(pk=ids[0]).attempt_id == attempt
    assert ChangeEvent.objects.filter(kind=EventKind.REQUEUED).count() == 2
    _, reclaimed = projects_claim(project_ids=ids)
    assert len(reclaimed) == 2
