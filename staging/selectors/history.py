"""A staged project's Change History: its events, newest first, with their field diffs and
QBO identifiers read out of each event's details.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from staging.models import ChangeEvent, StagedProject


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    event: ChangeEvent
    changes: list[FieldChange]
    qbo_id: str
    code: str
    intuit_tid: str

    @property
    def actor_name(self) -> str:
        actor = self.event.actor
        if actor is None:
            return "System"
        return actor.get_full_name() or actor.get_username()


def _as_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value or "—"
    return json.dumps(value, sort_keys=True, default=str)


def _field_changes(raw: Any) -> list[FieldChange]:
    """details["changes"] as {field: {"old": a, "new": b}} or {field: [a, b]}."""
    if not isinstance(raw, dict):
        return []
    changes: list[FieldChange] = []
    for name, diff in raw.items():
        if isinstance(diff, dict):
            old, new = diff.get("old"), diff.get("new")
        elif isinstance(diff, list | tuple) and len(diff) == 2:
            old, new = diff
        else:
            old, new = None, diff
        changes.append(FieldChange(str(name), _as_text(old), _as_text(new)))
    return changes


def _detail(details: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = details.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def project_history(*, project: StagedProject) -> list[HistoryEntry]:
    """Every event of the row, newest first, with its field diffs and QBO identifiers."""
    events = project.events.select_related("actor").order_by("-at", "-id")
    entries: list[HistoryEntry] = []
    for event in events:
        details = event.details if isinstance(event.details, dict) else {}
        entries.append(
            HistoryEntry(
                event=event,
                changes=_field_changes(details.get("changes")),
                qbo_id=_detail(details, "qbo_record_id", "qbo_id", "qbo_customer_id"),
                code=_detail(details, "code", "failure_code"),
                intuit_tid=_detail(details, "intuit_tid"),
            )
        )
    return entries
