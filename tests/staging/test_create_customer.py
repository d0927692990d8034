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
