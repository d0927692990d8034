"""Junk from Linarc in a field of a project already staged: the last good value is kept.

Linarc sometimes sends a value we cannot use for one field of a project we already hold: a
date that is not a date, a list or an object where text belongs, an unknown status, an empty
name, a number or client name too long for its column (every problem ``parse_project`` writes
about one field; docs/bad-input.md lists them). Staging that stand-in (empty, or cut) would
blank a Synced project's good data and turn it *Needs Action* over one glitch; the next sync
would blank the QBO job's field too. So, for a staged row:

* the field keeps its staged value, and its problem does not make the row *Needs Action*;
* the junk is written in the row's Change History once: the same payload again is skipped by
  its content hash, and a later edit of another field does not repeat junk the previous
  payload already sent (``source_payload`` is the previous payload);
* the status moves only for a real change of another field, exactly as without the junk.

An empty value where empty is allowed (no end date, no address) is not junk: it is no
problem, so it is a change like any other. A field that never had a good value (the row was
staged with junk there, its problem still stored) has nothing to keep: its problem stays, as
for a new row.

Only the import's changed path calls this (a record whose hash differs from the staged one),
and only for a record with problems: the unchanged path and clean records cost nothing more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from linarc_client import ProjectRecord
from linarc_client import contract as c
from linarc_client.records import (
    FIELD_LABELS,
    dates_out_of_order,
    is_dates_out_of_order,
    problem_field,
    sent_value,
)
from staging.models import StagedProject

_EXCERPT_LENGTH = 60  # of a junk value or a kept text in the history's summary

# The staged column of each record attribute, and the key inside ``address`` for its parts.
_COLUMNS: dict[str, tuple[str, str | None]] = {
    "number": ("number", None),
    "name": ("name", None),
    "status": ("project_status", None),
    "start_date": ("start_date", None),
    "end_date": ("end_date", None),
    "client_name": ("client_name", None),
    "address": ("address", None),
    **{attribute: ("address", key) for attribute, key in c.ADDRESS_FIELDS},
}
_ADDRESS_ATTRIBUTES = frozenset(["address", *(attribute for attribute, _ in c.ADDRESS_FIELDS)])


@dataclass(frozen=True)
class KeptValue:
    """A field whose junk was replaced by the staged value."""

    field: str  # the ProjectRecord attribute, e.g. "start_date", "status" or "city"
    sent: str  # what Linarc sent, as a JSON excerpt
    kept: Any  # the staged value kept, as JSON
    shown: str  # the staged value kept, for people: 2026-03-01, "Harbor Point", it empty
    problems: tuple[str, ...]  # the problems the junk gave, dropped from the row's
    new: bool  # False when the previous payload sent the same junk (already in the history)


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT_LENGTH else text[: _EXCERPT_LENGTH - 1] + "…"


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _staged_value(project: StagedProject, field: str) -> Any:
    column, key = _COLUMNS[field]
    value = getattr(project, column)
    if key is None:
        return value
    return value.get(key, "") if isinstance(value, dict) else ""


def record_values_keeping_good(
    *,
    project: StagedProject,
    record: ProjectRecord,
    payload: dict[str, Any],
    values: dict[str, Any],
) -> tuple[list[str], list[KeptValue]]:
    """The record's problems once each junk field of ``record`` keeps ``project``'s staged
    value, and the fields kept. ``values`` (the staged columns read from ``record``) gets
    the kept values in place. ``payload`` is ``record.raw`` as it will be stored (without
    NUL), compared with the stored one to tell junk already recorded."""
    if not record.problems:
        return list(record.problems), []
    junk: dict[str, list[str]] = {}
    for problem in record.problems:
        field = problem_field(problem)
        if field is not None:
            junk.setdefault(field, []).append(problem)
    if not junk:
        return list(record.problems), []
    # Fields the staged row holds no good value for: their problem is still on the row.
    no_good_value = {
        problem_field(problem) for problem in project.problems or [] if isinstance(problem, str)
    }
    # The address is one column: a part is good unless it or the whole address was junk;
    # the whole address only when every part is.
    whole_address_bad = "address" in no_good_value
    some_address_bad = bool(no_good_value & _ADDRESS_ATTRIBUTES)
    kept: list[KeptValue] = []
    dropped: set[str] = set()
    for field, problems in junk.items():
        column, key = _COLUMNS[field]
        if (
            field in no_good_value
            or (field == "address" and some_address_bad)
            or (key is not None and whole_address_bad)
        ):
            continue
        staged = _staged_value(project, field)
        if key is None:
            values[column] = staged
        else:
            values[column] = {**values[column], key: staged}
        sent = sent_value(payload, field)
        kept.append(
            KeptValue(
                field=field,
                sent=_excerpt(json.dumps(sent, ensure_ascii=False)),
                kept=_json(staged),
                shown=_shown(staged),
                problems=tuple(problems),
                new=sent != sent_value(project.source_payload, field),
            )
        )
        dropped.update(problems)
    remaining = [problem for problem in record.problems if problem not in dropped]
    if {"start_date", "end_date"} & {value.field for value in kept}:
        # A kept date takes part in the order check of the other one, as Linarc sent it.
        remaining = [problem for problem in remaining if not is_dates_out_of_order(problem)]
        out_of_order = dates_out_of_order(values["start_date"], values["end_date"])
        if out_of_order:
            remaining.append(out_of_order)
    return remaining, kept


def _shown(value: Any) -> str:
    """A kept value for the history's summary: a date as is, text quoted, an address as
    its parts."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        value = ", ".join(str(value[key]) for _, key in c.ADDRESS_FIELDS if value.get(key))
    if value in (None, ""):
        return "it empty"
    return _excerpt(json.dumps(value, ensure_ascii=False))


def _label(field: str) -> str:
    label = FIELD_LABELS[field]
    return label[0].lower() + label[1:]


def kept_summary(kept: list[KeptValue]) -> str:
    """E.g. ``Linarc sent an unusable start date ("not-a-date"); kept 2026-03-01``."""
    return "; ".join(
        f"Linarc sent an unusable {_label(value.field)} ({value.sent}); kept {value.shown}"
        for value in kept
    )


def _detail_key(field: str) -> str:
    """The staged column, as ``details["changes"]`` names it; ``address.city`` for a part."""
    column, key = _COLUMNS[field]
    return column if key is None else f"{column}.{key}"


def kept_details(kept: list[KeptValue]) -> dict[str, dict[str, Any]]:
    """``details["kept"]`` of the history entry: per field, what came and what stayed."""
    return {
        _detail_key(value.field): {
            "sent": value.sent,
            "kept": value.kept,
            "problems": list(value.problems),
        }
        for value in kept
    }
