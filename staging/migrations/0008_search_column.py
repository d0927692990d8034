"""The Projects tab's search reads a stored column instead of a function of three columns.

Migration 0007 indexed ``staging_search_key(name, number, client_name)``, a plpgsql function
declaring its cost so that PostgreSQL would read the trigram index for a broad search. A
match found in the index is rechecked against the heap row, and that recheck called the
function once per candidate: a broad search (1 row in 6 of 100,000) spent 30-42 ms of its
count in those calls. ``search_key`` is the same text, computed by the database on every
write and stored in the row (a generated column, so the application never writes it), so the
recheck is a plain ``LIKE`` on a column (14 ms for the same count), and the planner has real
statistics for it. SQLite gets the column too, and the same query; the trigram index is
PostgreSQL's only.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import django.db.models.functions.text
from django.db import migrations, models

CREATE_INDEX = """
CREATE INDEX IF NOT EXISTS staged_search ON staging_stagedproject
    USING gin (search_key gin_trgm_ops);
DROP INDEX IF EXISTS staged_search_key;
DROP FUNCTION IF EXISTS staging_search_key(text, text, text);
"""


def _create_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_INDEX)


def _drop_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS staged_search;")
        schema_editor.execute(import_module("staging.migrations.0007_search_key").CREATE)


class Migration(migrations.Migration):
    dependencies = [("staging", "0007_search_key")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="stagedproject",
            name="search_key",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Upper(
                    django.db.models.functions.text.Concat(
                        "name",
                        models.Value("\x1f"),
                        "number",
                        models.Value("\x1f"),
                        "client_name",
                        output_field=models.TextField(),
                    )
                ),
                output_field=models.TextField(),
            ),
        ),
        migrations.RunPython(_create_index, _drop_index, elidable=False),
    ]
