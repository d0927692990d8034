"""The Projects tab views: the list (filters, sort, search, pages), mapping, selection and
Sync to QBO, retries, the drawers, CSV export and escaping; each with and without HTMX."""

from __future__ import annotations

import csv
import datetime as dt
import html as html_module
import io
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import Role
from staging import selectors
from staging.models import ChangeEvent, EventKind, Run, RunKind, StagedProject, SyncStatus
from tests.conftest import Personas
from tests.factories import MembershipFactory, QboCustomerFactory, StagedProjectFactory

HX = {"HX-Request": "true"}
LIST_URL = "/portfolio/integration/erp/projects/"


@pytest.fixture
def operator(personas: Personas) -> Client:
    return personas.client_for(personas.operator)


@pytest.fixture
def viewer(personas: Personas) -> Client:
    return personas.client_for(personas.viewer)


def row_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="project-(\d+)"', html)]


def serials(html: str) -> list[str]:
    return re.findall(r'class="row-handle"[^>]*>([^<]*)</button>', html, flags=re.S)


def make(company: Any, **kwargs: Any) -> StagedProject:
    return StagedProjectFactory(company=company, **kwargs)


# --- the list -----------------------------------------------------------------------------


def test_full_page_has_toolbar_counts_and_rows(personas: Personas, operator: Client) -> None:
    customer = QboCustomerFactory(company=personas.company, display_name="Cascade Schools")
    make(personas.company, name="Riverside Clinic")
    make(personas.company, name="Maple School", status=SyncStatus.NEEDS_SYNC, qbo_customer=customer)
    make(personas.other_company, name="Someone Else's Project")

    response = operator.get(LIST_URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html
    for label in ("Import", "Select All", "Sync to QBO", "Search name, number or client"):
        assert label in html
    assert "Riverside Clinic" in html and "Maple School" in html
    assert "Someone Else" not in html
    assert re.search(r'chip-all active.*?chip-count">2<', html, re.S)
    assert re.search(r'chip-needs_action".*?chip-count">1<', html, re.S)
    assert 'title="Permanent mapping"' in html  # the mapped row's locked cell
    assert "Select QBO customer" in html  # the unmapped row's picker
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_htmx_request_gets_only_the_results_partial(personas: Personas, operator: Client) -> None:
    make(personas.company, name="Riverside Clinic")

    response = operator.get(LIST_URL, {"q": "river"}, headers=HX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="results"')
    assert "Riverside Clinic" in html
    # The toolbar (its hidden filter inputs) follows out of band; flash messages only when
    # there are some (integrations.middleware.HtmxMessagesMiddleware).
    assert 'id="toolbar-actions" class="toolbar-actions" hx-swap-oob="true"' in html
    assert 'id="messages"' not in html
    assert response["HX-Push-Url"] == f"{LIST_URL}?q=river"


def test_history_restore_request_gets_the_whole_page(personas: Personas, operator: Client) -> None:
    response = operator.get(LIST_URL, headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.content.decode()


def test_viewer_sees_the_list_without_write_controls(personas: Personas, viewer: Client) -> None:
    make(personas.company, name="Riverside Clinic")
    make(personas.company, status=SyncStatus.FAILED, status_reason="Bad address")

    html = viewer.get(LIST_URL).content.decode()

    assert "Riverside Clinic" in html
    assert "Sync to QBO" not in html
    assert "Select QBO customer" not in html
    assert "Not mapped" in html
    assert "Bad address" in html  # the reason is still readable
    assert "Click to retry now." not in html


def test_status_chip_filters_rows(personas: Personas, operator: Client) -> None:
    failed = make(personas.company, status=SyncStatus.FAILED)
    make(personas.company, status=SyncStatus.NEEDS_ACTION)

    html = operator.get(LIST_URL, {"status": "failed"}).content.decode()

    assert row_ids(html) == [failed.pk]
    assert re.search(r'chip-failed active.*?chip-count">1<', html, re.S)


def _coded_failures(personas: Personas) -> dict[str, list[StagedProject]]:
    customer = QboCustomerFactory(company=personas.company)

    def rows(n: int, code: str, status: str = SyncStatus.FAILED) -> list[StagedProject]:
        return [
            make(personas.company, status=status, failure_code=code, qbo_customer=customer)
            for _ in range(n)
        ]

    return {
        "6000": rows(2, "6000"),
        "6190": rows(1, "6190"),
        "none": rows(2, ""),
        "needs_action 6000": rows(1, "6000", SyncStatus.NEEDS_ACTION),
    }


def test_a_failure_code_filter_lists_that_kind_and_shows_a_removable_chip(
    personas: Personas, operator: Client
) -> None:
    rows = _coded_failures(personas)
    make(personas.other_company, status=SyncStatus.FAILED, failure_code="6000")

    html = operator.get(LIST_URL, {"status": "failed", "code": "6000"}).content.decode()

    assert sorted(row_ids(html)) == sorted(p.pk for p in rows["6000"])
    assert "Showing 1–2 of 2 projects" in html
    assert re.search(r'chip-failed active.*?chip-count">5<', html, re.S)  # the whole chip
    assert "Only QuickBooks code 6000" in html
    assert f'href="{LIST_URL}?status=failed"' in html  # the remove link and the Failed chip
    assert 'aria-label="Remove the filter: QuickBooks code 6000"' in html
    # Every form and link of the list keeps the filter; another chip drops it.
    assert html.count('name="code" value="6000"') >= 3
    assert f'href="{LIST_URL}?status=failed&amp;code=6000&amp;sort=name"' in html
    assert f'href="{LIST_URL}?status=synced"' in html
    # The retry button counts (and retries) the filtered rows only.
    assert re.search(r'id="retry-failed">Retry all failed\s*<span class="btn-count">2<', html)


@pytest.mark.parametrize(
    ("code", "kinds", "label"),
    [
        ("none", ["none"], "Only no QuickBooks code"),
        ("6000,none", ["6000", "none"], "Only QuickBooks code 6000 or no code"),
        ("6190,6000", ["6000", "6190"], "Only QuickBooks codes 6000, 6190"),
    ],
)
def test_a_failure_code_filter_takes_several_codes_and_no_code(
    personas: Personas, operator: Client, code: str, kinds: list[str], label: str
) -> None:
    rows = _coded_failures(personas)

    response = operator.get(LIST_URL, {"status": "failed", "code": code}, headers=HX)

    html = response.content.decode()
    assert sorted(row_ids(html)) == sorted(p.pk for kind in kinds for p in rows[kind])
    assert label in html
    assert response["HX-Push-Url"].startswith(f"{LIST_URL}?status=failed&code=")


@pytest.mark.parametrize(
    "query",
    [
        {"status": "failed", "code": "<script>alert(1)</script>"},
        {"status": "failed", "code": "' OR 1=1 --"},
        {"status": "failed", "code": "\x00"},
        {"status": "failed", "code": "9" * 40},
        {"status": "synced", "code": "6000"},  # not a failure chip
        {"code": "6000"},
    ],
)
def test_an_unknown_failure_code_is_ignored_not_a_500(
    personas: Personas, operator: Client, query: dict[str, str]
) -> None:
    _coded_failures(personas)

    response = operator.get(LIST_URL, query)

    html = response.content.decode()
    assert response.status_code == 200
    assert "filter-chip" not in html and "<script>alert" not in html
    expected = {"failed": 5, "synced": 0}.get(query.get("status", ""), 6)
    assert len(row_ids(html)) == expected


def test_retry_all_failed_keeps_to_the_failure_code_filter(
    personas: Personas, operator: Client
) -> None:
    rows = _coded_failures(personas)

    response = operator.post(
        reverse("portfolio:projects_retry_failed"), {"status": "failed", "code": "none"}, headers=HX
    )

    assert "Retrying 2 failed projects." in response.content.decode()
    queued = set(
        StagedProject.objects.filter(status=SyncStatus.QUEUED).values_list("pk", flat=True)
    )
    assert queued == {p.pk for p in rows["none"]}


def test_unknown_filter_values_fall_back_to_defaults(personas: Personas, operator: Client) -> None:
    make(personas.company)

    response = operator.get(LIST_URL, {"status": "bogus", "sort": "password", "page": "x"})

    assert response.status_code == 200
    assert len(row_ids(response.content.decode())) == 1


@pytest.mark.parametrize(
    ("q", "expected"),
    [("harbor", ["harbor"]), ("P-77", ["numbered"]), ("cascade", ["client"]), ("zzz", [])],
)
def test_search_matches_name_number_and_client(
    personas: Personas, operator: Client, q: str, expected: list[str]
) -> None:
    by_key = {
        "harbor": make(personas.company, name="Harbor View Apartments"),
        "numbered": make(personas.company, number="P-7788"),
        "client": make(personas.company, client_name="Cascade County Schools"),
    }

    html = operator.get(LIST_URL, {"q": q}, headers=HX).content.decode()

    assert row_ids(html) == [by_key[k].pk for k in expected]
    if not expected:
        assert "No projects match this view" in html


def test_counts_follow_the_search(personas: Personas, operator: Client) -> None:
    make(personas.company, name="Harbor One", status=SyncStatus.FAILED)
    make(personas.company, name="Harbor Two")
    make(personas.company, name="Elsewhere", status=SyncStatus.FAILED)

    html = operator.get(LIST_URL, {"q": "harbor"}, headers=HX).content.decode()

    assert re.search(r'chip-all active.*?chip-count">2<', html, re.S)
    assert re.search(r'chip-failed".*?chip-count">1<', html, re.S)


def test_a_search_matching_more_than_the_limit_says_more_than(
    personas: Personas, operator: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit the counts read, and the one the page says ("more than 60").
    monkeypatch.setattr(selectors.counts, "SEARCH_COUNT_LIMIT", 60)
    monkeypatch.setattr(selectors, "SEARCH_COUNT_LIMIT", 60)
    StagedProjectFactory.create_batch(
        62, company=personas.company, name="Harbor", status=SyncStatus.FAILED
    )
    make(personas.company, name="Harbor Synced", status=SyncStatus.SYNCED)

    html = operator.get(LIST_URL, {"q": "harbor"}, headers=HX).content.decode()
    assert re.search(r'chip-all active.*?chip-count">60\+<', html, re.S)
    # A status not counted shows no number, and says why.
    failed_chip = re.search(r'<a [^>]*class="chip chip-failed[^>]*>(.*?)</a>', html, re.S)
    assert failed_chip and "chip-count" not in failed_chip.group(1)
    assert 'title="More than 60 projects match this search: choose Failed' in html
    assert "Showing 1–50 of more than 60 projects" in html
    assert 'data-total-at-least="1"' in html
    assert "Next ›</a>" in html and "Last »" not in html  # the last page is not known
    # Retry all failed is offered (there may be failed matches), without a count.
    assert 'id="retry-failed">Retry all failed\n' in html or "Retry all failed</button>" in html
    assert 'hx-confirm="Retry every failed project matching this view?"' in html

    # The chosen chip is counted: 62 failed, more than 60.
    html = operator.get(LIST_URL, {"q": "harbor", "status": "failed"}, headers=HX).content.decode()
    assert re.search(r'chip-failed active.*?chip-count">60\+<', html, re.S)
    assert '<span class="btn-count">60+</span>' in html
    assert "matching this view (more than 60)?" in html
    html = operator.get(
        LIST_URL, {"q": "harbor", "status": "failed", "page": "2"}, headers=HX
    ).content.decode()
    assert "Showing 51–62 of more than 60 projects" in html and "Next ›</a>" not in html
    html = operator.get(LIST_URL, {"q": "harbor", "status": "synced"}, headers=HX).content.decode()
    assert re.search(r'chip-synced active.*?chip-count">1<', html, re.S)
    assert "Showing 1–1 of 1 project<" in html or "Showing 1–1 of 1 project\n" in html
    # Past the end of a search whose pages are not counted: an empty page, never a 500.
    html = operator.get(LIST_URL, {"q": "harbor", "page": "9"}, headers=HX).content.decode()
    assert "No projects on this page" in html and "‹ Prev</a>" in html


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["Alpha", "Bravo", "Charlie"]),
        ("-name", ["Charlie", "Bravo", "Alpha"]),
        ("start_date", ["Bravo", "Charlie", "Alpha"]),  # no date sorts last
        ("-start_date", ["Charlie", "Bravo", "Alpha"]),
        ("customer", ["Charlie", "Alpha", "Bravo"]),  # Acme < Zeta < unmapped
        ("status", ["Bravo", "Alpha", "Charlie"]),  # Needs Action, Needs Sync, Failed
    ],
)
def test_sort_by_column(personas: Personas, operator: Client, sort: str, expected: list[str]):
    acme = QboCustomerFactory(company=personas.company, display_name="Acme")
    zeta = QboCustomerFactory(company=personas.company, display_name="Zeta")
    make(
        personas.company,
        name="Alpha",
        qbo_customer=zeta,
        status=SyncStatus.NEEDS_SYNC,
    )
    make(personas.company, name="Bravo", start_date=dt.date(2025, 1, 1))
    make(
        personas.company,
        name="Charlie",
        qbo_customer=acme,
        status=SyncStatus.FAILED,
        start_date=dt.date(2025, 6, 1),
    )

    html = operator.get(LIST_URL, {"sort": sort}).content.decode()

    names = re.findall(r'<span class="project-name"><bdi>([^<]+)</bdi></span>', html)
    assert names == expected
    key = sort.lstrip("-")
    direction = "descending" if sort.startswith("-") else "ascending"
    assert re.search(rf'aria-sort="{direction}"[^>]*>\s*<a href="[^"]*sort=-?{key}', html) or (
        f'aria-sort="{direction}"' in html
    )


def test_pagination_slices_pages_and_keeps_serials(personas: Personas, operator: Client) -> None:
    projects = StagedProjectFactory.create_batch(120, company=personas.company)

    page2 = operator.get(LIST_URL, {"page": 2}, headers=HX).content.decode()
    last = operator.get(LIST_URL, {"page": 999}).content.decode()

    assert row_ids(page2) == [p.pk for p in projects[50:100]]
    assert serials(page2)[0].strip() == "51" and serials(page2)[-1].strip() == "100"
    assert "Showing 51–100 of 120 projects" in page2
    assert row_ids(last) == [p.pk for p in projects[100:]]  # clamped to the last page
    assert 'aria-label="First page"' in page2 and 'aria-label="Last page"' in page2


def test_links_keep_filter_sort_and_search(personas: Personas, operator: Client) -> None:
    StagedProjectFactory.create_batch(60, company=personas.company, name="Harbor", status="failed")

    html = operator.get(LIST_URL, {"status": "failed", "q": "harbor", "sort": "-name"}).content
    text = html.decode()

    assert f'href="{LIST_URL}?status=failed&amp;q=harbor&amp;sort=-name&amp;page=2"' in text
    # A chip keeps the search and sort but goes back to page 1.
    assert f'href="{LIST_URL}?status=synced&amp;q=harbor&amp;sort=-name"' in text


def test_hostile_project_name_is_rendered_escaped(personas: Personas, operator: Client) -> None:
    project = make(
        personas.company,
        name="<script>alert(1)</script>",
        client_name='"><img src=x onerror=alert(2)>',
        status_reason="<b>bold</b>",
    )
    ChangeEvent.objects.create(
        company=personas.company, project=project, kind=EventKind.IMPORTED, summary=project.name
    )

    urls = [
        LIST_URL,
        reverse("portfolio:project_history", args=[project.pk]),
        reverse("portfolio:project_json", args=[project.pk]),
    ]
    pages = [operator.get(url, headers=HX).content.decode() for url in urls]

    for html in pages:
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in pages[0]


def test_flags_deleted_in_linarc_and_validation_problems(
    personas: Personas, operator: Client
) -> None:
    make(personas.company, deleted_in_linarc=True, problems=["Start date is after end date"])

    html = operator.get(LIST_URL).content.decode()

    assert "Deleted in Linarc" in html
    assert "1 problem" in html and "Start date is after end date" in html


def test_sync_run_progress_shows_for_an_active_run(personas: Personas, operator: Client) -> None:
    Run.objects.create(
        company=personas.company, kind=RunKind.SYNC, state="running", total=40, processed=10
    )

    html = operator.get(LIST_URL).content.decode()

    assert 'data-active="1"' in html
    assert "10 of 40 projects" in html and "25%" in html


# --- performance: 50,000 staged rows -----------------------------------------------------


def bulk_stage(company: Any, customer: Any, *, base: int = 1563, doublings: int = 5) -> int:
    """Stage base * 2**doublings projects fast: one bulk_create, then INSERT … SELECT copies
    of the company's rows (portable SQL: SQLite and PostgreSQL both speak it)."""
    statuses = list(SyncStatus)
    StagedProject.objects.bulk_create(
        [
            StagedProject(
                company=company,
                linarc_id=f"bulk-{i}",
                number=f"P-{i:05d}",
                name=f"Project {i:05d}",
                client_name="Harbor" if i % 7 == 0 else "Cascade",
                status=statuses[i % len(statuses)],
                qbo_customer=customer if i % 2 else None,
            )
            for i in range(base)
        ],
        batch_size=500,
    )
    table = StagedProject._meta.db_table
    columns = [
        f.column for f in StagedProject._meta.concrete_fields if not (f.primary_key or f.generated)
    ]
    renamed = {c: f"{c} || '-{{n}}'" for c in ("linarc_id", "number", "name")}
    with connection.cursor() as cursor:
        for n in range(doublings):
            select = ", ".join(renamed[c].format(n=n) if c in renamed else c for c in columns)
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT {select} FROM {table} WHERE company_id = %s",
                [company.pk],
            )
    return StagedProject.objects.filter(company=company).count()


