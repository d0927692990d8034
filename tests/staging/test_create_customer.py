"""Create the missing customer in QuickBooks from the picker, then map (issue #15): through
the real client and the QBO emulator; duplicate-safe on a retry after a lost answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse

from integrations.models import QboCustomer
from integrations.services.qbo_customers import CustomerNotCreated, qbo_customer_create
from qbo_client.emulator import QboEmulator
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.services.mapping import customer_to_create, project_create_customer_and_map
from tests.conftest import Personas
from tests.factories import StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, refresh_customers

MISSING = "Oakmont Church of the Valley"  # a Linarc demo client the QBO demo seed leaves out


@pytest.fixture
def connected(personas: Personas, qbo_emulator: QboEmulator) -> Iterator[QboEmulator]:
    connect_company(personas.company)
    refresh_customers(personas.company)
    yield qbo_emulator


def _in_qbo(emulator: QboEmulator, name: str) -> list[dict[str, Any]]:
    return [c for c in control(emulator, "GET", "state")["Customer"] if c["DisplayName"] == name]


def _project(personas: Personas, client: str = MISSING) -> StagedProject:
    return StagedProjectFactory(
        company=personas.company, client_name=client, status=SyncStatus.NEEDS_ACTION
    )


def test_the_picker_offers_to_create_a_client_quickbooks_does_not_have(
    personas: Personas, connected: QboEmulator
) -> None:
    missing = _project(personas)
    known = _project(personas, "Cascade County Schools")
    assert customer_to_create(project=missing) == MISSING
    assert customer_to_create(project=known) == ""

    client = personas.client_for(personas.operator)
    url = reverse("portfolio:project_customer_options", args=[missing.pk])
    options = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert f"+ Create “<bdi>{MISSING}</bdi>” in QuickBooks" in options
    assert reverse("portfolio:project_create_customer", args=[missing.pk]) in options


def test_create_then_map_makes_one_customer_and_maps_permanently(
    personas: Personas, connected: QboEmulator
) -> None:
    project = _project(personas)

    mapped, existed = project_create_customer_and_map(
        company=personas.company, project_id=project.pk, actor=personas.operator
    )

    assert existed is False
    [created] = _in_qbo(connected, MISSING)
    assert mapped.qbo_customer is not None and mapped.qbo_customer.qbo_id == created["Id"]
    assert mapped.status == SyncStatus.NEEDS_SYNC
    assert QboCustomer.objects.get(company=personas.company, qbo_id=created["Id"]).active
    assert ChangeEvent.objects.filter(project=project, kind=EventKind.MAPPED).count() == 1

    # Another project of the same client: QuickBooks has the name now; nothing is created.
    sibling = _project(personas)
    _mapped, existed = project_create_customer_and_map(
        company=personas.company, project_id=sibling.pk, actor=personas.operator
    )
    assert existed is True and len(_in_qbo(connected, MISSING)) == 1


def test_a_lost_answer_is_resent_with_the_same_requestid_and_creates_one_customer(
    personas: Personas, connected: QboEmulator
) -> None:
    project = _project(personas)
    control(connected, "POST", "counters/reset")
    # QuickBooks creates the customer, then the connection drops before the answer.
    control(connected, "POST", "faults", json={"kind": "lost_response", "path": "/customer"})

    mapped, existed = project_create_customer_and_map(
        company=personas.company, project_id=project.pk, actor=personas.operator
    )

    # The client sent the create again with the same requestid; QuickBooks answered with
    # the customer the first one made.
    assert control(connected, "GET", "counters")["routes"].get("POST customer") == 2
    assert existed is False and len(_in_qbo(connected, MISSING)) == 1
    assert mapped.qbo_customer is not None and mapped.qbo_customer.display_name == MISSING


def test_the_request_id_replays_the_first_create_instead_of_a_second(
    personas: Personas, connected: QboEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qbo_client.client import QboClient

    first = qbo_customer_create(company=personas.company, display_name="Juniper Hills Winery")
    # A retry that does not see the first customer in the look-up (QBO's query lagging
    # behind its writes) still gets the same customer back, through the requestid.
    monkeypatch.setattr(QboClient, "find_customers_by_display_name", lambda self, name: [])
    again = qbo_customer_create(company=personas.company, display_name="Juniper  Hills Winery")
    assert again.customer.qbo_id == first.customer.qbo_id
    assert len(_in_qbo(connected, "Juniper Hills Winery")) == 1


def test_the_view_creates_maps_and_answers_with_the_row(
    personas: Personas, connected: QboEmulator
) -> None:
    project = _project(personas)
    url = reverse("portfolio:project_create_customer", args=[project.pk])
    client = personas.client_for(personas.operator)

    answer = client.post(url, {"serial": "1"}, HTTP_HX_REQUEST="true")

    assert answer.status_code == 200
    text = answer.content.decode()
    assert f"Created “<bdi>{MISSING}</bdi>” in QuickBooks" in text
    assert 'class="customer-locked"' in text
    again = client.post(url, HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and "the mapping is permanent" in again.content.decode()
    viewer = personas.client_for(personas.viewer).post(url, HTTP_HX_REQUEST="true")
    assert viewer.status_code == 403


def test_without_a_quickbooks_connection_the_row_says_so(personas: Personas) -> None:
    project = _project(personas)
    url = reverse("portfolio:project_create_customer", args=[project.pk])
    answer = personas.client_for(personas.operator).post(url, HTTP_HX_REQUEST="true")
    assert answer.status_code == 409
    assert "QuickBooks is not connected" in answer.content.decode()
    project.refresh_from_db()
    assert project.qbo_customer is None


def test_quickbooks_refusing_the_name_leaves_the_row_unmapped_with_the_reason(
    personas: Personas, connected: QboEmulator
) -> None:
    # A vendor already holds the name: QuickBooks names are unique across customers,
    # vendors and employees, and its look-up of customers does not see vendors.
    project = _project(personas, "Harbor Electric")
    with pytest.raises(CustomerNotCreated, match="QuickBooks did not create “Harbor Electric”"):
        project_create_customer_and_map(
            company=personas.company, project_id=project.pk, actor=personas.operator
        )
    project.refresh_from_db()
    assert project.qbo_customer is None


# --- Map selected… creating the missing customers ---------------------------------------------


def test_map_selected_creates_each_missing_client_once_and_maps_every_row(
    personas: Personas, connected: QboEmulator
) -> None:
    from staging.services.bulk_mapping import bulk_map_plan, projects_map_selected

    missing = [_project(personas) for _ in range(3)]
    other = [_project(personas, "Juniper Hills Winery") for _ in range(2)]
    known = _project(personas, "Cascade County Schools")
    selected = StagedProject.objects.filter(company=personas.company)
    plan = bulk_map_plan(company=personas.company, projects=selected)
    assert plan.missing == {
        MISSING: [p.pk for p in missing],
        "Juniper Hills Winery": [p.pk for p in other],
    }
    assert plan.can_create and plan.missing_rows == 5

    result = projects_map_selected(
        company=personas.company, projects=selected, actor=personas.operator, create_missing=True
    )

    assert (result.mapped, result.created, result.without_suggestion) == (6, 2, 0)
    assert result.describe() == (
        "Mapped 6 projects permanently to 3 customers: 2 new customers were created in QuickBooks."
    )
    assert len(_in_qbo(connected, MISSING)) == len(_in_qbo(connected, "Juniper Hills Winery")) == 1
    for project in [*missing, *other, known]:
        project.refresh_from_db()
        assert project.qbo_customer is not None
        assert project.qbo_customer.display_name == project.client_name


def test_without_quickbooks_the_suggested_rows_are_mapped_and_the_rest_say_why(
    personas: Personas,
) -> None:
    from staging.services.bulk_mapping import projects_map_selected
    from tests.factories import QboCustomerFactory

    QboCustomerFactory(company=personas.company, display_name="Cascade County Schools")
    _project(personas, "Cascade County Schools")
    left = _project(personas)
    result = projects_map_selected(
        company=personas.company,
        projects=StagedProject.objects.filter(company=personas.company),
        actor=personas.operator,
        create_missing=True,
    )
    assert (result.mapped, result.created, result.without_suggestion) == (1, 0, 1)
    assert "Not created: QuickBooks is not connected." in result.describe()
    left.refresh_from_db()
    assert left.qbo_customer is None


def test_more_missing_clients_than_one_click_creates_is_refused_before_anything(
    personas: Personas, connected: QboEmulator
) -> None:
    from staging.services.bulk_mapping import MAX_CREATED_PER_CLICK, projects_map_selected
    from staging.services.mapping import MappingError

    for n in range(MAX_CREATED_PER_CLICK + 1):
        _project(personas, f"Unknown Client Number {n:03d} Zeta")
    before = len(control(connected, "GET", "state")["Customer"])
    with pytest.raises(MappingError, match="creates at most 20 at a time"):
        projects_map_selected(
            company=personas.company,
            projects=StagedProject.objects.filter(company=personas.company),
            actor=personas.operator,
            create_missing=True,
        )
    assert len(control(connected, "GET", "state")["Customer"]) == before
    assert not StagedProject.objects.filter(qbo_customer__isnull=False).exists()
