"""Indexes of the Projects tab at 100,000 rows (docs/benchmarks.md §3).

* One btree per offered sort (the page reads 50 index entries instead of sorting every
  row of the company); they replace the (company, name) and (company, start_date) indexes,
  which had no id to break ties and so could not serve the list's ORDER BY.
* On PostgreSQL only: the descending date sorts (``DESC NULLS LAST, id DESC``, which no
  ascending index serves read backwards); SQLite refuses NULLS LAST in an index.
* On PostgreSQL only: trigram GIN indexes for the search box, which filters with
  ``UPPER(col) LIKE UPPER('%text%')`` (Django's ``icontains``) on name, number and client
  name. SQLite, the embedded default, has no pg_trgm: there the operations do nothing.
* The status chips' counts, kept by PostgreSQL itself: statement-level triggers on
  ``staging_stagedproject`` append to ``staging_statuscountdelta`` the change per (company,
  status) of every INSERT, UPDATE and DELETE, in the same transaction (see
  ``StatusCountDelta``); the table is seeded from the rows under a lock. Insert-only:
  concurrent writers (sync workers, imports) never wait on a shared counter row, so no
  deadlock or hot row. On SQLite the chips count the rows, as before.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

# (index name, indexed expression): the expressions are exactly what Django's icontains
# puts on the left of LIKE, so the planner can match them.
SEARCH_INDEXES = (
    ("staged_search_name", 'UPPER("name"::text)'),
    ("staged_search_number", 'UPPER("number"::text)'),
    ("staged_search_client", 'UPPER("client_name"::text)'),
)


# Descending date sorts: NULLS LAST both ways (undated projects at the end).
SORT_INDEXES = (
    ("staged_sort_start_desc", '"company_id", "start_date" DESC NULLS LAST, "id" DESC'),
    ("staged_sort_end_desc", '"company_id", "end_date" DESC NULLS LAST, "id" DESC'),
)


# Each trigger appends the net change per (company, status) of one statement.
COUNT_TRIGGERS = """
CREATE OR REPLACE FUNCTION staging_status_count_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO staging_statuscountdelta (company_id, status, n)
    SELECT company_id, status, count(*) FROM staged_new GROUP BY company_id, status;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION staging_status_count_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO staging_statuscountdelta (company_id, status, n)
    SELECT company_id, status, sum(n) FROM (
        SELECT company_id, status, count(*) AS n FROM staged_new GROUP BY company_id, status
        UNION ALL
        SELECT company_id, status, -count(*) FROM staged_old GROUP BY company_id, status
    ) AS changes
    GROUP BY company_id, status
    HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION staging_status_count_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO staging_statuscountdelta (company_id, status, n)
    SELECT company_id, status, -count(*) FROM staged_old GROUP BY company_id, status;
    RETURN NULL;
END $$;

LOCK TABLE staging_stagedproject IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER staging_status_count_insert AFTER INSERT ON staging_stagedproject
    REFERENCING NEW TABLE AS staged_new
    FOR EACH STATEMENT EXECUTE FUNCTION staging_status_count_insert();
CREATE TRIGGER staging_status_count_update AFTER UPDATE ON staging_stagedproject
    REFERENCING OLD TABLE AS staged_old NEW TABLE AS staged_new
    FOR EACH STATEMENT EXECUTE FUNCTION staging_status_count_update();
CREATE TRIGGER staging_status_count_delete AFTER DELETE ON staging_stagedproject
    REFERENCING OLD TABLE AS staged_old
    FOR EACH STATEMENT EXECUTE FUNCTION staging_status_count_delete();

DELETE FROM staging_statuscountdelta;
INSERT INTO staging_statuscountdelta (company_id, status, n)
SELECT company_id, status, count(*) FROM staging_stagedproject GROUP BY company_id, status;
"""

DROP_COUNT_TRIGGERS = """
DROP TRIGGER IF EXISTS staging_status_count_insert ON staging_stagedproject;
DROP TRIGGER IF EXISTS staging_status_count_update ON staging_stagedproject;
DROP TRIGGER IF EXISTS staging_status_count_delete ON staging_stagedproject;
DROP FUNCTION IF EXISTS staging_status_count_insert();
DROP FUNCTION IF EXISTS staging_status_count_update();
DROP FUNCTION IF EXISTS staging_status_count_delete();
"""


def _postgresql_create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, columns in SORT_INDEXES:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "staging_stagedproject" ({columns})'
        )
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in SEARCH_INDEXES:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "staging_stagedproject" '
            f"USING gin (({expression}) gin_trgm_ops)"
        )
    schema_editor.execute(COUNT_TRIGGERS)


def _postgresql_drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP_COUNT_TRIGGERS)
    for name, _definition in (*SORT_INDEXES, *SEARCH_INDEXES):
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("staging", "0004_import_perf")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.RemoveIndex(model_name="stagedproject", name="staging_sta_company_b0996d_idx"),
        migrations.RemoveIndex(model_name="stagedproject", name="staging_sta_company_7966e8_idx"),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(models.F("company"), models.F("id"), name="staged_sort_serial"),
        ),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(
                models.F("company"), models.F("name"), models.F("id"), name="staged_sort_name"
            ),
        ),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(
                models.F("company"),
                models.F("project_status"),
                models.F("id"),
                name="staged_sort_project_status",
            ),
        ),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(
                models.F("company"),
                models.F("start_date"),
                models.F("id"),
                name="staged_sort_start",
            ),
        ),
        migrations.AddIndex(
            model_name="stagedproject",
            index=models.Index(
                models.F("company"), models.F("end_date"), models.F("id"), name="staged_sort_end"
            ),
        ),
        migrations.CreateModel(
            name="StatusCountDelta",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("company_id", models.BigIntegerField()),
                ("status", models.CharField(max_length=16)),
                ("n", models.BigIntegerField()),
            ],
            options={
                "indexes": [
                    models.Index(fields=["company_id", "status"], name="staged_count_company")
                ],
            },
        ),
        migrations.RunPython(_postgresql_create, _postgresql_drop, elidable=False),
    ]