@pytest.fixture
def fifty_thousand(personas: Personas) -> int:
    customer = QboCustomerFactory(company=personas.company, display_name="Cascade")
    total = bulk_stage(personas.company, customer)
    assert total >= 50_000
    return total


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"status": "failed", "q": "harbor", "sort": "-name", "page": "7"},
        {"sort": "customer", "page": "1000"},
        {"sort": "status", "page": "400"},
    ],
)
def test_fifty_thousand_rows_render_one_page_in_bounded_queries(
    personas: Personas,
    operator: Client,
    fifty_thousand: Any,
    django_assert_max_num_queries: Any,
    params: dict[str, str],
) -> None:
    operator.get(LIST_URL)  # warm the session
    # The page's own reads, and at most 5 for the unmapped rows' suggested customers
    # (staging/services/suggestions.py), whatever the number of rows.
    with django_assert_max_num_queries(12 + 5), CaptureQueriesContext(connection) as queries:
        response = operator.get(LIST_URL, params)

    html = response.content.decode()
    assert response.status_code == 200
    assert 0 < len(row_ids(html)) <= 50
    statements = [q["sql"] for q in queries.captured_queries]
    status_reads = [
        sql
        for sql in statements
        if re.match(
            r'SELECT "staging_stagedproject"\."id"( AS "id")?, '
            r'"staging_stagedproject"\."status"( AS "status")? FROM',
            sql,
        )
    ]
    # The suggestions read staging rows by client name (the client's mapped projects) and by
    # QBO record id (a customer that is a project's job): both through an index, never the
    # table.
    suggestion_reads = [
        sql
        for sql in statements
        if 'FROM "staging_stagedproject"' in sql
        and ('"client_name" IN' in sql or '"qbo_record_id" IN' in sql)
    ]
    assert len(suggestion_reads) <= 2, suggestion_reads
    row_queries = [
        sql
        for sql in statements
        if 'FROM "staging_stagedproject"' in sql
        and "COUNT(" not in sql
        and sql not in status_reads + suggestion_reads
    ]
    # A search counts at most SEARCH_COUNT_LIMIT + 1 matches, never all of them ('harbor'
    # matches 1 row in 7 here, over 7,000): the chosen chip's first 501 (id and status),
    # and since that many match, nothing more.
    limit = selectors.SEARCH_COUNT_LIMIT + 1
    assert len(status_reads) == (1 if params.get("q") else 0)
    assert all(sql.endswith(f"LIMIT {limit}") for sql in status_reads), status_reads
    # One read of project rows, and it is a page (LIMIT 50, or 51 when the count stopped at
    # the limit: the extra row tells whether a next page exists), never the table. A deep
    # page reads the page's ids first, then those rows by id.
    deep = (int(params.get("page", 1)) - 1) * 50 >= selectors.DEEP_PAGE_OFFSET
    assert len(row_queries) == (2 if deep else 1)
    assert re.search(r"LIMIT 5[01]( OFFSET \d+)?$", row_queries[0]), row_queries[0]
    if deep:
        assert re.match(r'SELECT "staging_stagedproject"\."id"( AS "id")? FROM', row_queries[0])
        assert "LIMIT" not in row_queries[1]
        assert re.search(r'"staging_stagedproject"\."id" IN \((\d+, ){0,49}\d+\)', row_queries[1])
    if not params:
        assert re.search(rf'chip-all active.*?chip-count">{fifty_thousand:,}<', html, re.S)


