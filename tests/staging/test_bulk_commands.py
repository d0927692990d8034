"""The Projects tab's bulk buttons as management commands (issue #15): the same role, the
same selection and the same permanence rules as the buttons, and a clear summary."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from staging.models import StagedProject, SyncStatus
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def rows(personas: Personas, django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    cascade = QboCustomerFactory(company=personas.company, display_name="Cascade County Schools")
    return {
        "unmapped": [
            StagedProjectFactory(
                company=personas.company,
                client_name="Cascade County Schools",
                status=SyncStatus.NEEDS_ACTION,
            )
            for _ in range(3)
        ],
        "unknown": StagedProjectFactory(
            company=personas.company, client_name="Nobody Known", status=SyncStatus.NEEDS_ACTION
        ),
        "failed": StagedProjectFactory(
            company=personas.company, qbo_customer=cascade, status=SyncStatus.FAILED
        ),
        "cascade": cascade,
    }


def test_map_suggested_shows_the_plan_then_maps_with_yes(
    personas: Personas, rows: dict[str, Any]
) -> None:
    slug = personas.company.slug
    plan = run("map_suggested", "--company", slug, "--as", "otto", "--status", "needs_action")
    assert "3 projects would be mapped permanently" in plan
    assert "Cascade County Schools: Same name as the Linarc client" in plan
    assert "1 without a suggestion stay unmapped" in plan
    assert StagedProject.objects.filter(qbo_customer=None).count() == 4

    done = run(
        "map_suggested", "--company", slug, "--as", "otto", "--status", "needs_action", "--yes"
    )
    assert "Mapped 3 projects permanently to 1 customer" in done
    assert StagedProject.objects.filter(qbo_customer=rows["cascade"]).count() == 4  # + failed
    assert set(
        StagedProject.objects.filter(pk__in=[p.pk for p in rows["unmapped"]]).values_list(
            "mapped_by", flat=True
        )
    ) == {personas.operator.pk}


def test_sync_and_retry_commands_queue_like_the_buttons(
    personas: Personas, rows: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    slug = personas.company.slug
    with django_capture_on_commit_callbacks():
        retried = run("retry_failed", "--company", slug, "--as", "ada")
    assert "Retrying 1 failed projects." in retried
    rows["failed"].refresh_from_db()
    assert rows["failed"].status == SyncStatus.QUEUED

    ids = [str(p.pk) for p in rows["unmapped"]]
    with django_capture_on_commit_callbacks():
        synced = run("sync_projects", "--company", slug, "--as", "otto", "--ids", *ids)
    assert "Queued 0 projects for QBO." in synced and "Skipped 3" in synced  # not mapped


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--company", "nope", "--as", "otto", "--status", "failed"], "No company with slug"),
        (["--as", "vera", "--status", "failed"], "is not an Operator or Admin"),
        (["--as", "oscar", "--status", "failed"], "is not an Operator or Admin"),
        (["--as", "otto"], "Choose the projects: --status, --search or --ids."),
    ],
)
def test_commands_refuse_without_changing_anything(
    personas: Personas, rows: dict[str, Any], args: list[str], message: str
) -> None:
    if "--company" not in args:
        args = ["--company", personas.company.slug, *args]
    with pytest.raises(CommandError, match=message):
        run("map_suggested", *args, "--yes")
    assert StagedProject.objects.filter(qbo_customer=None).count() == 4
