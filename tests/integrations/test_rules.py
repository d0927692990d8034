"""Sync rules: the Linarc connection (encrypted key, Test connection), Auto-Create /
Auto-Update, the pull interval and its beat schedule, and the naming rule."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from integrations.models import LinarcConnection, SyncRules
from integrations.services.rules import (
    SCHEDULED_PULL_TASK,
    SyncRulesError,
    display_name_template_problem,
    sync_rules_update,
)

HTMX = {"HTTP_HX_REQUEST": "true"}


def rules_for(personas: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "company": personas.company,
        "base_url": "http://127.0.0.1:9",
        "api_key": "secret-key-1",
        "auto_create": False,
        "auto_update": False,
        "pull_every_minutes": 15,
        "display_name_template": "{name}",
        "actor": personas.admin,
        **overrides,
    }


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "base_url": "http://127.0.0.1:9",
        "api_key": "",
        "auto_create": "on",
        "pull_every_minutes": "10",
        "display_name_template": "{number} {name}",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- the beat schedule ----------------------------------------------------------------------


def test_schedule_follows_the_rules(personas: Any) -> None:
    rules = sync_rules_update(**rules_for(personas)).rules
    assert rules.periodic_task is None
    assert not PeriodicTask.objects.filter(task=SCHEDULED_PULL_TASK).exists()

    # Enable: one periodic task for the company, every 15 minutes.
    rules = sync_rules_update(**rules_for(personas, auto_create=True)).rules
    task = PeriodicTask.objects.get(task=SCHEDULED_PULL_TASK)
    assert rules.periodic_task == task
    assert task.enabled
    assert json.loads(task.kwargs) == {"company_id": personas.company.pk}
    assert (task.interval.every, task.interval.period) == (15, IntervalSchedule.MINUTES)

    # Change the interval: the same task, rescheduled.
    sync_rules_update(**rules_for(personas, auto_update=True, pull_every_minutes=45))
    task.refresh_from_db()
    assert PeriodicTask.objects.filter(task=SCHEDULED_PULL_TASK).count() == 1
    assert task.enabled and task.interval.every == 45

    # Both off: disabled, not deleted.
    sync_rules_update(**rules_for(personas, pull_every_minutes=45))
    task.refresh_from_db()
    assert not task.enabled
    assert SyncRules.objects.get(company=personas.company).periodic_task == task

    # On again: the same row comes back.
    sync_rules_update(**rules_for(personas, auto_update=True, pull_every_minutes=5))
    task.refresh_from_db()
    assert task.enabled and task.interval.every == 5
    assert PeriodicTask.objects.filter(task=SCHEDULED_PULL_TASK).count() == 1


def test_each_company_has_its_own_schedule(personas: Any) -> None:
    sync_rules_update(**rules_for(personas, auto_create=True))
    sync_rules_update(
        **rules_for(personas, company=personas.other_company, auto_update=True, actor=None)
    )
    kwargs = {
        json.loads(t.kwargs)["company_id"]
        for t in PeriodicTask.objects.filter(task=SCHEDULED_PULL_TASK)
    }
    assert kwargs == {personas.company.pk, personas.other_company.pk}


# --- the connection -------------------------------------------------------------------------


def test_api_key_is_encrypted_and_blank_keeps_it(personas: Any) -> None:
    sync_rules_update(**rules_for(personas, api_key="super-secret-linarc-key"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key FROM integrations_linarcconnection WHERE company_id = %s",
            [personas.company.pk],
        )
        stored = cursor.fetchone()[0]
    assert "super-secret-linarc-key" not in stored
    # The same base URL (a trailing slash makes no difference); another URL needs the key
    # again (tests/integrations/test_outbound_guard.py).
    sync_rules_update(**rules_for(personas, api_key=None, base_url="http://127.0.0.1:9/"))
    saved = LinarcConnection.objects.get(company=personas.company)
    assert saved.api_key == "super-secret-linarc-key"
    assert saved.base_url == "http://127.0.0.1:9/"


def test_a_first_connection_needs_a_key(personas: Any) -> None:
    with pytest.raises(SyncRulesError, match="Enter the Linarc API key"):
        sync_rules_update(**rules_for(personas, api_key=""))


# --- the naming rule ------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["{name}", "{number} {name}", "{client}: {name} ({number})"])
def test_naming_rule_accepts_the_placeholders(template: str) -> None:
    assert display_name_template_problem(template) is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{title}", "Unknown placeholder {title}"),
        ("{name!r}", "without a conversion or format"),
        ("{name:>30}", "without a conversion or format"),
        ("{}", "Unknown placeholder {}"),
        ("{name", "unmatched"),
        ("{client}", "must include {name} or {number}"),
        ("Job", "must include {name} or {number}"),
        ("  ", "Enter a naming rule"),
    ],
)
def test_naming_rule_refuses_anything_else(template: str, message: str) -> None:
    problem = display_name_template_problem(template)
    assert problem is not None and message in problem


# --- the page -------------------------------------------------------------------------------


def test_admin_sees_the_form_without_the_stored_key(personas: Any) -> None:
    sync_rules_update(**rules_for(personas, api_key="never-shown-key", auto_create=True))
    client = personas.client_for(personas.admin)
    page = client.get(reverse("portfolio:sync_rules"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "<html" in html
    assert "never-shown-key" not in html
    assert "Stored — leave blank to keep it" in html
    assert 'value="http://127.0.0.1:9"' in html
    assert "Auto-Create" in html and "Auto-Update" in html

    partial = client.get(reverse("portfolio:sync_rules"), **HTMX)
    assert "<html" not in partial.content.decode()
    assert 'id="sync-rules-form"' in partial.content.decode()


def test_operator_may_not_see_or_change_sync_rules(personas: Any) -> None:
    client = personas.client_for(personas.operator)
    assert client.get(reverse("portfolio:sync_rules")).status_code == 403
    response = client.post(reverse("portfolio:sync_rules"), form_data(api_key="k"), **HTMX)
    assert response.status_code == 403
    assert client.post(reverse("portfolio:sync_rules_test"), form_data()).status_code == 403
    assert not SyncRules.objects.filter(auto_create=True).exists()


def test_saving_without_htmx_redirects_and_schedules(personas: Any) -> None:
    client = personas.client_for(personas.admin)
    response = client.post(reverse("portfolio:sync_rules"), form_data(api_key="first-key"))
    assert response.status_code == 302
    rules = SyncRules.objects.get(company=personas.company)
    assert rules.auto_create and not rules.auto_update
    assert rules.pull_every_minutes == 10
    assert rules.display_name_template == "{number} {name}"
    assert rules.periodic_task is not None and rules.periodic_task.enabled
    assert LinarcConnection.objects.get(company=personas.company).api_key == "first-key"
    page = client.get(response["Location"])
    assert "Sync rules saved." in page.content.decode()


def test_saving_with_htmx_renders_the_form_again(personas: Any) -> None:
    client = personas.client_for(personas.admin)
    client.post(reverse("portfolio:sync_rules"), form_data(api_key="first-key"))
    response = client.post(
        reverse("portfolio:sync_rules"), form_data(auto_create=None, auto_update="on"), **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "Sync rules saved." in html
    assert "every 10 minutes" in html
    rules = SyncRules.objects.get(company=personas.company)
    assert not rules.auto_create and rules.auto_update
    assert LinarcConnection.objects.get(company=personas.company).api_key == "first-key"

    off = client.post(
        reverse("portfolio:sync_rules"), form_data(auto_create=None, auto_update=None), **HTMX
    )
    assert "No scheduled pulls" in off.content.decode()
    assert not PeriodicTask.objects.get(task=SCHEDULED_PULL_TASK).enabled


@pytest.mark.parametrize("htmx", [True, False])
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"display_name_template": "{title} {name}"}, "Unknown placeholder {title}"),
        ({"pull_every_minutes": "0"}, "between 1 and 1440 minutes"),
        ({"pull_every_minutes": "1441"}, "between 1 and 1440 minutes"),
        ({"base_url": "ftp://linarc.example"}, "Enter an http:// or https:// URL."),
        ({"api_key": ""}, "Enter the Linarc API key."),
    ],
)
def test_invalid_form_is_a_422_with_the_message(
    personas: Any, htmx: bool, overrides: dict[str, str], message: str
) -> None:
    client = personas.client_for(personas.admin)
    data = form_data(**{"api_key": "some-key", **overrides})
    response = client.post(reverse("portfolio:sync_rules"), data, **(HTMX if htmx else {}))
    assert response.status_code == 422
    html = response.content.decode()
    assert message in html
    assert ("<html" in html) is not htmx
    assert not LinarcConnection.objects.exists()
    assert not PeriodicTask.objects.filter(task=SCHEDULED_PULL_TASK).exists()


# --- Test connection ------------------------------------------------------------------------


def test_connection_test_reports_success_and_failure(
    personas: Any, linarc_emulator: Any, linarc_settings: Any
) -> None:
    client = personas.client_for(personas.admin)
    url = reverse("portfolio:sync_rules_test")
    ok = client.post(
        url, {"base_url": linarc_emulator.base_url, "api_key": linarc_emulator.api_key}, **HTMX
    )
    assert ok.status_code == 200
    assert "Connected: Linarc accepted the API key." in ok.content.decode()
    assert "<html" not in ok.content.decode()

    wrong = client.post(url, {"base_url": linarc_emulator.base_url, "api_key": "nope"}, **HTMX)
    assert "Connection failed: Linarc rejected the API key." in wrong.content.decode()

    # Blank key: the stored one is tested (with the URL it was saved for).
    sync_rules_update(
        **rules_for(personas, base_url=linarc_emulator.base_url, api_key=linarc_emulator.api_key)
    )
    stored = client.post(url, {"base_url": linarc_emulator.base_url, "api_key": ""}, **HTMX)
    assert "Connected" in stored.content.decode()

    base_url = linarc_emulator.base_url
    linarc_emulator.stop()
    down = client.post(url, {"base_url": base_url, "api_key": "x"})
    assert down.status_code == 200
    assert "Connection failed: Could not connect to Linarc." in down.content.decode()
    assert "<html" in down.content.decode()  # without JavaScript: the page, with the result


def test_connection_test_with_a_bad_url_is_a_422(personas: Any) -> None:
    client = personas.client_for(personas.admin)
    response = client.post(
        reverse("portfolio:sync_rules_test"), {"base_url": "not a url", "api_key": "k"}, **HTMX
    )
    assert response.status_code == 422
    assert "Enter an http:// or https:// URL." in response.content.decode()


# --- a new naming rule and the Synced projects ------------------------------------------------


_QBO_IDS = itertools.count(77)


def _synced(personas: Any, *, name: str, number: str, qbo_name: str) -> Any:
    from tests.factories import StagedProjectFactory

    return StagedProjectFactory(
        company=personas.company,
        name=name,
        number=number,
        status="synced",
        qbo_record_id=str(next(_QBO_IDS)),  # one QBO job per project
        qbo_display_name=qbo_name,
    )


def test_new_naming_rule_moves_renamed_synced_projects_to_needs_sync(personas: Any) -> None:
    from staging.models import ChangeEvent, EventKind, StagedProject

    sync_rules_update(**rules_for(personas, display_name_template="{name}"))
    renamed = _synced(personas, name="Harbor Tower", number="P-1", qbo_name="Harbor Tower")
    same = _synced(personas, name="Dock", number="", qbo_name="Dock")  # "{number} {name}"
    failed = _synced(personas, name="Mill", number="P-3", qbo_name="Mill")
    StagedProject.objects.filter(pk=failed.pk).update(status="failed")
    other = _synced(personas, name="Pier", number="P-4", qbo_name="Pier")
    StagedProject.objects.filter(pk=other.pk).update(company=personas.other_company)

    saved = sync_rules_update(**rules_for(personas, display_name_template="{number} {name}"))
    assert saved.renamed == 1
    statuses = dict(StagedProject.objects.values_list("pk", "status"))
    assert statuses == {
        renamed.pk: "needs_sync",
        same.pk: "synced",  # its QBO name does not change under the new rule
        failed.pk: "failed",  # its next sync sends the new name anyway
        other.pk: "synced",  # another company's rule did not change
    }
    event = ChangeEvent.objects.get(kind=EventKind.NAMING_RULE)
    assert event.project_id == renamed.pk and event.actor == personas.admin
    assert event.details["changes"] == {"QBO name": ["Harbor Tower", "P-1 Harbor Tower"]}
    assert "P-1 Harbor Tower" in event.summary

    # Saving the same rule again moves nothing and writes no history.
    again = sync_rules_update(**rules_for(personas, display_name_template="{number} {name}"))
    assert again.renamed == 0
    assert ChangeEvent.objects.filter(kind=EventKind.NAMING_RULE).count() == 1


def test_rules_page_says_how_many_projects_the_new_name_moved(personas: Any) -> None:
    sync_rules_update(**rules_for(personas, display_name_template="{name}"))
    _synced(personas, name="Harbor Tower", number="P-1", qbo_name="Harbor Tower")
    _synced(personas, name="Quay", number="P-2", qbo_name="Quay")
    client = personas.client_for(personas.admin)
    response = client.post(
        reverse("portfolio:sync_rules"),
        form_data(display_name_template="{number} - {name}"),
        **HTMX,
    )
    assert response.status_code == 200
    assert "2 synced projects will get the new QuickBooks name" in response.content.decode()
