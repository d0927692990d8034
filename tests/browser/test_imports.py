"""Real Chromium: an administrator sets the sync rules and tests the Linarc connection; an
operator imports picked projects and watches the run finish (a real Celery worker)."""

from __future__ import annotations

from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from integrations.models import LinarcConnection, SyncRules
from staging.models import Run, RunKind, RunState, StagedProject
from tests.conftest import Personas
from tests.factories import PASSWORD
from tests.fixtures.browser import login, screenshot
from tests.fixtures.linarc import connect_company

pytestmark = pytest.mark.browser


def test_admin_sets_sync_rules_and_tests_the_connection(
    page: Any, live_server: Any, personas: Personas, linarc_emulator: Any
) -> None:
    login(page, live_server.url, personas.admin.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/")
    page.get_by_role("link", name="Sync rules").click()
    heading = page.get_by_role("heading", name="Linarc connection")
    heading.wait_for()  # the click navigates: is_visible() alone does not wait for the page
    assert heading.is_visible()

    page.get_by_label("Linarc base URL").fill(linarc_emulator.base_url)
    page.get_by_label("API key").fill("wrong-key")
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Connection failed: Linarc rejected the API key.").wait_for()

    page.get_by_label("API key").fill(linarc_emulator.api_key)
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Connected: Linarc accepted the API key.").wait_for()

    page.get_by_label("Auto-Create").check()
    page.get_by_label("Pull every").fill("30")
    page.get_by_label("QBO display name").fill("{title} {name}")
    page.get_by_role("button", name="Save sync rules").click()
    page.get_by_text("Unknown placeholder {title} in the naming rule").wait_for()
    assert not LinarcConnection.objects.exists()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "sync-rules-invalid")

    page.get_by_label("API key").fill(linarc_emulator.api_key)  # never rendered back
    page.get_by_label("QBO display name").fill("{number} {name}")
    page.get_by_role("button", name="Save sync rules").click()
    page.get_by_text("Sync rules saved. Linarc is pulled every 30 minutes.").wait_for()

    rules = SyncRules.objects.get(company=personas.company)
    assert (rules.auto_create, rules.auto_update, rules.pull_every_minutes) == (True, False, 30)
    assert rules.display_name_template == "{number} {name}"
    task = PeriodicTask.objects.get(pk=rules.periodic_task_id)
    assert task.enabled and task.interval.every == 30
    assert LinarcConnection.objects.get(company=personas.company).api_key == linarc_emulator.api_key
    # The key field is empty again, its placeholder says a key is stored.
    key_input = page.get_by_label("API key")
    assert key_input.input_value() == ""
    assert "Stored" in (key_input.get_attribute("placeholder") or "")

    page.get_by_role("button", name="Test connection").click()  # blank key: the stored one
    page.get_by_text("Connected: Linarc accepted the API key.").wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    assert screenshot(page, "sync-rules").stat().st_size > 0


def test_operator_imports_selected_projects_and_watches_progress(
    page: Any,
    live_server: Any,
    personas: Personas,
    linarc_emulator: Any,
    celery_workers: Any,
) -> None:
    connect_company(personas.company, linarc_emulator)
    StagedProject.objects.create(company=personas.company, linarc_id="100001", name="Staged")
    login(page, live_server.url, personas.operator.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/import/selected/")

    rows = page.locator("#linarc-picker tbody tr")
    assert rows.count() == 25
    assert rows.first.get_by_text("Staged").is_visible()
    page.get_by_role("link", name="Next").click()
    page.get_by_text("page 2").wait_for()
    page.get_by_role("link", name="Previous").click()
    page.get_by_text("page 1").wait_for()

    wanted = linarc_emulator.project("100004")["name"]
    page.get_by_label("Search Linarc projects").fill(wanted)
    page.get_by_text("1 project in Linarc").wait_for()
    page.get_by_label("Search Linarc projects").fill("")
    page.get_by_text(f"{linarc_emulator.state.projects} projects in Linarc").wait_for()

    page.locator('input[name="linarc_id"][value="100004"]').check()
    page.locator('input[name="linarc_id"][value="100005"]').check()
    page.get_by_text("2 selected").wait_for()
    page.get_by_role("button", name="Import Selected").click()

    progress = page.locator(".run-progress")
    progress.locator(".run-state", has_text="Done").wait_for(timeout=30000)
    assert progress.locator('[data-count="created"]').inner_text() == "2"
    run = Run.objects.get(kind=RunKind.IMPORT_SELECTED)
    assert run.state == RunState.DONE
    assert set(StagedProject.objects.values_list("linarc_id", flat=True)) == {
        "100001",
        "100004",
        "100005",
    }
    # When the run finishes the picker reloads itself: the imported rows now say Staged.
    page.locator("#linarc-picker tbody tr", has_text="P-1004").get_by_text("Staged").wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    assert screenshot(page, "import-selected").stat().st_size > 0


def test_operator_imports_all_from_the_projects_tab_menu(
    page: Any,
    live_server: Any,
    personas: Personas,
    linarc_emulator: Any,
    celery_workers: Any,
) -> None:
    connect_company(personas.company, linarc_emulator)
    login(page, live_server.url, personas.operator.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/")

    page.locator("details.import-menu > summary").click()
    page.get_by_role("menuitem", name="Import All from Linarc").click()
    progress = page.locator("#import-progress .run-progress")
    progress.locator(".run-state", has_text="Done").wait_for(timeout=30000)
    total = str(linarc_emulator.state.projects)
    assert progress.locator('[data-count="created"]').inner_text() == total
    assert not page.locator("details.import-menu[open]").count()  # the menu closed
    assert StagedProject.objects.filter(company=personas.company).count() == int(total)
    page.evaluate("window.scrollTo(0, 0)")
    assert screenshot(page, "import-all-progress").stat().st_size > 0

    # A second Import All changes nothing: every project is unchanged.
    page.locator("[data-dismiss-run]").click()
    page.locator("details.import-menu > summary").click()
    page.get_by_role("menuitem", name="Import All from Linarc").click()
    progress.locator(".run-state", has_text="Done").wait_for(timeout=30000)
    assert progress.locator('[data-count="unchanged"]').inner_text() == total
    assert progress.locator('[data-count="created"]').inner_text() == "0"
