"""Bad-input catalogue: hostile or malformed input from Linarc, from forms and from QBO.

Every case is one row of a table: the input, then what the user must see (a message on the
row or the form) or the documented sanitisation. docs/bad-input.md is the same catalogue for
people; ``test_every_case_is_documented`` keeps the two in step. Each case also checks the two
things bad input must never do: answer a 500 or crash an import or a sync, and alter what is
already staged or synced (rows, their Change History and, for the sync, the QBO job of a
Synced row are compared before and after).

Real paths throughout: hostile projects go into the Linarc emulator through its control API
and come back through the import service; forms are posted with the Django test client, with
and without ``HX-Request``; sync cases run the worker's code in-process against the QBO
emulator (its fault injection and seeding). What neither emulator can send (bytes that are
not UTF-8, half a surrogate pair, QBO answering XML, an empty body or a malformed batch) comes
from :class:`Gate`, a loopback HTTP server in front of the emulator that forwards everything
except the one answer a case replaces.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import http.client
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from integrations.models import LinarcConnection, QboCustomer, SyncRules, WebhookEvent
from integrations.services import qbo as qbo_services
from linarc_client import contract as c
from linarc_client.emulator import LinarcEmulator
from qbo_client.emulator import QboEmulator
from qbo_client.names import sanitize_display_name
from staging.imports.pages import import_run_execute
from staging.imports.rows import NO_CUSTOMER_REASON
from staging.imports.runs import import_run_create
from staging.models import ChangeEvent, Run, RunKind, RunState, StagedProject, SyncStatus
from staging.services.qbo_payload import project_display_name
from staging.sync.outcomes import projects_claim, projects_fail_transient, projects_release
from staging.sync.push import TransientPushError, projects_push
from staging.sync.queue import projects_enqueue_sync
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory
from tests.fixtures import linarc as linarc_fixtures
from tests.fixtures.qbo import connect_company, control, refresh_customers

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
HX = {"HX-Request": "true"}
NEEDS_ACTION, NEEDS_SYNC, SYNCED, FAILED = (
    SyncStatus.NEEDS_ACTION,
    SyncStatus.NEEDS_SYNC,
    SyncStatus.SYNCED,
    SyncStatus.FAILED,
)
NAMING_RULE = "{name}"
LONG = "Cascade County Schools District-Wide Modernization Program " * 11  # 660 characters
XSS = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>"
RLO = "\u202e"  # right-to-left override: reverses the text shown after it
SQLISH = "Robert'); DROP TABLE staging_stagedproject;-- \\ \" OR '1'='1"


# --- a loopback gate in front of an emulator -----------------------------------------------------


@dataclass
class Answer:
    """What the gate sends instead of the upstream's answer, at most ``count`` times."""

    path: str  # a substring of the request path
    status: int
    body: bytes
    content_type: str = "application/json"
    count: int = 1000


class Gate:
    """An HTTP server on a free loopback port that forwards every request to ``upstream``,
    except requests matching an armed :class:`Answer`, which get that answer verbatim."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: nothing to frame

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                answer = gate.take(self.path)
                if answer is None:
                    status, headers, content = gate.forward(
                        self.command, self.path, dict(self.headers), body
                    )
                else:
                    status, content = answer.status, answer.body
                    headers = [("Content-Type", answer.content_type)]
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def arm(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(dataclasses.replace(answer))  # a copy: count is consumed

    def take(self, path: str) -> Answer | None:
        with self.lock:
            for answer in self.answers:
                if answer.path in path and answer.count > 0:
                    answer.count -= 1
                    return answer
        return None

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() != "connection"}
            upstream.request(method, path, body=body or None, headers=headers)
            response = upstream.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            upstream.close()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- what must not change -------------------------------------------------------------------------


def _state() -> dict[str, Any]:
    """Every staged row and every Change History entry, as plain values."""
    return {
        "rows": {row["id"]: row for row in StagedProject.objects.values()},
        "events": {event["id"]: event for event in ChangeEvent.objects.values()},
    }


def assert_untouched(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Rows and events that existed before are exactly as they were, with no new history."""
    for pk, row in before["rows"].items():
        assert after["rows"].get(pk) == row, f"staged row {pk} was altered"
    for pk, event in before["events"].items():
        assert after["events"].get(pk) == event, f"event {pk} was altered"
    new_events = set(after["events"]) - set(before["events"])
    touched = {after["events"][pk]["project_id"] for pk in new_events} & set(before["rows"])
    assert not touched, f"existing rows got new history entries: {touched}"


def _fields_match(row: Any, expected: dict[str, Any]) -> None:
    """``row`` has the expected values; a dict value compares only the keys it names."""
    for name, value in expected.items():
        actual = getattr(row, name)
        if isinstance(value, dict):
            actual = {key: actual.get(key) for key in value}
        assert actual == value, name


# =================================================================================================
# 1. Linarc payloads: a hostile project added through the emulator's control API, then Import All
# =================================================================================================


@dataclass(frozen=True)
class LinarcCase:
    id: str
    project: dict[str, Any]  # the raw Linarc record ("hostile-1" is its id unless it has one)
    staged: dict[str, Any] = field(default_factory=dict)  # StagedProject fields expected
    reason: str = NO_CUSTOMER_REASON  # in the row's status reason (always Needs Action)
    display_name: str | None = None  # what the naming rule {name} makes of it for QBO
    invalid: str | None = None  # the record cannot be staged at all: this reason on the run


def _active(**fields: Any) -> dict[str, Any]:
    return {"name": "Hostile Project", "status": "Active", "client_name": "Quarry Lane", **fields}


