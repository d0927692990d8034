"""The whole procedure a user follows, in Chromium, against the live server, both emulators
and a real Celery worker: import, map, select, sync, watch rows settle, retry a failure."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.models import QboCustomer
from qbo_client.emulator import QboEmulator
from staging.models import StagedProject, SyncStatus
from tests.conftest import Personas
from tests.factories import PASSWORD
from tests.fixtures.browser import login, screenshot
from tests.fixtures.linarc import connect_company as connect_linarc
from tests.fixtures.qbo import connect_company as connect_qbo
from tests.fixtures.qbo import control, qbo_env, refresh_customers
from tests.fixtures.workers import WorkerPool, worker_env

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def _row(page: Any, project: StagedProject) -> Any:
    return page.locator(f"#project-{project.pk}")


def _wait_status(page: Any, project: StagedProject, status: str, timeout: int = 60000) -> None:
    page.wait_for_function(
        f"() => document.querySelector('#project-{project.pk}')?.dataset.status === '{status}'",
        timeout=timeout,
    )


def test_import_map_sync_fail_and_retry_in_the_browser(
    page: Any,
    live_server: Any,
    personas: Personas,
    qbo_emulator: QboEmulator,
    linarc_emulator_factory: Any,
    celery_workers: WorkerPool,
) -> None:
    linarc = linarc_emulator_factory(projects=4, hostile=False, seed=11)
    control_linarc = f"{linarc.base_url}/__emulator__/projects"
    import requests

    requests.post(
        control_linarc,
        json={
            "id": "777001",
            "number": "P-777",
            "status": "Active",
            "name": "<script>alert(1)</script> Lobby",
            "client_name": "Cascade County Schools",
        },
        timeout=10,
    )
    connect_linarc(personas.company, linarc)
    connect_qbo(personas.company, personas.admin)
    refresh_customers(personas.company)
    # The default worker was started before the emulator existed: replace it.
    celery_workers.start_one({**worker_env(celery_workers.queue), **qbo_env(qbo_emulator)})
    celery_workers.processes[0].terminate()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)

    login(page, live_server.url, personas.admin.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/")
    page.locator("details.import-menu > summary").click()
    page.get_by_role("menuitem", name="Import All from Linarc").click()
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/")
    page.wait_for_function(
        "() => document.querySelectorAll('#project-rows tr[data-id]').length === 5", timeout=60000
    )
    projects = list(StagedProject.objects.order_by("pk"))
    assert len(projects) == 5
    hostile = next(p for p in projects if p.linarc_id == "777001")
    assert _row(page, hostile).get_by_text("<script>alert(1)</script> Lobby").is_visible()

    # Map the first project in the browser: confirm, and the cell locks.
    first = projects[0]
    cell = _row(page, first).locator(".cell-customer")
    cell.get_by_role("button", name="Select QBO customer").click()
    cell.get_by_placeholder("Search QBO customers…").fill("northgate")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#picker-options-{first.pk} .option-name')]"
        ".map(o => o.textContent).join('|') === 'Northgate Medical Partners'"
    )
    cell.locator(".option").first.click()
    page.get_by_role("button", name="Map permanently").click()
    _row(page, first).locator(".customer-locked").wait_for()
    assert "Northgate Medical Partners" in _row(page, first).locator(".cell-customer").inner_text()
    _wait_status(page, first, "needs_sync")
    # The rest are mapped the same way through the service, to keep the test short.
    from staging.services.mapping import project_map_customer

    customer = QboCustomer.objects.get(
        company=personas.company, display_name="Cascade County Schools"
    )
    for project in projects[1:]:
        project_map_customer(
            company=personas.company,
            project_id=project.pk,
            qbo_customer_id=customer.pk,
            actor=personas.admin,
        )
    page.reload()

    # Sync the first row alone while QBO refuses the request: it turns Failed.
    control(
        qbo_emulator,
        "POST",
        "faults",
        json={
            "kind": "fault",
            "path": "/batch",
            "count": 1,
            "status": 400,
            "code": "6190",
            "message": "Invalid Company Status",
            "detail": "Subscription period has ended",
        },
    )
    _row(page, first).locator(".row-handle").click()
    page.get_by_role("button", name="Sync to QBO").click()
    _wait_status(page, first, "failed")
    badge = _row(page, first).get_by_role("button", name="Failed")
    badge.hover()
    tip = _row(page, first).locator(".tip")
    tip.wait_for(state="visible")
    assert "subscription is not active" in tip.inner_text()
    screenshot(page, "procedure-failed-hover")

    # Clicking Failed retries that row at once; it turns Queued, then Synced, live.
    badge.click()
    _wait_status(page, first, "synced")
    # Select All, Sync: only the eligible rows are queued and they turn Synced live.
    page.get_by_role("button", name="Select All").click()
    page.get_by_role("button", name="Sync to QBO").click()
    for project in projects[1:]:
        _wait_status(page, project, "synced")
    screenshot(page, "procedure-all-synced")

    state = control(qbo_emulator, "GET", "state")
    names = [c["DisplayName"] for c in state["Customer"] if c.get("Job")]
    for project in StagedProject.objects.all():
        assert project.status == SyncStatus.SYNCED
        assert names.count(project.qbo_display_name) == 1  # exactly one job each

    # Change History and Json Script tell the story.
    _row(page, first).get_by_role("link", name="Change History").click()
    drawer = page.locator(".drawer")
    drawer.get_by_text("Failed").first.wait_for()
    history = drawer.inner_text()
    assert "Retry after failure" in history and "Created QBO job" in history
    assert dialogs == []  # the <script> name never ran
