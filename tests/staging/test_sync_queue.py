from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from staging.models import ChangeEvent, EventKind, Run, StagedProject, SyncStatus
from staging.services.sync import (
    NO_CUSTOMER,
    EnqueueSummary,
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
    requeued = ChangeEvent.objects.filter(kind=EventKind.REQUEUED)
    assert requeued.count() == 2
    assert {e.summary for e in requeued} == {
        "Re-queued: the worker handling it stopped before finishing"
    }
    _, reclaimed = projects_claim(project_ids=ids)
    assert len(reclaimed) == 2


def test_reaper_tells_a_row_no_worker_took_from_one_whose_worker_stopped(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:
    rows = _mixed_rows(personas)
    with django_capture_on_commit_callbacks():
        projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=None
        )
    taken, waiting = rows["needs_sync"].pk, rows["failed"].pk
    projects_claim(project_ids=[taken])
    long_ago = timezone.now() - timedelta(minutes=10)
    StagedProject.objects.filter(pk=taken).update(leased_until=long_ago)
    StagedProject.objects.filter(pk=waiting).update(queued_at=long_ago)

    with django_capture_on_commit_callbacks():
        assert sorted(projects_requeue_stale(older_than=timedelta(minutes=5))) == sorted(
            [taken, waiting]
        )
    summaries = dict(
        ChangeEvent.objects.filter(kind=EventKind.REQUEUED).values_list("project_id", "summary")
    )
    assert summaries == {
        taken: "Re-queued: the worker handling it stopped before finishing",
        waiting: "Sent to the workers again: not picked up within 5 minutes",
    }


def _needs_sync_rows(personas: Personas, count: int) -> list[int]:
    customers = QboCustomerFactory.create_batch(3, company=personas.company)
    StagedProject.objects.bulk_create(
        [
            StagedProject(
                company=personas.company,
                linarc_id=f"fan-{i}",
                qbo_customer=customers[i % 3],
                status=SyncStatus.NEEDS_SYNC,
            )
            for i in range(count)
        ]
    )
    return list(
        StagedProject.objects.filter(linarc_id__startswith="fan-")
        .order_by("qbo_customer_id", "pk")
        .values_list("pk", flat=True)
    )


def test_queued_events_are_written_by_the_database_one_per_row(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:
    rows = _mixed_rows(personas)
    with django_capture_on_commit_callbacks():
        summary = projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=personas.operator
        )
    run = Run.objects.get(pk=summary.run_id)
    events = ChangeEvent.objects.filter(kind=EventKind.QUEUED).order_by("project_id")
    attempt = str(StagedProject.objects.get(pk=rows["needs_sync"].pk).attempt_id)
    assert [(e.project_id, e.company_id) for e in events] == sorted(
        [(rows["needs_sync"].pk, personas.company.pk), (rows["failed"].pk, personas.company.pk)]
    )
    for event in events:
        assert event.actor == personas.operator
        assert event.summary == "Queued for Sync to QBO"
        assert event.details == {"attempt_id": attempt}
        assert run.started_at is not None
        assert abs((event.at - run.started_at).total_seconds()) < 60


def test_a_big_selection_sends_one_fan_out_task_that_sends_the_chunks_once(
    personas: Personas, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    from staging.services import sync

    ids = _needs_sync_rows(personas, sync.FAN_OUT_THRESHOLD + 31)
    fan_outs: list[dict[str, object]] = []
    chunks: list[list[int]] = []
    monkeypatch.setattr(
        "staging.sync_tasks.dispatch_sync_run.delay", lambda **kwargs: fan_outs.append(kwargs)
    )
    monkeypatch.setattr(
        "staging.sync_tasks.sync_projects.delay",
        lambda *, project_ids, run_id: chunks.append(project_ids),
    )
    with django_capture_on_commit_callbacks(execute=True):
        summary = projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=None
        )

    assert summary.queued == len(ids)
    assert chunks == []  # the request sent one message, not one per chunk
    assert len(fan_outs) == 1 and fan_outs[0]["run_id"] == summary.run_id

    from staging.sync_tasks import dispatch_sync_run

    sent = dispatch_sync_run(**fan_outs[0])
    again = dispatch_sync_run(**fan_outs[0])  # a re-delivered message
    assert (sent, again) == (len(ids), 0)
    assert [len(c) for c in chunks] == [30] * (len(ids) // 30) + [len(ids) % 30]
    assert [pk for chunk in chunks for pk in chunk] == ids


def test_a_small_selection_is_sent_as_chunks_directly(
    personas: Personas, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    ids = _needs_sync_rows(personas, 45)
    chunks: list[list[int]] = []
    monkeypatch.setattr(
        "staging.sync_tasks.dispatch_sync_run.delay",
        lambda **kwargs: pytest.fail("no fan-out for a small selection"),
    )
    monkeypatch.setattr(
        "staging.sync_tasks.sync_projects.delay",
        lambda *, project_ids, run_id: chunks.append(project_ids),
    )
    with django_capture_on_commit_callbacks(execute=True):
        projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=None
        )
    assert [len(c) for c in chunks] == [30, 15]
    assert [pk for chunk in chunks for pk in chunk] == ids


def test_run_progress_is_counted_by_status(personas: Personas) -> None:
    from staging.services.sync import run_refresh_progress

    ids = _needs_sync_rows(personas, 5)
    summary = projects_enqueue_sync(
        company=personas.company, projects=StagedProject.objects.all(), actor=None
    )
    StagedProject.objects.filter(pk__in=ids[:2]).update(status=SyncStatus.SYNCED)
    StagedProject.objects.filter(pk=ids[2]).update(status=SyncStatus.FAILED)
    run_refresh_progress(run_id=summary.run_id)
    run = Run.objects.get(pk=summary.run_id)
    assert (run.processed, run.state) == (3, "running")
    assert run.counts == {"synced": 2, "failed": 1, "queued": 2}

    StagedProject.objects.filter(pk__in=ids[3:]).update(status=SyncStatus.SYNCED)
    run_refresh_progress(run_id=summary.run_id)
    run = Run.objects.get(pk=summary.run_id)
    assert (run.processed, run.state) == (5, "done")


def test_enqueue_summary_reads_like_the_status_chips() -> None:
    summary = EnqueueSummary(queued=10000, skipped={NO_CUSTOMER: 1200})
    assert summary.describe() == (
        f"Queued 10,000 projects for QBO. Skipped 1,200: {NO_CUSTOMER} (1,200)."
    )
    assert EnqueueSummary(queued=1).describe() == "Queued 1 project for QBO."