LINARC_CASES = [
    LinarcCase("colon_in_name", _active(name="Harbor Point: Phase 2"),
               {"name": "Harbor Point: Phase 2"}, display_name="Harbor Point - Phase 2"),
    LinarcCase("tab_and_newline_in_name", _active(name="\tLobby\tRefresh\nPhase 2\r\n"),
               {"name": "Lobby\tRefresh\nPhase 2"}, display_name="Lobby Refresh Phase 2"),
    LinarcCase("name_of_600_characters", _active(name=LONG),
               {"name": LONG.strip()}, display_name=sanitize_display_name(LONG)),
    LinarcCase("emoji_and_right_to_left_text", _active(name=f"Sunrise 🌅 مدرسة הספר {RLO}evil"),
               {"name": f"Sunrise 🌅 مدرسة הספר {RLO}evil"},
               display_name="Sunrise 🌅 مدرسة הספר evil"),
    LinarcCase("html_and_js_in_every_text_field",
               _active(name=XSS, number=XSS[:60], client_name=XSS,
                       address={"line1": XSS, "line2": XSS, "city": XSS, "postal_code": XSS}),
               {"name": XSS, "number": XSS[:60], "client_name": XSS, "address": {"city": XSS}},
               display_name=XSS),
    LinarcCase("sql_looking_strings",
               _active(name=SQLISH, number="1; DELETE FROM x", client_name="' OR 1=1 --"),
               {"name": SQLISH, "number": "1; DELETE FROM x", "client_name": "' OR 1=1 --"},
               display_name=SQLISH),
    LinarcCase("nul_character_in_name", _active(name="Lobby\u0000Refresh"),
               {"name": "LobbyRefresh"}, display_name="LobbyRefresh"),
    LinarcCase("null_dates", _active(start_date=None, end_date=None),
               {"start_date": None, "end_date": None}),
    LinarcCase("missing_dates", {"name": "No Dates Yet", "status": "Bidding"},
               {"start_date": None, "end_date": None, "project_status": "Bidding"}),
    LinarcCase("invalid_dates", _active(start_date="2024-02-30", end_date="next spring"),
               {"start_date": None, "end_date": None},
               reason="Start date '2024-02-30' is not a valid date; End date 'next spring' is not"),
    LinarcCase("dates_at_the_ends_of_the_calendar",
               _active(start_date="0001-01-01", end_date="9999-12-31T23:59:59-01:00"),
               {"start_date": dt.date(1, 1, 1), "end_date": dt.date(9999, 12, 31)}),
    LinarcCase("updated_at_out_of_range", _active(updated_at="0001-01-01T00:00:00+01:00"),
               {"source_updated_at": None}),
    LinarcCase("end_before_start", _active(start_date="2024-06-01", end_date="2024-01-01"),
               reason="End date 2024-01-01 is before start date 2024-06-01"),
    LinarcCase("wrong_json_types",
               {"name": ["Maple", "Ridge"], "number": True, "status": 3, "start_date": 20240101,
                "client_name": {"name": "Cascade"}, "address": ["12 Main St"]},
               {"name": "", "number": "", "project_status": "", "client_name": ""},
               reason="Project number is true/false, expected text; Project name is a list, "
                      "expected text; Unknown status 3; expected Bidding"),
    LinarcCase("unknown_status", _active(status="Punch List"), {"project_status": "Punch List"},
               reason="Unknown status 'Punch List'; expected Bidding, Pre-Construction, Active"),
    LinarcCase("status_spelled_differently", _active(status="  pre_CONSTRUCTION "),
               {"project_status": "Pre-Construction"}),
    LinarcCase("overlong_number_and_client_name", _active(number="N" * 600, client_name="C" * 600),
               {"number": "N" * 64, "client_name": "C" * 500},
               reason="Project number is longer than 64 characters and was cut; Client name is "
                      "longer than 500 characters and was cut"),
    LinarcCase("empty_name", _active(name=" \t "), {"name": ""}, reason="Project name is empty"),
    LinarcCase("id_is_a_list", {"id": ["not", "an", "id"], "name": "Listed Id"},
               invalid="Record id is a list, expected text or a number"),
    LinarcCase("id_of_65_characters", {"id": "9" * 65, "name": "Long Id"},
               invalid="Record id is longer than 64 characters"),
    LinarcCase("nul_character_in_id", {"id": "1000\u000099", "name": "Nul Id"},
               invalid="Record id contains control characters"),
]  # fmt: skip


@pytest.fixture
def linarc(
    personas: Personas, linarc_emulator_factory: Callable[..., LinarcEmulator], linarc_settings: Any
) -> LinarcEmulator:
    """A small Linarc (three plain projects) connected to the personas' company."""
    emulator = linarc_emulator_factory(projects=3, hostile=False)
    linarc_fixtures.connect_company(personas.company, emulator)
    return emulator


def _import_all(personas: Personas) -> Run:
    run = import_run_create(company=personas.company, kind=RunKind.IMPORT_ALL, actor=None)
    return import_run_execute(run_id=run.pk)


@pytest.fixture
def staged_and_synced(personas: Personas, linarc: LinarcEmulator) -> dict[str, Any]:
    """The three plain projects staged, the first one Synced; the state to compare with."""
    assert _import_all(personas).state == RunState.DONE
    customer = QboCustomerFactory(company=personas.company, display_name="Cascade County Schools")
    synced = StagedProject.objects.order_by("pk").first()
    assert synced is not None
    StagedProject.objects.filter(pk=synced.pk).update(
        qbo_customer=customer,
        status=SYNCED,
        qbo_record_id="4242",
        qbo_sync_token="3",
        qbo_display_name=synced.name,
    )
    return _state()


def _add_to_linarc(emulator: LinarcEmulator, project: dict[str, Any]) -> None:
    """Through the emulator's control API, over HTTP."""
    answer = requests.post(f"{emulator.base_url}/__emulator__/projects", json=project, timeout=10)
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("case", LINARC_CASES, ids=lambda case: case.id)
def test_hostile_linarc_project_is_staged_with_a_clear_reason(
    case: LinarcCase, personas: Personas, linarc: LinarcEmulator, staged_and_synced: dict[str, Any]
) -> None:
    _add_to_linarc(linarc, {"id": "hostile-1", **case.project})

    run = _import_all(personas)

    assert run.state == RunState.DONE, run.error
    assert_untouched(staged_and_synced, _state())
    if case.invalid is not None:
        assert run.counts["invalid"] == 1
        assert [item["reason"] for item in run.params["invalid"]] == [case.invalid]
        assert StagedProject.objects.count() == len(staged_and_synced["rows"])
        assert run.params["deletions_checked"] is False  # an unreadable record may be ours
        return
    assert (run.counts["created"], run.counts["invalid"]) == (1, 0)
    row = StagedProject.objects.get(company=personas.company, linarc_id="hostile-1")
    assert row.status == NEEDS_ACTION
    assert case.reason in row.status_reason
    _fields_match(row, case.staged)
    imported = ChangeEvent.objects.get(project=row)
    assert imported.summary.startswith("Imported from Linarc")
    if case.reason != NO_CUSTOMER_REASON:
        assert case.reason in imported.summary  # the problems are in the history too
    if case.display_name is not None:
        name = project_display_name(project=row, template=NAMING_RULE)
        assert name == case.display_name
        assert len(name) <= 100 and not {":", "\t", "\n", "\u202e"} & set(name)
    # The same data again changes nothing (the problems are part of the content hash).
    again = _import_all(personas)
    assert (again.counts["created"], again.counts["updated"]) == (0, 0)


# --- whole pages that are not what Linarc promises ------------------------------------------------

