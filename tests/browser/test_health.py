"""The integration health page in real Chromium (issue #16), at 1280 px: healthy, QuickBooks
needing a reconnect, and failures by kind with one-click retry. A full-page screenshot of
each state lands in test-artifacts/health-*.png."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import LinarcConnection, QboConnection, QboConnectionStatus
from staging.models import Run, RunKind, RunState, StagedProject, SyncStatus, WorkerHeartbeat
from tests.conftest import Personas
from tests.factories import PASSWORD, QboCustomerFactory, StagedProjectFactory
from tests.fixtures.browser import login, screenshot

pytestmark = pytest.mark.browser

WIDTH = 1280
REVOKED = "QuickBooks refused the refresh token (invalid_grant): it was revoked or has expired."


def _working_integration(personas: Personas, *, status: str = "connected") -> QboConnection:
    """QuickBooks connected (or not), Linarc configured, a worker that reported just now, an
    import and a sync that went well, and a few synced projects."""
    now = timezone.now()
    company = personas.company
    connection = QboConnection.objects.create(
        company=company,
        realm_id="9341453050",
        status=status,
        connected_at=now - timedelta(days=20),
        refreshed_at=now - timedelta(minutes=35),
        refresh_expires_at=now + timedelta(days=95, hours=1),
        customers_refreshed_at=now - timedelta(hours=3),
        last_error="" if status == QboConnectionStatus.CONNECTED else REVOKED,
    )
    LinarcConnection.objects.create(company=company, base_url="https://api.linarc.test")
    WorkerHeartbeat.objects.create(hostname="celery@worker-1", seen_at=now - timedelta(seconds=20))
    for kind, hours, total in ((RunKind.IMPORT_ALL, 5, 12), (RunKind.SYNC, 4, 12)):
        Run.objects.create(
            company=company,
            kind=kind,
            state=RunState.DONE,
            total=total,
            processed=total,
            created_at=now - timedelta(hours=hours),
        )
    customer = QboCustomerFactory(company=company, display_name="Cascade County Schools")
    for n in range(12):
        StagedProjectFactory(
            company=company,
            qbo_customer=customer,
            status=SyncStatus.SYNCED,
            qbo_record_id=str(5800 + n),
            last_synced_at=now - timedelta(hours=4),
        )
    return connection


def _open_health(page: Any, live_server: Any, user: Any) -> Any:
    page.set_viewport_size({"width": WIDTH, "height": 900})
    login(page, live_server.url, user.username, PASSWORD)
    page.goto(f"{live_server.url}{reverse('portfolio:integration_health')}")
    page.get_by_role("heading", name="Projects that failed or need a person").wait_for()
    return page.get_by_role("status").filter(has_text=re.compile("Everything|Some things"))


def _assert_no_horizontal_overflow(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways at {WIDTH} px: {widths}"


def _card(page: Any, title: str) -> Any:
    return page.get_by_role("region", name=title, exact=True)


def test_a_healthy_integration_reads_as_healthy(
    page: Any, live_server: Any, personas: Personas
) -> None:
    _working_integration(personas)

    verdict = _open_health(page, live_server, personas.admin)

    assert verdict.inner_text().startswith("Everything is working")
    qbo = _card(page, "QuickBooks").inner_text()
    assert "Connected to company 9341453050." in qbo
    assert "expires in 95 days unless it is used" in qbo
    assert "Connection last renewed 35" in qbo
    assert "Connected to https://api.linarc.test" in _card(page, "Linarc").inner_text()
    queue = _card(page, "Sync queue and workers").inner_text()
    assert "Workers online." in queue and "0 projects queued." in queue
    failures = _card(page, "Projects that failed or need a person").inner_text()
    assert "None: every staged project is synced" in failures
    runs = _card(page, "Last runs")
    assert runs.get_by_role("row").filter(has_text="Import All from Linarc").is_visible()
    assert "12 of 12" in runs.get_by_role("row").filter(has_text="Sync to QBO").inner_text()
    assert page.get_by_role("link", name="Reconnect QuickBooks").count() == 0
    assert page.get_by_role("button", name="Retry these").count() == 0
    # The admin has no e-mail address: said as a warning, and no choices offered.
    mail = _card(page, "E-mails to you")
    notice = mail.get_by_text("Your account has no e-mail address")
    assert notice.is_visible()
    assert notice.evaluate("el => getComputedStyle(el.closest('p')).backgroundColor") == (
        "rgb(255, 244, 214)"  # --warn-bg
    )
    assert mail.get_by_role("checkbox").count() == 0
    _assert_no_horizontal_overflow(page)
    screenshot(page, "health-healthy")


def test_quickbooks_needing_a_reconnect_shows_why_and_the_admins_button(
    page: Any, live_server: Any, personas: Personas
) -> None:
    _working_integration(personas, status=QboConnectionStatus.NEEDS_RECONNECT)

    verdict = _open_health(page, live_server, personas.admin)

    assert verdict.inner_text().startswith("Some things need attention")
    qbo = _card(page, "QuickBooks")
    assert f"Needs reconnecting. {REVOKED}" in qbo.inner_text()
    button = qbo.get_by_role("link", name="Reconnect QuickBooks")
    assert button.is_visible()
    # Said once: the page-wide banner of the other ERP Integration pages is left out here.
    assert page.get_by_text("QuickBooks needs to be reconnected.").count() == 0
    assert page.get_by_role("link", name="Reconnect QuickBooks").count() == 1
    _assert_no_horizontal_overflow(page)
    screenshot(page, "health-reconnect-needed")

    button.click()
    page.wait_for_url(f"**{reverse('portfolio:qbo_connection')}")


def _failed_rows(personas: Personas) -> dict[str, list[StagedProject]]:
    customer = QboCustomerFactory(company=personas.company, display_name="Harbor Properties LLC")

    def rows(names: list[str], **fields: Any) -> list[StagedProject]:
        return [
            StagedProjectFactory(company=personas.company, name=name, **fields) for name in names
        ]

    return {
        "unavailable": rows(
            ["Riverside Medical Office", "Maple Street Elementary", "Harbor View Apartments"],
            qbo_customer=customer,
            status=SyncStatus.FAILED,
            status_reason="QuickBooks did not answer after several tries (503).",
        ),
        "refused": rows(
            ["Northgate Distribution Center", "City Hall HVAC Replacement"],
            qbo_customer=customer,
            status=SyncStatus.FAILED,
            failure_code="6000",
            status_reason=(
                "A business validation error has occurred while processing your request: "
                "Business Validation Error: the billing address is longer than 41 characters."
            ),
        ),
        "duplicate": rows(
            ["Lakeside Library Expansion"],
            qbo_customer=customer,
            status=SyncStatus.NEEDS_ACTION,
            failure_code="6240",
            status_reason=(
                'The name "Lakeside Library Expansion" is already used in QuickBooks by '
                "another record."
            ),
        ),
        "no customer": rows(
            ["Cedar Ridge Senior Living", "Westfield Parking Structure"],
            status=SyncStatus.NEEDS_ACTION,
            status_reason="No QBO customer selected: choose the client in the QBO Customer column.",
        ),
        "throttled": rows(
            ["Lakeview Fire Station"],
            qbo_customer=customer,
            status=SyncStatus.FAILED,
            failure_code="3001",
            status_reason="ThrottleExceeded: the request was throttled by QuickBooks.",
        ),
    }


def test_failures_by_kind_show_count_example_link_and_retry_only_that_kind(
    page: Any, live_server: Any, personas: Personas, monkeypatch: Any
) -> None:
    # The retried rows stay Queued: no lane is started (no worker runs in this test).
    monkeypatch.setattr("staging.sync.queue.lanes_wake", lambda **kwargs: None)
    _working_integration(personas)
    rows = _failed_rows(personas)
    personas.admin.email = "ada@example.com"  # so the page offers the e-mail choices
    personas.admin.save(update_fields=["email"])

    verdict = _open_health(page, live_server, personas.admin)

    assert verdict.inner_text().startswith("Some things need attention")
    failures = _card(page, "Projects that failed or need a person")
    expected = {
        # kind: (status shown, count, words of the example reason, Show link's filter)
        "QuickBooks unavailable": (
            "Failed",
            "3",
            "did not answer after several",
            "status=failed&code=none",
        ),
        "Refused by QuickBooks": (
            "Failed · code 6000",
            "2",
            "Business Validation",
            "status=failed&code=6000",
        ),
        "No customer chosen": (
            "Needs Action",
            "2",
            "No QBO customer selected",
            "status=needs_action&code=none",
        ),
        "Duplicate name in QuickBooks": (
            "Needs Action · code 6240",
            "1",
            "is already used in QuickBooks",
            "status=needs_action&code=6240",
        ),
        "Throttled by QuickBooks": (
            "Failed · code 3001",
            "1",
            "ThrottleExceeded",
            "status=failed&code=3001",
        ),
    }
    for kind, (status, count, example, query) in expected.items():
        row = failures.get_by_role("row").filter(has_text=kind)
        cells = row.get_by_role("cell").all_inner_texts()
        assert cells[0].splitlines() == [kind, status], cells
        assert cells[1] == count, (kind, cells)
        assert example in cells[2], (kind, cells)
        # Each Show names its projects to a screen reader (visually hidden words).
        projects = f"{count} project{'s' if count != '1' else ''}: {kind}"
        show = row.get_by_role("link", name=f"Show the {projects}", exact=True)
        # ... while the eye sees "Show" (the rest is clipped to one pixel).
        assert show.inner_text().splitlines()[0] == "Show"
        assert show.locator(".visually-hidden").bounding_box()["width"] <= 1
        assert show.get_attribute("href").endswith(f"?{query}")
        retry = row.get_by_role("button", name=f"Retry these {projects}", exact=True)
        assert retry.count() == (1 if status.startswith("Failed") else 0), kind
    _assert_no_horizontal_overflow(page)
    screenshot(page, "health-failures-by-kind")

    failures.get_by_role("row").filter(has_text="QuickBooks unavailable").get_by_role(
        "button", name="Retry these"
    ).click()
    page.get_by_text("Retrying 3 projects: QuickBooks unavailable.").wait_for()

    def statuses(kind: str) -> set[str]:
        ids = [p.pk for p in rows[kind]]
        return set(StagedProject.objects.filter(pk__in=ids).values_list("status", flat=True))

    assert statuses("unavailable") == {SyncStatus.QUEUED}
    assert statuses("refused") == {SyncStatus.FAILED}
    assert statuses("duplicate") == statuses("no customer") == {SyncStatus.NEEDS_ACTION}
    failures = _card(page, "Projects that failed or need a person")
    assert failures.get_by_role("row").filter(has_text="QuickBooks unavailable").count() == 0
    assert failures.get_by_role("row").filter(has_text="Refused by QuickBooks").is_visible()
    queue = _card(page, "Sync queue and workers").inner_text()
    assert "3 projects queued, all less than a minute ago." in queue
    screenshot(page, "health-after-retry")

    # Show leads to the Projects tab's Failed chip narrowed to that kind's code: the refused
    # rows, not the throttled one nor the retried ones; the filter shows, and goes.
    failures.get_by_role("row").filter(has_text="Refused by QuickBooks").get_by_role(
        "link", name="Show"
    ).click()
    page.wait_for_url("**/projects/?status=failed&code=6000")
    page.get_by_text("Northgate Distribution Center").wait_for()
    assert page.get_by_text("City Hall HVAC Replacement").is_visible()
    assert page.get_by_text("Riverside Medical Office").count() == 0
    assert page.get_by_text("Lakeview Fire Station").count() == 0
    assert "Showing 1–2 of 2 projects" in page.locator("#results-summary").inner_text()
    chip = page.locator(".filter-chip")
    assert chip.inner_text().startswith("Only QuickBooks code 6000")
    _assert_no_horizontal_overflow(page)
    screenshot(page, "health-show-one-kind")

    chip.get_by_role("link", name="Remove the filter: QuickBooks code 6000").click()
    page.get_by_text("Lakeview Fire Station").wait_for()
    page.wait_for_url("**/projects/?status=failed")
    assert page.locator(".filter-chip").count() == 0
    assert page.get_by_text("Northgate Distribution Center").is_visible()
