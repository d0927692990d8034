"""One QBO job per project: every route that links a project to a QBO record meets the
database's unique constraint (one_project_per_qbo_job), and refuses a job another project
holds with a message that names that project.

Routes: the permanent customer mapping, Manual Mapping (preview and save, and a race past
the service's check), adoption of an existing job found by the lookup before a create,
adoption after QBO answers 6240 to a create, a merge webhook, and the sync's outcome writer.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from integrations.models import QboCustomer, WebhookEvent
from integrations.services.webhooks import webhook_process
from qbo_client.emulator import QboEmulator
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.services import mapping
from staging.services.mapping import (
    MappingError,
    QboJobTaken,
    manual_map_preview,
    project_manual_map,
    project_map_customer,
)
from staging.sync import push as qbo_push
from staging.sync import send as qbo_send
from staging.sync.outcomes import Outcome, projects_record_outcomes
from tests.conftest import Personas
from tests.factories import CompanyFactory, QboCustomerFactory, StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, refresh_customers
from tests.staging.test_sync_qbo import _jobs_named, _parent, _sync_in_process

HX = {"HX-Request": "true"}


def _job_and_owner(personas: Personas) -> tuple[QboCustomer, QboCustomer, StagedProject]:
    parent = QboCustomerFactory(company=personas.company, qbo_id="41", display_name="Northgate")
    job = QboCustomerFactory(
        company=personas.company,
        qbo_id="87",
        is_job=True,
        parent_qbo_id="41",
        display_name="Northgate Clinic",
        sync_token="3",
    )
    owner = StagedProjectFactory(
        company=personas.company,
        number="Q-1",
        name="Clinic Expansion",
        qbo_customer=parent,
        qbo_record_id="87",
        qbo_sync_token="3",
        status=SyncStatus.SYNCED,
    )
    return parent, job, owner


# --- The database ---------------------------------------------------------------------------


def test_database_refuses_two_projects_on_one_qbo_job(personas: Personas) -> None:
    StagedProjectFactory(company=personas.company, qbo_record_id="87")
    with pytest.raises(IntegrityError), transaction.atomic():
        StagedProjectFactory(company=personas.company, qbo_record_id="87")
    # The same Id in another company (another realm) and any number of unlinked rows are fine.
    StagedProjectFactory(company=CompanyFactory(), qbo_record_id="87")
    StagedProjectFactory.create_batch(2, company=personas.company, qbo_record_id="")
    assert StagedProject.objects.filter(qbo_record_id="87").count() == 2


def test_qbo_ids_longer_than_32_characters_are_stored_whole(personas: Personas) -> None:
    long_id = "9" * 40
    project = StagedProjectFactory(
        company=personas.company, qbo_record_id=long_id, qbo_sync_token="1" * 40
    )
    customer = QboCustomerFactory(company=personas.company, qbo_id=long_id, parent_qbo_id=long_id)
    project.refresh_from_db()
    customer.refresh_from_db()
    assert (project.qbo_record_id, customer.qbo_id) == (long_id, long_id)


# --- Manual Mapping -------------------------------------------------------------------------


def test_manual_mapping_refuses_a_job_another_project_holds(personas: Personas) -> None:
    parent, job, _owner = _job_and_owner(personas)
    project = StagedProjectFactory(company=personas.company, name="Clinic Parking")
    project_map_customer(
        company=personas.company, project_id=project.pk, qbo_customer_id=parent.pk, actor=None
    )
    with pytest.raises(QboJobTaken, match="Q-1 Clinic Expansion"):
        manual_map_preview(company=personas.company, project=project, qbo_customer_id=job.pk)
    with pytest.raises(QboJobTaken, match="already belongs to project “Q-1 Clinic Expansion”"):
        project_manual_map(
            company=personas.company,
            project_id=project.pk,
            qbo_customer_id=job.pk,
            actor=personas.operator,
        )
    project.refresh_from_db()
    assert project.qbo_record_id == "" and project.status == SyncStatus.NEEDS_SYNC
    assert not ChangeEvent.objects.filter(project=project, kind=EventKind.MANUALLY_MAPPED)


def test_manual_mapping_views_answer_409_naming_the_owner(personas: Personas) -> None:
    parent, job, owner = _job_and_owner(personas)
    project = StagedProjectFactory(
        company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC
    )
    operator = personas.client_for(personas.operator)
    preview = operator.get(
        reverse("portfolio:project_manual_map_preview", args=[project.pk]),
        {"qbo_customer": job.pk},
        headers=HX,
    )
    assert preview.status_code == 409
    assert "Q-1 Clinic Expansion" in preview.content.decode()
    assert "Confirm Manual Mapping" not in preview.content.decode()
    for headers in (HX, {}):
        saved = operator.post(
            reverse("portfolio:project_manual_map_save", args=[project.pk]),
            {"qbo_customer": job.pk},
            headers=headers,
        )
        assert saved.status_code == 409
        assert "Q-1 Clinic Expansion" in saved.content.decode()
    project.refresh_from_db()
    owner.refresh_from_db()
    assert project.qbo_record_id == "" and owner.qbo_record_id == "87"


def test_manual_mapping_picker_shows_a_held_job_as_linked_and_not_selectable(
    personas: Personas,
) -> None:
    parent, job, _owner = _job_and_owner(personas)
    free = QboCustomerFactory(
        company=personas.company, qbo_id="88", is_job=True, parent_qbo_id="41", display_name="Free"
    )
    project = StagedProjectFactory(
        company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC
    )
    html = (
        personas.client_for(personas.operator)
        .get(reverse("portfolio:project_manual_map", args=[project.pk]), headers=HX)
        .content.decode()
    )
    held = html[html.index("Northgate Clinic") - 400 : html.index("Northgate Clinic") + 300]
    assert "disabled" in held and "Linked to project <bdi>Q-1 Clinic Expansion</bdi>" in held
    assert f"qbo_customer={job.pk}&" not in html  # no preview link for the held job
    assert f"qbo_customer={free.pk}&" in html


def test_manual_mapping_that_loses_a_race_is_refused_by_the_database(
    personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, job, _owner = _job_and_owner(personas)
    project = StagedProjectFactory(
        company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC
    )
    # The service's check ran before the other project took the job: only the constraint
    # is left to refuse, and the answer is the same clear conflict, not an error page.
    monkeypatch.setattr(mapping, "_job_free_for", lambda **_: None)
    with pytest.raises(QboJobTaken, match="Q-1 Clinic Expansion"):
        project_manual_map(
            company=personas.company,
            project_id=project.pk,
            qbo_customer_id=job.pk,
            actor=personas.operator,
        )
    project.refresh_from_db()
    assert project.qbo_record_id == ""


def test_manual_mapping_to_its_own_job_again_is_allowed(personas: Personas) -> None:
    _parent_customer, job, owner = _job_and_owner(personas)
    linked = project_manual_map(
        company=personas.company, project_id=owner.pk, qbo_customer_id=job.pk, actor=None
    )
    assert linked.qbo_record_id == "87"


def test_map_refuses_a_customer_that_is_another_projects_job(personas: Personas) -> None:
    # The cache lists the job as a top-level customer (refreshed before it got its parent).
    _parent_customer, job, _owner = _job_and_owner(personas)
    QboCustomer.objects.filter(pk=job.pk).update(is_job=False, parent_qbo_id="")
    project = StagedProjectFactory(company=personas.company)
    with pytest.raises(MappingError, match="QuickBooks job of project “Q-1 Clinic Expansion”"):
        project_map_customer(
            company=personas.company, project_id=project.pk, qbo_customer_id=job.pk, actor=None
        )
    project.refresh_from_db()
    assert project.qbo_customer is None


# --- The sync -------------------------------------------------------------------------------


@pytest.fixture
def connected(personas: Personas, qbo_emulator: QboEmulator) -> QboEmulator:
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    return qbo_emulator


def _synced_owner_and_twin(
    personas: Personas, emulator: QboEmulator, twin_name: str = "Imaging Wing"
) -> tuple[Any, Any, Any]:
    """Q synced its job 'Imaging Wing'; P computes the same QBO name under the same parent."""
    parent = _parent(personas)
    owner = StagedProjectFactory(
        company=personas.company,
        name="Imaging Wing",
        qbo_customer=parent,
        status=SyncStatus.NEEDS_SYNC,
    )
    _sync_in_process(personas)
    owner.refresh_from_db()
    assert owner.status == SyncStatus.SYNCED
    [job] = _jobs_named(emulator, {"Imaging Wing"})
    twin = StagedProjectFactory(
        company=personas.company,
        name=twin_name,
        number="P-77",
        qbo_customer=parent,
        status=SyncStatus.NEEDS_SYNC,
    )
    return owner, twin, job


def test_sync_never_adopts_a_job_another_project_holds(
    personas: Personas, connected: QboEmulator
) -> None:
    owner, twin, job = _synced_owner_and_twin(personas, connected)
    _sync_in_process(personas, StagedProject.objects.filter(pk=twin.pk))
    twin.refresh_from_db()
    # The twin gets a job of its own, under its number; Q's job is not touched.
    assert twin.status == SyncStatus.SYNCED
    assert twin.qbo_display_name == "Imaging Wing (P-77)"
    assert twin.qbo_record_id not in ("", job["Id"])
    [after] = _jobs_named(connected, {"Imaging Wing"})
    assert after["SyncToken"] == job["SyncToken"]  # nothing was written to Q's job
    owner.refresh_from_db()
    assert owner.qbo_record_id == job["Id"] and owner.status == SyncStatus.SYNCED


def test_sync_never_adopts_another_projects_job_after_a_6240(
    personas: Personas, connected: QboEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Alike only as QBO compares names, so only QBO's answer tells the names apart.
    owner, twin, job = _synced_owner_and_twin(personas, connected, twin_name="imaging  WING")
    # The lookup before the create misses the job (as when another worker creates it in
    # between): QBO answers the create with 6240, and the push looks again.
    lookup = qbo_push.lookup_names
    calls: list[int] = []

    def missing_first(client: Any, names: list[str]) -> Any:
        calls.append(1)
        return {} if len(calls) == 1 else lookup(client, names)

    monkeypatch.setattr(qbo_push, "lookup_names", missing_first)  # before the create
    monkeypatch.setattr(qbo_send, "lookup_names", missing_first)  # after its 6240
    _sync_in_process(personas, StagedProject.objects.filter(pk=twin.pk))
    assert len(calls) == 2
    twin.refresh_from_db()
    assert twin.status == SyncStatus.NEEDS_ACTION and twin.failure_code == "6240"
    assert twin.qbo_record_id == ""
    assert f"already belongs to project “{owner}”" in twin.status_reason
    [after] = _jobs_named(connected, {"Imaging Wing"})
    assert after["SyncToken"] == job["SyncToken"]


def test_outcome_linking_a_held_job_becomes_needs_action_and_the_rest_are_written(
    personas: Personas,
) -> None:
    holder = StagedProjectFactory(company=personas.company, qbo_record_id="87")
    lease = uuid.uuid4()
    late, fine = StagedProjectFactory.create_batch(
        2, company=personas.company, status=SyncStatus.QUEUED, lease_id=lease
    )
    written = projects_record_outcomes(
        lease=lease,
        outcomes=[
            (late, Outcome(SyncStatus.SYNCED, qbo_record_id="87", sync_token="4")),
            (fine, Outcome(SyncStatus.SYNCED, qbo_record_id="88", sync_token="0")),
        ],
    )
    assert written == 2
    late.refresh_from_db()
    fine.refresh_from_db()
    assert late.status == SyncStatus.NEEDS_ACTION and late.qbo_record_id == ""
    assert late.failure_code == "duplicate-job" and f"project “{holder}”" in late.status_reason
    assert fine.status == SyncStatus.SYNCED and fine.qbo_record_id == "88"
    assert ChangeEvent.objects.filter(project=late, kind=EventKind.NEEDS_ACTION).count() == 1


# --- Webhooks -------------------------------------------------------------------------------


def test_merge_webhook_flags_the_project_and_its_job_cannot_go_to_the_survivor(
    personas: Personas, connected: QboEmulator
) -> None:
    parent = _parent(personas)
    merged, survivor = StagedProjectFactory.create_batch(
        2, company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC
    )
    _sync_in_process(personas)
    merged.refresh_from_db()
    survivor.refresh_from_db()
    refresh_customers(personas.company)
    realm = control(connected, "GET", "state")["realm_id"]
    event = WebhookEvent.objects.create(
        dedupe_key="merge-1",
        realm_id=realm,
        entity="Customer",
        entity_id=merged.qbo_record_id,
        operation="Merge",
    )
    webhook_process(event_id=event.pk)
    merged.refresh_from_db()
    assert merged.status == SyncStatus.NEEDS_ACTION and "merged" in merged.status_reason
    survivor_job = QboCustomer.objects.get(company=personas.company, qbo_id=survivor.qbo_record_id)
    # The fix offered (Manual Mapping to the record it was merged into) cannot take a job
    # another project holds.
    with pytest.raises(QboJobTaken, match=str(survivor)):
        project_manual_map(
            company=personas.company,
            project_id=merged.pk,
            qbo_customer_id=survivor_job.pk,
            actor=personas.operator,
        )
    survivor.refresh_from_db()
    assert survivor.status == SyncStatus.SYNCED
    assert StagedProject.objects.filter(qbo_record_id=survivor.qbo_record_id).count() == 1


# --- Databases that already hold shared jobs (migration 0010) -------------------------------


def test_migration_settles_projects_that_already_share_a_job(personas: Personas) -> None:
    from importlib import import_module

    from django.apps import apps
    from django.db import connection

    settle = import_module("staging.migrations.0010_one_project_per_qbo_job")._settle_shared_jobs
    with connection.cursor() as cursor:  # as before 0011 (rolled back with the test)
        cursor.execute("DROP INDEX one_project_per_qbo_job")
    first = StagedProjectFactory(
        company=personas.company, number="Q-1", name="Clinic", qbo_record_id="87"
    )
    second = StagedProjectFactory(
        company=personas.company,
        number="P-2",
        name="Parking",
        qbo_record_id="87",
        qbo_sync_token="5",
        status=SyncStatus.SYNCED,
    )
    alone = StagedProjectFactory(
        company=personas.company, qbo_record_id="88", status=SyncStatus.SYNCED
    )
    settle(apps, None)
    first.refresh_from_db()
    second.refresh_from_db()
    alone.refresh_from_db()
    assert (first.qbo_record_id, first.status) == ("87", SyncStatus.NEEDS_SYNC)
    assert (second.qbo_record_id, second.qbo_sync_token, second.status) == (
        "",
        "",
        SyncStatus.NEEDS_ACTION,
    )
    assert "belongs to project “Q-1 Clinic”" in second.status_reason
    assert (alone.qbo_record_id, alone.status) == ("88", SyncStatus.SYNCED)
    assert ChangeEvent.objects.filter(project=second, kind=EventKind.NEEDS_ACTION).count() == 1
    assert "“P-2 Parking”" in ChangeEvent.objects.get(project=first).summary
