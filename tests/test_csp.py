"""The Content-Security-Policy header and the markup that lets the pages live under it.

The policy (staging/settings.py) allows scripts and styles from our own origin only: no
inline <script>, no on*= handlers, no style attributes or <style> elements, and no eval,
which htmx needs for hx-on, hx-vars, ``js:`` values and trigger filters
(https://htmx.org/docs/#security). These tests read every main page with the Django test
client, as the role that sees the most of it; tests/browser/test_csp.py walks the Projects
tab in Chromium and listens for violations.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from integrations.models import Company
from staging.models import ChangeEvent, EventKind, Run, RunKind, RunState, SyncStatus
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory, UserFactory

HX = {"HX-Request": "true"}


def policy_of(response: Any) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [source, …]}."""
    header = response.headers.get("Content-Security-Policy", "")
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


class InlineCodeFinder(HTMLParser):
    """Collects everything in a page that a strict policy would block or that needs eval."""

    EVAL_ATTRIBUTES = ("hx-vals", "hx-headers", "hx-request")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, raw in attrs:
            value = (raw or "").strip()
            bare = name.removeprefix("data-")
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…> inline event handler")
            elif name == "style":
                self.problems.append(f"<{tag} style=…> inline style")
            elif bare.startswith("hx-on") or bare == "hx-vars":
                self.problems.append(f"<{tag} {name}=…> needs eval")
            elif bare in self.EVAL_ATTRIBUTES and value.startswith(("js:", "javascript:")):
                self.problems.append(f"<{tag} {name}={value[:30]}…> needs eval")
            elif bare == "hx-trigger" and "[" in value:
                self.problems.append(f"<{tag} hx-trigger={value[:40]}…> filter needs eval")
            elif name in ("href", "action", "src", "formaction") and value.lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}=javascript:…>")
        if tag == "style":
            self.problems.append("<style> element")
        # A data block (type="application/json") is never run, so the policy allows it.
        self._inline_script = (
            tag == "script" and "src" not in names and "json" not in (names.get("type") or "")
        )

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._inline_script = False

    def handle_data(self, data: str) -> None:
        if self._inline_script and data.strip():
            self.problems.append(f"inline <script> body: {data.strip()[:40]}…")


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    finder.close()
    return finder.problems


def assert_strict_policy(response: Any) -> None:
    policy = policy_of(response)
    header = response.headers.get("Content-Security-Policy", "")
    assert policy, "no Content-Security-Policy header"
    assert "'unsafe-eval'" not in header and "'unsafe-inline'" not in header, header
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"][0] == "'self'"


# --- the pages -----------------------------------------------------------------------------


@pytest.fixture
def staged(personas: Personas) -> dict[str, Any]:
    """A page's worth of each kind of row, history, and runs in progress (progress bars)."""
    company = personas.company
    customer = QboCustomerFactory(company=company, display_name="Cascade County Schools")
    QboCustomerFactory(company=company, display_name="Cascade Job", is_job=True)
    projects = {
        status: StagedProjectFactory(
            company=company,
            name=f"Riverside {status}",
            status=status,
            qbo_customer=None if status == SyncStatus.NEEDS_ACTION else customer,
            problems=["Start date is after end date"] if status == SyncStatus.FAILED else [],
            source_payload={"name": f"Riverside {status}"},
        )
        for status in SyncStatus
    }
    failed = projects[SyncStatus.FAILED]
    ChangeEvent.objects.create(
        company=company,
        project=failed,
        kind=EventKind.UPDATED,
        summary="Updated from Linarc",
        details={"changes": {"name": {"old": "Old", "new": failed.name}}},
        at=dt.datetime(2025, 5, 2, 9, 0, tzinfo=dt.UTC),
    )
    sync = Run.objects.create(
        company=company, kind=RunKind.SYNC, state=RunState.RUNNING, total=40, processed=10
    )
    imported = Run.objects.create(
        company=company,
        kind=RunKind.IMPORT_ALL,
        state=RunState.RUNNING,
        total=10,
        processed=3,
        params={"invalid": [{"reason": "No id", "excerpt": '{"name": "x"}'}]},
        counts={"invalid": 1},
    )
    Run.objects.create(
        company=company,
        kind=RunKind.REFRESH_CUSTOMERS,
        state=RunState.RUNNING,
        total=100,
        processed=50,
    )
    return {"projects": projects, "failed": failed, "sync": sync, "import": imported}


