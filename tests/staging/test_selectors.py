"""Read queries of the Projects tab: filters from the URL, counts, pages, selections, the
customer drop-downs, history rows, CSV safety and redaction."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection
from django.http import QueryDict
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from staging import selectors
from staging.models import ChangeEvent, EventKind, StagedProject, StatusCountDelta, SyncStatus
from staging.presenters.history_csv import csv_safe
from staging.presenters.json_script import REDACTED, project_json_documents, redact_secrets
from staging.presenters.project_rows import project_row
from staging.selectors import ProjectFilters
from staging.services import status_counts
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ProjectFilters()),
        (
            "status=failed&q=+Harbor++View+&sort=-name&page=3",
            ProjectFilters("failed", "Harbor View", "-name", 3),
        ),
        ("status=DROP+TABLE&sort=password&page=-5", ProjectFilters()),
        ("page=abc&sort=--name", ProjectFilters()),
        ("page=99999999999999999999", ProjectFilters(page=10**6)),
        (f"q={'x' * 500}", ProjectFilters(q="x" * 200)),
        # Failure codes: repeated or comma-separated, "none" for no code, sorted, deduped;
        # junk dropped; only with the Failed or Needs Action chip.
        ("status=failed&code=6000", ProjectFilters("failed", codes=("6000",))),
        (
            "status=failed&code=6190,none&code=6000",
            ProjectFilters("failed", codes=("", "6000", "6190")),
        ),
        ("status=needs_action&code=none&code=none", ProjectFilters("needs_action", codes=("",))),
        (
            "status=failed&code=<script>,%27+OR+1%3D1,%00,6000",
            ProjectFilters("failed", codes=("6000",)),
        ),
        (f"status=failed&code={'9' * 33}", ProjectFilters("failed")),
        ("status=synced&code=6000", ProjectFilters("synced")),
        ("code=6000", ProjectFilters()),
        (
            "status=failed&code=" + ",".join(str(n) for n in range(100)),
            ProjectFilters("failed", codes=tuple(sorted(str(n) for n in range(20)))),
        ),
    ],
)
def test_filters_from_the_url_fall_back_to_safe_defaults(
    query: str, expected: ProjectFilters
) -> None:
    assert selectors.project_filters_from(QueryDict(query)) == expected


def test_filters_as_params_leave_defaults_out() -> None:
    assert ProjectFilters().as_params() == {}
    assert ProjectFilters("failed", "a b", "-name", 2).as_params(page=1) == {
        "status": "failed",
        "q": "a b",
        "sort": "-name",
    }
    coded = ProjectFilters("failed", codes=("", "6000"))
    assert coded.as_params() == {"status": "failed", "code": "none,6000"}
    # Another status, or the codes dropped, leaves the code out.
    assert coded.as_params(status="synced") == {"status": "synced"}
    assert coded.as_params(codes=()) == {"status": "failed"}
    assert selectors.project_filters_from(QueryDict("status=failed&code=none,6000")) == coded


def test_a_failure_code_filter_counts_its_rows_through_the_chip(
    personas: Personas, django_assert_num_queries: Any
) -> None:
    customer = QboCustomerFactory(company=personas.company)
    for code, n in (("6000", 3), ("6190", 2), ("", 1)):
        StagedProjectFactory.create_batch(
            n, company=personas.company, qbo_customer=customer, status="failed", failure_code=code
        )
    StagedProjectFactory(company=personas.other_company, status="failed", failure_code="6000")
    StagedProjectFactory(company=personas.company, status="needs_action", failure_code="6000")

    with django_assert_num_queries(3):  # the counts, the code filter's count, the page
        page = selectors.project_page(
            company=personas.company,
            filters=ProjectFilters("failed", codes=("", "6000")),
            page_size=3,
        )

    assert page.counts["failed"] == 6  # the chip counts its status
    assert (page.total, page.num_pages, page.failed_count) == (4, 2, 4)  # the list, narrowed
    assert {p.failure_code for p in page.projects} <= {"", "6000"}
    assert {p.status for p in page.projects} == {"failed"}


def test_a_search_with_a_failure_code_filter_lists_only_those_rows(personas: Personas) -> None:
    customer = QboCustomerFactory(company=personas.company)
    for code in ("6000", "6000", "6190"):
        StagedProjectFactory(
            company=personas.company,
            name="Harbor Clinic",
            qbo_customer=customer,
            status="failed",
            failure_code=code,
        )
    StagedProjectFactory(
        company=personas.company, name="Maple", status="failed", failure_code="6000"
    )

    page = selectors.project_page(
        company=personas.company, filters=ProjectFilters("failed", "harbor", codes=("6000",))
    )

    assert page.total == 2 and len(page.projects) == 2
    assert {(p.name, p.failure_code) for p in page.projects} == {("Harbor Clinic", "6000")}
    assert page.counts["failed"] == 3  # the search's Failed chip, not narrowed


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1,2,3"], [1, 2, 3]),
        (["3", "1,3", " 2 "], [3, 1, 2]),
        (["abc", "-1", "0", "1.5", "1e3", "", "<script>"], []),
        (["99999999999999999999", "9223372036854775807"], [9223372036854775807]),
        (["9223372036854775808"], []),
        (["\u00b2", "\u0661", "1\u00b2", "\uff11"], []),  # digits to isdigit(), not to int()
    ],
)
def test_posted_ids_are_parsed_and_junk_dropped(values: list[str], expected: list[int]) -> None:
    assert selectors.parse_project_ids(values) == expected


def test_posted_ids_are_capped() -> None:
    ids = selectors.parse_project_ids([",".join(str(n) for n in range(1, 20_000))])
    assert len(ids) == selectors.MAX_SELECTED_IDS


def test_search_counts_are_limited_reads(personas: Personas) -> None:
    for status in (SyncStatus.FAILED, SyncStatus.FAILED, SyncStatus.SYNCED):
        StagedProjectFactory(company=personas.company, status=status, name="Harbor")
    StagedProjectFactory(company=personas.company, name="Other")
    StagedProjectFactory(company=personas.other_company, status=SyncStatus.FAILED)

    with CaptureQueriesContext(connection) as queries:
        counts = selectors.project_status_counts(
            company=personas.company, filters=ProjectFilters(status="synced", q="harbor")
        )

    # Two SELECTs of at most SEARCH_COUNT_LIMIT + 1 rows: the chosen chip's matches, then
    # all of them (one without a chip); on PostgreSQL they run with parallel workers off
    # (SET LOCAL, in a transaction, see selectors.counts._search_reads).
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 2
    assert all(sql.endswith(f"LIMIT {selectors.SEARCH_COUNT_LIMIT + 1}") for sql in selects)
    assert """."status" = 'synced'""" in selects[0] and "'synced'" not in selects[1]
    others = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SELECT")]
    assert all(sql.startswith(("SET LOCAL", "SAVEPOINT", "RELEASE SAVEPOINT")) for sql in others)

    with CaptureQueriesContext(connection) as unchosen:
        assert selectors.project_status_counts(
            company=personas.company, filters=ProjectFilters(q="harbor")
        ) == {**counts}
    assert len([q for q in unchosen.captured_queries if q["sql"].startswith("SELECT")]) == 1

    assert counts == {
        "needs_action": 0,
        "needs_sync": 0,
        "queued": 0,
        "synced": 1,
        "failed": 2,
        "": 3,
    }
    assert counts.at_least == frozenset()


def _harbor_rows(personas: Personas, statuses: dict[SyncStatus, int]) -> None:
    for status, n in statuses.items():
        for _ in range(n):
            StagedProjectFactory(company=personas.company, status=status, name="Harbor Point")
    StagedProjectFactory(company=personas.company, status=SyncStatus.FAILED, name="Dock")


def test_a_search_matching_more_than_the_limit_says_at_least(
    personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SEARCH_COUNT_LIMIT matches the total is a lower bound and the statuses are not
    counted, except the chosen chip's, itself counted up to the limit."""
    monkeypatch.setattr(selectors.counts, "SEARCH_COUNT_LIMIT", 5)
    _harbor_rows(personas, {SyncStatus.SYNCED: 6, SyncStatus.FAILED: 2})

    counts = selectors.project_status_counts(
        company=personas.company, filters=ProjectFilters(q="harbor")
    )
    assert counts == {"": 5} and counts.at_least == {""}

    failed = selectors.project_status_counts(
        company=personas.company, filters=ProjectFilters(q="harbor", status="failed")
    )
    assert failed == {"": 5, "failed": 2} and failed.at_least == {""}

    synced = selectors.project_status_counts(
        company=personas.company, filters=ProjectFilters(q="harbor", status="synced")
    )
    assert synced == {"": 5, "synced": 5} and synced.at_least == {"", "synced"}

    chips = {c.status: (c.count, c.at_least) for c in selectors.status_chips(synced)}
    assert chips == {
        "": (5, True),
        "needs_action": (None, False),
        "needs_sync": (None, False),
        "queued": (None, False),
        "synced": (5, True),
        "failed": (None, False),
    }

    # At the limit exactly, everything is counted.
    monkeypatch.setattr(selectors.counts, "SEARCH_COUNT_LIMIT", 8)
    exact = selectors.project_status_counts(
        company=personas.company, filters=ProjectFilters(q="harbor")
    )
    assert exact["synced"] == 6 and exact["failed"] == 2 and exact[""] == 8
    assert exact.at_least == frozenset()


