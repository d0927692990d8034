"""Earlier designs of the sync, for an A/B in one run. Nothing here is imported by the product.

Start workers with ``celery -A bench.sync_before worker``: the product's Celery app, with
one piece of ``staging.sync.push`` replaced in each pool process after Django is
set up, chosen by ``BENCH_SYNC_BEFORE``:

* ``per-row-commits``: each row's outcome written in its own transaction
  (``project_record_outcome``: a conditional UPDATE, an UPDATE of ``attempts``, an INSERT of
  the event, a commit) instead of one per write of the chunk's outcomes (per chunk, or per
  10 rows of single creates);
* ``batch-only``: every chunk waits for a slot in the realm's batch window (40 per minute)
  instead of being written as single requests when the window is full: at most
  40 x 30 = 1,200 rows per minute.

Everything else is the shipped code.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from celery.signals import worker_process_init

from staging.celery import app

__all__ = ["app"]


def _one_transaction_per_row(*, lease: uuid.UUID, outcomes: list[tuple[Any, Any]]) -> int:
    from staging.sync.outcomes import project_record_outcome

    return sum(
        project_record_outcome(project=project, lease=lease, outcome=outcome)
        for project, outcome in outcomes
    )


class _WaitForBatchSlots:
    """A client whose ``batch`` always waits for the batch window (the former design)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch(self, items: Any, request_id: Any = None, *, wait_for_slot: bool = True) -> Any:
        return self._client.batch(items, request_id=request_id, wait_for_slot=True)


@worker_process_init.connect
def _patch_pool_process(**_kwargs: Any) -> None:
    from staging.sync import push as qbo_push

    variant = os.environ.get("BENCH_SYNC_BEFORE", "per-row-commits")
    if variant == "per-row-commits":
        qbo_push.projects_record_outcomes = _one_transaction_per_row
    elif variant == "batch-only":
        send = qbo_push.works_send

        def send_batches_only(client: Any, works: Any, record: Any, **kwargs: Any) -> None:
            send(_WaitForBatchSlots(client), works, record, **kwargs)

        qbo_push.works_send = send_batches_only
    else:
        raise ValueError(f"unknown BENCH_SYNC_BEFORE={variant!r}")
