"""Names with bidirectional-text controls (a right-to-left override above all) are shown
inside a <bdi> isolate, so they cannot reverse the text around them; where no isolate can
go (attributes, CSV cells) the controls are removed; Json Script shows them as escapes.
Staged data keeps them: Linarc's text is stored as sent (docs/bad-input.md)."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from staging.models import ChangeEvent, EventKind, Run, RunKind, RunState, SyncStatus
from staging.presenters.history_csv import csv_safe
from staging.templatetags.bidi import (
    BIDI_CONTROLS,
    bidi_isolate,
    escape_bidi_controls,
    strip_bidi_controls,
)
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory

RLO = "\u202e"  # right-to-left override: reverses the text shown after it
PDF = "\u202c"  # pop directional formatting
HX = {"HX-Request": "true"}
EVERY_CONTROL = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


class BidiOutsideIsolates(HTMLParser):
    """Finds bidi controls in attribute values, or in text that is not inside a <bdi>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "bdi":
            self.depth += 1
        for name, value in attrs:
            if value and BIDI_CONTROLS.search(value):
                self.problems.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "bdi":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth == 0 and BIDI_CONTROLS.search(data):
            self.problems.append(f"text {data.strip()!r}")


def bidi_outside_isolates(html: str) -> list[str]:
    finder = BidiOutsideIsolates()
    finder.feed(html)
    finder.close()
    return finder.problems


@pytest.fixture
def operator(personas: Personas) -> Client:
    return personas.client_for(personas.operator)


@pytest.fixture
def reversed_names(personas: Personas) -> dict[str, Any]:
    """Two rows whose Linarc and QuickBooks names carry overrides, with history."""
    company = personas.company
    customer = QboCustomerFactory(company=company, display_name=f"Cascade {RLO}sloohcS")
    QboCustomerFactory(company=company, display_name=f"Harbor {RLO}eniraM")
    unmapped = StagedProjectFactory(
        company=company,
        number=f"P-{RLO}7",
        name=f"Gym {RLO}evil{PDF} Phase 2",
        client_name=f"Harbor {RLO}eniraM",
        project_status=f"Active{RLO}",
        status=SyncStatus.NEEDS_ACTION,
        source_payload={"name": f"Gym {RLO}evil"},
    )
    synced = StagedProjectFactory(
        company=company,
        name=f"Lobby {RLO}ybbol",
        qbo_customer=customer,
        qbo_display_name=f"Lobby {RLO}ybbol",
        qbo_record_id="58",
        status=SyncStatus.SYNCED,
    )
    ChangeEvent.objects.create(
        company=company,
        project=unmapped,
        actor=personas.operator,
        kind=EventKind.UPDATED,
        summary=f"Updated from Linarc: {RLO}eman",
        details={"changes": {"name": {"old": f"Old {RLO}dlo", "new": unmapped.name}}},
    )
    return {"unmapped": unmapped, "synced": synced, "customer": customer}


def test_bidi_isolate_escapes_once_and_leaves_empty_text_alone() -> None:
    assert bidi_isolate(f"<b>{RLO}x</b>") == "<bdi>&lt;b&gt;x&lt;/b&gt;</bdi>"  # override dropped
    assert bidi_isolate(bidi_isolate("a")) == "<bdi><bdi>a</bdi></bdi>"  # safe: not escaped
    assert bidi_isolate("") == ""


def test_every_bidi_control_is_stripped_or_escaped_and_nothing_else() -> None:
    text = f"a{EVERY_CONTROL}b مدرسة הספר 🌅"

    assert strip_bidi_controls(text) == "ab مدرسة הספר 🌅"
    escaped = escape_bidi_controls(json.dumps({"n": text}, ensure_ascii=False))
    assert not BIDI_CONTROLS.search(escaped) and "\\u202e" in escaped
    assert json.loads(escaped) == {"n": text}  # the same JSON value


def test_projects_tab_shows_overridden_names_only_inside_isolates(
    operator: Client, reversed_names: dict[str, Any]
) -> None:
    for headers in ({}, HX):
        html = operator.get(reverse("portfolio:projects"), headers=headers).content.decode()

        assert bidi_outside_isolates(html) == []
        assert f'<span class="project-name"><bdi>Gym evil{PDF} Phase 2</bdi></span>' in html
        assert "Client: <bdi>Harbor eniraM</bdi>" in html
        assert '<span class="customer-name"><bdi>Cascade sloohcS</bdi></span>' in html
        # The row's attributes, read by the confirm dialog, carry the name without controls.
        assert 'data-project-name="Gym evil Phase 2"' in html


