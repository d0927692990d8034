from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("staging", "0004_import_perf")]

    operations: list[migrations.operations.base.Operation] = []
