"""The sync's outcome writes as they were before the benchmark's fix, for an A/B in one run.

Start workers with ``celery -A bench.sync_before worker``: the product's Celery app, with
``qbo_push.projects_record_outcomes`` replaced in each pool process by the former way of
writing outcomes, one transaction per row (``project_record_outcome``: a conditional UPDATE,
an UPDATE of ``attempts``, an INSERT of the event, a commit). Everything else is the
shipped code. Nothing here is imported by the product.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery.signals import worker_process_init

from staging.celery import app

__all__ = ["app"]


def _one_transaction_per_row(*, lease: uuid.UUID, outcomes: list[tuple[Any, Any]]) -> int:
    from staging.services.sync import project_record_outcome

    return sum(
        project_record_outcome(project=project, lease=lease, outcome=outcome)
        for project, outcome in outcomes
    )


@worker_process_init.connect
def _patch_pool_process(**_kwargs: Any) -> None:
    from staging.services import qbo_push

    qbo_push.projects_record_outcomes = _one_transaction_per_row
