"""The Import drop-down, the Import Selected picker and run progress, with and without
HTMX."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from staging.imports.pages import import_run_execute
from staging.models import Run, RunKind, RunState
from tests.factories import StagedProjectFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def operator(personas: Any, linarc_connection: Any) -> Any:
    return personas.client_for(personas.operator)


# --- starting imports -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url_name", "kind"),
    [("portfolio:import_new", RunKind.IMPORT_NEW), ("portfolio:import_all", RunKind.IMPORT_ALL)],
)
def test_operator_starts_an_import_with_htmx(
    operator: Any, personas: Any, url_name: str, kind: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = operator.post(reverse(url_name), **HTMX)

    assert response.status_code == 202
    run = Run.objects.get()
    assert (run.kind, run.state, run.started_by) == (kind, RunState.PENDING, personas.operator)
    assert len(callbacks) == 1  # the Celery task, sent once the run is committed
    html = response.content.decode()
    assert f'id="run-{run.pk}"' in html
    assert 'hx-trigger="every 1s"' in html
    assert "Waiting for a worker" in html
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_import_without_htmx_redirects_to_the_run_page(operator: Any) -> None:
    response = operator.post(reverse("portfolio:import_all"))
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("portfolio:import_run", args=[run.pk])
    page = operator.get(response["Location"])
    assert page.status_code == 200
    assert "Import All from Linarc started." in page.content.decode()
    assert "<html" in page.content.decode()


def test_viewer_may_not_import(personas: Any, linarc_connection: Any) -> None:
    viewer = personas.client_for(personas.viewer)
    for name in ("portfolio:import_new", "portfolio:import_all", "portfolio:import_selected"):
        assert viewer.post(reverse(name), **HTMX).status_code == 403
    assert not Run.objects.exists()


def test_a_second_import_while_one_runs_is_a_409(operator: Any) -> None:
    assert operator.post(reverse("portfolio:import_all"), **HTMX).status_code == 202
    response = operator.post(reverse("portfolio:import_new"), **HTMX)
    assert response.status_code == 409
    assert "Import All from Linarc is already pending" in response.content.decode()
    assert Run.objects.count() == 1


def test_import_without_linarc_connection_says_how_to_fix_it(personas: Any) -> None:
    client = personas.client_for(personas.operator)
    response = client.post(reverse("portfolio:import_all"), **HTMX)
    assert response.status_code == 422
    assert "Linarc is not connected yet" in response.content.decode()
    response = client.post(reverse("portfolio:import_all"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("portfolio:projects")
    assert "Linarc is not connected yet" in response.content.decode()


# --- progress -------------------------------------------------------------------------------


def test_progress_polls_while_running_and_stops_when_done(operator: Any, personas: Any) -> None:
    operator.post(reverse("portfolio:import_all"), **HTMX)
    run = Run.objects.get()
    url = reverse("portfolio:import_run", args=[run.pk])

    polling = operator.get(url, **HTMX)
    assert polling.status_code == 200
    assert 'hx-trigger="every 1s"' in polling.content.decode()

    import_run_execute(run_id=run.pk)
    done = operator.get(url, **HTMX)
    assert done.status_code == 286  # htmx stops polling
    html = done.content.decode()
    assert "hx-trigger" not in html
    assert "Done" in html
    assert 'data-count="created">60<' in html
    assert "importFinished" in done["HX-Trigger"]
    # Viewers watch progress too.
    viewer = personas.client_for(personas.viewer)
    assert viewer.get(url, **HTMX).status_code == 286


def test_failed_run_shows_the_error_and_invalid_records(operator: Any, personas: Any) -> None:
    run = Run.objects.create(
        company=personas.company,
        kind=RunKind.IMPORT_ALL,
        state=RunState.FAILED,
        error="Linarc error after 500 projects: Linarc had a server error (503).",
        counts={"fetched": 500, "created": 497, "invalid": 3},
        params={"invalid": [{"reason": "Record has no id", "excerpt": '{"name": "x"}'}]},
    )
    response = operator.get(reverse("portfolio:import_run", args=[run.pk]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 286
    assert "Linarc had a server error (503)" in html
    assert "Record has no id" in html
    assert "3 invalid records" in html


@pytest.mark.parametrize(
    "headers",
    [{}, {**HTMX, "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}],
    ids=["plain", "history-restore"],
)
def test_finished_run_loaded_as_a_page_is_the_run_page(
    operator: Any, personas: Any, headers: dict[str, str]
) -> None:
    run = Run.objects.create(
        company=personas.company, kind=RunKind.IMPORT_ALL, state=RunState.DONE, counts={}
    )
    response = operator.get(reverse("portfolio:import_run", args=[run.pk]), **headers)
    assert response.status_code == 200  # 286 only stops an htmx poll
    assert "<html" in response.content.decode()
    assert "HX-Trigger" not in response  # nothing on the page listens for it
    assert "HX-Request" in response["Vary"]


def test_latest_run_is_shown_only_while_active(operator: Any, personas: Any) -> None:
    url = reverse("portfolio:import_run_latest")
    assert operator.get(url, **HTMX).status_code == 204
    operator.post(reverse("portfolio:import_new"), **HTMX)
    response = operator.get(url, **HTMX)
    assert response.status_code == 200
    assert "Import New Items from Linarc" in response.content.decode()


def test_another_companys_run_is_404(operator: Any, personas: Any) -> None:
    run = Run.objects.create(company=personas.other_company, kind=RunKind.IMPORT_ALL)
    assert operator.get(reverse("portfolio:import_run", args=[run.pk]), **HTMX).status_code == 404
    sync = Run.objects.create(company=personas.company, kind=RunKind.SYNC)
    assert operator.get(reverse("portfolio:import_run", args=[sync.pk])).status_code == 404


def test_import_menu_partial_renders_for_operators_only(personas: Any) -> None:
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    html = render_to_string(
        "staging/_import_menu.html", {"can_operate": True, "csrf_token": "t"}, request
    )
    assert "Import New Items from Linarc" in html
    assert "Import All from Linarc" in html
    assert "Import Selected" in html
    assert reverse("portfolio:import_run_latest") in html
    html = render_to_string("staging/_import_menu.html", {"can_operate": False}, request)
    assert "Import All from Linarc" not in html


# --- Import Selected picker -----------------------------------------------------------------


def test_picker_lists_linarc_projects_with_search_and_paging(
    operator: Any, personas: Any, linarc_emulator: Any
) -> None:
    StagedProjectFactory(company=personas.company, linarc_id="100001")
    url = reverse("portfolio:import_selected")

    page = operator.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert "<html" in html
    assert html.count('name="linarc_id"') == 25
    assert 'value="100001"' in html and "Staged" in html
    assert f"{linarc_emulator.state.projects} projects in Linarc" in html
    assert "Select All" in html

    second = operator.get(url, {"page": 2}, HTTP_HX_TARGET="linarc-picker", **HTMX)
    html = second.content.decode()
    assert "<html" not in html
    assert 'id="linarc-picker"' in html
    assert 'value="100001"' not in html
    assert "page 2" in html

    wanted = linarc_emulator.project("100004")["name"]
    found = operator.get(url, {"search": wanted}, HTTP_HX_TARGET="linarc-picker", **HTMX)
    assert 'value="100004"' in found.content.decode()
    assert "1 project in Linarc" in found.content.decode()


def test_picker_says_so_when_linarc_is_down(operator: Any, linarc_emulator: Any) -> None:
    linarc_emulator.inject_fault("503", count=5)
    url = reverse("portfolio:import_selected")
    response = operator.get(url, HTTP_HX_TARGET="linarc-picker", **HTMX)
    assert response.status_code == 502
    assert "Linarc&#x27;s project list could not be loaded" in response.content.decode()
    assert "server error (503)" in response.content.decode()
    linarc_emulator.stop()
    response = operator.get(url)
    assert response.status_code == 502
    assert "Could not connect to Linarc" in response.content.decode()


def test_picker_without_connection_is_a_409(personas: Any) -> None:
    response = personas.client_for(personas.admin).get(reverse("portfolio:import_selected"))
    assert response.status_code == 409
    assert "Linarc is not connected yet" in response.content.decode()


def test_import_selected_posts_the_ticked_ids(operator: Any) -> None:
    url = reverse("portfolio:import_selected")
    response = operator.post(url, {"linarc_id": ["100004", "100007"]}, **HTMX)
    assert response.status_code == 202
    run = Run.objects.get()
    assert run.kind == RunKind.IMPORT_SELECTED
    assert run.params["linarc_ids"] == ["100004", "100007"]
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.counts["created"] == 2


def test_import_selected_with_nothing_ticked_is_a_422(operator: Any) -> None:
    response = operator.post(reverse("portfolio:import_selected"), {}, **HTMX)
    assert response.status_code == 422
    assert "Select at least one Linarc project" in response.content.decode()
    assert not Run.objects.exists()
