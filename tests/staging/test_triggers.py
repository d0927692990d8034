"""The protective triggers of the staged projects exist after every migrate, on both databases.

Runs on whichever database the suite uses (SQLite locally, PostgreSQL in CI through
DATABASE_URL). See staging/triggers.py for what each trigger guards.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import IntegrityError, InternalError, connection, transaction

from staging import triggers as db_triggers
from staging.models import StagedProject
from tests.factories import QboCustomerFactory, StagedProjectFactory

TABLE = StagedProject._meta.db_table


def _installed_triggers() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                [TABLE],
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                [TABLE],
            )
        return {name for (name,) in cursor.fetchall()}


def _expected_triggers() -> set[str]:
    if connection.vendor == "postgresql":
        return {trigger.get_pgid(StagedProject) for trigger in db_triggers.STAGED_PROJECT_TRIGGERS}
    return set(db_triggers.SQLITE_TRIGGERS)


def _assert_mapping_change_refused() -> None:
    project = StagedProjectFactory()
    first, second = QboCustomerFactory.create_batch(2, company=project.company)
    StagedProject.objects.filter(pk=project.pk).update(qbo_customer=first)
    with (
        pytest.raises((IntegrityError, InternalError), match=db_triggers.PERMANENT_MAPPING_MESSAGE),
        transaction.atomic(),
    ):
        StagedProject.objects.filter(pk=project.pk).update(qbo_customer=second)
    project.refresh_from_db()
    assert project.qbo_customer == first


def test_model_meta_declares_every_trigger() -> None:
    assert StagedProject._meta.triggers == db_triggers.STAGED_PROJECT_TRIGGERS


@pytest.mark.django_db
def test_every_protective_trigger_exists_after_migrating() -> None:
    # Exactly the declared ones: on PostgreSQL the hand-written triggers of 0002 and 0005
    # were replaced by pgtrigger's, not doubled.
    assert _installed_triggers() == _expected_triggers()


@pytest.mark.django_db
def test_a_set_mapping_is_refused_with_the_triggers_message() -> None:
    _assert_mapping_change_refused()


@pytest.mark.django_db
def test_declared_triggers_match_the_migrations() -> None:
    # A trigger changed in Meta without its migration would never reach PostgreSQL.
    call_command("makemigrations", "staging", "--check", "--dry-run", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_triggers_survive_a_table_rebuild_and_migrate() -> None:
    # An AlterField makes SQLite rebuild the table (a new table, rows copied, old one
    # dropped), which drops its triggers; PostgreSQL alters the table in place.
    old_field = StagedProject._meta.get_field("qbo_sync_token")
    wider = old_field.clone()
    wider.set_attributes_from_name("qbo_sync_token")
    assert old_field.max_length is not None
    wider.max_length = old_field.max_length + 1
    try:
        with connection.schema_editor() as editor:
            editor.alter_field(StagedProject, old_field, wider)
            editor.alter_field(StagedProject, wider, old_field)
        if connection.vendor == "sqlite":
            assert _installed_triggers() == set()  # the drop this guards against
    finally:
        call_command("migrate", verbosity=0)
    assert _installed_triggers() == _expected_triggers()
    _assert_mapping_change_refused()


@pytest.mark.django_db
def test_sqlite_installer_is_idempotent_and_replaces_an_outdated_trigger() -> None:
    if connection.vendor != "sqlite":
        assert db_triggers.sqlite_triggers_install() == []  # nothing to do elsewhere
        return
    assert db_triggers.sqlite_triggers_install() == []
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER staging_project_customer_permanent")
        cursor.execute(
            "CREATE TRIGGER staging_project_customer_permanent "
            f"BEFORE UPDATE ON {TABLE} BEGIN SELECT 1; END"
        )
    assert db_triggers.sqlite_triggers_install() == ["staging_project_customer_permanent"]
    assert db_triggers.sqlite_triggers_install() == []
    _assert_mapping_change_refused()
