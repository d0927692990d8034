"""The Projects tab's search on PostgreSQL: one trigram index over one search key.

The search matched ``UPPER(name) LIKE … OR UPPER(number) LIKE … OR UPPER(client_name) LIKE
…`` with a trigram index per column. PostgreSQL prices UPPER at one default operator cost,
so once its statistics say a search matches many rows it filters every row of the company
instead of reading the indexes (88-100 ms against 24 ms for 1 row in 6 of 100,000,
docs/benchmarks.md §3). ``staging_search_key`` declares its real cost (plpgsql, so it is
not inlined and the COST holds) and one GIN index covers the three columns, which also
leaves one index to maintain on every insert instead of three. SQLite keeps ``icontains``.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

# \x1f (unit separator) between the fields: a search never spans two of them.
CREATE = r"""
CREATE OR REPLACE FUNCTION staging_search_key(name text, number text, client text)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE COST 1000 AS $$
BEGIN
    RETURN upper(coalesce(name, '') || E'\x1f' || coalesce(number, '') || E'\x1f'
                 || coalesce(client, ''));
END $$;
CREATE INDEX IF NOT EXISTS staged_search_key ON staging_stagedproject
    USING gin (staging_search_key(name, number::text, client_name::text) gin_trgm_ops);
DROP INDEX IF EXISTS staged_search_name;
DROP INDEX IF EXISTS staged_search_number;
DROP INDEX IF EXISTS staged_search_client;
"""

DROP = """
CREATE INDEX IF NOT EXISTS staged_search_name ON staging_stagedproject
    USING gin ((UPPER("name"::text)) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS staged_search_number ON staging_stagedproject
    USING gin ((UPPER("number"::text)) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS staged_search_client ON staging_stagedproject
    USING gin ((UPPER("client_name"::text)) gin_trgm_ops);
DROP INDEX IF EXISTS staged_search_key;
DROP FUNCTION IF EXISTS staging_search_key(text, text, text);
"""


def _create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def _drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("staging", "0006_naming_rule_event")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.RunPython(_create, _drop, elidable=False),
    ]
