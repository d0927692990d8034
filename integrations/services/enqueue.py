"""Sending a Celery task by name: how services enqueue work without importing the tasks.

Tasks import services (take ids, call one service), so a service that imported its task
module would close a cycle. Services send the task by its registered name instead, through
the Celery app, inside ``transaction.on_commit`` so a worker never looks for a row that is
not committed yet:

    transaction.on_commit(partial(enqueue, PROCESS_QBO_WEBHOOKS, realm_id=realm_id))

import-linter keeps services away from the task modules (pyproject.toml, docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from celery import current_app


def enqueue(task_name: str, /, **kwargs: Any) -> None:
    """Send ``task_name`` with keyword arguments to its queue (staging.celery routes by name).

    ``send_task`` does not honour ``CELERY_TASK_ALWAYS_EAGER`` the way ``.delay()`` does
    (https://docs.celeryq.dev/en/stable/reference/celery.html#celery.Celery.send_task), so
    in that mode the task runs here, as ``.delay()`` would run it.
    """
    app = current_app
    if app.conf.task_always_eager:
        app.autodiscover_tasks(force=True)  # the task modules a worker would have loaded
        app.tasks[task_name].apply(kwargs=kwargs)
        return
    app.send_task(task_name, kwargs=kwargs)
