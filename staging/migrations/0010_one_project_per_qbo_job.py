"""One QBO job per project (1 of 2): settle the projects that share one before 0011's constraint.

Before this migration, Manual Mapping could link a project to a job another project already
owned, and both then synced to it. A database that holds such pairs cannot take the unique
constraint, so the first step settles them: in each group of projects sharing a QBO job, the
project staged first keeps the link and is set to Needs Sync (its next sync writes its own
fields to the job again, which the other project may have renamed); every other project loses
the link and is set to Needs Action with the reason, so someone links it again on purpose.
Each change is written to the project's Change History.
"""

from typing import Any

from django.db import migrations
from django.db.models import Count
from django.utils import timezone


def _label(project: Any) -> str:
    return " ".join(part for part in (project.number, project.name) if part)


def _settle_shared_jobs(apps: Any, schema_editor: Any) -> None:
    project_model = apps.get_model("staging", "StagedProject")
    event_model = apps.get_model("staging", "ChangeEvent")
    shared = (
        project_model.objects.exclude(qbo_record_id="")
        .values("company_id", "qbo_record_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    now = timezone.now()
    for group in shared:
        projects = list(
            project_model.objects.filter(
                company_id=group["company_id"], qbo_record_id=group["qbo_record_id"]
            ).order_by("id")
        )
        keeper, others = projects[0], projects[1:]
        job = group["qbo_record_id"]
        names = ", ".join(f"“{_label(p)}”" for p in others)
        keeper.status = "needs_sync"
        keeper.status_reason = ""
        keeper.last_synced_hash = ""
        keeper.save(update_fields=["status", "status_reason", "last_synced_hash"])
        event_model.objects.create(
            company_id=keeper.company_id,
            project_id=keeper.pk,
            kind="needs_action",
            at=now,
            summary=(
                f"QBO job {job} was also linked to {names}. This project keeps it; Sync to "
                "QBO writes this project's fields to it again."
            ),
            details={"qbo_record_id": job, "shared_with": [p.pk for p in others]},
        )
        reason = (
            f"QBO job {job} belongs to project “{_label(keeper)}”. Link this project to its "
            "own job with Manual Mapping, or sync to create one."
        )
        for project in others:
            project.qbo_record_id = ""
            project.qbo_sync_token = ""
            project.qbo_display_name = ""
            project.last_synced_hash = ""
            project.status = "needs_action"
            project.status_reason = reason
            project.save(
                update_fields=[
                    "qbo_record_id",
                    "qbo_sync_token",
                    "qbo_display_name",
                    "last_synced_hash",
                    "status",
                    "status_reason",
                ]
            )
            event_model.objects.create(
                company_id=project.company_id,
                project_id=project.pk,
                kind="needs_action",
                at=now,
                summary=reason,
                details={"previous_qbo_record_id": job, "owner": keeper.pk},
            )


class Migration(migrations.Migration):
    dependencies = [("staging", "0009_import_indexes")]

    # Data only: PostgreSQL refuses to alter a table in the transaction that queued
    # deferred foreign-key checks on it, so the schema changes are 0011.
    operations = [migrations.RunPython(_settle_shared_jobs, migrations.RunPython.noop)]
