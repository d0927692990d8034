"""Suggested customers with their reasons, and Map selected… (issue #15): a suggestion is
shown and never applied by itself; the bulk mapping makes permanent exactly what its
confirmation listed, skips rows already mapped, and leaves rows without a suggestion."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from integrations.models import QboCustomer
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.services.bulk_mapping import bulk_map_plan, projects_map_selected
from staging.services.suggestions import CLOSE, EXACT, SIBLING, suggestions_for
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory


def _customer(personas: Personas, name: str, **kwargs: Any) -> QboCustomer:
    return QboCustomerFactory(company=personas.company, display_name=name, **kwargs)


def _project(personas: Personas, client: str, **kwargs: Any) -> StagedProject:
    return StagedProjectFactory(company=personas.company, client_name=client, **kwargs)


# --- suggestions ---------------------------------------------------------------------------------


def test_each_kind_of_evidence_gives_its_reason(personas: Personas) -> None:
    cascade = _customer(personas, "Cascade County Schools")
    brewing = _customer(personas, "Ridgeline Brewing Company")
    harbor = _customer(personas, "Harbor Holdings Inc")
    _customer(personas, "Lincoln Heights Dental")
    # Two projects of "Bayview Partners" were mapped by hand to Harbor Holdings.
    for _ in range(2):
        _project(personas, "Bayview Partners", qbo_customer=harbor)
    same = _project(personas, "  cascade   COUNTY schools ")
    close = _project(personas, "Ridgeline Brewing Co.")
    sibling = _project(personas, "Bayview Partners")
    unrelated = _project(personas, "Lincoln Heights Housing Authority")
    nameless = _project(personas, "")

    found = suggestions_for(
        company_id=personas.company.pk,
        projects=StagedProject.objects.filter(company=personas.company),
    )

    assert (found[same.pk].customer_id, found[same.pk].kind) == (cascade.pk, EXACT)
    assert found[same.pk].reason == "Same name as the Linarc client"
    assert (found[close.pk].customer_id, found[close.pk].kind) == (brewing.pk, CLOSE)
    assert found[close.pk].reason.startswith("Close to the Linarc client name “Ridgeline")
    assert (found[sibling.pk].customer_id, found[sibling.pk].kind) == (harbor.pk, SIBLING)
    assert found[sibling.pk].reason == "2 other projects of “Bayview Partners” are mapped to it"
    # 86 % alike is not close enough; no client, no suggestion; mapped rows get none.
    assert unrelated.pk not in found and nameless.pk not in found
    assert not any(p.qbo_customer_id for p in StagedProject.objects.filter(pk__in=found))


def test_inactive_deleted_sub_and_other_companies_customers_are_never_suggested(
    personas: Personas,
) -> None:
    _customer(personas, "Quarry Lane Partners", active=False)
    _customer(personas, "Juniper Hills Winery", deleted_in_qbo=True)
    _customer(personas, "Northstar Robotics", is_job=True, parent_qbo_id="1")
    QboCustomerFactory(company=personas.other_company, display_name="Delta Pacific Shipping")
    # A top-level customer that is in fact another project's QBO job (a lagging cache).
    held = _customer(personas, "Elm & Oak Cooperative")
    _project(personas, "Someone", qbo_record_id=held.qbo_id)
    projects = [
        _project(personas, name)
        for name in (
            "Quarry Lane Partners",
            "Juniper Hills Winery",
            "Northstar Robotics",
            "Delta Pacific Shipping",
            "Elm & Oak Cooperative",
        )
    ]
    assert suggestions_for(company_id=personas.company.pk, projects=projects) == {}


def test_the_suggestions_of_a_page_take_a_fixed_number_of_queries(
    personas: Personas, django_assert_max_num_queries: Any
) -> None:
    for n in range(30):
        _customer(personas, f"Known Client {n}")
    projects = [_project(personas, f"Known Client {n % 30}") for n in range(50)]
    projects += [_project(personas, f"Pelican Bay Outfitters {n}") for n in range(10)]
    with django_assert_max_num_queries(5):
        found = suggestions_for(company_id=personas.company.pk, projects=projects)
    assert len(found) == 50


# --- Map selected… ----------------------------------------------------------------------------


@pytest.fixture
def selection(personas: Personas) -> dict[str, Any]:
    cascade = _customer(personas, "Cascade County Schools")
    brewing = _customer(personas, "Ridgeline Brewing Company")
    other = _customer(personas, "Someone Else")
    rows = {
        "cascade": [_project(personas, "Cascade County Schools") for _ in range(3)],
        "brewing": [_project(personas, "Ridgeline Brewing Co.", problems=["Name is too long"])],
        "without": [_project(personas, "Quarry Lane Partners") for _ in range(2)],
        "mapped": [_project(personas, "Cascade County Schools", qbo_customer=other)],
    }
    return {"cascade": cascade, "brewing": brewing, "other": other, "rows": rows}


def _all(personas: Personas) -> Any:
    return StagedProject.objects.filter(company=personas.company)


def test_the_plan_counts_what_would_become_permanent_and_writes_nothing(
    personas: Personas, selection: dict[str, Any]
) -> None:
    plan = bulk_map_plan(company=personas.company, projects=_all(personas))

    assert (plan.to_map, plan.without_suggestion, plan.already_mapped) == (4, 2, 1)
    assert [(g.display_name, g.rows, g.differs) for g in plan.groups] == [
        ("Cascade County Schools", 3, False),
        ("Ridgeline Brewing Company", 1, True),
    ]
    assert plan.clients_without == ["Quarry Lane Partners"]
    assert _all(personas).filter(qbo_customer__isnull=True).count() == 6


def test_map_selected_maps_the_suggested_rows_permanently_with_history(
    personas: Personas, selection: dict[str, Any]
) -> None:
    result = projects_map_selected(
        company=personas.company, projects=_all(personas), actor=personas.operator
    )

    assert (result.mapped, result.customers, result.without_suggestion, result.skipped) == (
        4,
        2,
        2,
        1,
    )
    assert result.describe() == (
        "Mapped 4 projects permanently to 2 customers: 2 without a suggestion were left "
        "unmapped; 1 already mapped were skipped."
    )
    rows = selection["rows"]
    for project in rows["cascade"]:
        project.refresh_from_db()
        assert project.qbo_customer == selection["cascade"]
        assert project.status == SyncStatus.NEEDS_SYNC and project.mapped_by == personas.operator
    brewing = rows["brewing"][0]
    brewing.refresh_from_db()
    assert brewing.qbo_customer == selection["brewing"]
    assert (brewing.status, brewing.status_reason) == (SyncStatus.NEEDS_ACTION, "Name is too long")
    for project in rows["without"]:
        project.refresh_from_db()
        assert project.qbo_customer is None
    mapped = rows["mapped"][0]
    mapped.refresh_from_db()
    assert mapped.qbo_customer == selection["other"]  # permanent: untouched
    events = ChangeEvent.objects.filter(kind=EventKind.MAPPED)
    assert events.count() == 4
    assert set(events.values_list("actor", flat=True)) == {personas.operator.pk}


def test_rows_mapped_between_the_plan_and_the_click_keep_their_customer(
    personas: Personas, selection: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from staging.services import bulk_mapping

    first = selection["rows"]["cascade"][0]
    real_plan = bulk_mapping.bulk_map_plan

    def plan_then_someone_maps(**kwargs: Any) -> Any:
        plan = real_plan(**kwargs)
        StagedProject.objects.filter(pk=first.pk).update(qbo_customer=selection["other"])
        return plan

    monkeypatch.setattr(bulk_mapping, "bulk_map_plan", plan_then_someone_maps)
    result = projects_map_selected(
        company=personas.company, projects=_all(personas), actor=personas.operator
    )

    first.refresh_from_db()
    assert first.qbo_customer == selection["other"]
    assert (result.mapped, result.skipped) == (3, 2)
    assert not ChangeEvent.objects.filter(project=first, kind=EventKind.MAPPED).exists()


# --- the views ------------------------------------------------------------------------------------


def test_the_confirmation_lists_the_plan_and_the_click_maps_it(
    personas: Personas, selection: dict[str, Any]
) -> None:
    client = personas.client_for(personas.operator)
    preview = client.get(
        reverse("portfolio:projects_map_preview"), {"select_all": "1"}, HTTP_HX_REQUEST="true"
    )
    assert preview.status_code == 200
    text = preview.content.decode()
    assert "4 projects will be mapped permanently" in text
    assert "Ridgeline Brewing Company" in text and "Not the Linarc client" in text
    assert "2 projects without a suggestion stay unmapped" in text
    assert "1 already mapped is skipped" in text
    assert _all(personas).filter(qbo_customer__isnull=True).count() == 6

    answer = client.post(
        reverse("portfolio:projects_map_selected"), {"select_all": "1"}, HTTP_HX_REQUEST="true"
    )
    assert answer.status_code == 200
    assert "Mapped 4 projects permanently to 2 customers" in answer.content.decode()
    assert _all(personas).filter(qbo_customer__isnull=True).count() == 2


def test_map_selected_needs_a_selection_and_an_operator(
    personas: Personas, selection: dict[str, Any]
) -> None:
    operator = personas.client_for(personas.operator)
    nothing = operator.post(reverse("portfolio:projects_map_selected"), HTTP_HX_REQUEST="true")
    assert nothing.status_code == 422
    assert "Select one or more projects first" in nothing.content.decode()
    viewer = personas.client_for(personas.viewer)
    refused = viewer.post(reverse("portfolio:projects_map_selected"), {"select_all": "1"})
    assert refused.status_code == 403
    assert _all(personas).filter(qbo_customer__isnull=True).count() == 6


def test_an_unmapped_row_shows_its_suggestion_with_the_reason(
    personas: Personas, selection: dict[str, Any]
) -> None:
    page = personas.client_for(personas.operator).get(reverse("portfolio:projects"))
    text = page.content.decode()
    assert 'class="cell-suggestion"' in text
    assert "Suggested: <bdi>Cascade County Schools</bdi>" in text
    assert "cell-suggestion suggestion-differs" in text  # Ridgeline Brewing Co. → Company


# --- all selected to one chosen customer ---------------------------------------------------------


def test_every_unmapped_selected_row_can_go_to_one_chosen_customer(
    personas: Personas, selection: dict[str, Any]
) -> None:
    chosen = selection["cascade"]
    plan = bulk_map_plan(company=personas.company, projects=_all(personas), customer_id=chosen.pk)
    assert (plan.to_map, plan.without_suggestion, plan.already_mapped) == (6, 0, 1)
    # Same-name rows are not marked; the others are, to be checked.
    assert [(g.display_name, g.rows, g.differs) for g in plan.groups] == [
        ("Cascade County Schools", 3, False),
        ("Cascade County Schools", 3, True),
    ]

    result = projects_map_selected(
        company=personas.company,
        projects=_all(personas),
        actor=personas.operator,
        customer_id=chosen.pk,
    )
    assert (result.mapped, result.customers, result.skipped) == (6, 1, 1)
    assert _all(personas).filter(qbo_customer=chosen).count() == 6
    assert _all(personas).filter(qbo_customer=selection["other"]).count() == 1  # permanent


def test_a_customer_that_cannot_be_used_is_refused_in_the_drawer(
    personas: Personas, selection: dict[str, Any]
) -> None:
    inactive = QboCustomerFactory(company=personas.company, display_name="Gone Co", active=False)
    client = personas.client_for(personas.operator)
    preview = client.get(
        reverse("portfolio:projects_map_preview"),
        {"select_all": "1", "qbo_customer": str(inactive.pk)},
        HTTP_HX_REQUEST="true",
    )
    assert preview.status_code == 422
    assert "“Gone Co” is inactive in QuickBooks." in preview.content.decode()
    answer = client.post(
        reverse("portfolio:projects_map_selected"),
        {"select_all": "1", "qbo_customer": str(inactive.pk)},
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 422
    assert _all(personas).filter(qbo_customer__isnull=True).count() == 6


def test_the_drawer_offers_one_customer_for_all_and_shows_its_plan(
    personas: Personas, selection: dict[str, Any]
) -> None:
    client = personas.client_for(personas.operator)
    url = reverse("portfolio:projects_map_preview")
    first = client.get(url, {"select_all": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Or map every unmapped selected project to one customer:" in first
    assert f'<option value="{selection["brewing"].pk}">Ridgeline Brewing Company</option>' in first

    chosen = client.get(
        url,
        {"select_all": "1", "qbo_customer": str(selection["brewing"].pk)},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    text = " ".join(chosen.split())
    assert "6 projects will be mapped permanently" in text
    assert f'name="qbo_customer" value="{selection["brewing"].pk}"' in chosen
    assert "Use the suggestions" in text
