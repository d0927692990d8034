from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, InternalError, connection, transaction

from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.services.mapping import (
    MappingConflict,
    MappingError,
    customer_suggestions,
    manual_map_preview,
    project_manual_map,
    project_map_customer,
)
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory


def test_mapping_moves_needs_action_to_needs_sync_and_records_who(personas: Personas) -> None:
    project = StagedProjectFactory(company=personas.company)
    customer = QboCustomerFactory(company=personas.company, display_name="Cascade County Schools")
    mapped = project_map_customer(
        company=personas.company,
        project_id=project.pk,
        qbo_customer_id=customer.pk,
        actor=personas.operator,
    )
    assert mapped.status == SyncStatus.NEEDS_SYNC
    assert mapped.qbo_customer == customer
    assert mapped.mapped_by == personas.operator
    event = ChangeEvent.objects.get(project=project, kind=EventKind.MAPPED)
    assert event.actor == personas.operator
    assert "Cascade County Schools" in event.summary


def test_second_mapping_is_a_conflict_and_changes_nothing(personas: Personas) -> None:
    project = StagedProjectFactory(company=personas.company)
    first, second = QboCustomerFactory.create_batch(2, company=personas.company)
    project_map_customer(
        company=personas.company,
        project_id=project.pk,
        qbo_customer_id=first.pk,
        actor=personas.admin,
    )
    with pytest.raises(MappingConflict, match="permanent"):
        project_map_customer(
            company=personas.company,
            project_id=project.pk,
            qbo_customer_id=second.pk,
            actor=personas.admin,
        )
    project.refresh_from_db()
    assert project.qbo_customer == first
    assert ChangeEvent.objects.filter(project=project, kind=EventKind.MAPPED).count() == 1


@pytest.mark.parametrize(
    ("attrs", "message"),
    [({"is_job": True}, "sub-customer"), ({"active": False}, "inactive")],
)
def test_jobs_and_inactive_customers_cannot_be_parents(personas: Personas, attrs, message) -> None:
    project = StagedProjectFactory(company=personas.company)
    customer = QboCustomerFactory(company=personas.company, **attrs)
    with pytest.raises(MappingError, match=message):
        project_map_customer(
            company=personas.company,
            project_id=project.pk,
            qbo_customer_id=customer.pk,
            actor=personas.admin,
        )


def test_another_companys_customer_is_refused(personas: Personas) -> None:
    project = StagedProjectFactory(company=personas.company)
    foreign = QboCustomerFactory(company=personas.other_company)
    with pytest.raises(MappingError):
        project_map_customer(
            company=personas.company,
            project_id=project.pk,
            qbo_customer_id=foreign.pk,
            actor=personas.admin,
        )


def test_database_trigger_rejects_a_direct_change(personas: Personas) -> None:
    project = StagedProjectFactory(company=personas.company)
    first, second = QboCustomerFactory.create_batch(2, company=personas.company)
    StagedProject.objects.filter(pk=project.pk).update(qbo_customer=first)  # first set: allowed
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        StagedProject.objects.filter(pk=project.pk).update(qbo_customer=second)
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        StagedProject.objects.filter(pk=project.pk).update(qbo_customer=None)
    with (
        pytest.raises((IntegrityError, InternalError)),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE staging_stagedproject SET qbo_customer_id = %s WHERE id = %s",
            [second.pk, project.pk],
        )
    project.refresh_from_db()
    assert project.qbo_customer == first


@pytest.mark.django_db(transaction=True)
def test_racing_mappings_have_exactly_one_winner(personas: Personas) -> None:
    project = StagedProjectFactory(company=personas.company)
    customers = QboCustomerFactory.create_batch(6, company=personas.company)
    barrier = threading.Barrier(len(customers))
    outcomes: list[str] = []

    def attempt(customer_pk: int) -> None:
        barrier.wait()
        try:
            project_map_customer(
                company=personas.company,
                project_id=project.pk,
                qbo_customer_id=customer_pk,
                actor=personas.admin,
            )
            outcomes.append("won")
        except MappingConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(c.pk,)) for c in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    assert ChangeEvent.objects.filter(project=project, kind=EventKind.MAPPED).count() == 1


def test_suggestion_matches_client_name_without_applying_it(personas: Personas) -> None:
    project = StagedProjectFactory(company=personas.company, client_name="Cascade County Schools")
    exact = QboCustomerFactory(company=personas.company, display_name="Cascade County Schools")
    QboCustomerFactory(company=personas.company, display_name="Unrelated LLC")
    suggestions = customer_suggestions(project=project)
    assert suggestions[0].customer == exact
    assert "Same name" in suggestions[0].reason
    project.refresh_from_db()
    assert project.qbo_customer is None


def test_manual_mapping_to_a_job_maps_its_parent_and_links_the_record(personas: Personas) -> None:
    parent = QboCustomerFactory(company=personas.company, qbo_id="41", display_name="Northgate")
    job = QboCustomerFactory(
        company=personas.company,
        qbo_id="87",
        is_job=True,
        parent_qbo_id="41",
        display_name="Northgate Clinic",
        sync_token="3",
    )
    project = StagedProjectFactory(company=personas.company)
    preview = manual_map_preview(company=personas.company, project=project, qbo_customer_id=job.pk)
    assert any("permanently" in line for line in preview)
    linked = project_manual_map(
        company=personas.company,
        project_id=project.pk,
        qbo_customer_id=job.pk,
        actor=personas.operator,
    )
    assert linked.qbo_customer == parent
    assert (linked.qbo_record_id, linked.qbo_sync_token) == ("87", "3")
    assert linked.status == SyncStatus.NEEDS_SYNC
    kinds = set(ChangeEvent.objects.filter(project=project).values_list("kind", flat=True))
    assert kinds == {EventKind.MAPPED, EventKind.MANUALLY_MAPPED}


def test_manual_mapping_never_changes_the_customer(personas: Personas) -> None:
    mine = QboCustomerFactory(company=personas.company, qbo_id="41")
    QboCustomerFactory(company=personas.company, qbo_id="50")
    other_job = QboCustomerFactory(
        company=personas.company, qbo_id="90", is_job=True, parent_qbo_id="50"
    )
    project = StagedProjectFactory(company=personas.company)
    project_map_customer(
        company=personas.company,
        project_id=project.pk,
        qbo_customer_id=mine.pk,
        actor=personas.admin,
    )
    with pytest.raises(MappingError, match="not under"):
        project_manual_map(
            company=personas.company,
            project_id=project.pk,
            qbo_customer_id=other_job.pk,
            actor=personas.admin,
        )
    project.refresh_from_db()
    assert project.qbo_customer == mine and project.qbo_record_id == ""
