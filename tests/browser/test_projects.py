"""The Projects tab in real Chromium: mapping, selection, Sync to QBO, Failed tooltips and
retry, the drawers, and escaping of hostile project names."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from tests.conftest import Personas
from tests.factories import PASSWORD, QboCustomerFactory, StagedProjectFactory
from tests.fixtures.browser import login, screenshot

pytestmark = pytest.mark.browser

XSS_NAME = "<script>alert(1)</script>"
PROJECT_NAMES = [
    "Riverside Medical Office Building",
    "Maple Street Elementary Renovation",
    "Harbor View Apartments Phase II",
    "Northgate Distribution Center",
    "City Hall HVAC Replacement",
    "Lakeside Library Expansion",
    "Westfield Parking Structure",
    "Cedar Ridge Senior Living",
    "Summit Tech Campus Building C",
    "Oakmont Water Treatment Upgrade",
]


@pytest.fixture
def seeded(personas: Personas) -> dict[str, Any]:
    """A realistic mix: unmapped rows (one with a matching client name), Needs Sync,
    Synced and Failed rows, history and payloads."""
    company = personas.company
    customers = {
        name: QboCustomerFactory(company=company, display_name=name)
        for name in ("Cascade County Schools", "Harbor Properties LLC", "Northwind Logistics")
    }
    QboCustomerFactory(company=company, display_name="Old Client Inc", active=False)
    QboCustomerFactory(company=personas.other_company, display_name="Cascade Other Co")
    start = dt.date(2025, 3, 1)
    projects = []
    for i in range(60):
        status = [
            SyncStatus.NEEDS_ACTION,
            SyncStatus.NEEDS_SYNC,
            SyncStatus.SYNCED,
            SyncStatus.NEEDS_SYNC,
            SyncStatus.FAILED,
        ][i % 5]
        customer = None if status == SyncStatus.NEEDS_ACTION else list(customers.values())[i % 3]
        projects.append(
            StagedProjectFactory(
                company=company,
                number=f"P-{1001 + i}",
                name=f"{PROJECT_NAMES[i % 10]}{'' if i < 10 else f' #{i // 10 + 1}'}",
                client_name=["Cascade County Schools", "Harbor Properties", "Northwind"][i % 3],
                project_status=["Active", "Bidding", "Completed"][i % 3],
                start_date=start + dt.timedelta(days=7 * i),
                end_date=start + dt.timedelta(days=7 * i + 180),
                status=status,
                status_reason=(
                    "No QBO customer selected: choose the client in the QBO Customer column."
                    if status == SyncStatus.NEEDS_ACTION
                    else ""
                ),
                qbo_customer=customer,
                qbo_record_id=str(5800 + i) if status == SyncStatus.SYNCED else "",
                qbo_display_name=PROJECT_NAMES[i % 10] if status == SyncStatus.SYNCED else "",
            )
        )
    failed = projects[4]
    StagedProject.objects.filter(pk=failed.pk).update(
        status_reason="Duplicate Name Exists Error: another customer uses this name",
        failure_code="6240",
        intuit_tid="1-65a8c2f3-7d1e9b2a",
        source_payload={"id": "lp-4", "name": failed.name, "api_key": "sk-live-123"},
        last_request={
            "headers": {"Authorization": "Bearer eyJhbGciOi.secret"},
            "body": {"DisplayName": failed.name, "SyncToken": "3"},
        },
        last_response={"Fault": {"Error": [{"code": "6240", "Message": "Duplicate Name"}]}},
    )
    ChangeEvent.objects.create(
        company=company,
        project=failed,
        kind=EventKind.IMPORTED,
        summary="Imported from Linarc",
        at=dt.datetime(2025, 5, 1, 9, 0, tzinfo=dt.UTC),
    )
    ChangeEvent.objects.create(
        company=company,
        project=failed,
        kind=EventKind.UPDATED,
        summary="Updated from Linarc",
        details={"changes": {"name": {"old": "Old Medical Office", "new": failed.name}}},
        at=dt.datetime(2025, 5, 2, 9, 0, tzinfo=dt.UTC),
    )
    ChangeEvent.objects.create(
        company=company,
        project=failed,
        actor=personas.operator,
        kind=EventKind.FAILED,
        summary="Duplicate Name Exists Error",
        details={"code": "6240", "intuit_tid": "1-65a8c2f3-7d1e9b2a"},
        at=dt.datetime(2025, 5, 3, 9, 0, tzinfo=dt.UTC),
    )
    return {"projects": projects, "customers": customers, "failed": failed}


def open_projects(page: Any, live_server: Any, user: Any, query: str = "") -> None:
    login(page, live_server.url, user.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/{query}")
    page.wait_for_selector("#project-rows tr[data-id]")


def row(page: Any, project: StagedProject) -> Any:
    return page.locator(f"#project-{project.pk}")


def view(page: Any, name: str) -> None:
    """A viewport-sized screenshot (the shared helper takes the whole page)."""
    from tests.fixtures.browser import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_projects_tab_lists_filters_searches_and_pages(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    open_projects(page, live_server, personas.operator)
    assert page.locator("#project-rows tr[data-id]").count() == 50
    assert page.locator(".chip-all .chip-count").inner_text() == "60"
    screenshot(page, "projects-list")
    view(page, "projects-list-top")

    page.locator(".chip-failed").click()
    page.wait_for_url("**/projects/?status=failed")
    assert page.locator("#project-rows tr[data-id]").count() == 12
    assert page.locator("#project-rows tr[data-status='failed']").count() == 12

    page.get_by_placeholder("Search name, number or client").fill("lakeside")
    page.wait_for_url("**/projects/?status=failed&q=lakeside")
    page.wait_for_function(
        "() => document.querySelectorAll('#project-rows tr[data-id]').length === 0"
    )
    assert page.get_by_text("No projects match this view").is_visible()

    page.locator(".chip-all").click()
    page.wait_for_url("**/projects/?q=lakeside")
    names = page.locator("#project-rows .project-name").all_inner_texts()
    assert len(names) == 6 and all(n.startswith("Lakeside Library Expansion") for n in names)

    page.get_by_role("link", name="Project Name").click()
    page.wait_for_url("**/projects/?q=lakeside&sort=name")
    page.get_by_role("link", name="Project Name").click()
    page.wait_for_url("**/projects/?q=lakeside&sort=-name")
    names = page.locator("#project-rows .project-name").all_inner_texts()
    assert names == sorted(names, reverse=True)

    page.get_by_placeholder("Search name, number or client").fill("")
    page.wait_for_url("**/projects/?sort=-name")
    page.get_by_role("link", name="Page 2").click()
    page.wait_for_url("**/projects/?sort=-name&page=2")
    assert page.locator("#project-rows tr[data-id]").count() == 10
    assert page.locator(".row-handle").first.inner_text() == "51"
    page.go_back()
    page.wait_for_url("**/projects/?sort=-name")
    assert page.locator(".row-handle").first.inner_text() == "1"


def test_map_customer_asks_for_confirmation_then_locks_the_cell(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    project = seeded["projects"][0]  # Needs Action; Linarc client "Cascade County Schools"
    open_projects(page, live_server, personas.operator)
    cell = row(page, project).locator(".cell-customer")

    cell.get_by_role("button", name="Select QBO customer").click()
    suggested = cell.locator(".option-suggested")
    suggested.wait_for()
    assert " ".join(suggested.inner_text().split()) == (
        "Suggested: Cascade County Schools — same name as the Linarc client"
    )
    options = cell.locator(".option-name").all_inner_texts()
    assert "Old Client Inc" not in options and "Cascade Other Co" not in options
    cell.get_by_placeholder("Search QBO customers…").fill("north")
    page.wait_for_function(
        f"() => document.querySelectorAll('#picker-options-{project.pk} .option').length === 1"
    )
    assert cell.locator(".option-name").all_inner_texts() == ["Northwind Logistics"]
    view(page, "projects-customer-picker")

    # Cancel changes nothing.
    cell.locator(".option").first.click()
    dialog = page.locator("#map-confirm")
    assert dialog.is_visible()
    # The chosen customer is not the Linarc client: the dialog says so.
    assert dialog.locator("#map-confirm-text").inner_text() == (
        "This mapping is permanent and cannot be changed. "
        "Map “Riverside Medical Office Building” to “Northwind Logistics”?\n"
        "The Linarc client is “Cascade County Schools”: a different name."
    )
    view(page, "projects-map-confirm")
    dialog.get_by_role("button", name="Cancel").click()
    assert not dialog.is_visible()
    project.refresh_from_db()
    assert project.qbo_customer is None

    cell.get_by_role("button", name="Select QBO customer").click()
    cell.locator(".option").first.click()
    dialog.get_by_role("button", name="Map permanently").click()
    locked = row(page, project).locator(".customer-locked")
    locked.wait_for()
    assert locked.get_attribute("title") == "Permanent mapping"
    assert locked.locator(".customer-name").inner_text() == "Northwind Logistics"
    assert row(page, project).locator(".badge").inner_text() == "Needs Sync"
    assert row(page, project).get_by_role("button", name="Select QBO customer").count() == 0
    assert "Mapped “Riverside Medical Office Building”" in page.locator("#messages").inner_text()
    project.refresh_from_db()
    assert project.qbo_customer == seeded["customers"]["Northwind Logistics"]
    assert project.status == SyncStatus.NEEDS_SYNC
    view(page, "projects-mapped")


def test_a_rows_suggestion_maps_it_in_one_click_and_a_confirmation(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    project = seeded["projects"][15]  # Needs Action; Linarc client "Cascade County Schools"
    open_projects(page, live_server, personas.operator)
    suggestion = row(page, project).locator(".cell-suggestion")
    assert " ".join(suggestion.inner_text().split()) == (
        "Suggested: Cascade County Schools Same name as the Linarc client"
    )
    view(page, "projects-suggestions")

    suggestion.click()
    dialog = page.locator("#map-confirm")
    assert dialog.locator("#map-confirm-text").inner_text() == (
        "This mapping is permanent and cannot be changed. "
        "Map “Lakeside Library Expansion #2” to “Cascade County Schools”?"
    )
    dialog.get_by_role("button", name="Map permanently").click()
    row(page, project).locator(".customer-locked").wait_for()
    project.refresh_from_db()
    assert project.qbo_customer == seeded["customers"]["Cascade County Schools"]


def test_map_selected_confirms_what_becomes_permanent_then_maps_it(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    unmapped = StagedProject.objects.filter(company=personas.company, qbo_customer=None)
    assert unmapped.count() == 12
    open_projects(page, live_server, personas.operator)

    page.get_by_role("button", name="Select All").click()
    page.get_by_role("button", name="Map selected…").click()
    drawer = page.locator("#drawer")
    drawer.get_by_role("heading", name="Map selected projects").wait_for()
    plan = " ".join(drawer.inner_text().split())
    # 12 unmapped rows, 4 per Linarc client. The other projects of "Harbor Properties" and
    # of "Northwind" are mapped to customers with longer names: suggested, marked as such.
    assert "12 projects will be mapped permanently" in plan
    assert (
        "Harbor Properties LLC 4 16 other projects of “Harbor Properties” are mapped to it" in plan
    )
    assert plan.count("Not the Linarc client's name: check it.") == 2
    assert "48 already mapped are skipped" in plan
    drawer.evaluate("d => Promise.all(d.getAnimations().map((a) => a.finished))")  # slid in
    view(page, "projects-map-selected")
    assert unmapped.count() == 12  # the confirmation wrote nothing

    drawer.get_by_role("button", name="Map 12 permanently").click()
    done = "Mapped 12 projects permanently to 3 customers"
    page.locator("#messages").get_by_text(done).wait_for()
    assert not drawer.is_visible()
    assert unmapped.count() == 0
    assert page.locator("#project-rows .cell-suggestion").count() == 0
    assert page.locator("#project-rows tr.is-selected").count() == 0
    view(page, "projects-map-selected-done")


def test_mapping_that_lost_a_race_shows_the_409_in_the_cell(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    project = seeded["projects"][5]
    open_projects(page, live_server, personas.operator)
    # Someone else maps it after this page was loaded.
    StagedProject.objects.filter(pk=project.pk).update(
        qbo_customer=seeded["customers"]["Harbor Properties LLC"]
    )
    cell = row(page, project).locator(".cell-customer")
    cell.get_by_role("button", name="Select QBO customer").click()
    cell.locator(".option").first.wait_for()
    cell.locator(".option").first.click()
    page.get_by_role("button", name="Map permanently").click()

    error = row(page, project).locator(".cell-error")
    error.wait_for()
    assert "already mapped to “Harbor Properties LLC”" in error.inner_text()
    assert row(page, project).locator(".customer-locked").is_visible()


def selection_text(page: Any) -> str:
    return page.locator("#selection-text").inner_text()


def test_select_rows_with_click_ctrl_shift_and_select_all(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    open_projects(page, live_server, personas.operator)
    handles = page.locator(".row-handle")
    selected = page.locator("#project-rows tr.is-selected")

    handles.nth(0).click()
    assert selected.count() == 1 and selection_text(page) == "1 project selected."
    handles.nth(2).click(modifiers=["Control"])
    assert selected.count() == 2
    handles.nth(5).click(modifiers=["Shift"])  # range from the last clicked row (3) to 6
    assert [r.get_attribute("data-serial") for r in selected.all()] == ["3", "4", "5", "6"]
    handles.nth(3).click(modifiers=["Meta"])  # Cmd-click toggles too
    assert [r.get_attribute("data-serial") for r in selected.all()] == ["3", "5", "6"]
    assert selection_text(page) == "3 projects selected."
    assert handles.nth(2).get_attribute("aria-pressed") == "true"
    view(page, "projects-selection")
    handles.nth(4).click()  # a plain click selects just that row
    assert [r.get_attribute("data-serial") for r in selected.all()] == ["5"]

    page.get_by_role("button", name="Select All").click()
    assert selection_text(page) == "All 60 matching projects are selected."
    assert selected.count() == 50
    page.locator(".chip-failed").click()  # a new filter clears the selection
    page.wait_for_url("**/projects/?status=failed")
    page.wait_for_function("() => !document.querySelector('#project-rows tr.is-selected')")
    assert page.locator("#selection-bar").is_hidden()
    page.get_by_role("button", name="Select All").click()
    assert selection_text(page) == "All 12 matching projects are selected."
    page.get_by_role("button", name="Clear selection").click()
    assert page.locator("#selection-bar").is_hidden()


def test_sync_to_qbo_previews_then_queues_and_summarises(
    page: Any, live_server: Any, personas: Personas, seeded: Any, monkeypatch: Any
) -> None:
    woken: list[tuple[int, int]] = []
    monkeypatch.setattr(
        "staging.sync.queue.lanes_wake",
        lambda *, company_id, rows: woken.append((company_id, rows)),
    )
    projects = seeded["projects"]
    open_projects(page, live_server, personas.operator)
    handles = page.locator(".row-handle")
    handles.nth(0).click()  # Needs Action, no customer
    handles.nth(1).click(modifiers=["Control"])  # Needs Sync
    handles.nth(3).click(modifiers=["Control"])  # Needs Sync

    preview = page.locator("#sync-preview")
    page.wait_for_function(
        "() => document.querySelector('#sync-preview').innerText.includes('2 will sync')"
    )
    assert " ".join(preview.inner_text().split()) == (
        "2 will sync. Not syncing 1: No QBO customer selected (1)."
    )
    button = page.get_by_role("button", name="Sync to QBO")
    assert (
        button.get_attribute("title") == "2 will sync. Not syncing 1: No QBO customer selected (1)."
    )
    view(page, "projects-sync-preview")

    button.click()
    message = page.locator("#messages .message")
    message.wait_for()
    assert message.inner_text() == (
        "Queued 2 projects for QBO. Skipped 1: No QBO customer selected (1)."
    )
    assert row(page, projects[1]).get_attribute("data-status") == "queued"
    assert row(page, projects[3]).locator(".badge").inner_text() == "Queued"
    assert row(page, projects[0]).get_attribute("data-status") == "needs_action"
    assert page.locator("#sync-progress .run-progress").is_visible()
    assert page.locator("#selection-bar").is_hidden()  # the selection is spent
    assert woken == [(personas.company.pk, 2)]
    assert set(
        StagedProject.objects.filter(status=SyncStatus.QUEUED).values_list("pk", flat=True)
    ) == {projects[1].pk, projects[3].pk}
    # A Queued row says how long it has waited and when it should go (no worker runs here).
    note = row(page, projects[3]).locator(".queue-note")
    assert re.fullmatch(r"Waiting \d+ s · about \d+ s to go", note.inner_text()), note.inner_text()
    assert re.search(r"about \d+ s left", page.locator("#sync-progress .run-meta").inner_text())
    view(page, "projects-sync-queued")


def test_failed_shows_its_reason_on_hover_and_focus_and_click_retries(
    page: Any, live_server: Any, personas: Personas, seeded: Any, monkeypatch: Any
) -> None:
    from staging.sync.outcomes import run_refresh_progress

    monkeypatch.setattr("staging.sync.queue.lanes_wake", lambda **kwargs: None)
    failed = seeded["failed"]
    open_projects(page, live_server, personas.operator)
    badge = row(page, failed).get_by_role("button", name="Failed")
    tip = row(page, failed).locator(".tip")
    assert not tip.is_visible()

    badge.hover()
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "Duplicate Name Exists Error: another customer uses this name" in text
    assert "QBO code 6240" in text and "intuit_tid 1-65a8c2f3-7d1e9b2a" in text
    assert badge.get_attribute("aria-describedby") == tip.get_attribute("id")
    view(page, "projects-failed-tooltip")
    page.mouse.move(5, 5)
    tip.wait_for(state="hidden")
    badge.focus()  # keyboard users get the same text
    tip.wait_for(state="visible")

    needs_action = row(page, seeded["projects"][0])
    needs_action.locator(".badge").hover()
    assert "No QBO customer selected" in needs_action.locator(".tip").inner_text()

    badge.click()
    page.wait_for_function(
        f"() => document.querySelector('#project-{failed.pk}').dataset.status === 'queued'"
    )
    assert row(page, failed).locator(".badge").inner_text() == "Queued"
    failed.refresh_from_db()
    assert failed.status == SyncStatus.QUEUED

    # A worker finishes the row: the poll brings the outcome in, then stops.
    StagedProject.objects.filter(pk=failed.pk).update(status=SyncStatus.SYNCED, qbo_record_id="91")
    assert failed.sync_run_id is not None
    run_refresh_progress(run_id=failed.sync_run_id)
    page.wait_for_function(
        f"() => document.querySelector('#project-{failed.pk}').dataset.status === 'synced'",
        timeout=10_000,
    )
    assert page.locator(".chip-failed .chip-count").inner_text() == "11"
    page.wait_for_function("() => document.querySelector('#sync-progress').dataset.active === '0'")
    polls: list[str] = []

    def on_request(request: Any) -> None:
        if "/rows/" in request.url:
            polls.append(request.url)

    page.on("request", on_request)
    page.wait_for_timeout(4500)
    assert polls == []


def test_change_history_drawer_lists_events_and_exports_csv(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    failed = seeded["failed"]
    open_projects(page, live_server, personas.viewer)
    row(page, failed).get_by_role("link", name="Change History").click()

    drawer = page.locator("#drawer")
    drawer.wait_for(state="visible")
    assert drawer.get_by_role("heading", name="Change History").is_visible()
    kinds = drawer.locator(".event-kind").all_inner_texts()
    assert kinds == ["Failed", "Updated from Linarc", "Imported"]
    first = drawer.locator(".event").first
    assert "otto" in first.locator(".event-meta").inner_text()
    assert "6240" in first.inner_text() and "1-65a8c2f3-7d1e9b2a" in first.inner_text()
    diff = drawer.locator("table.diff tbody tr").first
    assert diff.locator(".old").inner_text() == "Old Medical Office"
    assert diff.locator(".new").inner_text() == failed.name
    view(page, "projects-history-drawer")

    with page.expect_download() as download:
        drawer.get_by_role("link", name="Export CSV").click()
    with open(download.value.path(), encoding="utf-8-sig") as exported:
        content = exported.read()
    assert content.splitlines()[0].startswith("At (UTC),Actor,Event,Summary")
    assert "Duplicate Name Exists Error" in content

    page.keyboard.press("Escape")
    drawer.wait_for(state="hidden")


def test_json_script_drawer_shows_highlighted_redacted_json(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    failed = seeded["failed"]
    open_projects(page, live_server, personas.operator)
    row(page, failed).get_by_role("link", name="Json Script").click()

    drawer = page.locator("#drawer")
    drawer.wait_for(state="visible")
    titles = drawer.locator(".json-block h3").all_inner_texts()
    assert titles == [
        "Linarc source payload",
        "Next QBO request (dry run)",
        "Last QBO request",
        "Last QBO response",
    ]
    text = drawer.inner_text()
    assert "sk-live-123" not in text and "eyJhbGciOi" not in text
    assert drawer.locator(".j-redacted").count() == 2
    assert drawer.locator("#json-next-request .j-key", has_text='"ParentRef"').count() == 1
    assert '"SyncToken": "3"' in drawer.locator("#json-last-request").inner_text()
    assert drawer.locator("#json-last-response .j-string", has_text='"6240"').count() == 1
    view(page, "projects-json-drawer")

    copy = drawer.get_by_role("button", name="Copy Last QBO response")
    copy.click()
    # The clipboard write is asynchronous: the label changes once it is done.
    copy.get_by_text("Copied", exact=True).wait_for(timeout=3000)
    drawer.get_by_role("button", name="Close").click()
    drawer.wait_for(state="hidden")


def test_manual_mapping_drawer_links_an_existing_job(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    project = seeded["projects"][1]  # mapped to Harbor Properties LLC
    parent = seeded["customers"]["Harbor Properties LLC"]
    QboCustomerFactory(
        company=personas.company,
        display_name="Maple Street Elementary Renovation",
        is_job=True,
        parent_qbo_id=parent.qbo_id,
        qbo_id="4401",
    )
    QboCustomerFactory(
        company=personas.company, display_name="Elsewhere Job", is_job=True, parent_qbo_id="999"
    )
    # A job another project already synced is listed, marked, and cannot be chosen.
    QboCustomerFactory(
        company=personas.company,
        display_name="Harbor Annex",
        is_job=True,
        parent_qbo_id=parent.qbo_id,
        qbo_id="4402",
    )
    holder = seeded["projects"][7]
    StagedProject.objects.filter(pk=holder.pk).update(qbo_record_id="4402")
    open_projects(page, live_server, personas.operator)
    row(page, project).get_by_role("link", name="Manual Mapping").click()
    drawer = page.locator("#drawer")
    drawer.wait_for(state="visible")
    assert drawer.locator("#mm-jobs .option-name").all_inner_texts() == [
        "Harbor Annex",
        "Maple Street Elementary Renovation",
    ]
    held = drawer.locator("#mm-jobs .option").first
    assert held.is_disabled()
    assert f"Linked to project {holder.number} {holder.name}" in held.inner_text()
    view(page, "projects-manual-map-held-job")
    drawer.locator("#mm-jobs .option", has_text="Maple Street").click()
    drawer.get_by_text("What will change").wait_for()
    assert "Id 4401" in drawer.locator(".mm-lines").inner_text()
    view(page, "projects-manual-map")
    drawer.get_by_role("button", name="Confirm Manual Mapping").click()
    drawer.locator(".drawer-success").wait_for()
    project.refresh_from_db()
    assert project.qbo_record_id == "4401"
    assert row(page, project).get_attribute("data-status") == "needs_sync"


def test_hostile_project_name_runs_no_script(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    hostile = StagedProjectFactory(
        company=personas.company,
        number="P-0001",
        name=XSS_NAME,
        client_name='"><img src=x onerror=alert(2)>',
        status_reason="<img src=x onerror=alert(3)>",
        source_payload={"name": XSS_NAME},
    )
    ChangeEvent.objects.create(
        company=personas.company, project=hostile, kind=EventKind.IMPORTED, summary=XSS_NAME
    )
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    open_projects(page, live_server, personas.operator, "?q=P-0001")

    hostile_row = row(page, hostile)
    assert hostile_row.locator(".project-name").inner_text() == XSS_NAME
    hostile_row.locator(".badge").hover()
    hostile_row.get_by_role("button", name="Select QBO customer").click()
    hostile_row.locator(".option").first.wait_for()
    hostile_row.locator(".option").first.click()
    assert XSS_NAME in page.locator("#map-confirm-text").inner_text()
    page.get_by_role("button", name="Cancel").click()
    for action in ("Change History", "Json Script"):
        hostile_row.get_by_role("link", name=action).click()
        page.locator("#drawer").wait_for(state="visible")
        assert XSS_NAME in page.locator("#drawer").inner_text()
        page.get_by_role("button", name="Close").click()
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.locator("script:text('alert(1)')").count() == 0


def test_create_the_missing_client_in_quickbooks_from_the_picker(
    page: Any, live_server: Any, personas: Personas, qbo_emulator: Any
) -> None:
    from tests.fixtures.qbo import connect_company, control, refresh_customers

    connect_company(personas.company)
    refresh_customers(personas.company)
    missing = "Oakmont Church of the Valley"  # not among the QBO demo seed's customers
    project = StagedProjectFactory(
        company=personas.company,
        name="Fellowship Hall Addition",
        client_name=missing,
        status=SyncStatus.NEEDS_ACTION,
    )
    open_projects(page, live_server, personas.operator)
    cell = row(page, project).locator(".cell-customer")
    cell.get_by_role("button", name="Select QBO customer").click()
    create = cell.locator(".option-create")
    create.wait_for()
    assert " ".join(create.inner_text().split()) == (
        f"+ Create “{missing}” in QuickBooks — the Linarc client is not a QuickBooks customer yet"
    )
    view(page, "projects-create-customer-picker")

    create.click()
    dialog = page.locator("#map-confirm")
    assert dialog.locator("#map-confirm-text").inner_text() == (
        f"Create the customer “{missing}” in QuickBooks and map “Fellowship Hall Addition” to "
        "it? The mapping is permanent and cannot be changed."
    )
    dialog.get_by_role("button", name="Create and map").click()
    locked = row(page, project).locator(".customer-locked")
    locked.wait_for()
    assert locked.locator(".customer-name").inner_text() == missing
    assert f"Created “{missing}” in QuickBooks" in page.locator("#messages").inner_text()
    customers = control(qbo_emulator, "GET", "state")["Customer"]
    assert [c["DisplayName"] for c in customers].count(missing) == 1
    view(page, "projects-create-customer-done")


def test_map_selected_can_send_every_row_to_one_chosen_customer(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    open_projects(page, live_server, personas.operator, "?status=needs_action")
    page.get_by_role("button", name="Select All").click()
    page.get_by_role("button", name="Map selected…").click()
    drawer = page.locator("#drawer")
    drawer.get_by_role("heading", name="Map selected projects").wait_for()
    drawer.get_by_label("Search QBO customers").fill("north")
    page.wait_for_function(
        "() => document.querySelectorAll('#map-one-customer option').length === 1"
    )
    drawer.get_by_role("button", name="Show what this maps").click()
    drawer.get_by_role("button", name="Use the suggestions").wait_for()
    plan = " ".join(drawer.inner_text().split())
    assert "12 projects will be mapped permanently" in plan
    # No row's Linarc client is called "Northwind Logistics": all are marked to check.
    assert "Northwind Logistics 12 Chosen for every selected project Not the Linarc" in plan
    drawer.evaluate("d => Promise.all(d.getAnimations().map((a) => a.finished))")
    view(page, "projects-map-one-customer")

    drawer.get_by_role("button", name="Map 12 permanently").click()
    page.locator("#messages").get_by_text("Mapped 12 projects permanently to 1 customer").wait_for()
    northwind = seeded["customers"]["Northwind Logistics"]
    assert StagedProject.objects.filter(company=personas.company, qbo_customer=None).count() == 0
    assert StagedProject.objects.filter(qbo_customer=northwind).count() == 16 + 12


def test_map_from_csv_previews_every_line_then_maps_the_good_ones(
    page: Any, live_server: Any, personas: Personas, seeded: Any, tmp_path: Any
) -> None:
    path = tmp_path / "mapping.csv"
    path.write_text(
        "project_number,qbo_customer\n"
        "P-1001,Cascade County Schools\n"  # unmapped: ok
        "P-1006,Northwind Logistics\n"  # unmapped: ok
        "P-1002,Cascade County Schools\n"  # mapped to Harbor Properties LLC already
        "P-9999,Northwind Logistics\n"  # no such project
    )
    open_projects(page, live_server, personas.operator)
    page.get_by_role("link", name="Map from CSV…").click()
    page.get_by_label("CSV file (UTF-8, at most 1 MB)").set_input_files(str(path))
    page.get_by_role("button", name="Check the file").click()
    page.get_by_role("heading", name="mapping.csv: 2 of 4 lines can be mapped").wait_for()
    verdicts = page.locator(".plan-table tbody tr td:last-child").all_inner_texts()
    assert verdicts == [
        "Will be mapped",
        "Will be mapped",
        "Already mapped to “Harbor Properties LLC”: a mapping is permanent.",
        "Unknown project: no staged project has this number.",
    ]
    view(page, "projects-map-csv-preview")

    page.get_by_role("button", name="Map 2 projects permanently").click()
    page.locator("#messages").get_by_text(
        "Mapped 2 projects permanently to 2 customers."
    ).wait_for()
    first = StagedProject.objects.get(company=personas.company, number="P-1001")
    assert first.qbo_customer == seeded["customers"]["Cascade County Schools"]


def _boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_nothing_floats_over_the_table_the_search_or_the_tabs(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    open_projects(page, live_server, personas.operator)
    # Scrolled down, the header row stays right under the app bar and on top of the rows:
    # no badge, picker or tooltip of a row shows through any header cell.
    page.mouse.wheel(0, 900)
    page.wait_for_function("() => window.scrollY > 500")
    covered = page.evaluate(
        "() => { const bar = document.querySelector('.app-header').getBoundingClientRect();"
        " return [...document.querySelectorAll('.projects-table thead th')].flatMap((th) => {"
        "   const r = th.getBoundingClientRect();"
        "   const gap = r.top - bar.bottom;"
        "   return [[0.2, 0.5], [0.5, 0.5], [0.8, 0.5], [0.5, 0.1]].map(([fx, fy]) => {"
        "     const hit = document.elementFromPoint(r.left + r.width * fx, r.top + r.height * fy);"
        "     return hit && th.contains(hit) && gap <= 0.5 ? null : th.textContent.trim();"
        "   }).filter(Boolean); }); }"
    )
    assert covered == [], covered
    view(page, "projects-scrolled")

    # A message after an action sits clear of the search box and the tabs.
    page.evaluate("() => window.scrollTo(0, 0)")
    row(page, seeded["projects"][1]).locator(".row-handle").click()
    page.get_by_role("button", name="Sync to QBO").click()
    message = page.locator("#messages .message").first
    message.wait_for()
    for other in ("#project-search", ".tab-bar"):
        box = page.locator(other).first.bounding_box()
        assert box is not None
        assert not _boxes_overlap(message.bounding_box(), box), other


def test_an_import_in_progress_does_not_cover_the_table(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    from staging.models import Run, RunKind, RunState

    Run.objects.create(
        company=personas.company, kind=RunKind.IMPORT_ALL, state=RunState.RUNNING, total=500
    )
    open_projects(page, live_server, personas.operator)
    card = page.locator("#import-progress .run-progress")
    card.wait_for()
    card_box = card.bounding_box()
    assert card_box is not None
    cells = [c.bounding_box() for c in page.locator("#project-rows tr:nth-child(-n+12) td").all()]
    in_view = [box for box in cells if box is not None and box["y"] < 900]
    assert len(in_view) > 20
    assert not any(_boxes_overlap(card_box, box) for box in in_view)
    view(page, "projects-import-running")


def test_the_health_page_groups_failures_and_retries_a_kind(
    page: Any, live_server: Any, personas: Personas, seeded: Any
) -> None:
    open_projects(page, live_server, personas.operator)
    page.get_by_role("link", name="Health").click()
    page.get_by_role("heading", name="Projects that failed or need a person").wait_for()
    assert "Some things need attention" in page.locator(".health-verdict").inner_text()
    kinds = page.locator(".health-section tbody tr td:first-child strong").all_inner_texts()
    assert "No customer chosen" in kinds and "Duplicate name in QuickBooks" in kinds
    screenshot(page, "health-attention")

    row_of = page.locator(".health-section tbody tr", has_text="Duplicate name in QuickBooks")
    row_of.get_by_role("button", name="Retry these").click()
    page.locator("#messages").get_by_text("Retrying").wait_for()
    assert not StagedProject.objects.filter(
        company=personas.company, status=SyncStatus.FAILED, failure_code="6240"
    ).exists()
