"""Celery tasks of the Linarc imports. Thin: take ids, call one service.

Re-delivery is harmless: ``import_run_execute`` claims its run with a conditional UPDATE
(pending → running), and a second delivery finds it claimed and does nothing. Linarc errors
are not retried here: the client already retried transient ones with backoff, and the run
then shows the failure; the scheduled pull simply runs again at its next interval.

The task names are what the routing (staging/celery.py), the services that send these
tasks by name (runs.IMPORT_TASK, integrations.services.rules.SCHEDULED_PULL_TASK) and the
companies' PeriodicTasks know them by: never rename one.
"""

from __future__ import annotations

from celery import shared_task

from staging.imports.pages import import_run_execute, scheduled_pull_run


@shared_task(name="staging.import_projects", acks_late=True)
def import_projects(*, run_id: int) -> None:
    import_run_execute(run_id=run_id)


@shared_task(name="staging.scheduled_pull", acks_late=True)
def scheduled_pull(*, company_id: int) -> None:
    scheduled_pull_run(company_id=company_id)
