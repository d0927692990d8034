"""Imports run by REAL Celery worker processes: the Import button's task, and the scheduled
pull dispatched the way beat dispatches the company's PeriodicTask."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from integrations.models import SyncRules
from integrations.services.rules import sync_rules_update
from staging.celery import app
from staging.models import Run, RunKind, RunState, StagedProject
from tests.fixtures.linarc import connect_company
from tests.fixtures.workers import WorkerPool, wait_for

pytestmark = pytest.mark.worker


def finished_runs(kind: str) -> list[Run]:
    return list(
        Run.objects.filter(kind=kind, state__in=[RunState.DONE, RunState.FAILED]).order_by("pk")
    )


def test_import_button_runs_in_a_worker_with_live_progress(
    celery_workers: WorkerPool, personas: Any, linarc_emulator: Any
) -> None:
    connect_company(personas.company, linarc_emulator)
    client = personas.client_for(personas.operator)

    response = client.post(reverse("portfolio:import_all"), HTTP_HX_REQUEST="true")
    assert response.status_code == 202
    run = Run.objects.get(kind=RunKind.IMPORT_ALL)
    progress_url = reverse("portfolio:import_run", args=[run.pk])
    assert f'hx-get="{progress_url}"' in response.content.decode()

    # Poll the way the progress bar does, until the answer tells htmx to stop (286).
    final = wait_for(
        lambda: (r := client.get(progress_url, HTTP_HX_REQUEST="true")).status_code == 286 and r,
        pool=celery_workers,
    )
    run.refresh_from_db()
    assert run.state == RunState.DONE, run.error
    assert run.counts["created"] == linarc_emulator.state.projects
    assert StagedProject.objects.count() == linarc_emulator.state.projects
    assert "hx-trigger" not in final.content.decode()
    assert "importFinished" in final["HX-Trigger"]


def test_scheduled_pull_in_a_worker_follows_auto_create_and_auto_update(
    celery_workers: WorkerPool, personas: Any, linarc_emulator: Any
) -> None:
    company = personas.company
    rules: dict[str, Any] = {
        "company": company,
        "base_url": linarc_emulator.base_url,
        "api_key": linarc_emulator.api_key,
        "pull_every_minutes": 5,
        "display_name_template": "{name}",
        "actor": personas.admin,
    }

    def beat_fires() -> Run:
        """What celery beat does when the company's PeriodicTask is due."""
        task = SyncRules.objects.get(company=company).periodic_task
        assert task is not None and task.enabled
        done_before = len(finished_runs(RunKind.SCHEDULED_PULL))
        app.send_task(task.task, kwargs=json.loads(task.kwargs))
        wait_for(
            lambda: len(finished_runs(RunKind.SCHEDULED_PULL)) > done_before, pool=celery_workers
        )
        run = finished_runs(RunKind.SCHEDULED_PULL)[-1]
        assert run.state == RunState.DONE, run.error
        return run

    # Auto-Create only: everything new comes in; then an edit is left alone.
    sync_rules_update(auto_create=True, auto_update=False, **rules)
    assert beat_fires().counts["created"] == linarc_emulator.state.projects
    staged_name = StagedProject.objects.get(linarc_id="100002").name
    linarc_emulator.update_project("100002", {"name": "Edited in Linarc"})
    linarc_emulator.add_projects({"id": "990100", "name": "Created in Linarc", "status": "Active"})
    run = beat_fires()
    assert (run.counts["created"], run.counts["updated"]) == (1, 0)
    assert StagedProject.objects.get(linarc_id="100002").name == staged_name
    assert StagedProject.objects.filter(linarc_id="990100").exists()

    # Auto-Update only: the next edit comes in; a new project does not.
    sync_rules_update(auto_create=False, auto_update=True, **rules)
    linarc_emulator.update_project("100002", {"name": "Edited again"})
    linarc_emulator.add_projects({"id": "990101", "name": "Left in Linarc", "status": "Active"})
    run = beat_fires()
    assert (run.counts["created"], run.counts["updated"]) == (0, 1)
    assert StagedProject.objects.get(linarc_id="100002").name == "Edited again"
    assert not StagedProject.objects.filter(linarc_id="990101").exists()