# One more record for Linarc's real page, as raw bytes: "é" as the single Latin-1 byte 0xE9.
LATIN_1 = '{"id": "latin-1", "name": "Café Renovation", "status": "Active"}'.encode("latin-1")
# JSON escapes of half a surrogate pair: valid JSON that no UTF-8 can encode.
SURROGATE = (
    b'{"id": "surrogate", "name": "Broken \\ud83d Emoji", "status": "Active",'
    b' "client_name": "A\\udc00", "address": {"city": "\\ud83d\\ude00"}}'
)


def _page_with(emulator: LinarcEmulator, record: bytes) -> bytes:
    """Linarc's real (only) page with ``record`` appended, byte for byte."""
    real = requests.get(
        f"{emulator.base_url}{c.PROJECTS_PATH}",
        params={c.PARAM_PAGE_SIZE: c.MAX_PAGE_SIZE},
        headers={c.AUTH_HEADER: c.auth_header_value(emulator.api_key)},
        timeout=10,
    ).json()
    head = json.dumps({**real, c.PAGE_COUNT: real[c.PAGE_COUNT] + 1})[:-2]  # up to the "]}"
    return head.encode() + b"," + record + b"]}"


@dataclass(frozen=True)
class PageCase:
    id: str
    fault: dict[str, Any] | None = None  # for the Linarc emulator's POST /__emulator__/faults
    page: bytes | None = None  # served by the gate instead of Linarc's page
    record: bytes | None = None  # appended by the gate to Linarc's page
    state: RunState = RunState.DONE
    message: str = ""  # the failed run's error (also the connection's last error) ...
    staged: dict[str, Any] = field(default_factory=dict)  # ... or the appended row's fields


PAGE_CASES = [
    PageCase("linarc_page_is_an_html_error_page", fault={"fault": "not_json", "route": "list"},
             state=RunState.FAILED,
             message="Linarc error: Linarc returned a project list page that is not JSON "
                     "(text/html; charset=utf-8). Nothing was changed in staging."),
    PageCase("linarc_page_that_is_a_json_list", page=b'[{"id": "100001"}]', state=RunState.FAILED,
             message="Linarc error: Linarc returned a list instead of a page object. "
                     "Nothing was changed in staging."),
    PageCase("linarc_page_in_latin_1_not_utf_8", record=LATIN_1,
             staged={"linarc_id": "latin-1", "name": "Caf\ufffd Renovation"}),
    PageCase("linarc_page_with_half_a_surrogate_pair", record=SURROGATE,
             staged={"linarc_id": "surrogate", "name": "Broken \ufffd Emoji",
                     "client_name": "A\ufffd",
                     "address": {"city": "😀"}}),  # an escaped pair is one character: kept
]  # fmt: skip


@pytest.mark.parametrize("case", PAGE_CASES, ids=lambda case: case.id)
def test_bad_linarc_page_fails_cleanly_or_is_sanitised(
    case: PageCase, personas: Personas, linarc: LinarcEmulator, staged_and_synced: dict[str, Any]
) -> None:
    gate = Gate(linarc.base_url)
    try:
        LinarcConnection.objects.filter(company=personas.company).update(base_url=gate.url)
        if case.fault is not None:
            requests.post(f"{linarc.base_url}/__emulator__/faults", json=case.fault, timeout=10)
        page = _page_with(linarc, case.record) if case.record else case.page
        if page is not None:
            gate.arm(Answer(c.PROJECTS_PATH, 200, page, count=1))

        run = _import_all(personas)
    finally:
        gate.stop()

    assert run.state == case.state
    assert_untouched(staged_and_synced, _state())
    if case.message:
        assert run.error == case.message
        assert LinarcConnection.objects.get(company=personas.company).last_error == case.message
    if case.staged:
        assert run.counts["created"] == 1
        row = StagedProject.objects.get(linarc_id=case.staged["linarc_id"])
        _fields_match(row, case.staged)
        assert (row.status, row.status_reason) == (NEEDS_ACTION, NO_CUSTOMER_REASON)


def test_linarc_page_of_wrong_types_stages_what_it_can(
    personas: Personas, linarc: LinarcEmulator, staged_and_synced: dict[str, Any]
) -> None:
    """The emulator's ``malformed`` fault swaps the page's first records for junk: three
    cannot be staged at all; the fourth carries the id of our Synced row with every field of
    the wrong type but its number. That row keeps every good value and its QBO link, takes
    the one readable change (the number) and so is Needs Sync, and its history names the
    junk it ignored. Every other row is untouched."""
    synced = StagedProject.objects.get(qbo_record_id="4242")
    before = {f: getattr(synced, f) for f in ("name", "project_status", "client_name", "address")}
    requests.post(
        f"{linarc.base_url}/__emulator__/faults",
        json={"fault": "malformed", "route": "list"},
        timeout=10,
    )

    run = _import_all(personas)

    assert run.state == RunState.DONE
    assert [item["reason"] for item in run.params["invalid"]] == [
        "Record is text, not a JSON object",
        "Record has no id",
        "Record id is a list, expected text or a number",
    ]
    assert run.params["deletions_checked"] is False
    gone_bad = StagedProject.objects.get(qbo_record_id="4242")
    assert gone_bad.status == NEEDS_SYNC
    assert gone_bad.number == "2417" and gone_bad.problems == []
    assert {f: getattr(gone_bad, f) for f in before} == before
    assert gone_bad.qbo_sync_token == "3"
    update = ChangeEvent.objects.get(project=gone_bad, kind="updated")
    assert update.details["status"] == [SYNCED, NEEDS_SYNC]
    assert "Linarc sent an unusable" in update.summary
    assert {"name", "client_name", "address"} <= set(update.details["kept"])
    others = {pk: row for pk, row in staged_and_synced["rows"].items() if pk != gone_bad.pk}
    assert_untouched({**staged_and_synced, "rows": others}, _state())


def test_huge_linarc_payload_is_staged_and_shown(
    personas: Personas, linarc: LinarcEmulator, staged_and_synced: dict[str, Any]
) -> None:
    """A 2 MB record: a 50,000-character name and a 2 MB field staging does not use."""
    name = ("Riverside Medical Office Building Tenant Improvement " * 1000)[:50_000]
    _add_to_linarc(linarc, {**_active(name=name), "id": "huge", "notes": "x" * 2_000_000})

    run = _import_all(personas)

    assert run.state == RunState.DONE and run.counts["created"] == 1
    assert_untouched(staged_and_synced, _state())
    row = StagedProject.objects.get(linarc_id="huge")
    assert row.name == name.strip() and len(row.source_payload["notes"]) == 2_000_000
    assert len(project_display_name(project=row, template=NAMING_RULE)) <= 100
    operator = personas.client_for(personas.operator)
    assert operator.get(reverse("portfolio:projects")).status_code == 200
    drawer = operator.get(reverse("portfolio:project_json", args=[row.pk]), headers=HX)
    assert drawer.status_code == 200


