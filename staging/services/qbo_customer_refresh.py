"""The QBO customer refresh as a run: its progress bar on the QuickBooks connection panel.

The paging into the customer cache is integrations' (``qbo_customers_refresh_all``); the
run around it, like every run, is staging's: integrations does not import staging.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.utils import timezone

from integrations.actors import Actor, actor_user
from integrations.models import Company
from integrations.services.enqueue import enqueue
from integrations.services.qbo_connection import qbo_customers_refresh_all
from qbo_client.errors import QboError, TransientError
from staging.models import Run, RunKind, RunState

# The task (staging.qbo_tasks) keeps the name it had when it lived in integrations: messages
# already queued at a deploy still find it, and staging.celery routes by name.
REFRESH_QBO_CUSTOMERS = "integrations.refresh_qbo_customers"


def customers_refresh_start(*, company: Company, actor: Actor) -> Run:
    with transaction.atomic():
        run = Run.objects.create(
            company=company, kind=RunKind.REFRESH_CUSTOMERS, started_by=actor_user(actor)
        )
        transaction.on_commit(partial(enqueue, REFRESH_QBO_CUSTOMERS, run_id=run.pk))
    return run


def qbo_customers_refresh(*, run_id: int, final_try: bool = True) -> None:
    """Page every QBO customer (inactive included) into the local cache, with progress.

    Unless ``final_try``, a transient QBO error puts the run back to pending and is raised
    for the task to retry (the pages already stored stay; the retry pages them again);
    on the final try it fails the run with its reason.
    """
    claimed = Run.objects.filter(pk=run_id, state=RunState.PENDING).update(
        state=RunState.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return  # re-delivered: the first delivery did (or is doing) the work
    run = Run.objects.select_related("company").get(pk=run_id)
    progress = Run.objects.filter(pk=run.pk)
    try:
        count = qbo_customers_refresh_all(
            company=run.company,
            on_total=lambda total: progress.update(total=total),
            on_progress=lambda processed: progress.update(processed=processed),
        )
    except QboError as exc:
        if isinstance(exc, TransientError) and not final_try:
            progress.update(state=RunState.PENDING)
            raise
        progress.update(state=RunState.FAILED, error=exc.reason, finished_at=timezone.now())
        return
    except Exception as exc:  # the run must say it failed, whatever happened
        progress.update(state=RunState.FAILED, error=str(exc)[:500], finished_at=timezone.now())
        raise
    progress.update(
        state=RunState.DONE,
        finished_at=timezone.now(),
        counts={"customers": count},
        processed=count,
    )
