"""The Change History as a CSV download, each cell made safe for spreadsheet apps."""

from __future__ import annotations

from datetime import UTC

from staging.models import StagedProject
from staging.selectors.history import project_history
from staging.templatetags.bidi import strip_bidi_controls

# Spreadsheet apps run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    # Bidi controls first (a CSV cell cannot hold an isolate, and an override would reverse
    # the rest of the line), so a cell that only hid its "=" behind one is still caught.
    value = strip_bidi_controls(value)
    return f"'{value}" if value.startswith(_FORMULA_PREFIXES) else value


HISTORY_CSV_HEADER = [
    "At (UTC)",
    "Actor",
    "Event",
    "Summary",
    "Changes",
    "QBO Id",
    "QBO code",
    "intuit_tid",
]


def project_history_csv_rows(*, project: StagedProject) -> list[list[str]]:
    rows = [list(HISTORY_CSV_HEADER)]
    for entry in project_history(project=project):
        changes = "; ".join(f"{c.field}: {c.old} → {c.new}" for c in entry.changes)
        cells = [
            entry.event.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            entry.actor_name,
            entry.event.get_kind_display(),
            entry.event.summary,
            changes,
            entry.qbo_id,
            entry.code,
            entry.intuit_tid,
        ]
        rows.append([csv_safe(cell) for cell in cells])
    return rows
