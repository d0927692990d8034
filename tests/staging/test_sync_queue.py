from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from staging.models import ChangeEvent, EventKind, Run, StagedProject, SyncLane, SyncStatus
from staging.sync.lanes import lane_claim
from staging.sync.outcomes import projects_claim
from staging.sync.queue import (
    BULK,
    INTERACTIVE,
    NO_CUSTOMER,
    EnqueueSummary,
    projects_enqueue_sync,
    sync_preview,
)
from staging.sync.reaper import projects_requeue_stale
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
    personas: Personas, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    rows = _mixed_rows(personas)
    with django_capture_on_commit_callbacks():
        projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=None
        )
    woken: list[int] = []
    monkeypatch.setattr(
        "staging.sync.reaper.lanes_wake", lambda *, company_id: woken.append(company_id)
    )
    ids = [rows["needs_sync"].pk, rows["failed"].pk]
    _lease, claimed = projects_claim(project_ids=ids)
    assert len(claimed) == 2
    _, again = projects_claim(project_ids=ids)
    assert again == []  # a re-delivered task finds the rows held and does nothing
    # The worker dies: once the lease expires the reaper hands the rows back, same attempt.
    attempt = StagedProject.objects.get(pk=ids[0]).attempt_id
    StagedProject.objects.filter(pk__in=ids).update(leased_until=timezone.now() - timedelta(1))
    assert sorted(projects_requeue_stale()) == sorted(ids)
    assert woken == [personas.company.pk]  # no lane is live: the company's lanes start again
    assert StagedProject.objects.get(pk=ids[0]).attempt_id == attempt
    requeued = ChangeEvent.objects.filter(kind=EventKind.REQUEUED)
    assert requeued.count() == 2
    assert {e.summary for e in requeued} == {
        "Re-queued: the worker handling it stopped before finishing"
    }
    _, reclaimed = projects_claim(project_ids=ids)
    assert len(reclaimed) == 2


def test_reaper_never_touches_rows_that_are_only_waiting(
    personas: Personas, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    rows = _mixed_rows(personas)
    with django_capture_on_commit_callbacks():
        projects_enqueue_sync(
            company=personas.company, projects=StagedProject.objects.all(), actor=None
        )
    woken: list[int] = []
    monkeypatch.setattr(
        "staging.sync.reaper.lanes_wake", lambda *, company_id: woken.append(company_id)
    )
    taken, waiting = rows["needs_sync"].pk, rows["failed"].pk
    projects_claim(project_ids=[taken])
    long_ago = timezone.now() - timedelta(minutes=10)
    StagedProject.objects.filter(pk=waiting).update(queued_at=long_ago)
    # The company's lane is live (its chain is running): a long wait is a backlog, not a
    # fault. Nothing is given back, nothing is written, no message is sent.
    SyncLane.objects.create(
        company=personas.company, slot=0, active_until=timezone.now() + timedelta(minutes=5)
    )
    before = StagedProject.objects.get(pk=waiting)
    assert projects_requeue_stale() == []
    after = StagedProject.objects.get(pk=waiting)
    assert (after.queued_at, after.leased_until, after.lease_id) == (
        before.queued_at,
        before.leased_until,
        before.lease_id,
    )
    assert not ChangeEvent.objects.filter(kind=EventKind.REQUEUED).exists()
    assert woken == []
    # The lane's chain is lost (its hold expired): the lane is started again, the rows
    # still get no history entry.
    SyncLane.objects.filter(company=personas.company).update(
        active_until=timezone.now() - timedelta(seconds=1)
    )
    assert projects_requeue_stale() == []
    assert woken == [personas.company.pk]
    assert not ChangeEvent.objects.filter(kind=EventKind.REQUEUED).exists()


def _needs_sync_rows(personas: Personas, count: int, prefix: str = "fan-") -> list[int]:
    customers = QboCustomerFactory.create_batch(3, company=personas.company)
    StagedProject.objects.bulk_create(
        [
            StagedProject(
                company=personas.company,
                linarc_id=f"{prefix}{i}",
                qbo_customer=customers[i % 3],
                status=SyncStatus.NEEDS_SYNC,
            )
            for i in range(count)
        ]
    )
    return list(
        StagedProject.objects.filter(linarc_id__startswith=prefix)
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


def test_enqueue_wakes_one_lane_per_chunk_up_to_the_lane_count(
    personas: Personas, django_capture_on_commit_callbacks, monkeypatch, settings
) -> None:
    settings.SYNC_LANES_PER_REALM = 3
    sent: list[dict[str, object]] = []
    monkeypatch.setattr("staging.sync.lanes._send", lambda **kwargs: sent.append(kwargs))
    _needs_sync_rows(personas, 45)  # two chunks
    with django_capture_on_commit_callbacks(execute=True):
        projects_enqueue_sync(
            company=personas.company,
            projects=StagedProject.objects.filter(linarc_id__startswith="fan-"),
            actor=None,
        )
    assert [m["slot"] for m in sent] == [0, 1]
    # 10,000 rows: still one message per lane, never one per chunk.
    _needs_sync_rows(personas, 400, prefix="big-")
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        projects_enqueue_sync(
            company=personas.company,
            projects=StagedProject.objects.filter(linarc_id__startswith="big-"),
            actor=None,
        )
    assert [m["slot"] for m in sent] == [2]  # lanes 0 and 1 are busy: they find the rows


def test_small_runs_and_retries_are_interactive_and_claimed_first(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:
    _needs_sync_rows(personas, 40, prefix="bulk-")
    with django_capture_on_commit_callbacks():
        projects_enqueue_sync(
            company=personas.company,
            projects=StagedProject.objects.filter(linarc_id__startswith="bulk-"),
            actor=None,
        )
        picked = _needs_sync_rows(personas, 2, prefix="pick-")
        projects_enqueue_sync(
            company=personas.company,
            projects=StagedProject.objects.filter(pk__in=picked),
            actor=None,
        )
    priorities = dict(
        StagedProject.objects.filter(status=SyncStatus.QUEUED).values_list(
            "linarc_id", "sync_priority"
        )
    )
    assert {p for k, p in priorities.items() if k.startswith("bulk-")} == {BULK}
    assert {p for k, p in priorities.items() if k.startswith("pick-")} == {INTERACTIVE}
    _lease, first = lane_claim(company_id=personas.company.pk)
    # The two picked rows, queued last, come first; then bulk rows oldest first.
    claimed = {p.pk for p in first}
    assert set(picked) <= claimed and len(claimed) == 30


def test_run_progress_is_counted_by_status(personas: Personas) -> None:
    from staging.sync.outcomes import run_refresh_progress

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