def test_a_search_past_the_limit_with_a_failure_code_filter_counts_only_the_listed_rows(
    personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors.counts, "SEARCH_COUNT_LIMIT", 5)
    _harbor_rows(personas, {SyncStatus.SYNCED: 6})
    for code in ("6000", "6000", "6190"):
        StagedProjectFactory(
            company=personas.company, status=SyncStatus.FAILED, name="Harbor", failure_code=code
        )

    # The search matches more than the limit: the Failed chip is not counted (its rows are
    # more than the list's), the list's two rows are.
    coded = selectors.project_status_counts(
        company=personas.company, filters=ProjectFilters("failed", "harbor", codes=("6000",))
    )
    assert coded == {"": 5} and coded.at_least == {""}
    assert coded.listed_total("failed") == 2 and len(coded.listed_ids or []) == 2

    # The filter's own rows past the limit: "more than 5" for the list too.
    for _ in range(5):
        StagedProjectFactory(
            company=personas.company, status=SyncStatus.FAILED, name="Harbor", failure_code="6000"
        )
    many = selectors.project_status_counts(
        company=personas.company, filters=ProjectFilters("failed", "harbor", codes=("6000",))
    )
    assert many.listed_total("failed") == 5 and many.at_least == {"", "failed"}


def test_a_page_past_the_search_limit_knows_only_whether_a_next_one_exists(
    personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors.counts, "SEARCH_COUNT_LIMIT", 5)
    _harbor_rows(personas, {SyncStatus.SYNCED: 7})
    pages = [
        selectors.project_page(
            company=personas.company, filters=ProjectFilters(q="harbor", page=n), page_size=3
        )
        for n in (1, 2, 3, 4)
    ]
    assert [p.total_at_least for p in pages] == [True] * 4
    assert [len(p.projects) for p in pages] == [3, 3, 1, 0]
    assert [p.has_next for p in pages] == [True, True, False, False]
    # The 5 counted rows fill 2 pages, which surely exist; a third shows once page 2 sees it.
    assert [p.num_pages for p in pages] == [2, 3, 3, 4]
    assert [p.number for p in pages] == [1, 2, 3, 4]  # not clamped to a counted last page
    assert [p.start_index for p in pages[:3]] == [1, 4, 7]
    seen = [p.pk for page in pages for p in page.projects]
    assert len(seen) == len(set(seen)) == 7


