"""Fewer index entries per imported row (docs/benchmarks.md §2).

A first import writes every staged project with one INSERT, and most of its time is the
table's indexes. Dropped: the foreign keys' own indexes on ``company`` (every other index
of the table starts with it) and on a change event's ``project`` (``(project, -at)`` serves
those lookups). Made partial, holding only the rows that have a value: ``qbo_customer``,
``mapped_by`` and ``sync_run`` (empty on an imported row), and the reaper's ``(status,
leased_until)``, which only reads Queued rows.

On SQLite, altering a column rebuilds the table (as adding the generated column of 0008
did), and the rebuild drops the table's triggers: the permanent-mapping trigger of 0002 is
created again at the end.
"""

from importlib import import_module
from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

_PERMANENT_MAPPING = import_module("staging.migrations.0002_permanent_customer_mapping")


def _restore_sqlite_trigger(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(_PERMANENT_MAPPING.SQLITE_DROP)
        schema_editor.execute(_PERMANENT_MAPPING.SQLITE_CREATE)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0002_webhook_events"),
        ("staging", "0008_search_column"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Unapplied, the alterations below rebuild the table again: the trigger comes back last.
        migrations.RunPython(migrations.RunPython.noop, _restore_sqlite_trigger),
        migrations.RemoveIndex(
            model_name="stagedproject",
            name="staging_sta_status_d571d5_idx",
        ),
        migrations.AlterField(
            model_name="changeevent",
            name="project",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="staging.stagedproject",
            ),
        ),
        migrations.AlterField(
            model_name="stagedproject",
            name="company",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="staged_projects",
                to="integrations.company",
            ),
        ),
        migrations.AlterField(
            model_name="stagedproject",
            name="mapped_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="stagedproject",
            name="qbo_customer",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="projects",
                to="integrations.qbocustomer",
            ),
        ),
        migrations.AlterField(
            model_name="stagedproject",
            name="sync_run",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="projects",
                to="staging.run",
            ),
        ),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(
                condition=models.Q(("status", "queued")),
                fields=["status", "leased_until"],
                name="staged_queued_lease",
            ),
        ),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(
                condition=models.Q(("qbo_customer__isnull", False)),
                fields=["qbo_customer"],
                name="staged_qbo_customer",
            ),
        ),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(
                condition=models.Q(("mapped_by__isnull", False)),
                fields=["mapped_by"],
                name="staged_mapped_by",
            ),
        ),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(
                condition=models.Q(("sync_run__isnull", False)),
                fields=["sync_run"],
                name="staged_sync_run",
            ),
        ),
        migrations.RunPython(_restore_sqlite_trigger, _restore_sqlite_trigger),
    ]