def test_html_in_every_linarc_field_is_escaped_on_every_screen(
    personas: Personas, linarc: LinarcEmulator, staged_and_synced: dict[str, Any]
) -> None:
    hostile = {
        "id": "xss",
        "number": XSS[:60],
        "name": XSS,
        "status": XSS,
        "client_name": XSS,
        "start_date": XSS,
        "address": {"line1": XSS, "city": XSS},
    }
    _add_to_linarc(linarc, hostile)
    _add_to_linarc(linarc, {"id": ["<script>alert(2)</script>"], "name": XSS})  # invalid
    run = _import_all(personas)
    row = StagedProject.objects.get(linarc_id="xss")
    operator = personas.client_for(personas.operator)
    screens = [
        (reverse("portfolio:projects"), {}),
        (reverse("portfolio:projects"), HX),
        (reverse("portfolio:projects") + "?q=" + XSS, HX),
        (reverse("portfolio:project_history", args=[row.pk]), {}),
        (reverse("portfolio:project_history", args=[row.pk]), HX),
        (reverse("portfolio:project_json", args=[row.pk]), HX),
        (reverse("portfolio:project_manual_map", args=[row.pk]), HX),
        (reverse("portfolio:project_customer_options", args=[row.pk]), HX),
        (reverse("portfolio:import_run", args=[run.pk]), {}),
        (reverse("portfolio:import_run", args=[run.pk]), HX),
        (reverse("portfolio:import_selected"), {}),  # the picker reads Linarc live
    ]
    for url, headers in screens:
        response = operator.get(url, headers=headers)
        html = response.content.decode()
        assert response.status_code in (200, 286), url
        assert "<script>alert" not in html and "<img src=x" not in html, url
    listing = operator.get(reverse("portfolio:projects")).content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in listing


def test_import_selected_with_hostile_linarc_ids_counts_them_not_found(
    personas: Personas, linarc: LinarcEmulator, staged_and_synced: dict[str, Any]
) -> None:
    operator = personas.client_for(personas.operator)
    ids = ["../../etc/passwd", "<script>alert(1)</script>", "100001?x=1#f", "%2e%2e", "0" * 64]
    response = operator.post(reverse("portfolio:import_selected"), {"linarc_id": ids}, headers=HX)
    assert response.status_code == 202
    run = Run.objects.get(kind=RunKind.IMPORT_SELECTED)

    run = import_run_execute(run_id=run.pk)

    assert run.state == RunState.DONE, run.error
    assert run.counts["not_found"] == len(ids) and run.params["not_found"] == ids
    assert_untouched(staged_and_synced, _state())
    shown = operator.get(reverse("portfolio:import_run", args=[run.pk])).content.decode()
    assert "Linarc has no project &lt;script&gt;" in shown


# =================================================================================================
# 2. Forms: tampered ids, junk values, oversized posts, with and without HTMX; forged CSRF
# =================================================================================================


@dataclass
class World:
    """Two companies' worth of rows, customers and settings for form posts to aim at."""

    personas: Personas
    synced: StagedProject
    unmapped: StagedProject
    failed: StagedProject
    customer: QboCustomer
    job: QboCustomer
    foreign_project: StagedProject
    foreign_customer: QboCustomer
    foreign_job: QboCustomer


@pytest.fixture
def world(personas: Personas) -> World:
    company, other = personas.company, personas.other_company
    customer = QboCustomerFactory(company=company, display_name="Cascade County Schools")
    job = QboCustomerFactory(
        company=company, display_name="CCS-2417 Gym", is_job=True, parent_qbo_id=customer.qbo_id
    )
    foreign_customer = QboCustomerFactory(company=other, display_name="Other Co Client")
    foreign_job = QboCustomerFactory(
        company=other, display_name="Other Job", is_job=True, parent_qbo_id=foreign_customer.qbo_id
    )
    synced = StagedProjectFactory(
        company=company,
        name="Maple Ridge Gym",
        qbo_customer=customer,
        status=SYNCED,
        qbo_record_id="77",
        qbo_sync_token="2",
    )
    ChangeEvent.objects.create(company=company, project=synced, kind="synced", summary="Synced")
    LinarcConnection.objects.create(company=company, base_url="http://127.0.0.1:9", api_key="k")
    SyncRules.objects.create(company=company)
    return World(
        personas=personas,
        synced=synced,
        unmapped=StagedProjectFactory(company=company, name="Harbor Point Lobby"),
        failed=StagedProjectFactory(company=company, qbo_customer=customer, status=FAILED),
        customer=customer,
        job=job,
        foreign_project=StagedProjectFactory(company=other, name="Someone Else's Project"),
        foreign_customer=foreign_customer,
        foreign_job=foreign_job,
    )


def _everything() -> dict[str, Any]:
    return {
        **_state(),
        "customers": sorted(QboCustomer.objects.values_list("pk", "display_name", "active")),
        "rules": list(SyncRules.objects.values()),
        "linarc": list(LinarcConnection.objects.values("base_url", "api_key", "last_error")),
        "runs": Run.objects.count(),
        "webhooks": WebhookEvent.objects.count(),
    }


@dataclass(frozen=True)
class FormCase:
    id: str
    role: str  # the persona posting
    url: Callable[[World], str]
    data: Callable[[World], dict[str, Any]] | bytes | None
    status: int  # with HX-Request
    message: str  # shown on the row, in the form or on the page
    method: str = "post"
    plain: int | None = None  # without HX-Request, when it differs (a redirect to the message)
    run: bool = False  # an empty sync run is recorded (by design: "Queued 0 projects")
    location: str | None = None  # where a redirect goes


def _on(row: str, view: str, query: str = "") -> Callable[[World], str]:
    return lambda w: reverse(f"portfolio:{view}", args=[getattr(w, row).pk]) + query


def _to(view: str, query: str = "") -> Callable[[World], str]:
    return lambda w: reverse(view if view == "switch_company" else f"portfolio:{view}") + query


def _rules(**overrides: str) -> Callable[[World], dict[str, Any]]:
    form = {"base_url": "http://127.0.0.1:9", "api_key": "", "pull_every_minutes": "15",
            "display_name_template": "{name}"}  # fmt: skip
    return lambda w: {**form, **overrides}


def _big_upload(w: World) -> dict[str, Any]:
    file = SimpleUploadedFile("big.bin", b"\0" * (3 * 1024 * 1024))
    return {**_rules(pull_every_minutes="0")(w), "file": file}