def test_confirm_dialog_markup_gets_names_without_controls(
    operator: Client, reversed_names: dict[str, Any]
) -> None:
    """The permanent-mapping dialog is filled by projects.js from the row's and the option's
    data- attributes (into <bdi> elements, controls removed again there:
    tests/browser/test_csp.py reads the dialog)."""
    project = reversed_names["unmapped"]
    options = operator.get(
        reverse("portfolio:project_customer_options", args=[project.pk]), headers=HX
    ).content.decode()

    assert bidi_outside_isolates(options) == []
    assert 'data-customer-name="Harbor eniraM"' in options  # the suggestion (same client)
    assert "Suggested: <bdi>Harbor eniraM</bdi>" in options


def test_mapping_flash_isolates_both_names(
    operator: Client, reversed_names: dict[str, Any]
) -> None:
    project, customer = reversed_names["unmapped"], reversed_names["customer"]

    response = operator.post(
        reverse("portfolio:project_map_customer", args=[project.pk]),
        {"qbo_customer": customer.pk, "serial": "1"},
        headers=HX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert bidi_outside_isolates(html) == []
    assert (f"Mapped “<bdi>Gym evil{PDF} Phase 2</bdi>” to “<bdi>Cascade sloohcS</bdi>”.") in html


@pytest.mark.parametrize("drawer", ["project_history", "project_json", "project_manual_map"])
def test_drawers_show_overridden_names_only_inside_isolates(
    operator: Client, reversed_names: dict[str, Any], drawer: str
) -> None:
    project = reversed_names["unmapped"]
    url = reverse(f"portfolio:{drawer}", args=[project.pk])

    for headers in ({}, HX):
        html = operator.get(url, headers=headers).content.decode()

        assert bidi_outside_isolates(html) == [], (drawer, headers)
        assert f"<bdi>Gym evil{PDF} Phase 2</bdi>" in html  # the drawer's header


def test_change_history_isolates_summary_and_each_old_and_new_value(
    operator: Client, reversed_names: dict[str, Any]
) -> None:
    project = reversed_names["unmapped"]
    html = operator.get(
        reverse("portfolio:project_history", args=[project.pk]), headers=HX
    ).content.decode()

    assert '<p class="event-summary"><bdi>Updated from Linarc: eman</bdi></p>' in html
    assert '<td class="old"><bdi>Old dlo</bdi></td>' in html


def test_json_script_writes_controls_as_json_escapes(
    operator: Client, reversed_names: dict[str, Any]
) -> None:
    project = reversed_names["unmapped"]
    html = operator.get(
        reverse("portfolio:project_json", args=[project.pk]), headers=HX
    ).content.decode()

    assert "Gym \\u202eevil" in html and RLO not in html.split('id="json-source"')[1]


def test_change_history_csv_has_no_bidi_controls_and_stays_formula_safe(
    operator: Client, reversed_names: dict[str, Any]
) -> None:
    project = reversed_names["unmapped"]
    ChangeEvent.objects.create(
        company=project.company,
        project=project,
        kind=EventKind.FAILED,
        summary=f'{RLO}=HYPERLINK("http://evil.example")',  # a formula behind an override
        details={"code": f"{RLO}6240", "intuit_tid": f"1-{RLO}abc"},
    )

    response = operator.get(reverse("portfolio:project_history_csv", args=[project.pk]))

    text = response.content.decode("utf-8-sig")
    assert not BIDI_CONTROLS.search(text)
    rows = list(csv.reader(io.StringIO(text)))
    cells = [cell for row in rows for cell in row]
    assert '\'=HYPERLINK("http://evil.example")' in cells
    assert "name: Old dlo → Gym evil Phase 2" in cells
    assert "6240" in cells and "1-abc" in cells
    assert csv_safe(f"{RLO}{PDF}+1") == "'+1"


def test_run_summary_isolates_linarc_excerpts(personas: Personas, operator: Client) -> None:
    run = Run.objects.create(
        company=personas.company,
        kind=RunKind.IMPORT_ALL,
        state=RunState.DONE,
        started_by=personas.operator,
        params={"invalid": [{"reason": f"No id {RLO}di", "excerpt": f'{{"name": "{RLO}x"}}'}]},
        counts={"invalid": 1},
    )

    html = operator.get(reverse("portfolio:import_run", args=[run.pk])).content.decode()

    assert bidi_outside_isolates(html) == []
    assert "<code><bdi>{&quot;name&quot;: &quot;x&quot;}</bdi></code>" in html


def test_stored_names_keep_their_controls(reversed_names: dict[str, Any]) -> None:
    """Only the display changes: Linarc's text stays as sent."""
    project = reversed_names["unmapped"]
    project.refresh_from_db()

    assert project.name == f"Gym {RLO}evil{PDF} Phase 2"
