"""One QBO job per project (2 of 2): the unique constraint; Id and SyncToken columns of 64.

On SQLite, altering a column rebuilds the table and drops its triggers: the permanent-mapping
trigger of 0002 is created again at the end (as 0009 does).
"""

from importlib import import_module
from typing import Any

from django.db import migrations, models

_PERMANENT_MAPPING = import_module("staging.migrations.0002_permanent_customer_mapping")


def _restore_sqlite_trigger(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(_PERMANENT_MAPPING.SQLITE_DROP)
        schema_editor.execute(_PERMANENT_MAPPING.SQLITE_CREATE)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0003_qbo_id_length"),
        ("staging", "0010_one_project_per_qbo_job"),
    ]

    operations = [
        # Unapplied, the alterations below rebuild the table again: the trigger comes back last.
        migrations.RunPython(migrations.RunPython.noop, _restore_sqlite_trigger),
        migrations.AlterField(
            model_name="stagedproject",
            name="qbo_record_id",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="stagedproject",
            name="qbo_sync_token",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddConstraint(
            model_name="stagedproject",
            constraint=models.UniqueConstraint(
                condition=models.Q(("qbo_record_id", ""), _negated=True),
                fields=("company", "qbo_record_id"),
                name="one_project_per_qbo_job",
            ),
        ),
        migrations.RunPython(_restore_sqlite_trigger, migrations.RunPython.noop),
    ]