MAP, SAVE = "project_map_customer", "project_manual_map_save"
CHOOSE = "Choose a QuickBooks customer."
NO_PICK = "Select at least one Linarc project to import."
TOO_BIG = "The request was too large or could not be read"
FORM_CASES = [
    FormCase("map_to_another_companys_customer_id", "operator", _on("unmapped", MAP),
             lambda w: {"qbo_customer": w.foreign_customer.pk}, 422,
             "That QuickBooks customer is not in this company&#x27;s customer list."),
    FormCase("map_with_a_non_numeric_id", "operator", _on("unmapped", MAP),
             lambda w: {"qbo_customer": "12abc"}, 422, CHOOSE),
    FormCase("map_with_a_negative_id", "operator", _on("unmapped", MAP),
             lambda w: {"qbo_customer": "-1"}, 422, CHOOSE),
    FormCase("map_with_a_40_digit_id", "operator", _on("unmapped", MAP),
             lambda w: {"qbo_customer": "9" * 40}, 422, CHOOSE),
    FormCase("map_with_a_superscript_digit_for_an_id", "operator", _on("unmapped", MAP),
             lambda w: {"qbo_customer": "\u00b2"}, 422, CHOOSE),
    FormCase("map_with_non_utf_8_bytes", "operator", _on("unmapped", MAP),
             b"qbo_customer=%FF%FE\xff%00&serial=%C0", 422, CHOOSE),
    FormCase("map_to_a_sub_customer", "operator", _on("unmapped", MAP),
             lambda w: {"qbo_customer": w.job.pk}, 422, "is a sub-customer; choose a top-level"),
    FormCase("map_another_companys_project", "operator", _on("foreign_project", MAP),
             lambda w: {"qbo_customer": w.customer.pk}, 404, ""),
    FormCase("map_a_project_id_of_30_digits", "operator",
             lambda w: reverse(f"portfolio:{MAP}", args=[10**30]),
             lambda w: {"qbo_customer": w.customer.pk}, 404, ""),
    FormCase("remap_a_synced_project", "operator", _on("synced", MAP),
             lambda w: {"qbo_customer": w.customer.pk}, 409, "the mapping is permanent"),
    FormCase("retry_another_companys_project", "operator", _on("foreign_project", "project_retry"),
             None, 404, ""),
    FormCase("retry_a_synced_project", "operator", _on("synced", "project_retry"), None, 409,
             "Only a Failed project can be retried; this one is Synced."),
    FormCase("manual_map_to_another_companys_job", "operator", _on("unmapped", SAVE),
             lambda w: {"qbo_customer": w.foreign_job.pk}, 422,
             "Choose an existing QuickBooks sub-customer (job)."),
    FormCase("manual_map_with_markup_for_an_id", "operator", _on("unmapped", SAVE),
             lambda w: {"qbo_customer": "<script>alert(1)</script>"}, 422,
             "Choose a QuickBooks sub-customer from the list."),
    FormCase("sync_with_junk_negative_and_non_ascii_ids", "operator", _to("projects_sync"),
             lambda w: {"ids": "abc,-5,0,1e3,\u00b2,\u0661\u0662"}, 422,
             "Select one or more projects first"),
    FormCase("sync_another_companys_project_id", "operator", _to("projects_sync"),
             lambda w: {"ids": str(w.foreign_project.pk)}, 200, "Queued 0 projects for QBO.",
             plain=302, run=True),
    FormCase("sync_select_all_with_sql_in_the_filters", "operator", _to("projects_sync"),
             lambda w: {"select_all": "1", "q": "' OR 1=1 --", "status": "'; DROP TABLE x;--"},
             200, "Queued 0 projects for QBO.", plain=302, run=True),
    FormCase("list_with_tampered_filters_and_a_nul", "viewer",
             _to("projects", "?page=-3&sort=name;DROP%20TABLE&status=%3Cscript%3E&q=%FF%00"),
             None, 200, "No projects match", method="get"),
    FormCase("row_poll_with_junk_ids", "viewer",
             _to("project_rows", "?rows=abc:1,-3:x,99999999999999999999:2,:,1:1:1,\u00b2:1"),
             None, 200, "", method="get"),
    FormCase("customer_search_with_a_nul", "operator",
             _on("unmapped", "project_customer_options", "?q=%00"), None, 200, "", method="get"),
    FormCase("job_search_with_a_nul", "operator",
             _on("unmapped", "project_manual_map_jobs", "?q=a%00"), None, 200, "", method="get"),
    FormCase("import_selected_with_only_unusable_ids", "operator", _to("import_selected"),
             lambda w: {"linarc_id": ["", "   ", "9" * 65]}, 422, NO_PICK, plain=302),
    FormCase("import_selected_with_a_nul_in_every_id", "operator", _to("import_selected"),
             lambda w: {"linarc_id": ["\x00", "100001\x00"]}, 422, NO_PICK, plain=302),
    FormCase("rules_with_a_javascript_url", "admin", _to("sync_rules"),
             _rules(base_url="javascript:alert(1)"), 422, "Enter an http:// or https:// URL."),
    FormCase("rules_with_a_600_character_url", "admin", _to("sync_rules"),
             _rules(base_url="https://" + "a" * 600 + ".example"), 422,
             "Ensure this value has at most 300 characters"),
    FormCase("rules_with_a_negative_interval", "admin", _to("sync_rules"),
             _rules(pull_every_minutes="-5"), 422, "Pull every must be between 1 and 1440"),
    FormCase("rules_with_a_non_numeric_interval", "admin", _to("sync_rules"),
             _rules(pull_every_minutes="1e309"), 422, "Enter a whole number."),
    FormCase("naming_rule_reaching_into_python", "admin", _to("sync_rules"),
             _rules(display_name_template="{name.__class__.__init__.__globals__}"), 422,
             "Unknown placeholder {name.__class__.__init__.__globals__} in the naming rule."),
    FormCase("naming_rule_with_a_format_spec", "admin", _to("sync_rules"),
             _rules(display_name_template="{name:>9999999}"), 422,
             "Write {name} without a conversion or format"),
    FormCase("naming_rule_with_an_unmatched_brace", "admin", _to("sync_rules"),
             _rules(display_name_template="{name"), 422, "The naming rule has an unmatched"),
    FormCase("naming_rule_with_a_nul_character", "admin", _to("sync_rules"),
             _rules(display_name_template="{name}\x00"), 422, "Null characters are not allowed."),
    FormCase("naming_rule_of_300_characters", "admin", _to("sync_rules"),
             _rules(display_name_template="{name}" + "x" * 294), 422,
             "Ensure this value has at most 200 characters (it has 300)."),
    FormCase("api_key_with_a_newline_and_emoji", "admin", _to("sync_rules_test"),
             lambda w: {"base_url": "http://127.0.0.1:9", "api_key": "abc\ndef 🔑"}, 200,
             "Connection failed: The Linarc API key contains spaces or characters that cannot "
             "be sent; paste it again."),
    FormCase("switch_to_another_companys_id", "operator", _to("switch_company"),
             lambda w: {"company": w.personas.other_company.pk}, 404, ""),
    FormCase("switch_to_a_40_digit_company_id", "operator", _to("switch_company"),
             lambda w: {"company": "9" * 40}, 404, ""),
    FormCase("switch_with_a_hostile_next_url", "operator", _to("switch_company"),
             lambda w: {"company": w.personas.company.pk, "next": "/\\evil.example\x00"}, 302, "",
             location="/"),
    FormCase("post_of_3_mb", "operator", _to("projects_sync"),
             lambda w: {"ids": "1," * (1536 * 1024)}, 400, TOO_BIG),
    FormCase("post_of_13000_fields", "operator", _to("projects_sync"),
             "&".join(f"ids={n}" for n in range(13_000)).encode(), 400, TOO_BIG),
    FormCase("upload_of_3_mb_to_a_form_without_files", "admin", _to("sync_rules"), _big_upload,
             422, "Pull every must be between 1 and 1440 minutes."),
]  # fmt: skip


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize("case", FORM_CASES, ids=lambda case: case.id)
def test_tampered_or_junk_form_input_gets_a_message_and_changes_nothing(
    case: FormCase, htmx: bool, world: World
) -> None:
    client = Client(raise_request_exception=False)  # a 500 must show as one
    client.force_login(getattr(world.personas, case.role))
    url, headers = case.url(world), HX if htmx else {}
    before = _everything()

    if case.method == "get":
        response = client.get(url, headers=headers)
    elif isinstance(case.data, bytes):
        form_type = "application/x-www-form-urlencoded"
        response = client.post(url, case.data, content_type=form_type, headers=headers)
    else:
        response = client.post(url, case.data(world) if case.data else {}, headers=headers)

    status = case.status if htmx or case.plain is None else case.plain
    assert response.status_code == status, response.content[:300]
    if case.location is not None:
        assert response["Location"] == case.location
    elif status == 302:
        response = client.get(response["Location"])  # the message waits on the next page
    assert case.message in response.content.decode()
    after = _everything()
    assert_untouched(before, after)
    assert after == {**before, "runs": before["runs"] + case.run}


