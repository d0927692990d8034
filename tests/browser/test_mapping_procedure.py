"""A new admin maps and syncs all 250 demo projects in at most 10 clicks (issue #15): the
Linarc and QBO emulators with their demo data, the live server, a real Celery worker and
Chromium. Most clients are QuickBooks customers already (some spelled differently); the
ones that are not are created from Map selected…; every mapping is confirmed first."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from linarc_client.emulator.data import OTHER_CLIENT_NAMES
from qbo_client.emulator import QboEmulator
from qbo_client.emulator.seed import DEMO_LINARC_CLIENTS_MISSING
from staging.models import StagedProject, SyncStatus
from tests.conftest import Personas
from tests.factories import PASSWORD
from tests.fixtures.browser import login, screenshot
from tests.fixtures.linarc import connect_company as connect_linarc
from tests.fixtures.qbo import connect_company as connect_qbo
from tests.fixtures.qbo import control, qbo_env, refresh_customers
from tests.fixtures.workers import WorkerPool, worker_env

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.timeout(300)]

PROJECTS = 250
# The Linarc demo clients that are no QuickBooks customer under any spelling.
MISSING_IN_QBO = {*DEMO_LINARC_CLIENTS_MISSING, *OTHER_CLIENT_NAMES}


class Clicks:
    """Counts the user's clicks (navigation by URL is not a click)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, locator: Any) -> None:
        self.count += 1
        locator.click()


def test_a_new_admin_maps_and_syncs_250_demo_projects_in_ten_clicks(
    page: Any,
    live_server: Any,
    personas: Personas,
    qbo_emulator: QboEmulator,
    linarc_emulator_factory: Any,
    celery_workers: WorkerPool,
) -> None:
    linarc = linarc_emulator_factory(projects=PROJECTS, hostile=False, seed=7)
    connect_linarc(personas.company, linarc)
    connect_qbo(personas.company, personas.admin)
    refresh_customers(personas.company)
    # The default worker was started before the emulator existed: replace it.
    celery_workers.start_one({**worker_env(celery_workers.queue), **qbo_env(qbo_emulator)})
    celery_workers.processes[0].terminate()
    click = Clicks()
    login(page, live_server.url, personas.admin.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/")

    click(page.locator("details.import-menu > summary"))
    click(page.get_by_role("menuitem", name="Import All from Linarc"))
    page.goto(f"{live_server.url}/portfolio/integration/erp/projects/")
    page.wait_for_function(
        f"() => document.querySelector('#results')?.dataset.total === '{PROJECTS}'",
        timeout=90_000,
    )
    staged = StagedProject.objects.filter(company=personas.company)
    assert staged.count() == PROJECTS and not staged.exclude(qbo_customer=None).exists()

    click(page.get_by_role("button", name="Select All"))
    click(page.get_by_role("button", name="Map selected…"))
    drawer = page.locator("#drawer")
    drawer.get_by_role("heading", name="Map selected projects").wait_for()
    plan = " ".join(drawer.inner_text().split())
    suggested = staged.count() - sum(
        1 for name in staged.values_list("client_name", flat=True) if name in MISSING_IN_QBO
    )
    assert f"{suggested} projects will be mapped permanently" in plan
    assert "Not the Linarc client's name: check it." in plan  # the respelled clients
    drawer.evaluate("d => Promise.all(d.getAnimations().map((a) => a.finished))")
    screenshot(page, "procedure-map-250-plan")
    click(drawer.get_by_label("Also create the"))
    click(drawer.get_by_role("button", name=f"Map {suggested} permanently"))
    page.locator("#messages").get_by_text(f"Mapped {PROJECTS} projects permanently").wait_for(
        timeout=60_000
    )
    clients = {c for c in staged.values_list("client_name", flat=True) if c in MISSING_IN_QBO}
    created = f"{len(clients)} new customers were created in QuickBooks"
    assert created in page.locator("#messages").inner_text()
    assert not staged.filter(qbo_customer=None).exists()
    assert set(staged.values_list("status", flat=True)) == {SyncStatus.NEEDS_SYNC}

    click(page.get_by_role("button", name="Select All"))
    click(page.get_by_role("button", name="Sync to QBO"))
    # The demo has projects of the same name (under different clients): QuickBooks names
    # are unique, so the younger of each pair is sent with its project number.
    names = Counter(" ".join(n.split()).casefold() for n in staged.values_list("name", flat=True))
    repeated = sum(count - 1 for count in names.values())
    assert repeated  # the demo data does hold twins
    page.wait_for_function(
        "() => document.querySelector('.chip-synced .chip-count')?.textContent.trim() === "
        f"'{PROJECTS}' && "
        "document.querySelector('.chip-queued .chip-count')?.textContent.trim() === '0'",
        timeout=180_000,
    )
    screenshot(page, "procedure-map-250-synced")

    assert click.count <= 10, click.count
    assert staged.filter(status=SyncStatus.SYNCED).count() == PROJECTS
    numbered = staged.exclude(qbo_name_suffix="")
    assert numbered.count() == repeated
    assert all(p.qbo_display_name == f"{p.name} ({p.number})" for p in numbered)
    jobs = [c for c in control(qbo_emulator, "GET", "state")["Customer"] if c.get("Job")]
    job_names = [c["DisplayName"] for c in jobs]
    synced_ids = set(staged.values_list("qbo_record_id", flat=True))
    assert len(synced_ids) == PROJECTS and synced_ids <= {c["Id"] for c in jobs}
    assert len(job_names) == len(set(job_names))  # nothing created twice