def _counted_by_rows(company: Any) -> dict[str, int]:
    counts = {s.value: 0 for s in selectors.STATUS_ORDER}
    for project in StagedProject.objects.filter(company=company):
        counts[project.status] += 1
    counts[""] = sum(counts.values())
    return counts


@pytest.mark.skipif(
    not status_counts.status_counts_supported(), reason="the count triggers are PostgreSQL's"
)
def test_maintained_status_counts_follow_inserts_updates_deletes_and_compaction(
    personas: Personas, django_assert_num_queries: Any
) -> None:
    company = personas.company
    StagedProject.objects.bulk_create(
        [
            StagedProject(company=company, linarc_id=f"b{i}", status=SyncStatus.NEEDS_SYNC)
            for i in range(40)
        ]
    )
    StagedProjectFactory.create_batch(3, company=company, status=SyncStatus.FAILED)
    StagedProjectFactory(company=personas.other_company, status=SyncStatus.FAILED)
    StagedProject.objects.filter(company=company, status=SyncStatus.NEEDS_SYNC).filter(
        linarc_id__in=[f"b{i}" for i in range(10)]
    ).update(status=SyncStatus.QUEUED)
    StagedProject.objects.filter(company=company, status=SyncStatus.QUEUED).update(
        status_reason="touched, status unchanged"
    )
    StagedProject.objects.filter(company=company, status=SyncStatus.FAILED).first().delete()

    with django_assert_num_queries(1):
        counts = selectors.project_status_counts(company=company, filters=ProjectFilters())
    assert counts == _counted_by_rows(company)
    assert (counts["needs_sync"], counts["queued"], counts["failed"], counts[""]) == (30, 10, 2, 42)

    assert status_counts.status_counts_compact(company_id=company.pk)
    assert StatusCountDelta.objects.filter(company_id=company.pk).count() == 3
    assert selectors.project_status_counts(company=company, filters=ProjectFilters()) == counts
    assert selectors.project_status_counts(
        company=personas.other_company, filters=ProjectFilters()
    ) == _counted_by_rows(personas.other_company)