def _named_urls(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, str]]:
    """(name, path) of every named URL outside the admin, with 1 for each URL parameter (the
    CSRF check runs before a view looks anything up)."""
    found: list[tuple[str, str]] = []
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace != "admin":
                namespace = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
                found.extend(_named_urls(entry, namespace))
        elif isinstance(entry, URLPattern) and entry.name:
            name = prefix + entry.name
            found.append((name, reverse(name, kwargs=dict.fromkeys(entry.pattern.converters, 1))))
    return found


# Intuit cannot send a CSRF token: the webhook is authenticated by its HMAC signature instead
# (the webhook cases below forge that).
CSRF_EXEMPT = {"qbo_webhook"}
POST_URLS = [(name, path) for name, path in _named_urls() if name not in CSRF_EXEMPT]


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(("name", "path"), POST_URLS, ids=[name for name, _ in POST_URLS])
def test_forged_post_without_csrf_token_is_refused(
    name: str, path: str, htmx: bool, world: World
) -> None:
    forger = Client(enforce_csrf_checks=True)
    forger.force_login(world.personas.admin)
    # htmx sends the token in a header (hx-headers on <body>): a made-up one fails too.
    headers = {**HX, "X-CSRFToken": "forged" * 6} if htmx else {}
    before = _everything()

    response = forger.post(path, {"ids": world.unmapped.pk, "select_all": "1"}, headers=headers)

    assert response.status_code == 403, name
    assert "CSRF verification failed" in response.content.decode()
    assert _everything() == before


