"""An import run's counts, in the order and words the run summary uses."""

from __future__ import annotations

from dataclasses import dataclass

from staging.imports.runs import COUNT_KEYS
from staging.models import Run, RunKind

COUNT_LABELS = {
    "fetched": "Fetched",
    "created": "Created",
    "updated": "Updated",
    "unchanged": "Unchanged",
    "skipped": "Skipped",
    "invalid": "Invalid",
    "not_found": "Not found in Linarc",
    "deleted": "Deleted in Linarc",
}


@dataclass(frozen=True)
class CountLine:
    key: str
    label: str
    value: int


def import_run_counts(*, run: Run) -> list[CountLine]:
    """The run's counts in display order, zeros left out (except the headline ones)."""
    counts = run.counts or {}
    always = {"fetched", "created", "updated", "unchanged"}
    if run.kind == RunKind.IMPORT_NEW:
        always = {"fetched", "created", "skipped"}
    return [
        CountLine(key, COUNT_LABELS[key], int(counts.get(key, 0)))
        for key in COUNT_KEYS
        if key in always or counts.get(key)
    ]
