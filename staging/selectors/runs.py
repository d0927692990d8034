"""Runs for the screens: the sync run whose progress bar the Projects tab shows, the recent
imports, and which Linarc ids are staged already (the Import Selected picker).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from integrations.models import Company
from staging.imports.runs import IMPORT_KINDS
from staging.models import Run, RunKind, RunState, StagedProject

RECENT_RUN_WINDOW = timedelta(minutes=2)


def latest_sync_run(*, company: Company) -> Run | None:
    """The sync run to show a progress bar for: one still running, or one that finished a
    moment ago (so the user sees it reach 100 %)."""
    recent = timezone.now() - RECENT_RUN_WINDOW
    return (
        Run.objects.filter(company=company, kind=RunKind.SYNC)
        .select_related("started_by")
        .filter(Q(state__in=(RunState.PENDING, RunState.RUNNING)) | Q(finished_at__gte=recent))
        .order_by("-created_at", "-id")
        .first()
    )


def import_runs_recent(*, company: Company, limit: int = 5) -> list[Run]:
    return list(
        Run.objects.filter(company=company, kind__in=IMPORT_KINDS).order_by("-created_at")[:limit]
    )


def staged_linarc_ids(*, company: Company, linarc_ids: Iterable[str]) -> set[str]:
    return set(
        StagedProject.objects.filter(company=company, linarc_id__in=list(linarc_ids)).values_list(
            "linarc_id", flat=True
        )
    )
