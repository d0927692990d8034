"""A Linarc record as a staged row: its columns, what an edit changes, the row's status
after the edit, and the words of its Change History.

Pure of queries: the writers (writer.py for edits, new_rows.py for new projects) decide when
and how the rows are written. A junk value in one field of a staged row keeps the staged
value (junk.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from integrations.models import Company
from linarc_client import ProjectRecord
from staging.imports.junk import kept_details, kept_summary, record_values_keeping_good
from staging.models import StagedProject
from staging.models import SyncStatus as Status
from staging.services.qbo_payload import SYNCED_SOURCE_FIELDS

# Linarc's maximum page size (fewer round trips, same queries per page), and so the most
# rows one bulk statement of the writers holds.
IMPORT_PAGE_SIZE = 500
NO_CUSTOMER_REASON = "Choose a QBO customer"


def without_nul(value: Any) -> Any:
    """PostgreSQL refuses NUL characters in text and jsonb; one hostile record must not
    fail its whole page, so they are dropped (SQLite would keep them: same on both)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def source_values(record: ProjectRecord) -> dict[str, Any]:
    """The staged columns of a record (the fields QBO receives)."""
    return {
        "number": without_nul(record.number),
        "name": without_nul(record.name),
        "project_status": without_nul(record.status),
        "start_date": record.start_date,
        "end_date": record.end_date,
        "client_name": without_nul(record.client_name),
        "address": without_nul(record.address),
    }


def _comparable(value: Any) -> Any:
    """A JSON value for diffs; an address with only empty parts equals no address."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: v for k, v in sorted(value.items()) if v not in ("", None)}
    return value


def _changes(project: StagedProject, values: dict[str, Any]) -> dict[str, list[Any]]:
    changes: dict[str, list[Any]] = {}
    for name in SYNCED_SOURCE_FIELDS:
        old, new = _comparable(getattr(project, name)), _comparable(values[name])
        if old != new:
            changes[name] = [old, new]
    return changes


def problems_reason(problems: Sequence[str]) -> str:
    return "; ".join(problems)


def _status_after_edit(
    project: StagedProject, problems: list[str], synced_fields_changed: bool
) -> tuple[str, str]:
    """(status, status_reason) of a staged row after a Linarc edit.

    A Synced row whose QBO fields changed needs a sync again. Failed and Queued rows keep
    their status (a retry or the worker in flight picks the new values up). Problems always
    win: a row with bad source data is Needs Action with the problems as its reason, and a
    row that was Needs Action only because of problems Linarc has now fixed moves on.
    """
    status, reason = project.status, project.status_reason
    if status in (Status.QUEUED, Status.FAILED):
        return status, reason
    if problems:
        if status == Status.SYNCED and not synced_fields_changed:
            return status, reason
        return Status.NEEDS_ACTION, problems_reason(problems)
    if status == Status.SYNCED:
        return (Status.NEEDS_SYNC, "") if synced_fields_changed else (status, reason)
    was_problems = bool(project.problems) and reason == problems_reason(project.problems)
    if status == Status.NEEDS_ACTION and (was_problems or not reason):
        if project.qbo_customer_id:
            return Status.NEEDS_SYNC, ""
        return Status.NEEDS_ACTION, NO_CUSTOMER_REASON
    return status, reason


def imported_summary(problems: Sequence[str]) -> str:
    summary = "Imported from Linarc"
    if problems:
        summary += f" with problems: {problems_reason(problems)}"
    return summary


def imported_details(problems: list[str], run_id: int | None) -> dict[str, Any]:
    details: dict[str, Any] = {"run_id": run_id} if run_id else {}
    if problems:
        details["problems"] = problems
    return details


def new_row(
    *, company: Company, record: ProjectRecord, source_hash: str, now: datetime
) -> tuple[StagedProject, str]:
    problems = [without_nul(p) for p in record.problems]
    project = StagedProject(
        company=company,
        linarc_id=record.linarc_id,
        **source_values(record),
        source_payload=without_nul(record.raw),
        source_hash=source_hash,
        source_updated_at=record.updated_at,
        problems=problems,
        status=Status.NEEDS_ACTION,
        status_reason=problems_reason(problems) or NO_CUSTOMER_REASON,
        created_at=now,
        updated_at=now,
    )
    return project, imported_summary(problems)


def _summary_of_edit(fields: list[str]) -> str:
    labels = {
        "name": "name",
        "number": "number",
        "project_status": "status",
        "start_date": "start date",
        "end_date": "end date",
        "client_name": "client",
        "address": "address",
        "problems": "problems",
        "deleted_in_linarc": "back in Linarc",
    }
    return "Updated from Linarc: " + ", ".join(labels.get(f, f) for f in fields)


def edit_row(
    *, project: StagedProject, record: ProjectRecord, source_hash: str, now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """Apply ``record`` to ``project`` in memory; the UPDATED event's summary and details,
    or ``None`` when nothing a person would see changed (only the hash is refreshed then,
    e.g. for a row staged before hashes were kept).

    A junk field keeps its staged value (:mod:`staging.imports.junk`); the details
    then say so under ``kept``, and have ``changes`` only when something else changed."""
    values = source_values(record)
    payload = without_nul(record.raw)
    record_problems, kept = record_values_keeping_good(
        project=project, record=record, payload=payload, values=values
    )
    problems = [without_nul(p) for p in record_problems]
    changes = _changes(project, values)
    synced_fields_changed = bool(changes)
    if project.problems != problems:
        changes["problems"] = [project.problems, problems]
    if project.deleted_in_linarc:
        changes["deleted_in_linarc"] = [True, False]
    old_status = project.status
    status, reason = _status_after_edit(project, problems, synced_fields_changed)
    for name, value in values.items():
        setattr(project, name, value)
    project.source_payload = payload
    project.source_hash = source_hash
    project.source_updated_at = record.updated_at
    project.problems = problems
    project.deleted_in_linarc = False
    # Junk the previous payload already sent is in the history already.
    kept = [value for value in kept if value.new]
    details: dict[str, Any] = {}
    summaries: list[str] = []
    if changes:
        project.status, project.status_reason = status, reason
        project.updated_at = now
        details["changes"] = changes
        if status != old_status:
            details["status"] = [old_status, status]
        summaries.append(_summary_of_edit(list(changes)))
    if kept:
        details["kept"] = kept_details(kept)
        summaries.append(kept_summary(kept))
    if not details:
        return None
    return ". ".join(summaries), details