@pytest.mark.skipif(
    not status_counts.status_counts_supported(), reason="the count triggers are PostgreSQL's"
)
def test_status_counts_compact_themselves_when_many_writes_piled_up(personas: Personas) -> None:
    project = StagedProjectFactory(company=personas.company, status=SyncStatus.NEEDS_SYNC)
    for _ in range(status_counts.COMPACT_AFTER // 2 + 1):  # two delta rows per round trip
        StagedProject.objects.filter(pk=project.pk).update(status=SyncStatus.QUEUED)
        StagedProject.objects.filter(pk=project.pk).update(status=SyncStatus.NEEDS_SYNC)
    assert StatusCountDelta.objects.filter(company_id=personas.company.pk).count() > (
        status_counts.COMPACT_AFTER
    )

    counts = selectors.project_status_counts(company=personas.company, filters=ProjectFilters())

    assert counts == _counted_by_rows(personas.company)
    assert StatusCountDelta.objects.filter(company_id=personas.company.pk).count() == 1


@pytest.mark.parametrize("sort", ["name", "-name", "start_date", "-start_date", "-end_date"])
def test_every_sort_pages_in_the_same_order_as_a_full_sort(personas: Personas, sort: str) -> None:
    import datetime as dt

    for i in range(23):
        StagedProjectFactory(
            company=personas.company,
            name=f"Project {i % 5}",
            start_date=None if i % 4 == 0 else dt.date(2025, 1, 1 + i % 7),
            end_date=None if i % 3 == 0 else dt.date(2026, 1, 1 + i % 6),
        )
    column = sort.removeprefix("-")
    desc = sort.startswith("-")
    rows = list(StagedProject.objects.filter(company=personas.company))
    with_value = sorted(
        (p for p in rows if getattr(p, column) is not None),
        key=lambda p: (getattr(p, column), p.pk),
        reverse=desc,
    )
    expected = with_value + sorted(
        (p for p in rows if getattr(p, column) is None), key=lambda p: p.pk, reverse=desc
    )

    seen: list[int] = []
    for number in (1, 2, 3):
        page = selectors.project_page(
            company=personas.company, filters=ProjectFilters(sort=sort, page=number), page_size=10
        )
        seen += [p.pk for p in page.projects]

    assert seen == [p.pk for p in expected]


def test_a_deep_page_reads_its_ids_first_and_keeps_the_order(
    personas: Personas, monkeypatch: Any, django_assert_num_queries: Any
) -> None:
    monkeypatch.setattr(selectors.projects, "DEEP_PAGE_OFFSET", 3)
    customer = QboCustomerFactory(company=personas.company)
    projects = StagedProjectFactory.create_batch(8, company=personas.company, qbo_customer=customer)

    with django_assert_num_queries(3):  # counts, the page's ids, the rows
        page = selectors.project_page(
            company=personas.company, filters=ProjectFilters(sort="-serial", page=2), page_size=3
        )
        names = [p.qbo_customer.display_name for p in page.projects]  # joined, no query

    assert [p.pk for p in page.projects] == [p.pk for p in projects[::-1][3:6]]
    assert names == [customer.display_name] * 3


def test_project_page_is_two_queries_and_clamps_the_page(
    personas: Personas, django_assert_num_queries: Any
) -> None:
    customer = QboCustomerFactory(company=personas.company)
    StagedProjectFactory.create_batch(7, company=personas.company, qbo_customer=customer)

    with django_assert_num_queries(2):
        page = selectors.project_page(
            company=personas.company, filters=ProjectFilters(page=9), page_size=3
        )
        names = [p.qbo_customer.display_name for p in page.projects]  # joined, no query

    assert (page.number, page.num_pages, page.total) == (3, 3, 7)
    assert [serial for serial, _ in page.rows()] == [7]
    assert names == [customer.display_name]
    assert (page.start_index, page.end_index) == (7, 7)


ROW_URLS = {
    key: f"/p/{key}/" for key in ("map", "retry", "customers", "history", "manual_map", "json")
}


def test_listed_rows_skip_the_json_payloads(
    personas: Personas, django_assert_num_queries: Any
) -> None:
    StagedProjectFactory(
        company=personas.company, source_payload={"big": "x" * 10_000}, last_request={"a": 1}
    )

    with django_assert_num_queries(2):  # counts, the page: nothing deferred is read
        page = selectors.project_page(company=personas.company, filters=ProjectFilters())
        rows = [project_row(p, serial=s, urls=ROW_URLS) for s, p in page.rows()]

    assert {"source_payload", "last_request", "last_response", "address"} <= (
        page.projects[0].get_deferred_fields()
    )
    assert [row.serial for row in rows] == ["1"]


@pytest.mark.parametrize("month", range(1, 13))
def test_row_dates_read_as_the_date_filter_shows_them(personas: Personas, month: int) -> None:
    day = dt.date(987 if month == 2 else 2025, month, 9)
    project = StagedProjectFactory(company=personas.company, start_date=day, end_date=None)

    row = project_row(project, serial=0, urls=ROW_URLS)

    shown = Template('{{ d|date:"M j, Y"|default:"—" }}').render(Context({"d": day}))
    assert (row.start_label, row.end_label) == (shown, "—")


def test_row_text_is_escaped_once_and_defaults_like_the_template(personas: Personas) -> None:
    hostile = "<script>alert('x')</script> & \"co\""
    project = StagedProjectFactory(
        company=personas.company,
        name=hostile,
        number="",
        linarc_id="lp-<1>",
        project_status="",
        problems=[{"message": "<b>too long</b>"}, {"code": "x"}, "plain", 3],
        last_synced_at=dt.datetime(2025, 5, 1, 13, 45, tzinfo=dt.UTC),
    )

    row = project_row(project, serial=0, urls=ROW_URLS)
    html = Template("{{ row.name }}|{{ row.name_label }}|{{ row.number_label }}").render(
        Context({"row": row})
    )

    assert html == f"{escape(hostile)}|{escape(hostile)}|lp-&lt;1&gt;"
    assert (row.serial, row.serial_label, row.project_status_label) == ("0", "•", "—")
    assert row.problems == (
        "&lt;b&gt;too long&lt;/b&gt;",
        escape(str({"code": "x"})),
        "plain",
        "3",
    )
    assert row.problems_label == "4 problems"
    assert row.last_synced_label == "May 1, 2025 13:45"
    assert row.manual_map_url == "/p/manual_map/?serial=0"
    assert not row.mapped


@pytest.mark.parametrize(
    ("number", "pages", "expected"),
    [
        (1, 1, [1]),
        (1, 10, [1, 2, 3, None, 10]),
        (5, 10, [1, None, 3, 4, 5, 6, 7, None, 10]),
        (10, 10, [1, None, 8, 9, 10]),
        (4, 7, [1, 2, 3, 4, 5, 6, 7]),
    ],
)
def test_page_links_have_first_last_and_a_window(
    number: int, pages: int, expected: list[int | None]
) -> None:
    links = selectors.projects._page_links(number, pages)
    assert [link.number for link in links] == expected
    assert [link.number for link in links if link.current] == [number]


def test_selection_is_scoped_to_the_company(personas: Personas) -> None:
    mine = StagedProjectFactory(company=personas.company, status=SyncStatus.FAILED)
    StagedProjectFactory(company=personas.company)
    theirs = StagedProjectFactory(company=personas.other_company, status=SyncStatus.FAILED)

    explicit = selectors.projects_selected(
        company=personas.company,
        ids=[mine.pk, theirs.pk],
        select_all=False,
        filters=ProjectFilters(),
    )
    everything_failed = selectors.projects_selected(
        company=personas.company,
        ids=[],
        select_all=True,
        filters=ProjectFilters("failed"),
    )

    assert list(explicit) == [mine]
    assert list(everything_failed) == [mine]


def test_customer_options_use_the_casefolded_cache(personas: Personas) -> None:
    for name in ("Zeta Builders", "ÉCOLE Harbor", "Harbor Marine"):
        QboCustomerFactory(company=personas.company, display_name=name)
    QboCustomerFactory(company=personas.company, display_name="Harbor Gone", deleted_in_qbo=True)

    found = selectors.qbo_customer_options(company=personas.company, q="  harBOR ")
    every = selectors.qbo_customer_options(company=personas.company, q="", limit=2)

    assert [c.display_name for c in found] == ["Harbor Marine", "ÉCOLE Harbor"]
    assert len(every) == 2


def test_history_reads_diffs_in_both_shapes(personas: Personas) -> None:
    project = StagedProjectFactory(company=personas.company)
    ChangeEvent.objects.create(
        company=personas.company,
        project=project,
        kind=EventKind.UPDATED,
        details={
            "changes": {
                "name": {"old": "A", "new": "B"},
                "start_date": [None, "2025-01-01"],
                "address": {"old": {"city": "X"}, "new": {"city": "Y"}},
            }
        },
    )

    (entry,) = selectors.project_history(project=project)

    # PostgreSQL's jsonb does not keep key order, so compare the changes as a set.
    assert sorted((c.field, c.old, c.new) for c in entry.changes) == sorted(
        [
            ("name", "A", "B"),
            ("start_date", "—", "2025-01-01"),
            ("address", '{"city": "X"}', '{"city": "Y"}'),
        ]
    )
    assert entry.actor_name == "System"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_csv_safe(value: str, expected: str) -> None:
    assert csv_safe(value) == expected


def test_redaction_by_key_and_by_value() -> None:
    payload = {
        "access_token": "a",
        "refreshToken": "b",
        "headers": {"Authorization": "c", "X-API-Key": "d", "Content-Type": "json"},
        "client_secret": "e",
        "items": [{"password": "f", "name": "ok"}],
        "SyncToken": "4",
        "note": "Bearer zzz",
        "tokens": 3,
    }

    redacted = redact_secrets(payload)

    assert redacted == {
        "access_token": REDACTED,
        "refreshToken": REDACTED,
        "headers": {"Authorization": REDACTED, "X-API-Key": REDACTED, "Content-Type": "json"},
        "client_secret": REDACTED,
        "items": [{"password": REDACTED, "name": "ok"}],
        "SyncToken": "4",
        "note": REDACTED,
        "tokens": 3,
    }
    assert payload["access_token"] == "a"  # the stored payload is untouched


def test_json_documents_are_pretty_and_empty_when_missing(personas: Personas) -> None:
    project = StagedProject(company=personas.company, source_payload={"a": 1})

    docs = project_json_documents(project=project, next_request={"note": "x"})

    assert [d.slug for d in docs] == ["source", "next-request", "last-request", "last-response"]
    assert docs[0].text == '{\n  "a": 1\n}'
    assert docs[2].text == "" and docs[3].text == ""


def _rows_read(plan: str) -> int:
    """Rows the plan's scans produced plus those they filtered out (EXPLAIN ANALYZE)."""
    produced = sum(
        int(n) for n in re.findall(r"Scan on staging_stagedproject .*?rows=(\d+) loops", plan)
    )
    removed = sum(
        int(n) for n in re.findall(r"Rows Removed by (?:Filter|Index Recheck): (\d+)", plan)
    )
    return produced + removed


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's")
def test_searches_read_their_few_matches_or_stop_at_the_limit(personas: Personas) -> None:
    """At 24,000 rows: a selective search finds its matches in the trigram index over the
    stored search key (migration 0008); a broad one (1 row in 6) reads its statuses until
    SEARCH_COUNT_LIMIT + 1 matches, not the 4,000 matches nor the 24,000 rows."""
    StagedProject.objects.bulk_create(
        StagedProject(
            company=personas.company,
            linarc_id=f"lp-{n}",
            number=f"P-{n}",
            name=f"Harbor Point {n}" if n % 6 == 0 else f"Project {n}",
            client_name=f"Client {n % 40}",
            status=SyncStatus.SYNCED if n % 2 else SyncStatus.FAILED,
        )
        for n in range(24_000)
    )
    with connection.cursor() as cursor:
        # What autovacuum does after a bulk insert: the trigram index's pending list is
        # merged (until then PostgreSQL cannot price the index), and statistics taken.
        cursor.execute("SELECT gin_clean_pending_list('staged_search')")
        cursor.execute(f"ANALYZE {StagedProject._meta.db_table}")

    def status_read_plan(text: str) -> str:
        """EXPLAIN ANALYZE of the status read project_status_counts runs, as it runs it."""
        matching = selectors.projects_matching(
            company=personas.company, filters=ProjectFilters(q=text), with_status=False
        )
        read = matching.order_by().values_list("status", flat=True)
        with selectors.counts._search_reads():
            return read[: selectors.SEARCH_COUNT_LIMIT + 1].explain(analyze=True)

    selective = status_read_plan("P-1234")
    assert "on staged_search " in selective, selective
    assert _rows_read(selective) < 50, selective

    broad = status_read_plan("harbor")
    assert _rows_read(broad) < 6_000, broad

    counts = selectors.project_status_counts(
        company=personas.company, filters=ProjectFilters(q="harbor")
    )
    assert counts == {"": selectors.SEARCH_COUNT_LIMIT} and counts.at_least == {""}
    failed = selectors.project_status_counts(
        company=personas.company, filters=ProjectFilters(q="P-1234", status="failed")
    )
    # P-1234 and P-12340..P-12349: the even ones are Failed
    assert failed == {
        "": 11,
        "needs_action": 0,
        "needs_sync": 0,
        "queued": 0,
        "synced": 5,
        "failed": 6,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("harbor", {"Harbor Point"}),  # any case
        ("p-77", {"Harbor Point", "Dock"}),  # the number
        ("acme", {"Dock"}),  # the client
        ("50%", {"Mill 50% Off"}),  # LIKE's wildcards are literal
        ("_", {"Snake_Case"}),
        ("point\x1fp", set()),  # never across two fields
        ("straße", {"Straße Nord"}),
    ],
)
def test_search_matches_name_number_or_client_any_case(
    personas: Personas, text: str, expected: set[str]
) -> None:
    for name, number, client in [
        ("Harbor Point", "P-771", "Northgate"),
        ("Dock", "P-770", "ACME Corp"),
        ("Mill 50% Off", "P-1", "Z"),
        ("Snake_Case", "P-2", "Z"),
        ("Straße Nord", "P-3", "Z"),
        ("Plain", "P-4", "Z"),
    ]:
        StagedProjectFactory(company=personas.company, name=name, number=number, client_name=client)
    StagedProjectFactory(company=personas.other_company, name="Harbor Point", number="P-77")
    found = selectors.projects_matching(
        company=personas.company, filters=ProjectFilters(q=text), with_status=False
    )
    assert {p.name for p in found} == expected


