"""A bulk import of 10,000 Linarc projects: a fixed number of SQL queries per page of source
data, whatever the number of pages, and quick."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from staging.imports import pages as import_pages
from staging.imports.pages import import_run_execute
from staging.imports.rows import IMPORT_PAGE_SIZE
from staging.imports.runs import import_run_create
from staging.models import ChangeEvent, RunKind, RunState, StagedProject
from staging.models import SyncStatus as Status
from tests.fixtures.linarc import connect_company

PROJECTS = 10_000
PAGES = math.ceil(PROJECTS / IMPORT_PAGE_SIZE)


def statements(model: Any, fields: list[Any]) -> int:
    """INSERT/UPDATE statements one bulk operation of a full page needs on this database:
    1 on PostgreSQL; more on SQLite, whose 999-parameter limit splits them."""
    batch = connection.ops.bulk_batch_size(fields, [None] * IMPORT_PAGE_SIZE)
    return math.ceil(IMPORT_PAGE_SIZE / max(1, min(batch, IMPORT_PAGE_SIZE)))


def page_query_budget() -> int:
    project_fields = [
        f for f in StagedProject._meta.concrete_fields if not (f.primary_key or f.generated)
    ]
    event_fields = [f for f in ChangeEvent._meta.concrete_fields if not f.primary_key]
    # A page of new projects, or of edited ones (an INSERT … ON CONFLICT DO UPDATE), plus
    # their Change History.
    writes = statements(StagedProject, project_fields) + statements(ChangeEvent, event_fields)
    # + lock, load existing, progress update, savepoints; never a query per record
    return writes + 6


@pytest.fixture
def big_linarc(personas: Any, linarc_emulator_factory: Any, linarc_settings: Any) -> Any:
    emulator = linarc_emulator_factory(projects=PROJECTS, seed=3)
    connect_company(personas.company, emulator)
    return emulator


def test_bulk_import_uses_a_fixed_number_of_queries_per_page(
    personas: Any, big_linarc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    company = personas.company
    per_page: list[int] = []
    real_stage = import_pages.projects_stage_page

    def counted_stage(**kwargs: Any) -> Any:
        with CaptureQueriesContext(connection) as queries:
            outcome = real_stage(**kwargs)
        per_page.append(len(queries))
        return outcome

    monkeypatch.setattr(import_pages, "projects_stage_page", counted_stage)
    budget = page_query_budget()

    started = time.monotonic()
    run = import_run_create(company=company, kind=RunKind.IMPORT_ALL, actor=None)
    with CaptureQueriesContext(connection) as whole_run:
        run = import_run_execute(run_id=run.pk)
    first_seconds = time.monotonic() - started

    assert run.state == RunState.DONE, run.error
    assert run.counts["created"] == PROJECTS
    assert StagedProject.objects.filter(company=company).count() == PROJECTS
    assert len(per_page) == PAGES
    assert max(per_page) <= budget, per_page
    # Every full page costs the same: the count does not grow with the page number.
    assert len(set(per_page[:-1])) == 1, per_page
    # The whole run: per-page work plus a constant (claim, deletions check, finish).
    assert len(whole_run) <= PAGES * (budget + 2) + 12, len(whole_run)

    # Edit 1,000 projects (spread over every page) and mark their rows Synced.
    ids = StagedProject.objects.filter(company=company).values_list("linarc_id", flat=True)
    edited = [linarc_id for index, linarc_id in enumerate(ids) if index % 10 == 0]
    for linarc_id in edited:
        big_linarc.update_project(linarc_id, {"name": f"Renamed {linarc_id}"})
    StagedProject.objects.filter(linarc_id__in=edited).update(status=Status.SYNCED)
    per_page.clear()

    run = import_run_create(company=company, kind=RunKind.IMPORT_ALL, actor=None)
    run = import_run_execute(run_id=run.pk)

    assert run.counts["updated"] == len(edited)
    assert run.counts["unchanged"] == PROJECTS - len(edited)
    assert max(per_page) <= budget, per_page
    assert StagedProject.objects.filter(status=Status.NEEDS_SYNC).count() == len(edited)
    assert first_seconds < 30, f"10,000 projects took {first_seconds:.1f}s"
