"""Celery tasks of the sync. Thin: take ids, call one service.

``staging.sync_lane`` carries the sync (lanes.py). ``staging.sync_projects`` and
``staging.dispatch_sync_run`` were the messages of the engine before lanes: one still in a
queue at deploy time wakes its company's lanes, so no row waits for the reaper.
"""

from __future__ import annotations

import uuid

from celery import shared_task

from staging.models import Run, StagedProject
from staging.sync.lanes import lane_step, lanes_wake
from staging.sync.reaper import projects_requeue_stale


@shared_task(name="staging.sync_lane", acks_late=True)
def sync_lane(*, company_id: int, slot: int, token: str) -> None:
    lane_step(company_id=company_id, slot=slot, token=uuid.UUID(token))


@shared_task(name="staging.requeue_stale_projects")
def requeue_stale_projects() -> int:
    return len(projects_requeue_stale())


@shared_task(name="staging.sync_projects", acks_late=True)
def sync_projects(*, project_ids: list[int], run_id: int | None = None) -> None:
    for company_id in set(
        StagedProject.objects.filter(pk__in=project_ids).values_list("company_id", flat=True)
    ):
        lanes_wake(company_id=company_id)


@shared_task(name="staging.dispatch_sync_run", acks_late=True)
def dispatch_sync_run(*, run_id: int, attempt_id: str) -> None:
    company_id = Run.objects.filter(pk=run_id).values_list("company_id", flat=True).first()
    if company_id is not None:
        lanes_wake(company_id=company_id)
