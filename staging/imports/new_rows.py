"""New rows: a page's projects not staged yet, inserted with their *Imported* history.

On PostgreSQL one statement writes them all, the page's values going in as one array per
column (``insert_new_rows_pg``); elsewhere (SQLite) model instances and two
``bulk_create`` do it (``insert_new_rows_orm``). Both write the same rows and events (a
test compares them).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from integrations.actors import Actor, actor_pk
from integrations.models import Company
from linarc_client import ProjectRecord
from staging.imports.rows import (
    IMPORT_PAGE_SIZE,
    NO_CUSTOMER_REASON,
    imported_details,
    imported_summary,
    new_row,
    problems_reason,
    source_values,
    without_nul,
)
from staging.models import ChangeEvent, EventKind, StagedProject
from staging.models import SyncStatus as Status
from staging.services.events import event_new, events_write


def insert_new_rows(
    *,
    company: Company,
    records: list[ProjectRecord],
    hashes: dict[str, str],
    actor: Actor,
    run_id: int | None,
    now: datetime,
) -> list[int]:
    """Insert a page's new projects with their *Imported* events; their primary keys."""
    writer = (
        insert_new_rows_pg
        if connections[StagedProject.objects.db].vendor == "postgresql"
        else insert_new_rows_orm
    )
    return writer(
        company=company, records=records, hashes=hashes, actor=actor, run_id=run_id, now=now
    )


# Columns of a new staged row that come from the record (the rest get the model's defaults).
_PER_ROW_COLUMNS = (
    "linarc_id",
    "number",
    "name",
    "project_status",
    "start_date",
    "end_date",
    "client_name",
    "address",
    "source_payload",
    "source_hash",
    "source_updated_at",
    "problems",
    "status_reason",
)


def _json_text(value: Any) -> str:
    """``value`` as JSON text for a jsonb column, with any NUL removed (PostgreSQL refuses
    ``\\u0000`` in jsonb). The walk that removes NULs runs only when the text has one."""
    text = json.dumps(value)
    if "\\u0000" in text:
        text = json.dumps(without_nul(value))
    return text


def insert_new_rows_pg(
    *,
    company: Company,
    records: list[ProjectRecord],
    hashes: dict[str, str],
    actor: Actor,
    run_id: int | None,
    now: datetime,
) -> list[int]:
    """New rows and their *Imported* events in ONE statement on PostgreSQL, without model
    instances: the page's values go in as one array per column, ``unnest`` turns them into
    rows, and a data-modifying CTE writes each new row's event from the ids it returned.

    Django's ``bulk_create`` of a page (a project and an event per record) spent ~60 % of a
    first import in Python (instances, per-value SQL compilation); this is one array per
    column adapted by psycopg2 in C. Columns not taken from the record get the model field's
    default, so the row is the same as ``bulk_create`` writes (a test compares them).
    """
    values: dict[str, list[Any]] = {name: [] for name in _PER_ROW_COLUMNS}
    summaries: list[str] = []
    details: list[str] = []
    for record in records:
        problems = [without_nul(p) for p in record.problems]
        source = source_values(record)
        reason = problems_reason(problems)
        values["linarc_id"].append(record.linarc_id)
        for name in ("number", "name", "project_status", "start_date", "end_date"):
            values[name].append(source[name])
        values["client_name"].append(source["client_name"])
        values["address"].append(_json_text(source["address"]))
        values["source_payload"].append(_json_text(record.raw))
        values["source_hash"].append(hashes[record.linarc_id])
        values["source_updated_at"].append(record.updated_at)
        values["problems"].append(json.dumps(problems))
        values["status_reason"].append(reason or NO_CUSTOMER_REASON)
        summaries.append(imported_summary(problems))
        details.append(json.dumps(imported_details(problems, run_id)))

    connection = connections[StagedProject.objects.db]
    constants: dict[str, Any] = {
        "company": company.pk,
        "status": Status.NEEDS_ACTION,
        "deleted_in_linarc": False,
        "created_at": now,
        "updated_at": now,
    }
    quote = connection.ops.quote_name
    columns: list[str] = []  # every column of the new row, in the model's order
    selects: list[str] = []  # the value of each: src.<its array> or a parameter
    arrays: list[str] = []  # the unnest() arguments, named in `names` in the same order
    names: list[str] = []
    array_params: list[Any] = []
    constant_params: list[Any] = []
    for model_field in StagedProject._meta.concrete_fields:
        if model_field.primary_key or model_field.generated:  # the database fills these
            continue
        cast = model_field.db_type(connection)
        columns.append(quote(model_field.column))
        if model_field.name in values:
            arrays.append(f"%s::{cast}[]")
            names.append(quote(model_field.column))
            array_params.append(values[model_field.name])
            selects.append(f"src.{quote(model_field.column)}")
        else:
            value = constants.get(model_field.name, model_field.get_default())
            selects.append(f"%s::{cast}")
            constant_params.append(model_field.get_db_prep_save(value, connection))
    if len(names) != len(values):  # a per-row value with no column would be dropped silently
        raise ImproperlyConfigured(f"StagedProject lacks one of {sorted(values)}")
    project_table = quote(StagedProject._meta.db_table)
    event_table = quote(ChangeEvent._meta.db_table)
    # Only table and column names from the models are formatted in; every value is a
    # parameter.
    sql = (
        f"WITH src AS (SELECT * FROM unnest({', '.join(arrays)}, %s::text[], "  # noqa: S608
        f"%s::jsonb[]) AS src({', '.join(names)}, _summary, _details)), "
        f"ins AS (INSERT INTO {project_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(selects)} FROM src RETURNING id, linarc_id), "
        f"events AS (INSERT INTO {event_table} "
        "(company_id, project_id, at, actor_id, kind, summary, details) "
        "SELECT %s, ins.id, %s, %s, %s, src._summary, src._details "
        "FROM ins JOIN src ON src.linarc_id = ins.linarc_id) "
        "SELECT id FROM ins"
    )
    params = [
        *array_params,
        summaries,
        details,
        *constant_params,
        company.pk,
        now,
        actor_pk(actor),
        EventKind.IMPORTED.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [pk for (pk,) in cursor.fetchall()]


def insert_new_rows_orm(
    *,
    company: Company,
    records: list[ProjectRecord],
    hashes: dict[str, str],
    actor: Actor,
    run_id: int | None,
    now: datetime,
) -> list[int]:
    """The portable writer of new rows and their *Imported* events (SQLite): model instances
    and two ``bulk_create``; returns the new primary keys."""
    new_rows = [
        new_row(company=company, record=record, source_hash=hashes[record.linarc_id], now=now)
        for record in records
    ]
    created = [project for project, _ in new_rows]
    StagedProject.objects.bulk_create(created, batch_size=IMPORT_PAGE_SIZE)
    if any(project.pk is None for project in created):
        # A backend that cannot return ids from a bulk INSERT: one query fetches them.
        ids = dict(
            StagedProject.objects.filter(
                company=company, linarc_id__in=[p.linarc_id for p in created]
            ).values_list("linarc_id", "pk")
        )
        for project in created:
            project.pk = ids[project.linarc_id]
    events_write(
        [
            event_new(
                project=project,
                kind=EventKind.IMPORTED,
                summary=summary,
                details=imported_details(project.problems, run_id),
                actor=actor,
                at=now,
            )
            for project, summary in new_rows
        ],
        batch_size=IMPORT_PAGE_SIZE,
    )
    return [project.pk for project in created]
