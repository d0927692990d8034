"""The database triggers that protect the staged projects, declared once for both databases.

* The permanent customer mapping: once ``qbo_customer`` is set, the database refuses to
  change or clear it, whatever the path (the Django admin, a shell, raw SQL). The mapping
  service's conditional UPDATE settles races between browsers; this trigger covers the
  rest (staging.services.mapping).
* The status chips' counts (PostgreSQL only): statement-level triggers append to
  ``staging_statuscountdelta`` the net change per (company, status) of every INSERT,
  UPDATE and DELETE on the staged projects (see ``StatusCountDelta`` and
  staging.services.status_counts). SQLite counts the rows instead, so it has none.

On PostgreSQL the triggers are declared in ``StagedProject.Meta.triggers`` with
django-pgtrigger, which writes them into migrations (``AddTrigger``) and whose operations do
nothing on any other database (https://django-pgtrigger.readthedocs.io/en/stable/).

On SQLite, altering a column rebuilds the table and the rebuild silently drops its triggers
(https://www.sqlite.org/lang_altertable.html#otheralter). So SQLite's equivalent is written
here and installed after every ``migrate`` by :func:`sqlite_triggers_install` (connected to
``post_migrate`` in staging.apps): a migration that rebuilds the table cannot leave it
unprotected. tests/staging/test_triggers.py checks both databases.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pgtrigger
from django.db import DEFAULT_DB_ALIAS, connections

# The error the database raises; on PostgreSQL as integrity_constraint_violation, so Django
# raises IntegrityError (SQLite's RAISE(ABORT) is an IntegrityError too).
PERMANENT_MAPPING_MESSAGE = "qbo_customer is permanent once set"

# --- PostgreSQL: declared with django-pgtrigger in StagedProject.Meta.triggers ------------


def _plpgsql(body: str) -> str:
    return textwrap.dedent(body).strip()


permanent_customer_mapping = pgtrigger.Trigger(
    name="qbo_customer_permanent",
    when=pgtrigger.Before,
    operation=pgtrigger.UpdateOf("qbo_customer_id"),
    condition=pgtrigger.Q(
        old__qbo_customer__isnull=False,
        old__qbo_customer__df=pgtrigger.F("new__qbo_customer"),
    ),
    func=(
        f"RAISE EXCEPTION '{PERMANENT_MAPPING_MESSAGE}' "
        "USING ERRCODE = 'integrity_constraint_violation';"
    ),
)

# Each count trigger appends the net change per (company, status) of one statement.
# Insert-only: concurrent writers (sync workers, imports) never wait on a shared counter row.
status_count_insert = pgtrigger.Trigger(
    name="status_count_insert",
    when=pgtrigger.After,
    operation=pgtrigger.Insert,
    level=pgtrigger.Statement,
    referencing=pgtrigger.Referencing(new="staged_new"),
    func=_plpgsql("""
    INSERT INTO staging_statuscountdelta (company_id, status, n)
    SELECT company_id, status, count(*) FROM staged_new GROUP BY company_id, status;
    RETURN NULL;
    """),
)

status_count_update = pgtrigger.Trigger(
    name="status_count_update",
    when=pgtrigger.After,
    operation=pgtrigger.Update,
    level=pgtrigger.Statement,
    referencing=pgtrigger.Referencing(old="staged_old", new="staged_new"),
    func=_plpgsql("""
    INSERT INTO staging_statuscountdelta (company_id, status, n)
    SELECT company_id, status, sum(n) FROM (
        SELECT company_id, status, count(*) AS n FROM staged_new GROUP BY company_id, status
        UNION ALL
        SELECT company_id, status, -count(*) FROM staged_old GROUP BY company_id, status
    ) AS changes
    GROUP BY company_id, status
    HAVING sum(n) <> 0;
    RETURN NULL;
    """),
)

status_count_delete = pgtrigger.Trigger(
    name="status_count_delete",
    when=pgtrigger.After,
    operation=pgtrigger.Delete,
    level=pgtrigger.Statement,
    referencing=pgtrigger.Referencing(old="staged_old"),
    func=_plpgsql("""
    INSERT INTO staging_statuscountdelta (company_id, status, n)
    SELECT company_id, status, -count(*) FROM staged_old GROUP BY company_id, status;
    RETURN NULL;
    """),
)

STAGED_PROJECT_TRIGGERS = [
    permanent_customer_mapping,
    status_count_insert,
    status_count_update,
    status_count_delete,
]

# --- SQLite: the same rules, installed after every migrate ------------------------------

# The name migration 0002 gave it, so databases migrated before pgtrigger keep one trigger.
SQLITE_TRIGGERS = {
    "staging_project_customer_permanent": f"""
CREATE TRIGGER staging_project_customer_permanent
BEFORE UPDATE OF qbo_customer_id ON staging_stagedproject
FOR EACH ROW
WHEN OLD.qbo_customer_id IS NOT NULL
     AND (NEW.qbo_customer_id IS NULL OR NEW.qbo_customer_id != OLD.qbo_customer_id)
BEGIN
    SELECT RAISE(ABORT, '{PERMANENT_MAPPING_MESSAGE}');
END
""",
}


def _normalized(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip().rstrip(";").strip()


def sqlite_triggers_install(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Create every SQLite trigger that is missing or differs from its declaration.

    Idempotent; returns the names (re)created. Does nothing on other databases."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return []
    if "staging_stagedproject" not in connection.introspection.table_names():
        return []  # migrated backwards past the table
    created: list[str] = []
    with connection.cursor() as cursor:
        for name, sql in SQLITE_TRIGGERS.items():
            cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = %s", [name]
            )
            row = cursor.fetchone()
            if row is not None and _normalized(row[0]) == _normalized(sql):
                continue
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(sql)
            created.append(name)
    return created


def sqlite_triggers_after_migrate(sender: Any, *, using: str, **kwargs: Any) -> None:
    """post_migrate receiver: every ``migrate`` restores what a table rebuild dropped."""
    sqlite_triggers_install(using=using)