def test_fifty_thousand_rows_poll_and_select_all_stay_bounded(
    personas: Personas,
    operator: Client,
    fifty_thousand: Any,
    django_assert_max_num_queries: Any,
) -> None:
    ids = ",".join(
        f"{pk}:{n}"
        for n, pk in enumerate(
            StagedProject.objects.filter(status="queued").values_list("pk", flat=True)[:50], 1
        )
    )
    operator.get(LIST_URL)
    # The poll's own reads, and at most 5 for the suggestions of unmapped rows among them.
    with django_assert_max_num_queries(10 + 5):
        poll = operator.get(reverse("portfolio:project_rows"), {"rows": ids}, headers=HX)
    assert poll.status_code == 200
    assert poll.content.decode().count('hx-swap-oob="outerHTML"') == 50
    with django_assert_max_num_queries(10):
        preview = operator.get(
            reverse("portfolio:projects_sync_preview"), {"select_all": "1"}, headers=HX
        )
    assert "will sync" in preview.content.decode()


# --- the QBO Customer cell: options and the permanent mapping ------------------------------


def test_customer_options_search_the_company_cache(personas: Personas, operator: Client):
    project = make(personas.company, client_name="Harbor Properties")
    QboCustomerFactory(company=personas.company, display_name="Harbor Properties")
    QboCustomerFactory(company=personas.company, display_name="Harbor Marine")
    QboCustomerFactory(company=personas.company, display_name="Harbor Old", active=False)
    QboCustomerFactory(company=personas.company, display_name="Harbor Job", is_job=True)
    QboCustomerFactory(company=personas.other_company, display_name="Harbor Elsewhere")
    url = reverse("portfolio:project_customer_options", args=[project.pk])

    first = operator.get(url, headers=HX).content.decode()
    typed = operator.get(url, {"q": "  HARBOR  m"}, headers=HX).content.decode()

    suggested = "Suggested: <bdi>Harbor Properties</bdi>"
    assert suggested in first
    assert "— same name as the Linarc client" in first
    assert first.index(suggested) < first.index("Harbor Marine")
    assert "Harbor Old" not in first and "Harbor Job" not in first
    assert "Harbor Elsewhere" not in first
    assert re.findall(r'<span class="option-name"><bdi>([^<]+)</bdi></span>', typed) == [
        "Harbor Marine"
    ]