def _pages(company: Company, staged: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(persona, url, headers) of every main page and the partials htmx swaps in."""
    failed = staged["failed"].pk
    unmapped = staged["projects"][SyncStatus.NEEDS_ACTION].pk
    return [
        ("anonymous", reverse("login"), {}),
        ("operator", reverse("portfolio:home"), {}),
        ("operator", reverse("portfolio:erp"), {}),  # redirects to the Projects tab
        ("operator", reverse("portfolio:projects"), {}),
        ("operator", reverse("portfolio:projects") + "?q=riverside&sort=-name", HX),
        ("operator", reverse("portfolio:project_history", args=[failed]), {}),
        ("operator", reverse("portfolio:project_history", args=[failed]), HX),
        ("operator", reverse("portfolio:project_json", args=[failed]), HX),
        ("operator", reverse("portfolio:project_manual_map", args=[failed]), HX),
        ("operator", reverse("portfolio:project_customer_options", args=[unmapped]), HX),
        ("operator", reverse("portfolio:import_selected"), {}),
        ("operator", reverse("portfolio:import_run", args=[staged["import"].pk]), {}),
        ("operator", reverse("portfolio:import_run_latest"), HX),
        ("admin", reverse("portfolio:sync_rules"), {}),
        ("admin", reverse("portfolio:qbo_connection"), {}),
        ("support", reverse("admin:index"), {}),
        ("support", reverse("admin:staging_stagedproject_changelist"), {}),
        # A change form with prepopulated fields and an autocomplete inline.
        ("support", reverse("admin:integrations_company_change", args=[company.pk]), {}),
    ]


def _client(personas: Personas, who: str) -> Client:
    if who == "anonymous":
        return Client()
    if who == "support":
        client = Client()
        client.force_login(UserFactory(username="support", is_staff=True, is_superuser=True))
        return client
    return personas.client_for(getattr(personas, who))


def test_every_main_page_sends_the_strict_policy_and_carries_no_inline_code(
    personas: Personas, staged: dict[str, Any], linarc_connection: Any
) -> None:
    clients: dict[str, Client] = {}

    for who, url, headers in _pages(personas.company, staged):
        client = clients.setdefault(who, _client(personas, who))
        response = client.get(url, headers=headers, follow=True)

        assert response.status_code in (200, 286), (url, response.status_code)
        assert_strict_policy(response)
        assert inline_code(response.content.decode()) == [], url


def test_progress_bars_need_no_style_attribute(personas: Personas, staged: dict[str, Any]) -> None:
    operator = personas.client_for(personas.operator)
    html = operator.get(reverse("portfolio:projects")).content.decode()
    run = operator.get(reverse("portfolio:import_run", args=[staged["import"].pk])).content
    panel = personas.client_for(personas.admin).get(reverse("portfolio:qbo_connection")).content

    assert '<progress class="bar run-bar" max="100" value="25"' in html  # 10 of 40 synced
    assert b'<progress class="bar run-bar" max="100" value="30"' in run  # 3 of 10 imported
    assert b'<progress class="bar progress" max="100" value="50"' in panel


def test_htmx_runs_without_eval_or_its_injected_style(personas: Personas) -> None:
    html = personas.client_for(personas.viewer).get(reverse("portfolio:home")).content.decode()

    found = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)
    assert found is not None
    config = json.loads(found.group(1))
    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False


def test_the_qbo_connection_page_alone_may_post_to_the_quickbooks_sign_in(
    personas: Personas, settings: Any
) -> None:
    admin = personas.client_for(personas.admin)

    settings.QBO_ENVIRONMENT = "http://127.0.0.1:8765/.well-known/openid_configuration"
    emulator = policy_of(admin.get(reverse("portfolio:qbo_connection")))
    settings.QBO_ENVIRONMENT = "production"
    production = policy_of(admin.get(reverse("portfolio:qbo_connection")))
    elsewhere = policy_of(admin.get(reverse("portfolio:sync_rules")))

    assert emulator["form-action"] == ["'self'", "http://127.0.0.1:8765"]
    assert production["form-action"] == ["'self'", "https://appcenter.intuit.com"]
    assert elsewhere["form-action"] == ["'self'"]


def test_the_finder_sees_what_the_policy_blocks() -> None:
    """The scanner above, on markup the app used to have before the policy."""
    html = """
      <select onchange="this.form.submit()"></select>
      <div hx-vals="js:{rows: 1}" hx-trigger="every 2s [ok()]"></div>
      <div style="width: 5%"></div><style>.a{}</style>
      <script>alert(1)</script><script src="/static/x.js"></script>
      <script type="application/json">{"a": 1}</script>
    """

    assert len(inline_code(html)) == 6
