"""The screens under the Content-Security-Policy in real Chromium: walking the Projects tab
(selection, search, sort, the Import menu, the three drawers, the customer picker and its
permanent-mapping dialog, polling), the company switch and the Django admin raise no CSP
violation, and everything still works. The policy forbids inline code and eval, so htmx runs
with allowEval off (https://htmx.org/docs/#security).

Violations are collected by a listener that Playwright installs before any page script
(add_init_script goes through the DevTools protocol, which the page's policy does not
govern), and from the console, where Chromium reports each refusal.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from integrations.models import Role
from staging.models import ChangeEvent, EventKind, Run, RunKind, RunState, SyncStatus
from tests.conftest import Personas
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    QboCustomerFactory,
    StagedProjectFactory,
    UserFactory,
)
from tests.fixtures.browser import ARTIFACTS, login

pytestmark = pytest.mark.browser

RLO = "\u202e"  # right-to-left override
# Predicates are written as functions ("() => …"): Playwright runs a bare expression
# through eval in the page, which the policy refuses.
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${where}`);
});
// htmx reports an expression it refused to evaluate (allowEval is off) with this event.
document.addEventListener("htmx:evalDisallowedError", () => window.__violations.push("htmx eval"));
"""


class Violations:
    """CSP refusals seen by the page (the event listener) and by the console."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.add_init_script(LISTEN)
        page.on("console", self._on_console)

    def _on_console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text or "unsafe-eval" in text:
            self.console.append(text)

    def all(self) -> list[str]:
        seen = self.page.evaluate("window.__violations || []")
        return [*seen, *self.console]


@pytest.fixture
def violations(page: Any) -> Violations:
    return Violations(page)


@pytest.fixture
def projects(personas: Personas) -> dict[str, Any]:
    company = personas.company
    harbor = QboCustomerFactory(company=company, display_name="Harbor Properties LLC")
    QboCustomerFactory(company=company, display_name=f"Cascade {RLO}sloohcS")
    names = ["Lakeside Library", "Riverside Clinic", "Maple School", "Northgate Center"]
    rows = [
        StagedProjectFactory(
            company=company,
            number=f"P-{100 + i}",
            name=f"{names[i % 4]} #{i}",
            client_name="Harbor Properties",
            status=SyncStatus.NEEDS_SYNC,
            qbo_customer=harbor,
            start_date=dt.date(2025, 1, 1) + dt.timedelta(days=i),
        )
        for i in range(12)
    ]
    reversed_name = StagedProjectFactory(
        company=company,
        number="P-001",
        name=f"Gym {RLO}evil Phase 2",
        client_name=f"Cascade {RLO}sloohcS",
        status=SyncStatus.NEEDS_ACTION,
    )
    failed = rows[1]
    failed.status = SyncStatus.FAILED
    failed.status_reason = "Duplicate Name Exists Error"
    failed.source_payload = {"name": failed.name, "api_key": "sk-live-1"}
    failed.save()
    ChangeEvent.objects.create(
        company=company,
        project=failed,
        kind=EventKind.UPDATED,
        summary=f"Renamed in Linarc {RLO}emaner",
        details={"changes": {"name": {"old": "Old Clinic", "new": failed.name}}},
    )
    QboCustomerFactory(
        company=company,
        display_name="Riverside Clinic Job",
        is_job=True,
        parent_qbo_id=harbor.qbo_id,
    )
    Run.objects.create(  # finished a moment ago: its full progress bar still shows
        company=company,
        kind=RunKind.SYNC,
        state=RunState.DONE,
        total=4,
        processed=4,
        started_by=personas.operator,
        finished_at=timezone.now(),
    )
    return {"rows": rows, "failed": failed, "reversed": reversed_name}


def open_projects(page: Any, live_server: Any, user: Any) -> None:
    login(page, live_server.url, user.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/")
    page.wait_for_selector("#project-rows tr[data-id]")


def open_drawer(page: Any, project: Any, action: str) -> Any:
    row = page.locator(f"#project-{project.pk}")
    row.get_by_role("link", name=action).click()
    drawer = page.locator("#drawer")
    drawer.wait_for(state="visible")
    return drawer


def test_projects_tab_works_with_no_csp_violation(
    page: Any, live_server: Any, personas: Personas, projects: dict[str, Any], violations: Any
) -> None:
    open_projects(page, live_server, personas.operator)
    rows = page.locator("#project-rows tr[data-id]")
    assert rows.count() == 13
    # The progress bar of the finished sync run is a <progress>, drawn by app.css.
    assert page.locator("#sync-progress progress.run-bar").get_attribute("value") == "100"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "csp-projects-tab.png"))

    # Select rows; the Sync to QBO preview comes back through htmx.
    handles = page.locator(".row-handle")
    handles.nth(0).click()
    handles.nth(2).click(modifiers=["Control"])
    assert page.locator("#selection-text").inner_text() == "2 projects selected."
    page.wait_for_function(
        "() => document.querySelector('#sync-preview').innerText.includes('sync')"
    )
    page.get_by_role("button", name="Clear selection").click()

    # Search narrows the rows; sorting reorders them.
    page.get_by_placeholder("Search name, number or client").fill("lakeside")
    page.wait_for_url("**/projects/?q=lakeside")
    page.wait_for_function(
        "() => document.querySelectorAll('#project-rows tr[data-id]').length === 3"
    )
    page.get_by_role("link", name="Project Name").click()
    page.wait_for_url("**/projects/?q=lakeside&sort=name")
    page.get_by_role("link", name="Project Name").click()
    page.wait_for_url("**/projects/?q=lakeside&sort=-name")
    names = page.locator("#project-rows .project-name").all_inner_texts()
    assert names == sorted(names, reverse=True) and len(names) == 3
    page.get_by_placeholder("Search name, number or client").fill("")
    page.wait_for_url("**/projects/?sort=-name")
    page.wait_for_function(
        "() => document.querySelectorAll('#project-rows tr[data-id]').length === 13"
    )

    # The Import menu opens and closes.
    page.locator("details.import-menu summary").click()
    assert page.get_by_role("menuitem", name="Import Selected").is_visible()
    page.locator("h1").click()
    page.get_by_role("menuitem", name="Import Selected").wait_for(state="hidden")

    # The three drawers.
    failed = projects["failed"]
    drawer = open_drawer(page, failed, "Change History")
    assert drawer.locator(".event-kind").first.inner_text() == "Updated from Linarc"
    assert drawer.locator("bdi", has_text="emaner").count() == 1
    drawer.get_by_role("button", name="Close").click()
    drawer.wait_for(state="hidden")
    drawer = open_drawer(page, failed, "Json Script")
    assert drawer.locator(".j-redacted").count() == 1  # highlighted by projects.js
    drawer.get_by_role("button", name="Close").click()
    drawer = open_drawer(page, failed, "Manual Mapping")
    drawer.locator("#mm-jobs .option").first.click()
    drawer.get_by_text("What will change").wait_for()
    drawer.get_by_role("button", name="Close").click()
    drawer.wait_for(state="hidden")

    assert violations.all() == []


def test_permanent_mapping_dialog_isolates_names_and_maps(
    page: Any, live_server: Any, personas: Personas, projects: dict[str, Any], violations: Any
) -> None:
    project = projects["reversed"]
    open_projects(page, live_server, personas.operator)
    row = page.locator(f"#project-{project.pk}")
    assert row.locator(".project-name bdi").count() == 1
    row.get_by_role("button", name="Select QBO customer").click()
    suggested = row.locator(".option-suggested")  # the client's name, override and all
    suggested.wait_for()

    suggested.click()
    dialog = page.locator("#map-confirm")
    assert dialog.is_visible()
    markup = page.evaluate("document.getElementById('map-confirm-text').innerHTML")
    assert RLO not in markup
    assert markup == (
        "This mapping is permanent and cannot be changed. Map “<bdi>Gym evil Phase 2</bdi>” "
        "to “<bdi>Cascade sloohcS</bdi>”?"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "csp-map-confirm-bidi.png"))
    dialog.get_by_role("button", name="Map permanently").click()

    row.locator(".customer-locked").wait_for()
    assert row.locator(".customer-name bdi").inner_text() == "Cascade sloohcS"
    message = page.locator("#messages .message").first
    assert message.locator("bdi").count() == 2  # the flash isolates both names
    assert violations.all() == []


def test_polling_asks_for_queued_rows_only_while_there_are_some(
    page: Any, live_server: Any, personas: Personas, projects: dict[str, Any], violations: Any
) -> None:
    queued = projects["rows"][3]
    queued.status = SyncStatus.QUEUED
    queued.save()
    polls: list[str] = []

    def on_request(request: Any) -> None:
        if "/rows/" in request.url:
            polls.append(request.url)

    page.on("request", on_request)
    open_projects(page, live_server, personas.operator)
    serial = page.locator(f"#project-{queued.pk}").get_attribute("data-serial")

    page.wait_for_timeout(2500)
    assert polls and f"rows={queued.pk}%3A{serial}" in polls[-1]  # projects.js added them

    queued.status = SyncStatus.SYNCED
    queued.save()
    page.wait_for_function(
        f"() => document.querySelector('#project-{queued.pk}').dataset.status === 'synced'"
    )
    asked = len(polls)
    page.wait_for_timeout(4500)
    assert len(polls) == asked  # nothing queued: each tick is cancelled before it asks
    assert violations.all() == []


def test_company_switch_and_qbo_panel_work_without_inline_handlers(
    page: Any, live_server: Any, personas: Personas, violations: Any
) -> None:
    MembershipFactory(user=personas.admin, company=personas.other_company, role=Role.ADMIN)
    login(page, live_server.url, personas.admin.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/")
    names = {personas.company.name, personas.other_company.name}
    current = page.locator("h1").inner_text()
    (other,) = names - {current}

    page.locator("#company-select").select_option(label=other)  # data-submit-on-change
    page.wait_for_url(f"{live_server.url}/portfolio/")
    page.locator("h1", has_text=other).wait_for()
    page.goto(f"{live_server.url}/portfolio/integration/erp/qbo/")
    assert page.get_by_text("Not connected").is_visible()
    assert violations.all() == []


def test_django_admin_works_under_the_policy(
    page: Any, live_server: Any, personas: Personas, violations: Any
) -> None:
    UserFactory(username="support", is_staff=True, is_superuser=True)
    login(page, live_server.url, "support", PASSWORD)
    page.goto(f"{live_server.url}/admin/")
    assert page.get_by_role("heading", name="Site administration").is_visible()

    # A change form with prepopulated fields and an autocomplete (select2) inline.
    page.goto(f"{live_server.url}/admin/integrations/company/add/")
    page.locator("#id_name").press_sequentially("Granite Peak")  # prepopulate.js: on keyup
    page.wait_for_function("() => document.querySelector('#id_slug').value === 'granite-peak'")
    page.get_by_role("button", name="Add another Membership").click()  # inlines.js
    page.locator(".dynamic-memberships .select2-selection").first.click()
    page.locator(".select2-search__field").fill("otto")  # autocomplete.js asks the server
    page.locator(".select2-results__option", has_text="otto").click()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_selector(".messagelist .success")
    assert personas.operator.memberships.filter(company__slug="granite-peak").exists()
    assert violations.all() == []