def test_customer_options_are_capped(personas: Personas, operator: Client) -> None:
    project = make(personas.company)
    QboCustomerFactory.create_batch(30, company=personas.company)
    url = reverse("portfolio:project_customer_options", args=[project.pk])

    html = operator.get(url, headers=HX).content.decode()

    assert html.count('role="option"') == 20
    assert "Showing the first 20" in html


def test_map_customer_returns_the_locked_row(personas: Personas, operator: Client) -> None:
    project = make(personas.company, name="Riverside Clinic")
    customer = QboCustomerFactory(company=personas.company, display_name="Cascade Schools")
    url = reverse("portfolio:project_map_customer", args=[project.pk])

    response = operator.post(url, {"qbo_customer": customer.pk, "serial": "7"}, headers=HX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<tr id="project-{project.pk}"')
    assert 'title="Permanent mapping"' in html and "Cascade Schools" in html
    assert ">7</button>" in html  # the row keeps its serial
    assert "Needs Sync" in html
    assert 'id="status-bar" class="status-bar" hx-swap-oob="true"' in html
    # The flash, out of band; each name in a bidi isolate (staging/templatetags/bidi.py).
    assert "Mapped “<bdi>Riverside Clinic</bdi>” to “<bdi>Cascade Schools</bdi>”." in html
    project.refresh_from_db()
    assert project.qbo_customer == customer and project.status == SyncStatus.NEEDS_SYNC


def test_second_mapping_is_409_with_the_message_in_the_cell(
    personas: Personas, operator: Client
) -> None:
    first, second = QboCustomerFactory.create_batch(2, company=personas.company)
    project = make(personas.company, qbo_customer=first, status=SyncStatus.NEEDS_SYNC)
    url = reverse("portfolio:project_map_customer", args=[project.pk])

    response = operator.post(url, {"qbo_customer": second.pk}, headers=HX)

    html = response.content.decode()
    assert response.status_code == 409
    assert 'class="cell-error" role="alert"' in html
    assert "already mapped" in html and "permanent" in html
    assert first.display_name in html
    project.refresh_from_db()
    assert project.qbo_customer == first


def test_second_mapping_without_htmx_is_a_409_page(personas: Personas, operator: Client):
    first, second = QboCustomerFactory.create_batch(2, company=personas.company)
    project = make(personas.company, qbo_customer=first, status=SyncStatus.NEEDS_SYNC)
    url = reverse("portfolio:project_map_customer", args=[project.pk])

    response = operator.post(url, {"qbo_customer": second.pk})

    assert response.status_code == 409
    html = response.content.decode()
    assert "<html" in html and "already mapped" in html


def test_map_without_htmx_redirects_back_to_the_same_view(personas: Personas, operator: Client):
    project = make(personas.company)
    customer = QboCustomerFactory(company=personas.company)
    url = reverse("portfolio:project_map_customer", args=[project.pk])

    response = operator.post(url, {"qbo_customer": customer.pk, "status": "needs_action"})

    assert response.status_code == 302
    assert response["Location"] == f"{LIST_URL}?status=needs_action"
    follow = operator.get(response["Location"])
    assert "Mapped “" in follow.content.decode()


@pytest.mark.parametrize(
    "choice", ["", "abc", "99999999", "-1", "\u00b2", "\u0661", "other-company"]
)
def test_bad_customer_choice_is_422(personas: Personas, operator: Client, choice: str) -> None:
    project = make(personas.company)
    if choice == "other-company":
        choice = str(QboCustomerFactory(company=personas.other_company).pk)
    url = reverse("portfolio:project_map_customer", args=[project.pk])

    response = operator.post(url, {"qbo_customer": choice}, headers=HX)

    assert response.status_code == 422
    assert 'class="cell-error"' in response.content.decode()
    project.refresh_from_db()
    assert project.qbo_customer is None


def test_viewer_may_not_map(personas: Personas, viewer: Client) -> None:
    project = make(personas.company)
    customer = QboCustomerFactory(company=personas.company)
    url = reverse("portfolio:project_map_customer", args=[project.pk])

    response = viewer.post(url, {"qbo_customer": customer.pk}, headers=HX)

    assert response.status_code == 403
    project.refresh_from_db()
    assert project.qbo_customer is None


# --- Sync to QBO -------------------------------------------------------------------------


@pytest.fixture
def sync_rows(personas: Personas) -> dict[str, StagedProject]:
    customer = QboCustomerFactory(company=personas.company)
    return {
        "ready": make(personas.company, status=SyncStatus.NEEDS_SYNC, qbo_customer=customer),
        "failed": make(personas.company, status=SyncStatus.FAILED, qbo_customer=customer),
        "unmapped": make(personas.company, status=SyncStatus.NEEDS_ACTION),
        "synced": make(personas.company, status=SyncStatus.SYNCED, qbo_customer=customer),
    }


def test_sync_queues_the_selected_eligible_rows_and_says_why_not_the_rest(
    personas: Personas, operator: Client, sync_rows: dict[str, StagedProject]
) -> None:
    ids = ",".join(str(sync_rows[k].pk) for k in ("ready", "failed", "unmapped"))

    response = operator.post(reverse("portfolio:projects_sync"), {"ids": ids}, headers=HX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="results"')
    assert "Queued 2 projects for QBO. Skipped 1: No QBO customer selected (1)." in html
    statuses = {k: StagedProject.objects.get(pk=p.pk).status for k, p in sync_rows.items()}
    assert statuses == {
        "ready": "queued",
        "failed": "queued",
        "unmapped": "needs_action",
        "synced": "synced",
    }
    run = Run.objects.get(company=personas.company, kind=RunKind.SYNC)
    assert run.total == 2
    assert 'data-active="1"' in html  # the progress bar starts


def test_sync_ignores_tampered_and_foreign_ids(
    personas: Personas, operator: Client, sync_rows: dict[str, StagedProject]
) -> None:
    foreign_customer = QboCustomerFactory(company=personas.other_company)
    foreign = make(
        personas.other_company, status=SyncStatus.NEEDS_SYNC, qbo_customer=foreign_customer
    )
    junk = ["abc", "-4", "1e9", "99999999999999999999999999", "0", " ", "<script>", "\u00b2"]
    data = {"ids": [str(foreign.pk), *junk, f"{sync_rows['ready'].pk},{foreign.pk}"]}

    response = operator.post(reverse("portfolio:projects_sync"), data, headers=HX)

    assert response.status_code == 200
    assert "Queued 1 project for QBO." in response.content.decode()
    foreign.refresh_from_db()
    assert foreign.status == SyncStatus.NEEDS_SYNC
    assert StagedProject.objects.get(pk=sync_rows["ready"].pk).status == SyncStatus.QUEUED


def test_sync_only_foreign_ids_queues_nothing(personas: Personas, operator: Client) -> None:
    foreign_customer = QboCustomerFactory(company=personas.other_company)
    foreign = make(
        personas.other_company, status=SyncStatus.NEEDS_SYNC, qbo_customer=foreign_customer
    )

    response = operator.post(reverse("portfolio:projects_sync"), {"ids": foreign.pk}, headers=HX)

    assert "Queued 0 projects" in response.content.decode()
    foreign.refresh_from_db()
    assert foreign.status == SyncStatus.NEEDS_SYNC


def test_select_all_reapplies_the_filter_on_the_server(
    personas: Personas, operator: Client, sync_rows: dict[str, StagedProject]
) -> None:
    data = {"select_all": "1", "status": "failed", "ids": str(sync_rows["ready"].pk)}

    response = operator.post(reverse("portfolio:projects_sync"), data, headers=HX)

    assert "Queued 1 project for QBO." in response.content.decode()
    assert StagedProject.objects.get(pk=sync_rows["failed"].pk).status == SyncStatus.QUEUED
    assert StagedProject.objects.get(pk=sync_rows["ready"].pk).status == SyncStatus.NEEDS_SYNC


def test_sync_with_nothing_selected_is_422(personas: Personas, operator: Client) -> None:
    response = operator.post(reverse("portfolio:projects_sync"), {"ids": ""}, headers=HX)

    assert response.status_code == 422
    assert "Select one or more projects first" in response.content.decode()


def test_sync_without_htmx_redirects_with_the_summary(
    personas: Personas, operator: Client, sync_rows: dict[str, StagedProject]
) -> None:
    data = {"ids": str(sync_rows["ready"].pk), "status": "needs_sync", "q": "x y"}

    response = operator.post(reverse("portfolio:projects_sync"), data)

    assert response.status_code == 302
    assert response["Location"] == f"{LIST_URL}?status=needs_sync&q=x+y"
    page = operator.get(response["Location"]).content.decode()
    assert "Queued 1 project for QBO." in page


def test_sync_preview_counts_without_writing(
    personas: Personas, operator: Client, sync_rows: dict[str, StagedProject]
) -> None:
    ids = ",".join(str(p.pk) for p in sync_rows.values())

    response = operator.get(reverse("portfolio:projects_sync_preview"), {"ids": ids}, headers=HX)

    html = " ".join(response.content.decode().split())
    assert "2 will sync." in html
    assert "No QBO customer selected (1)" in html
    assert "Already synced, no changes (1)" in html
    assert not StagedProject.objects.filter(status=SyncStatus.QUEUED).exists()
    assert not Run.objects.exists()


def test_viewer_may_not_sync(
    personas: Personas, viewer: Client, sync_rows: dict[str, StagedProject]
) -> None:
    response = viewer.post(
        reverse("portfolio:projects_sync"), {"ids": sync_rows["ready"].pk}, headers=HX
    )
    assert response.status_code == 403
    assert StagedProject.objects.get(pk=sync_rows["ready"].pk).status == SyncStatus.NEEDS_SYNC


# --- Failed rows: retry one, retry all ----------------------------------------------------


def test_click_failed_retries_the_row_at_once(
    personas: Personas, operator: Client, sync_rows: dict[str, StagedProject]
) -> None:
    project = sync_rows["failed"]
    url = reverse("portfolio:project_retry", args=[project.pk])

    response = operator.post(url, {"serial": "3"}, headers=HX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<tr id="project-{project.pk}"')
    assert 'data-status="queued"' in html and "Queued" in html
    project.refresh_from_db()
    assert project.status == SyncStatus.QUEUED
    assert ChangeEvent.objects.filter(project=project, kind=EventKind.RETRIED).exists()


def test_retry_of_a_row_that_is_not_failed_is_409(
    personas: Personas, operator: Client, sync_rows: dict[str, StagedProject]
) -> None:
    url = reverse("portfolio:project_retry", args=[sync_rows["synced"].pk])

    response = operator.post(url, headers=HX)

    assert response.status_code == 409
    assert "Only a Failed project can be retried" in response.content.decode()


def test_retry_without_htmx_redirects(
    personas: Personas, operator: Client, sync_rows: dict[str, StagedProject]
) -> None:
    url = reverse("portfolio:project_retry", args=[sync_rows["failed"].pk])
    response = operator.post(url, {"status": "failed"})
    assert response.status_code == 302
    assert response["Location"] == f"{LIST_URL}?status=failed"


def test_failed_tooltip_carries_reason_code_and_intuit_tid(personas: Personas, operator: Client):
    customer = QboCustomerFactory(company=personas.company)
    make(
        personas.company,
        status=SyncStatus.FAILED,
        qbo_customer=customer,
        status_reason="Duplicate Name Exists Error",
        failure_code="6240",
        intuit_tid="1-abc-tid",
    )

    html = operator.get(LIST_URL).content.decode()

    tip = re.search(
        r'<span class="tip" role="tooltip" id="status-tip-\d+">(.*?)</span>\s*</form>', html, re.S
    )
    assert tip is not None
    text = " ".join(tip.group(1).split())
    assert "Duplicate Name Exists Error" in text
    assert "QBO code 6240" in text and "intuit_tid 1-abc-tid" in text
    assert 'class="badge badge-failed badge-button" aria-describedby="status-tip-' in html


def test_retry_all_failed_uses_the_current_filter(personas: Personas, operator: Client) -> None:
    customer = QboCustomerFactory(company=personas.company)
    harbor = make(personas.company, name="Harbor", status=SyncStatus.FAILED, qbo_customer=customer)
    other = make(personas.company, name="Other", status=SyncStatus.FAILED, qbo_customer=customer)

    response = operator.post(
        reverse("portfolio:projects_retry_failed"), {"q": "harbor"}, headers=HX
    )

    assert "Retrying 1 failed project." in response.content.decode()
    assert StagedProject.objects.get(pk=harbor.pk).status == SyncStatus.QUEUED
    assert StagedProject.objects.get(pk=other.pk).status == SyncStatus.FAILED


# --- the poll while rows are Queued ------------------------------------------------------


def test_poll_returns_the_given_rows_out_of_band(personas: Personas, operator: Client) -> None:
    customer = QboCustomerFactory(company=personas.company)
    mine = make(personas.company, status=SyncStatus.SYNCED, qbo_customer=customer)
    foreign = make(personas.other_company, name="Foreign Secret")

    response = operator.get(
        reverse("portfolio:project_rows"),
        {"rows": f"{mine.pk}:12,{foreign.pk}:13,junk:1,:", "status": ""},
        headers=HX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert row_ids(html) == [mine.pk]
    assert f'<tr id="project-{mine.pk}"' in html and ">12</button>" in html
    assert "Synced" in html
    assert "Foreign Secret" not in html
    assert 'id="status-bar" class="status-bar" hx-swap-oob="true"' in html
    assert 'id="sync-progress"' in html


def test_page_with_queued_rows_has_them_for_the_poller(personas: Personas, operator: Client):
    customer = QboCustomerFactory(company=personas.company)
    make(personas.company, status=SyncStatus.QUEUED, qbo_customer=customer)

    html = operator.get(LIST_URL).content.decode()

    assert 'data-status="queued"' in html
    # projects.js cancels a tick with nothing queued and adds the rows (no eval under the CSP).
    assert 'id="project-poller"' in html and 'hx-trigger="every 2s"' in html


# --- Change History ---------------------------------------------------------------------


@pytest.fixture
def history(personas: Personas) -> StagedProject:
    project = make(personas.company, number="P-1001", name="Riverside Clinic")
    at = dt.datetime(2025, 5, 1, 9, 0, tzinfo=dt.UTC)
    ChangeEvent.objects.create(
        company=personas.company,
        project=project,
        kind=EventKind.IMPORTED,
        summary="Imported from Linarc",
        at=at,
    )
    ChangeEvent.objects.create(
        company=personas.company,
        project=project,
        kind=EventKind.UPDATED,
        summary='=HYPERLINK("http://evil")',
        details={
            "changes": {
                "name": {"old": "Riverside", "new": "Riverside Clinic"},
                "end_date": ["2025-01-01", "2025-02-01"],
            }
        },
        at=at + dt.timedelta(days=1),
    )
    ChangeEvent.objects.create(
        company=personas.company,
        project=project,
        kind=EventKind.FAILED,
        actor=personas.operator,
        summary="Duplicate Name Exists Error",
        details={"code": "6240", "intuit_tid": "1-abc", "qbo_record_id": "58"},
        at=at + dt.timedelta(days=2),
    )
    return project


def test_history_drawer_lists_events_newest_first(
    personas: Personas, operator: Client, history: StagedProject
) -> None:
    url = reverse("portfolio:project_history", args=[history.pk])

    response = operator.get(url, headers=HX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    kinds = re.findall(r'<span class="event-kind">([^<]+)</span>', html)
    assert kinds == ["Failed", "Updated from Linarc", "Imported"]
    assert "otto" in html and "System" in html  # actor, or System for a worker/import
    old_new = '<td class="old"><bdi>{}</bdi></td><td class="new"><bdi>{}</bdi></td>'
    assert old_new.format("Riverside", "Riverside Clinic") in html
    assert old_new.format("2025-01-01", "2025-02-01") in html
    assert "<dd>6240</dd>" in html and "<dd>1-abc</dd>" in html and "<dd>58</dd>" in html
    assert reverse("portfolio:project_history_csv", args=[history.pk]) in html


def test_history_without_htmx_is_a_page(personas: Personas, viewer: Client, history: Any):
    response = viewer.get(reverse("portfolio:project_history", args=[history.pk]))
    html = response.content.decode()
    assert "<html" in html and "Change History" in html and "Back to Projects" in html


def test_history_csv_export_escapes_formulas(
    personas: Personas, viewer: Client, history: StagedProject
) -> None:
    response = viewer.get(reverse("portfolio:project_history_csv", args=[history.pk]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="change-history-P-1001.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == [
        "At (UTC)",
        "Actor",
        "Event",
        "Summary",
        "Changes",
        "QBO Id",
        "QBO code",
        "intuit_tid",
    ]
    assert [r[2] for r in rows[1:]] == ["Failed", "Updated from Linarc", "Imported"]
    assert rows[1] == [
        "2025-05-03 09:00:00",
        "otto",
        "Failed",
        "Duplicate Name Exists Error",
        "",
        "58",
        "6240",
        "1-abc",
    ]
    assert rows[2][3] == '\'=HYPERLINK("http://evil")'
    assert rows[2][4] == "name: Riverside → Riverside Clinic; end_date: 2025-01-01 → 2025-02-01"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1"])
def test_csv_cells_starting_a_formula_are_quoted(
    personas: Personas, viewer: Client, value: str
) -> None:
    project = make(personas.company, number=value)
    ChangeEvent.objects.create(
        company=personas.company, project=project, kind=EventKind.IMPORTED, summary=value
    )

    response = viewer.get(reverse("portfolio:project_history_csv", args=[project.pk]))

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[1][3] == f"'{value}"
    assert 'filename="change-history-' in response["Content-Disposition"]
    assert "\t" not in response["Content-Disposition"]


# --- Json Script -----------------------------------------------------------------------


def test_json_script_redacts_secrets_and_shows_the_next_request(
    personas: Personas, viewer: Client
) -> None:
    customer = QboCustomerFactory(company=personas.company, qbo_id="77")
    project = make(
        personas.company,
        name="Riverside Clinic",
        qbo_customer=customer,
        status=SyncStatus.FAILED,
        source_payload={
            "id": "lp-1",
            "api_key": "linarc-key-123",
            "nested": {"accessToken": "tok-abc", "items": [{"client_secret": "cs-1"}]},
        },
        last_request={
            "headers": {"Authorization": "Bearer eyJ.secret", "X-Api-Key": "k"},
            "body": {"DisplayName": "Riverside Clinic", "SyncToken": "3"},
            "refresh_token": "rt-1",
        },
        last_response={"Fault": {"Error": [{"code": "6240"}]}, "note": "Bearer abc.def"},
    )

    response = viewer.get(reverse("portfolio:project_json", args=[project.pk]), headers=HX)

    html = response.content.decode()
    assert response.status_code == 200
    for secret in ("linarc-key-123", "tok-abc", "cs-1", "eyJ.secret", "rt-1", "abc.def"):
        assert secret not in html
    assert html.count("••• redacted •••") >= 7
    # A version number, not a secret; coloured on the server (templatetags/json_highlight.py).
    assert (
        '<span class="j-key">&quot;SyncToken&quot;</span>: '
        '<span class="j-string">&quot;3&quot;</span>'
    ) in html
    assert html.count('class="j-redacted"') >= 7
    assert "Next QBO request (dry run)" in html
    assert "&quot;ParentRef&quot;" in html and "&quot;77&quot;" in html
    # The name the sync falls back to when another project has this one (sync/push.py).
    assert "&quot;Riverside Clinic (" + project.number + ")&quot;" in html
    assert html.count('data-copy="json-') == 4


def test_json_script_without_htmx_is_a_page(personas: Personas, viewer: Client) -> None:
    project = make(personas.company)
    response = viewer.get(reverse("portfolio:project_json", args=[project.pk]))
    html = response.content.decode()
    assert "<html" in html and "Json Script" in html
    assert "No QBO customer selected" in html  # the dry run explains why nothing is sent


# --- Manual Mapping ---------------------------------------------------------------------


@pytest.fixture
def jobs(personas: Personas) -> dict[str, Any]:
    parent = QboCustomerFactory(company=personas.company, display_name="Harbor", qbo_id="10")
    other = QboCustomerFactory(company=personas.company, display_name="Other", qbo_id="20")
    return {
        "parent": parent,
        "mine": QboCustomerFactory(
            company=personas.company,
            display_name="Harbor Tower",
            is_job=True,
            parent_qbo_id="10",
            qbo_id="11",
        ),
        "theirs": QboCustomerFactory(
            company=personas.company,
            display_name="Other Tower",
            is_job=True,
            parent_qbo_id="20",
            qbo_id="21",
        ),
        "other": other,
    }


def test_manual_map_drawer_lists_jobs_under_the_mapped_customer(
    personas: Personas, operator: Client, jobs: dict[str, Any]
) -> None:
    project = make(personas.company, qbo_customer=jobs["parent"], status="needs_sync")

    html = operator.get(
        reverse("portfolio:project_manual_map", args=[project.pk]), headers=HX
    ).content.decode()

    assert "Harbor Tower" in html and "Other Tower" not in html


def test_manual_map_without_customer_lists_every_job_and_searches(
    personas: Personas, operator: Client, jobs: dict[str, Any]
) -> None:
    project = make(personas.company)

    html = operator.get(reverse("portfolio:project_manual_map", args=[project.pk])).content.decode()
    found = operator.get(
        reverse("portfolio:project_manual_map_jobs", args=[project.pk]),
        {"q": "other"},
        headers=HX,
    ).content.decode()

    assert "<html" in html and "Harbor Tower" in html and "Other Tower" in html
    assert "Other Tower" in found and "Harbor Tower" not in found


def test_manual_map_preview_then_save(
    personas: Personas, operator: Client, jobs: dict[str, Any]
) -> None:
    project = make(personas.company, name="Harbor Tower")
    preview_url = reverse("portfolio:project_manual_map_preview", args=[project.pk])
    save_url = reverse("portfolio:project_manual_map_save", args=[project.pk])

    preview = operator.get(
        preview_url, {"qbo_customer": jobs["mine"].pk, "serial": 4}, headers=HX
    ).content.decode()
    saved = operator.post(save_url, {"qbo_customer": jobs["mine"].pk, "serial": 4}, headers=HX)

    assert "What will change" in preview
    assert "“Harbor”, permanently" in preview
    assert saved.status_code == 200
    html = saved.content.decode()
    assert "Linked to the QuickBooks job “<bdi>Harbor Tower</bdi>” (Id 11)" in html
    assert f'<tr id="project-{project.pk}"' in html and 'hx-swap-oob="outerHTML"' in html
    project.refresh_from_db()
    assert project.qbo_record_id == "11" and project.qbo_customer == jobs["parent"]


def test_manual_map_to_a_job_under_another_customer_is_422(
    personas: Personas, operator: Client, jobs: dict[str, Any]
) -> None:
    project = make(personas.company, qbo_customer=jobs["parent"], status="needs_sync")
    save_url = reverse("portfolio:project_manual_map_save", args=[project.pk])
    preview_url = reverse("portfolio:project_manual_map_preview", args=[project.pk])

    preview = operator.get(preview_url, {"qbo_customer": jobs["theirs"].pk}, headers=HX)
    saved = operator.post(save_url, {"qbo_customer": jobs["theirs"].pk}, headers=HX)

    assert preview.status_code == 422
    assert saved.status_code == 422
    assert "is not under this project's customer" in html_module.unescape(saved.content.decode())
    project.refresh_from_db()
    assert project.qbo_record_id == "" and project.qbo_customer == jobs["parent"]


def test_manual_map_save_without_htmx_redirects(
    personas: Personas, operator: Client, jobs: dict[str, Any]
) -> None:
    project = make(personas.company)
    url = reverse("portfolio:project_manual_map_save", args=[project.pk])

    response = operator.post(url, {"qbo_customer": jobs["mine"].pk})

    assert response.status_code == 302 and response["Location"] == LIST_URL


# --- roles and companies ----------------------------------------------------------------


def test_outsider_cannot_see_or_touch_another_companys_project(personas: Personas) -> None:
    project = make(personas.company, name="Private Project")
    customer = QboCustomerFactory(company=personas.company)
    outsider = personas.client_for(personas.outsider)

    listing = outsider.get(LIST_URL).content.decode()
    history = outsider.get(reverse("portfolio:project_history", args=[project.pk]))
    mapped = outsider.post(
        reverse("portfolio:project_map_customer", args=[project.pk]),
        {"qbo_customer": customer.pk},
        headers=HX,
    )

    assert "Private Project" not in listing
    assert history.status_code == 404 and mapped.status_code == 404
    project.refresh_from_db()
    assert project.qbo_customer is None


def test_operator_of_two_companies_sees_only_the_current_one(personas: Personas) -> None:
    MembershipFactory(user=personas.operator, company=personas.other_company, role=Role.VIEWER)
    make(personas.company, name="Home Project")
    make(personas.other_company, name="Away Project")
    client = personas.client_for(personas.operator)

    client.post(reverse("switch_company"), {"company": personas.company.pk})
    home = client.get(LIST_URL).content.decode()
    client.post(reverse("switch_company"), {"company": personas.other_company.pk})
    away = client.get(LIST_URL).content.decode()

    assert "Home Project" in home and "Away Project" not in home
    assert "Away Project" in away and "Home Project" not in away


# --- the QuickBooks connection banner --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headline", "action"),
    [
        (None, "QuickBooks is not connected.", "Connect to QuickBooks"),
        ("disconnected", "QuickBooks is not connected.", "Connect to QuickBooks"),
        ("needs_reconnect", "QuickBooks needs to be reconnected.", "Reconnect QuickBooks"),
    ],
)
def test_the_tab_says_when_quickbooks_is_not_connected_and_admins_get_the_link(
    personas: Personas, status: str | None, headline: str, action: str
) -> None:
    from integrations.models import QboConnection

    if status:
        QboConnection.objects.create(company=personas.company, realm_id="9130", status=status)
    admin = personas.client_for(personas.admin).get(LIST_URL).content.decode()
    viewer = personas.client_for(personas.viewer).get(LIST_URL).content.decode()

    assert headline in admin and headline in viewer
    assert action in admin and reverse("portfolio:qbo_connection") in admin
    assert action not in viewer and "Ask an admin of your company to connect it." in viewer


def test_no_banner_while_quickbooks_is_connected(personas: Personas) -> None:
    from integrations.models import QboConnection

    QboConnection.objects.create(company=personas.company, realm_id="9130", status="connected")
    page = personas.client_for(personas.admin).get(LIST_URL).content.decode()
    assert 'class="qbo-banner"' not in page


def test_the_picker_shows_matching_sub_customers_with_their_parent_path(
    personas: Personas, operator: Client
) -> None:
    project = make(personas.company, client_name="Harbor Properties")
    QboCustomerFactory(company=personas.company, qbo_id="41", display_name="Harbor Properties")
    QboCustomerFactory(
        company=personas.company,
        qbo_id="87",
        display_name="Harbor Dock Rebuild",
        is_job=True,
        parent_qbo_id="41",
        fully_qualified_name="Harbor Properties:Harbor Dock Rebuild",
    )
    url = reverse("portfolio:project_customer_options", args=[project.pk])

    typed = operator.get(url, {"q": "dock"}, headers=HX).content.decode()
    first = operator.get(url, headers=HX).content.decode()

    assert "Harbor Properties:Harbor Dock Rebuild" in typed
    manual = reverse("portfolio:project_manual_map", args=[project.pk])
    assert f'hx-get="{manual}?q=Harbor%20Dock%20Rebuild"' in typed
    assert 'data-customer-id="' not in typed.split("picker-jobs")[1]  # not a customer to pick
    assert "Harbor Dock Rebuild" not in first  # jobs only for a search

    drawer = operator.get(manual, {"q": "Harbor Dock Rebuild"}, headers=HX).content.decode()
    assert 'value="Harbor Dock Rebuild"' in drawer and "Harbor Dock Rebuild" in drawer


def test_the_banner_shows_on_every_integration_page_but_the_panel_and_the_health_page(
    personas: Personas,
) -> None:
    from integrations.models import QboConnection

    QboConnection.objects.create(company=personas.company, realm_id="9", status="needs_reconnect")
    admin = personas.client_for(personas.admin)
    for name in ("portfolio:projects", "portfolio:sync_rules"):
        assert "QuickBooks needs to be reconnected." in admin.get(reverse(name)).content.decode()
    # The connection panel and the health page say it in their own QuickBooks box.
    for name in ("portfolio:qbo_connection", "portfolio:integration_health"):
        assert 'class="qbo-banner"' not in admin.get(reverse(name)).content.decode()
