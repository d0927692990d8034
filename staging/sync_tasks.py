"""Celery tasks of the sync. Thin: take ids, call one service, retry only transient errors."""

from __future__ import annotations

import random
import uuid

from celery import shared_task

from staging.services.qbo_push import TransientPushError, projects_push
from staging.services.sync import (
    projects_claim,
    projects_fail_transient,
    projects_release,
    projects_requeue_stale,
    run_dispatch,
    run_refresh_progress,
)

MAX_TRANSIENT_RETRIES = 6


@shared_task(bind=True, name="staging.sync_projects", acks_late=True, max_retries=None)
def sync_projects(self, *, project_ids: list[int], run_id: int | None = None) -> None:  # type: ignore[no-untyped-def]
    lease, projects = projects_claim(project_ids=project_ids)
    try:
        projects_push(lease=lease, projects=projects)
    except TransientPushError as exc:
        projects_release(lease=lease)
        if self.request.retries >= MAX_TRANSIENT_RETRIES:
            projects_fail_transient(project_ids=exc.project_ids, error=exc.error)
        else:
            delay = min(120.0, 2.0**self.request.retries) + random.uniform(0, 1)
            raise self.retry(
                kwargs={"project_ids": exc.project_ids, "run_id": run_id}, countdown=delay
            ) from exc
    finally:
        if run_id is not None:
            run_refresh_progress(run_id=run_id)


@shared_task(name="staging.dispatch_sync_run", acks_late=True)
def dispatch_sync_run(*, run_id: int, attempt_id: str) -> int:
    """Split a big Sync to QBO into 30-row sync_projects tasks (sent by the worker, not by
    the request that queued the rows)."""
    return run_dispatch(run_id=run_id, attempt_id=uuid.UUID(attempt_id))


@shared_task(name="staging.requeue_stale_projects")
def requeue_stale_projects() -> int:
    return len(projects_requeue_stale())
