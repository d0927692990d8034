"""The import's fast paths: new rows written without model instances on PostgreSQL,
unchanged rows found without locks, deletion detection without a list of every id, and the
planner statistics of a first import. Each must give exactly what the plain path gives."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from staging.imports import deletions, new_rows, writer
from staging.imports import pages as import_pages
from staging.imports.deletions import SeenRows, projects_flag_deleted
from staging.imports.pages import import_run_execute
from staging.imports.runs import import_run_create
from staging.models import ChangeEvent, EventKind, Run, RunKind, RunState, StagedProject
from tests.factories import StagedProjectFactory
from tests.fixtures.linarc import connect_company

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the fast writer exists on PostgreSQL only"
)

# Columns that differ between two companies' copies of the same project by nature.
PER_COPY = {"id", "company", "created_at", "updated_at"}


def run_import(company: Any, kind: str = RunKind.IMPORT_ALL, actor: Any = None) -> Run:
    run = import_run_create(company=company, kind=kind, actor=actor)
    return import_run_execute(run_id=run.pk)


def staged_rows(company: Any) -> dict[str, dict[str, Any]]:
    return {
        project.linarc_id: {k: v for k, v in model_to_dict(project).items() if k not in PER_COPY}
        for project in StagedProject.objects.filter(company=company)
    }


def imported_events(company: Any) -> dict[str, tuple[Any, ...]]:
    events = ChangeEvent.objects.filter(company=company).select_related("project")
    return {
        event.project.linarc_id: (
            event.kind,
            event.summary,
            {k: v for k, v in event.details.items() if k != "run_id"},
            event.actor_id,
            event.at == event.project.created_at,
            "run_id" in event.details,
        )
        for event in events
    }


@postgresql_only
def test_postgresql_writer_stages_the_same_rows_and_events_as_the_portable_one(
    personas: Any, linarc_emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hostile records are in: NUL characters, emoji, bad dates, unknown statuses.
    emulator = linarc_emulator_factory(projects=120, hostile=True)
    fast, portable = personas.company, personas.other_company
    connect_company(fast, emulator)
    connect_company(portable, emulator)

    fast_run = run_import(fast, actor=personas.operator)
    monkeypatch.setattr(writer, "insert_new_rows", new_rows.insert_new_rows_orm)
    portable_run = run_import(portable, actor=personas.operator)

    assert fast_run.state == portable_run.state == RunState.DONE, fast_run.error
    assert fast_run.counts == portable_run.counts
    assert fast_run.counts["created"] == emulator.state.projects
    fast_rows, portable_rows = staged_rows(fast), staged_rows(portable)
    assert fast_rows == portable_rows
    assert any(row["problems"] for row in fast_rows.values())  # the hostile ones were there
    assert imported_events(fast) == imported_events(portable)
    assert ChangeEvent.objects.filter(company=fast, kind=EventKind.IMPORTED).count() == len(
        fast_rows
    )
    assert set(
        ChangeEvent.objects.filter(company=fast).values_list("details__run_id", flat=True)
    ) == {fast_run.pk}


def test_reimport_locks_and_writes_only_the_rows_that_changed(
    personas: Any, linarc_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_pages, "IMPORT_PAGE_SIZE", 20)  # 3 pages
    company = personas.company
    connect_company(company, linarc_emulator)
    run_import(company)
    linarc_emulator.update_project("100004", {"name": "Renamed in Linarc"})
    table = StagedProject._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        run = run_import(company)

    assert run.counts["updated"] == 1
    assert run.counts["unchanged"] == linarc_emulator.state.projects - 1
    sql = [query["sql"] for query in queries.captured_queries]
    # Full rows (their JSON payload) are loaded, and locked, for the one changed record only.
    loads = [s for s in sql if s.startswith("SELECT") and "source_payload" in s and table in s]
    assert len(loads) == 1, loads
    assert "100004" in loads[0]
    if connection.vendor == "postgresql":
        assert "FOR NO KEY UPDATE" in loads[0]
    writes = [s for s in sql if s.startswith(("INSERT", "UPDATE")) and f'"{table}"' in s]
    assert len(writes) == 1, writes  # the edited row's upsert

    with CaptureQueriesContext(connection) as queries:
        again = run_import(company)
    assert again.counts["unchanged"] == linarc_emulator.state.projects
    sql = [query["sql"] for query in queries.captured_queries]
    assert not [s for s in sql if s.startswith("SELECT") and "source_payload" in s]
    assert not [s for s in sql if "FOR NO KEY UPDATE" in s and table in s]
    assert not [s for s in sql if s.startswith(("INSERT", "UPDATE")) and f'"{table}"' in s]


def test_seen_rows_remembers_keys_across_blocks() -> None:
    seen = SeenRows()
    keys = [1, 7, 8, 524_287, 524_288, 10_000_019, 2**40 + 3]
    seen.update(keys)

    assert all(key in seen for key in keys)
    assert not any(key in seen for key in (0, 2, 6, 9, 524_289, 10_000_018, 2**40 + 2))
    assert "7" not in seen


def test_deletion_detection_walks_the_rows_in_slices_and_flags_only_unseen_ones(
    personas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deletions, "DELETION_SCAN_SIZE", 7)
    company = personas.company
    rows = [StagedProjectFactory(company=company) for _ in range(30)]
    StagedProjectFactory(company=personas.other_company)  # another company's row: never touched
    seen = SeenRows()
    seen.update(row.pk for index, row in enumerate(rows) if index % 4)

    with CaptureQueriesContext(connection) as queries:
        flagged = projects_flag_deleted(company=company, seen=seen, run_id=None)

    expected = {row.pk for index, row in enumerate(rows) if index % 4 == 0}
    assert flagged == len(expected)
    assert set(
        StagedProject.objects.filter(deleted_in_linarc=True).values_list("pk", flat=True)
    ) == (expected)
    assert ChangeEvent.objects.filter(kind=EventKind.DELETED_IN_LINARC).count() == len(expected)
    scans = [
        q for q in queries.captured_queries if "ORDER BY" in q["sql"] and "LIMIT 7" in q["sql"]
    ]
    assert len(scans) == 6  # 30 rows in slices of 7, and the empty read that ends the walk
    assert projects_flag_deleted(company=company, seen=seen) == 0  # flagged rows stay flagged


@postgresql_only
def test_first_import_analyzes_the_new_table_once(
    personas: Any, linarc_emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_pages, "IMPORT_PAGE_SIZE", 20)
    monkeypatch.setattr(import_pages, "ANALYZE_AFTER_CREATED", 50)
    company = personas.company
    connect_company(company, linarc_emulator_factory(projects=120))
    with connection.cursor() as cursor:
        # Autovacuum may ANALYZE the table at any moment and change the estimate the import
        # reads; its lock (SHARE UPDATE EXCLUSIVE) conflicts with itself, so holding it for
        # this test's transaction keeps autovacuum off the table until the rollback.
        cursor.execute(f"LOCK TABLE {StagedProject._meta.db_table} IN SHARE UPDATE EXCLUSIVE MODE")
        # Statistics of an empty table (an earlier test may have left others behind).
        cursor.execute(f"ANALYZE {StagedProject._meta.db_table}")

    with CaptureQueriesContext(connection) as queries:
        first = run_import(company)
    analyzes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("ANALYZE")]
    assert first.counts["created"] == 120
    assert len(analyzes) == 1, analyzes

    with CaptureQueriesContext(connection) as queries:
        run_import(company)  # nothing new: the statistics are left alone
    assert not [q for q in queries.captured_queries if q["sql"].startswith("ANALYZE")]