def test_a_search_counted_in_full_reads_its_page_by_id(personas: Personas) -> None:
    """The count read every match's id, so the page does not search the rows again: it
    reads those ids (with the chosen chip, in the chosen order)."""
    for name, status in [
        ("Harbor A", SyncStatus.FAILED),
        ("Harbor C", SyncStatus.FAILED),
        ("Harbor B", SyncStatus.FAILED),
        ("Harbor D", SyncStatus.SYNCED),
        ("Dock", SyncStatus.FAILED),
    ]:
        StagedProjectFactory(company=personas.company, name=name, status=status)
    StagedProjectFactory(company=personas.other_company, name="Harbor Z", status="failed")

    filters = ProjectFilters(q="harbor", status="failed", sort="-name")
    with CaptureQueriesContext(connection) as queries:
        page = selectors.project_page(company=personas.company, filters=filters)

    assert [p.name for p in page.projects] == ["Harbor C", "Harbor B", "Harbor A"]
    assert page.total == 3 and not page.total_at_least
    limit = f"LIMIT {selectors.SEARCH_COUNT_LIMIT + 1}"
    page_reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('SELECT "staging_s') and not q["sql"].endswith(limit)
    ]
    assert len(page_reads) == 1
    assert '"staging_stagedproject"."id" IN (' in page_reads[0]
    assert "LIKE" not in page_reads[0]
