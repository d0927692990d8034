"""Django admin cannot undo the permanent mapping or rewrite Change History (issue #12).

A support superuser may look at everything; edits and deletions that would break a promise
of the product are refused with 403 (or the page simply offers no such button), never a 500,
and the database is left as it was.
"""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.models import Company, QboCustomer
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from tests.conftest import Personas
from tests.factories import (
    CompanyFactory,
    QboCustomerFactory,
    StagedProjectFactory,
    UserFactory,
)


@pytest.fixture
def superuser_client(db: None) -> Client:
    client = Client()
    client.force_login(UserFactory(username="support", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def mapped_project(personas: Personas) -> StagedProject:
    customer = QboCustomerFactory(company=personas.company, display_name="Cascade County")
    project = StagedProjectFactory(
        company=personas.company,
        qbo_customer=customer,
        mapped_by=personas.admin,
        mapped_at=timezone.now(),
        qbo_record_id="501",
        qbo_sync_token="0",
        qbo_display_name="Project 1",
        status=SyncStatus.SYNCED,
    )
    ChangeEvent.objects.create(
        company=personas.company,
        project=project,
        kind=EventKind.MAPPED,
        summary="Customer mapped: Cascade County",
        actor=personas.admin,
    )
    return project


@pytest.fixture
def unmapped_project(personas: Personas) -> StagedProject:
    project = StagedProjectFactory(company=personas.company)
    ChangeEvent.objects.create(
        company=personas.company, project=project, kind=EventKind.IMPORTED, summary="Imported"
    )
    return project


def _url(model: type[Any], view: str, *args: Any) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def _form_post_data(response: Any) -> dict[str, Any]:
    """What a browser would post back from an admin change page, unchanged.

    Built from the rendered form and inline formsets, so a test can change one field and
    post the rest as the page showed them."""
    data: dict[str, Any] = {}

    def add_form(form: forms.BaseForm) -> None:
        for bound in form:
            widget = bound.field.widget
            value = bound.value()
            if isinstance(widget, forms.MultiWidget):
                parts = widget.decompress(value)
                for index, part in enumerate(parts):
                    data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
            elif isinstance(bound.field, forms.BooleanField):
                if value:
                    data[bound.html_name] = "on"
            elif value is None:
                data[bound.html_name] = ""
            else:
                prepared = bound.field.prepare_value(value)
                if isinstance(prepared, list | tuple):
                    data[bound.html_name] = [str(item) for item in prepared]
                else:
                    data[bound.html_name] = "" if prepared is None else str(prepared)

    context = response.context
    if "adminform" in context:
        add_form(context["adminform"].form)
    for inline in context.get("inline_admin_formsets", []):
        formset = inline.formset
        add_form(formset.management_form)
        for form in formset.forms:
            add_form(form)
    data["_save"] = "Save"
    return data


def _project_state(project: StagedProject) -> tuple[Any, ...]:
    project.refresh_from_db()
    return (
        project.qbo_customer_id,
        project.mapped_by_id,
        project.mapped_at,
        project.qbo_record_id,
        project.qbo_sync_token,
        project.name,
    )


# --- Every page opens, and none offers what would break a promise -----------------------
@pytest.mark.parametrize("which", ["mapped", "unmapped"])
def test_staged_project_pages_open_read_only(
    superuser_client: Client, mapped_project, unmapped_project, which: str
) -> None:
    project = mapped_project if which == "mapped" else unmapped_project
    changelist = superuser_client.get(_url(StagedProject, "changelist"))
    assert changelist.status_code == 200
    page = superuser_client.get(_url(StagedProject, "change", project.pk))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert _url(StagedProject, "delete", project.pk).encode() not in page.content
    # The project's history is on the page, read-only.
    assert project.events.get().summary.encode() in page.content


def test_change_event_pages_open_view_only(superuser_client: Client, mapped_project) -> None:
    event = mapped_project.events.get()
    changelist = superuser_client.get(_url(ChangeEvent, "changelist"))
    assert changelist.status_code == 200
    assert _url(ChangeEvent, "add").encode() not in changelist.content
    page = superuser_client.get(_url(ChangeEvent, "change", event.pk))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert _url(ChangeEvent, "delete", event.pk).encode() not in page.content


def test_qbo_customer_pages_open_view_only(superuser_client: Client, mapped_project) -> None:
    customer = mapped_project.qbo_customer
    changelist = superuser_client.get(_url(QboCustomer, "changelist"))
    assert changelist.status_code == 200
    assert _url(QboCustomer, "add").encode() not in changelist.content
    page = superuser_client.get(_url(QboCustomer, "change", customer.pk))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert b'name="qbo_id"' not in page.content


def test_company_with_staged_projects_offers_no_delete(
    superuser_client: Client, personas: Personas, mapped_project
) -> None:
    changelist = superuser_client.get(_url(Company, "changelist"))
    assert changelist.status_code == 200
    page = superuser_client.get(_url(Company, "change", personas.company.pk))
    assert page.status_code == 200
    assert b'name="_save"' in page.content  # the name and memberships stay editable
    assert _url(Company, "delete", personas.company.pk).encode() not in page.content


# --- Attempts that would break a promise change nothing and are not a 500 ---------------
def test_changing_a_mapped_projects_customer_in_admin_is_refused(
    superuser_client: Client, personas: Personas, mapped_project
) -> None:
    other = QboCustomerFactory(company=personas.company)
    url = _url(StagedProject, "change", mapped_project.pk)
    before = _project_state(mapped_project)
    data = _form_post_data(superuser_client.get(url))
    data.update(qbo_customer=str(other.pk), qbo_record_id="999", name="Renamed")
    response = superuser_client.post(url, data)
    assert response.status_code == 403
    assert _project_state(mapped_project) == before


def test_unmapping_a_project_in_admin_is_refused(superuser_client: Client, mapped_project) -> None:
    url = _url(StagedProject, "change", mapped_project.pk)
    before = _project_state(mapped_project)
    data = _form_post_data(superuser_client.get(url))
    data.update(qbo_customer="", mapped_by="", qbo_record_id="")
    response = superuser_client.post(url, data)
    assert response.status_code == 403
    assert _project_state(mapped_project) == before


def test_deleting_a_mapped_project_in_admin_is_refused_and_keeps_its_history(
    superuser_client: Client, mapped_project
) -> None:
    response = superuser_client.post(
        _url(StagedProject, "delete", mapped_project.pk), {"post": "yes"}
    )
    assert response.status_code == 403
    assert StagedProject.objects.filter(pk=mapped_project.pk).exists()
    assert ChangeEvent.objects.filter(project=mapped_project).count() == 1


def test_deleting_an_unmapped_project_in_admin_is_refused_too(
    superuser_client: Client, unmapped_project
) -> None:
    response = superuser_client.post(
        _url(StagedProject, "delete", unmapped_project.pk), {"post": "yes"}
    )
    assert response.status_code == 403
    assert StagedProject.objects.filter(pk=unmapped_project.pk).exists()
    assert ChangeEvent.objects.filter(project=unmapped_project).count() == 1


def test_bulk_delete_selected_deletes_no_project(
    superuser_client: Client, mapped_project, unmapped_project
) -> None:
    response = superuser_client.post(
        _url(StagedProject, "changelist"),
        {
            "action": "delete_selected",
            ACTION_CHECKBOX_NAME: [str(mapped_project.pk), str(unmapped_project.pk)],
            "index": "0",
            "post": "yes",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert StagedProject.objects.count() == 2
    assert ChangeEvent.objects.count() == 2


def test_change_events_cannot_be_edited_in_admin(superuser_client: Client, mapped_project) -> None:
    event = mapped_project.events.get()
    response = superuser_client.post(
        _url(ChangeEvent, "change", event.pk),
        {
            "company": str(event.company_id),
            "project": str(event.project_id),
            "at_0": "2020-01-01",
            "at_1": "00:00:00",
            "actor": "",
            "kind": EventKind.IMPORTED,
            "summary": "Nothing happened here",
            "details": "{}",
        },
    )
    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.kind, event.summary) == (EventKind.MAPPED, "Customer mapped: Cascade County")


def test_change_events_cannot_be_deleted_in_admin(superuser_client: Client, mapped_project) -> None:
    event = mapped_project.events.get()
    response = superuser_client.post(_url(ChangeEvent, "delete", event.pk), {"post": "yes"})
    assert response.status_code == 403
    bulk = superuser_client.post(
        _url(ChangeEvent, "changelist"),
        {
            "action": "delete_selected",
            ACTION_CHECKBOX_NAME: [str(event.pk)],
            "index": "0",
            "post": "yes",
        },
        follow=True,
    )
    assert bulk.status_code == 200
    assert ChangeEvent.objects.filter(pk=event.pk).exists()


def test_change_events_cannot_be_added_in_admin(superuser_client: Client, mapped_project) -> None:
    response = superuser_client.post(
        _url(ChangeEvent, "add"),
        {
            "company": str(mapped_project.company_id),
            "project": str(mapped_project.pk),
            "at_0": "2020-01-01",
            "at_1": "00:00:00",
            "kind": EventKind.SYNCED,
            "summary": "Forged",
            "details": "{}",
        },
    )
    assert response.status_code == 403
    assert mapped_project.events.count() == 1


def test_cached_qbo_customer_cannot_be_edited_in_admin(
    superuser_client: Client, mapped_project
) -> None:
    customer = mapped_project.qbo_customer
    url = _url(QboCustomer, "change", customer.pk)
    data = _form_post_data(superuser_client.get(url))
    data.update(
        company=str(customer.company_id),
        qbo_id="77777",
        display_name="Someone else",
        search_name="someone else",
    )
    response = superuser_client.post(url, data)
    assert response.status_code == 403
    customer.refresh_from_db()
    assert (customer.qbo_id, customer.display_name) != ("77777", "Someone else")
    assert customer.display_name == "Cascade County"


def test_cached_qbo_customer_cannot_be_deleted_in_admin(
    superuser_client: Client, personas: Personas
) -> None:
    customer = QboCustomerFactory(company=personas.company)
    response = superuser_client.post(_url(QboCustomer, "delete", customer.pk), {"post": "yes"})
    assert response.status_code == 403
    assert QboCustomer.objects.filter(pk=customer.pk).exists()


def test_deleting_a_company_with_staged_projects_is_refused(
    superuser_client: Client, personas: Personas, mapped_project, unmapped_project
) -> None:
    response = superuser_client.post(_url(Company, "delete", personas.company.pk), {"post": "yes"})
    assert response.status_code == 403
    assert StagedProject.objects.filter(company=personas.company).count() == 2
    assert ChangeEvent.objects.filter(company=personas.company).count() == 2


def test_bulk_deleting_a_company_with_staged_projects_is_refused(
    superuser_client: Client, personas: Personas, unmapped_project
) -> None:
    response = superuser_client.post(
        _url(Company, "changelist"),
        {
            "action": "delete_selected",
            ACTION_CHECKBOX_NAME: [str(personas.company.pk)],
            "index": "0",
            "post": "yes",
        },
    )
    assert response.status_code == 403
    assert Company.objects.filter(pk=personas.company.pk).exists()
    assert ChangeEvent.objects.filter(company=personas.company).count() == 1


def test_a_company_with_nothing_staged_can_still_be_deleted(superuser_client: Client) -> None:
    empty = CompanyFactory(name="Typo Co")
    response = superuser_client.post(_url(Company, "delete", empty.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Company.objects.filter(pk=empty.pk).exists()