def test_the_same_post_with_the_token_goes_through(world: World) -> None:
    """The control for the test above: the token htmx sends from the page is accepted."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.personas.operator)
    client.get(reverse("portfolio:projects"))
    token = client.cookies["csrftoken"].value
    response = client.post(
        reverse("portfolio:projects_sync"),
        {"ids": world.failed.pk},
        headers={**HX, "X-CSRFToken": token},
    )
    assert response.status_code == 200
    assert "Queued 1 project for QBO." in response.content.decode()


# =================================================================================================
# 3. QBO: hostile names on the way in, and answers that are not what QBO documents
# =================================================================================================

REFERENCE_PARENT = "Cascade County Schools"
PARENT = "Northgate Medical Partners"
OTHER_PARENT = "Summit Ridge Properties"
DELIVERIES = 2  # of the sync task before its rows are failed (the real task allows 7)
FAILED_AFTER_TRIES = (
    "QuickBooks did not answer after several tries ({}). "
    "Nothing more is sent for this project until it is retried."
)


def _xml_fault(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2025-01-06T08:00:00">'
        f'<Fault type="ValidationFault"><Error code="{code}" element="DisplayName">'
        f"<Message>{message}</Message><Detail>{message}</Detail></Error></Fault>"
        "</IntuitResponse>"
    ).encode()


def _batch_answer(item: dict[str, Any]) -> bytes:
    """A /batch answer with one item (bId b0: the first row of a chunk)."""
    return json.dumps({"BatchItemResponse": [{"bId": "b0", **item}], "time": "2025"}).encode()


@dataclass(frozen=True)
class QboCase:
    id: str
    name: str  # the hostile project's name (the naming rule is {name})
    status: SyncStatus
    expect: str  # the job's DisplayName in QBO when Synced, else in the row's reason
    fault: dict[str, Any] | None = None  # for the QBO emulator's POST /__emulator__/faults
    answer: Answer | None = None  # what the gate answers instead of QBO
    vendor: str | None = None  # seeded in QBO first
    twin: tuple[str, str] | None = None  # (name, parent) of another project, synced first
    address: dict[str, str] | None = None


QBO_CASES = [
    QboCase("colon_tab_and_newline_in_name", "Harbor Point: Phase 2\tNorth\nWing", SYNCED,
            "Harbor Point - Phase 2 North Wing"),
    QboCase("sync_of_a_600_character_name", LONG, SYNCED, sanitize_display_name(LONG)),
    QboCase("emoji_and_right_to_left_override", "Sunrise 🌅 مدرسة \u202eevil\u202c", SYNCED,
            "Sunrise 🌅 مدرسة evil"),
    QboCase("html_and_js_in_name", XSS, SYNCED, XSS),
    QboCase("quotes_and_sql_in_name", SQLISH, SYNCED, SQLISH),
    QboCase("address_of_html_and_600_character_lines", "Address Case", SYNCED, "Address Case",
            address={"line1": XSS * 10, "line2": "L" * 600, "city": "C" * 600,
                     "postal_code": "9" * 600, "country": "U" * 600}),
    QboCase("name_empty_after_sanitising", " :: \t ", NEEDS_ACTION,
            "The QuickBooks name cannot be built: display name is empty after sanitising."),
    QboCase("name_differs_only_in_case_from_a_vendor", "PRECISION DRYWALL supply", NEEDS_ACTION,
            'The name "PRECISION DRYWALL supply" is already used in QuickBooks by a vendor, '
            "employee or customer. Link it with Manual Mapping or change the naming rule.",
            vendor="Precision Drywall Supply"),
    # Another project's job holds the name (QBO names are unique): this one gets its number.
    QboCase("duplicate_name_under_a_different_client", "Main Street Storefront", SYNCED,
            "Main Street Storefront (H-1)",
            twin=("Main Street Storefront", OTHER_PARENT)),
    QboCase("duplicate_name_under_the_same_client", "Main Street Storefront", SYNCED,
            "Main Street Storefront (H-1)",
            twin=("main street  STOREFRONT", PARENT)),
    QboCase("names_equal_in_their_first_100_characters", LONG + " Phase 2", SYNCED,
            sanitize_display_name(LONG + " Phase 2", 100 - len(" (H-1)")) + " (H-1)",
            twin=(LONG + " Phase 1", PARENT)),
    QboCase("qbo_answers_an_html_error_page", "HTML Answer", FAILED,
            FAILED_AFTER_TRIES.format("QuickBooks had a temporary server error (503)"),
            fault={"kind": "503", "path": "/batch", "count": 100}),
    QboCase("qbo_answers_html_with_status_200", "HTML 200 Answer", FAILED,
            FAILED_AFTER_TRIES.format("Unexpected non-JSON reply from QuickBooks (200)"),
            answer=Answer("/batch", 200, b"<html><body>Maintenance</body></html>", "text/html")),
    QboCase("qbo_answers_an_empty_body", "Empty Answer", FAILED,
            FAILED_AFTER_TRIES.format("Unexpected non-JSON reply from QuickBooks (200)"),
            answer=Answer("/batch", 200, b"")),
    QboCase("qbo_answers_an_xml_validation_fault", "XML Answer", NEEDS_ACTION,
            "A field is too long for QuickBooks",
            answer=Answer("/batch", 400, _xml_fault("2050", "String length"), "application/xml")),
    QboCase("qbo_answers_an_xml_duplicate_name_fault", "XML Duplicate", NEEDS_ACTION,
            "The name is already used in QuickBooks (by a customer, vendor or employee)",
            answer=Answer("/batch", 400, _xml_fault("6240", "Duplicate Name Exists Error"),
                          "text/xml")),
    QboCase("qbo_answers_a_fault_without_a_code", "Codeless Fault", FAILED,
            "QuickBooks returned HTTP 400: Object reference not set",
            fault={"kind": "fault", "path": "/batch", "status": 400, "code": "",
                   "message": "Object reference not set", "detail": ""}),
    QboCase("qbo_answers_a_fault_without_any_error", "Bare Fault", FAILED,
            "QuickBooks returned HTTP 400",
            answer=Answer("/batch", 400, b'{"Fault": {"type": "SystemFault"}}')),
    QboCase("qbo_answers_a_fault_with_a_non_numeric_code", "Odd Code", FAILED,
            "QuickBooks error \u00b2",
            fault={"kind": "fault", "path": "/batch", "status": 400, "code": "\u00b2"}),
    QboCase("qbo_answers_a_fault_with_a_code_of_40_digits", "Long Code", FAILED,
            "QuickBooks error " + "7" * 40,
            fault={"kind": "fault", "path": "/batch", "status": 400, "code": "7" * 40}),
    QboCase("qbo_answers_a_batch_item_fault_without_a_code", "Codeless Item", FAILED,
            "QuickBooks returned an error: Odd",
            answer=Answer("/batch", 200, _batch_answer(
                {"Fault": {"type": "ValidationFault", "Error": [{"Message": "Odd"}]}}))),
    QboCase("qbo_answers_a_customer_without_an_id", "Idless Answer", FAILED,
            "Unexpected batch item reply from QuickBooks",
            answer=Answer("/batch", 200, _batch_answer(
                {"Customer": {"DisplayName": "Idless Answer", "Level": "x"}}))),
]  # fmt: skip


@pytest.fixture
def qbo(
    personas: Personas, qbo_emulator: QboEmulator, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[QboEmulator, Gate]]:
    """The company connected to the QBO emulator through a gate, its customers cached, and
    the client's backoff shortened (the retries themselves still happen)."""
    gate = Gate(qbo_emulator.base_url)
    settings.QBO_API_BASE_URL = f"{gate.url}/v3"
    configured = qbo_services.qbo_config
    monkeypatch.setattr(
        qbo_services,
        "qbo_config",
        lambda: dataclasses.replace(
            configured(), backoff_base_seconds=0.001, backoff_cap_seconds=0.002
        ),
    )
    # A fresh budget for the realm, as the in-process limiter has: on Redis the windows
    # outlive a test, and a full batch window sends the chunk as single requests, which
    # the /batch faults below would not see.
    qbo_services.rate_limiter().reset(qbo_emulator.realm_id)
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    yield qbo_emulator, gate
    gate.stop()


def _parent(personas: Personas, name: str) -> QboCustomer:
    return QboCustomer.objects.get(company=personas.company, display_name=name)


def _mapped(personas: Personas, name: str, parent: str, **fields: Any) -> StagedProject:
    return StagedProjectFactory(
        company=personas.company,
        name=name,
        qbo_customer=_parent(personas, parent),
        status=NEEDS_SYNC,
        **fields,
    )


def _sync(personas: Personas, project_ids: list[int]) -> None:
    """Queue, then what the sync task does: push, retry transient errors with later
    deliveries, then fail the rows that never got an answer."""
    summary = projects_enqueue_sync(
        company=personas.company,
        projects=StagedProject.objects.filter(pk__in=project_ids),
        actor=personas.operator,
    )
    assert summary.queued == len(project_ids)
    error: TransientPushError | None = None
    for _delivery in range(DELIVERIES):
        lease, claimed = projects_claim(project_ids=project_ids)
        try:
            projects_push(lease=lease, projects=claimed)
            return
        except TransientPushError as exc:
            projects_release(lease=lease)
            project_ids, error = exc.project_ids, exc
    assert error is not None
    projects_fail_transient(project_ids=project_ids, error=error.error)


