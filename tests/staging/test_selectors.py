"""Read queries of the Projects tab: filters from the URL, counts, pages, selections, the
customer drop-downs, history rows, CSV safety and redaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import QueryDict

from staging import selectors
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.selectors import REDACTED, ProjectFilters
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


def test_status_counts_are_one_grouped_query(
    personas: Personas, django_assert_num_queries: Any
) -> None:
    for status in (SyncStatus.FAILED, SyncStatus.FAILED, SyncStatus.SYNCED):
        StagedProjectFactory(company=personas.company, status=status, name="Harbor")
    StagedProjectFactory(company=personas.company, name="Other")
    StagedProjectFactory(company=personas.other_company, status=SyncStatus.FAILED)

    with django_assert_num_queries(1):
        counts = selectors.project_status_counts(
            company=personas.company, filters=ProjectFilters(status="synced", q="harbor")
        )

    assert counts == {
        "needs_action": 0,
        "needs_sync": 0,
        "queued": 0,
        "synced": 1,
        "failed": 2,
        "": 3,
    }


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
    links = selectors._page_links(number, pages)
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
    assert selectors.csv_safe(value) == expected


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

    redacted = selectors.redact_secrets(payload)

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

    docs = selectors.project_json_documents(project=project, next_request={"note": "x"})

    assert [d.slug for d in docs] == ["source", "next-request", "last-request", "last-response"]
    assert docs[0].text == '{\n  "a": 1\n}'
    assert docs[2].text == "" and docs[3].text == ""
