"""The customer mapping is permanent: the database itself refuses to change a set customer.

A conditional UPDATE in the mapping service makes racing browsers safe; this trigger makes
every other path (the Django admin, a shell script, raw SQL) safe too.
"""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

MESSAGE = "qbo_customer is permanent once set"

SQLITE_CREATE = f"""
CREATE TRIGGER staging_project_customer_permanent
BEFORE UPDATE OF qbo_customer_id ON staging_stagedproject
FOR EACH ROW
WHEN OLD.qbo_customer_id IS NOT NULL
     AND (NEW.qbo_customer_id IS NULL OR NEW.qbo_customer_id != OLD.qbo_customer_id)
BEGIN
    SELECT RAISE(ABORT, '{MESSAGE}');
END;
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS staging_project_customer_permanent;"

POSTGRES_CREATE = f"""
CREATE OR REPLACE FUNCTION staging_project_customer_permanent() RETURNS trigger AS $$
BEGIN
    IF OLD.qbo_customer_id IS NOT NULL
       AND NEW.qbo_customer_id IS DISTINCT FROM OLD.qbo_customer_id THEN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER staging_project_customer_permanent
BEFORE UPDATE OF qbo_customer_id ON staging_stagedproject
FOR EACH ROW EXECUTE FUNCTION staging_project_customer_permanent();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS staging_project_customer_permanent ON staging_stagedproject;
DROP FUNCTION IF EXISTS staging_project_customer_permanent();
"""


def create_trigger(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_CREATE)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_CREATE)
    else:
        raise RuntimeError(f"No permanent-mapping trigger for database {vendor!r}.")


def drop_trigger(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    schema_editor.execute(POSTGRES_DROP if vendor == "postgresql" else SQLITE_DROP)


class Migration(migrations.Migration):
    dependencies = [("staging", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