def _qbo_job(emulator: QboEmulator, qbo_id: str) -> dict[str, Any]:
    state = control(emulator, "GET", "state")
    return next(customer for customer in state["Customer"] if customer["Id"] == qbo_id)


@pytest.mark.parametrize("case", QBO_CASES, ids=lambda case: case.id)
def test_hostile_sync_ends_with_a_clear_row_status(
    case: QboCase, personas: Personas, qbo: tuple[QboEmulator, Gate]
) -> None:
    emulator, gate = qbo
    synced = [_mapped(personas, "Reference Clinic Remodel", REFERENCE_PARENT, number="REF-1")]
    if case.twin:
        synced.append(_mapped(personas, *case.twin, number="TWIN-1", address={"line1": "2 Rd"}))
    _sync(personas, [p.pk for p in synced])
    for project in synced:
        project.refresh_from_db()
        assert project.status == SYNCED, project.status_reason
    jobs_before = {p.qbo_record_id: _qbo_job(emulator, p.qbo_record_id) for p in synced}
    before = _state()
    if case.vendor:
        control(emulator, "POST", "seed", json={"vendors": [{"DisplayName": case.vendor}]})
    hostile = _mapped(personas, case.name, PARENT, number="H-1", address=case.address or {})
    if case.fault:
        control(emulator, "POST", "faults", json=case.fault)
    if case.answer:
        gate.arm(case.answer)

    _sync(personas, [hostile.pk])

    control(emulator, "DELETE", "faults")
    hostile.refresh_from_db()
    assert hostile.status == case.status, hostile.status_reason
    if case.status == SYNCED:
        job = _qbo_job(emulator, hostile.qbo_record_id)
        assert job["DisplayName"] == hostile.qbo_display_name == case.expect
        assert job["ParentRef"]["value"] == _parent(personas, PARENT).qbo_id
        if case.address:
            assert {k: len(v) for k, v in job["ShipAddr"].items() if k != "Id"} == {
                "Line1": 500, "Line2": 500, "City": 255, "PostalCode": 30, "Country": 255,
            }  # fmt: skip
    else:
        assert case.expect in hostile.status_reason
        assert not hostile.qbo_record_id
        last = ChangeEvent.objects.filter(project=hostile).order_by("-at", "-id").first()
        assert last is not None and case.expect in last.summary
    # What was synced before is untouched, in staging and in QBO.
    assert_untouched(before, _state())
    for qbo_id, job in jobs_before.items():
        assert _qbo_job(emulator, qbo_id) == job
    operator = personas.client_for(personas.operator)
    for view in ("project_json", "project_history"):
        response = operator.get(reverse(f"portfolio:{view}", args=[hostile.pk]), headers=HX)
        assert response.status_code == 200


# =================================================================================================
# 4. QBO webhooks: forged, unreadable, or of the wrong shape
# =================================================================================================

VERIFIER = "bad-input-verifier"


def _notification(**entity: Any) -> bytes:
    change = {"entities": [{"name": "Customer", **entity}]}
    payload = {"eventNotifications": [{"realmId": "9130", "dataChangeEvent": change}]}
    return json.dumps(payload).encode()


@dataclass(frozen=True)
class WebhookCase:
    id: str
    body: bytes | str
    status: int
    answer: dict[str, Any]
    signed: bool = True
    stored: dict[str, str] | None = None  # the one WebhookEvent kept


NOT_JSON = {"error": "The webhook body is not JSON."}
NONE = {"accepted": 0}
WEBHOOK_CASES = [
    WebhookCase("forged_signature", _notification(id="1", operation="Delete"), 401,
                {"error": "The intuit-signature header does not match."}, signed=False),
    WebhookCase("not_json", b"<xml>hello</xml>", 400, NOT_JSON),
    WebhookCase("non_utf_8_bytes", b'{"a": "\xff\xfe"}', 400, NOT_JSON),
    WebhookCase("notifications_of_the_wrong_type", '{"eventNotifications": ["x", 5, null]}',
                200, NONE),
    WebhookCase("notifications_not_a_list", '{"eventNotifications": 5}', 200, NONE),
    WebhookCase("entities_of_the_wrong_type",
                '{"eventNotifications": [{"realmId": "9130", "dataChangeEvent": "x"},'
                ' {"realmId": "9130", "dataChangeEvent": {"entities": ["x", 7]}}]}', 200, NONE),
    WebhookCase("entity_id_that_is_no_qbo_id", _notification(id="../1; DROP", operation="Update"),
                200, NONE),
    WebhookCase("entity_id_of_40_digits", _notification(id="9" * 40, operation="Update"), 200,
                {"accepted": 1}, stored={"entity_id": "9" * 40, "operation": "Update"}),
    WebhookCase("entity_id_of_65_digits", _notification(id="9" * 65, operation="Update"), 200,
                NONE),
    WebhookCase("operation_of_100_characters", _notification(id="58", operation="Update" * 17),
                200, {"accepted": 1}, stored={"entity_id": "58", "operation": "Update" * 3 + "Up"}),
]  # fmt: skip


@pytest.mark.parametrize("case", WEBHOOK_CASES, ids=lambda case: case.id)
def test_bad_webhook_is_refused_or_ignored(case: WebhookCase, world: World, settings: Any) -> None:
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER
    body = case.body.encode() if isinstance(case.body, str) else case.body
    signature = base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest())
    client = Client(raise_request_exception=False)
    before = _everything()

    response = client.post(
        reverse("qbo_webhook"),
        body,
        content_type="application/json",
        headers={"intuit-signature": signature.decode() if case.signed else "AAAA"},
    )

    assert response.status_code == case.status
    assert response.json() == case.answer
    stored = list(WebhookEvent.objects.values("entity_id", "operation"))
    assert stored == ([case.stored] if case.stored else [])
    assert _everything() == {**before, "webhooks": len(stored)}


# --- the catalogue for people ---------------------------------------------------------------------

ALL_CASE_IDS = [
    *(case.id for case in LINARC_CASES),
    *(case.id for case in PAGE_CASES),
    *(case.id for case in FORM_CASES),
    *(case.id for case in QBO_CASES),
    *(case.id for case in WEBHOOK_CASES),
]


def test_every_case_is_documented() -> None:
    """docs/bad-input.md lists every case of this file by its id, and no case twice."""
    documented = DOC.read_text(encoding="utf-8")
    missing = [case_id for case_id in ALL_CASE_IDS if f"`{case_id}`" not in documented]
    assert not missing, f"cases missing from {DOC.name}: {missing}"
    assert len(set(ALL_CASE_IDS)) == len(ALL_CASE_IDS)
