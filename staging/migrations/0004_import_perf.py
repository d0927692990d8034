from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("staging", "0003_sync_lease")]

    operations: list[migrations.operations.base.Operation] = []
