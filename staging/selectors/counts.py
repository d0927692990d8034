"""How many of the company's rows the list's search matches, per status (the chips, and
the total the pager needs, so no separate COUNT).

Without a search the counts are the ones PostgreSQL keeps per company (StatusCountDelta).
A search reads at most SEARCH_COUNT_LIMIT + 1 of its matches (the trigram index over the
stored search key; a text with no three letters or digits in a row has no trigram, and if
it matches few rows every row is read), so its cost never grows with the company's rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connections, transaction
from django.db.models import Count, QuerySet

from integrations.models import Company
from staging.models import StagedProject
from staging.selectors.filters import STATUS_ORDER, ProjectFilters, projects_matching
from staging.services import status_counts

# A search's matches are counted up to this many; past it the list says "more than 500"
# (project_status_counts).
SEARCH_COUNT_LIMIT = 500


@dataclass(frozen=True)
class StatusCount:
    status: str  # "" for All
    label: str
    count: int | None  # None: not counted (a search matched more than SEARCH_COUNT_LIMIT)
    at_least: bool = False  # more than ``count`` match


class StatusCounts(dict[str, int]):
    """Projects per status ("" = all of them) for the list's search.

    Without a search every status is counted. A search is counted only up to
    SEARCH_COUNT_LIMIT matches: past that, "" (and the chosen status, if any) hold the limit
    and are named in ``at_least``, and the other statuses are missing (not counted).
    """

    def __init__(
        self,
        counts: Mapping[str, int],
        at_least: Iterable[str] = (),
        *,
        listed_ids: list[int] | None = None,
        listed: int | None = None,
    ) -> None:
        super().__init__(counts)
        self.at_least = frozenset(at_least)
        # A search whose listed rows (search + chosen chip) were all read while counting:
        # their ids, so the page is read by id instead of by searching again.
        self.listed_ids = listed_ids
        # Under a failure-code filter the list shows fewer rows than its chip counts: how
        # many (None: as many as the chip).
        self.listed = listed

    def listed_total(self, status: str) -> int:
        """The rows the list shows for the chosen chip (its count, or the code filter's)."""
        return self[status] if self.listed is None else self.listed


def project_status_counts(*, company: Company, filters: ProjectFilters) -> StatusCounts:
    """Rows per status for the current search; "" holds the total.

    Without a search, on PostgreSQL, the counts are the ones the database keeps up to date
    in the same transaction as every write (StatusCountDelta): a few rows summed instead of
    every project counted. A search reads the status of at most SEARCH_COUNT_LIMIT + 1 of
    its matches (found through the trigram index when they are few, by the first rows read
    when they are many), so its cost never grows with the company's row count; a chosen
    status chip is read first, the same way (the pager needs its count). Each read takes
    the ids too, so a page of a search counted in full is read by id (project_page), not by
    searching every row again. A failure-code filter counts its rows once more (the chip's
    (company, status) index plus a filter: never more rows than the chip has).
    """
    if filters.q:
        with _search_reads():
            return _search_counts(company=company, filters=filters)
    counts = _all_counts(company=company)
    if filters.codes:
        # The chip's rows with those codes: its (company, status) index plus a filter.
        listed = projects_matching(company=company, filters=filters).count()
        return StatusCounts(counts, listed=listed)
    return StatusCounts(counts)


def _all_counts(*, company: Company) -> dict[str, int]:
    counts = {s.value: 0 for s in STATUS_ORDER}
    rows: Iterable[tuple[str, int]]
    if status_counts.status_counts_supported():
        maintained, delta_rows = status_counts.status_counts_read(company_id=company.pk)
        if delta_rows > status_counts.COMPACT_AFTER:
            # Every write statement adds a delta row or two; fold them now and then so
            # this read stays a few rows (a small write, amortised over many reads).
            status_counts.status_counts_compact(company_id=company.pk)
        rows = maintained.items()
    else:
        rows = (
            StagedProject.objects.for_company(company)
            .order_by()
            .values_list("status")
            .annotate(n=Count("id"))
        )
    for status, n in rows:
        counts[status] = counts.get(status, 0) + n
    counts[""] = sum(counts.values())
    return counts


def _search_counts(*, company: Company, filters: ProjectFilters) -> StatusCounts:
    matching = projects_matching(company=company, filters=filters, with_status=False)
    limited, chosen = filters.status, None
    narrowed = bool(filters.codes)  # the list shows fewer rows than the chip counts
    if limited:
        # The chosen chip (with its failure codes) first: the pager needs its count, and
        # when more than the limit match it, more than the limit match the search too, so
        # nothing else is read.
        chosen = _first_matches(projects_matching(company=company, filters=filters))
        if len(chosen) > SEARCH_COUNT_LIMIT:
            return StatusCounts(
                {"": SEARCH_COUNT_LIMIT, limited: SEARCH_COUNT_LIMIT},
                {"", limited},
                listed=SEARCH_COUNT_LIMIT if narrowed else None,
            )
    first = _first_matches(matching)
    if len(first) <= SEARCH_COUNT_LIMIT:
        counts = {s.value: 0 for s in STATUS_ORDER} | Counter(status for _, status in first)
        # Every match of the chosen chip was read above (no more than the limit).
        listed = [pk for pk, _ in (first if chosen is None else chosen)]
        return StatusCounts(
            {**counts, "": len(first)},
            listed_ids=listed,
            listed=len(listed) if narrowed else None,
        )
    # More match than are counted: the total is "more than the limit", and the statuses are
    # not counted, except the chosen one (not even that one under a failure-code filter,
    # whose rows are fewer than the chip's).
    if chosen is None:
        return StatusCounts({"": SEARCH_COUNT_LIMIT}, {""})
    chosen_ids = [pk for pk, _ in chosen]
    if narrowed:
        return StatusCounts(
            {"": SEARCH_COUNT_LIMIT}, {""}, listed_ids=chosen_ids, listed=len(chosen_ids)
        )
    return StatusCounts({"": SEARCH_COUNT_LIMIT, limited: len(chosen)}, {""}, listed_ids=chosen_ids)


def _first_matches(matching: QuerySet[StagedProject]) -> list[tuple[int, str]]:
    """(id, status) of up to SEARCH_COUNT_LIMIT + 1 of ``matching``, in no order."""
    return list(matching.order_by().values_list("id", "status")[: SEARCH_COUNT_LIMIT + 1])


@contextmanager
def _search_reads() -> Iterator[None]:
    """A search's status reads run without PostgreSQL's parallel workers: the read stops at
    the limit (or finds its few matches in the trigram index), and with two web workers on
    two CPUs extra processes would only queue behind each other."""
    connection = connections[StagedProject.objects.db]
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        yield


def status_chips(counts: StatusCounts) -> list[StatusCount]:
    return [
        StatusCount(status, label, counts.get(status), status in counts.at_least)
        for status, label in [("", "All"), *((s.value, s.label) for s in STATUS_ORDER)]
    ]
