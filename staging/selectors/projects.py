"""One page of the Projects list: two queries (the counts, then the page) whatever the row
count, and the rows a bulk action names.

Each sort has an index (migration 0005), so a page reads 50 index entries; a deep page
reads its ids from the index first; the customer of each row is joined, never fetched per
row; the JSON payloads the list never shows are not loaded (LIST_COLUMNS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.db.models import Case, F, IntegerField, OrderBy, QuerySet, Value, When

from integrations.models import Company
from staging.models import StagedProject, SyncStatus
from staging.selectors.counts import StatusCounts, project_status_counts
from staging.selectors.filters import (
    SORT_COLUMNS,
    STATUS_ORDER,
    ProjectFilters,
    projects_matching,
)

PAGE_SIZE = 50
# From this offset on, a page is read as its ids first (see project_page).
DEEP_PAGE_OFFSET = 1000


def _status_rank() -> Case:
    return Case(
        *(When(status=s.value, then=Value(i)) for i, s in enumerate(STATUS_ORDER)),
        default=Value(len(STATUS_ORDER)),
        output_field=IntegerField(),
    )


# Columns that are never NULL: descending, they are ordered without NULLS LAST (the same
# rows in the same order) so that one ascending index (migration 0005) serves both
# directions, read backwards. The nullable dates keep NULLS LAST both ways and have an
# index per direction.
_NOT_NULL_SORT_COLUMNS = frozenset({"name", "project_status", "status_rank"})


def _ordering(filters: ProjectFilters) -> list[OrderBy]:
    columns = SORT_COLUMNS[filters.sort_key]
    desc = filters.descending
    order: list[OrderBy] = []
    for c in columns:
        if not desc:
            order.append(F(c).asc(nulls_last=True))
        elif c in _NOT_NULL_SORT_COLUMNS:
            order.append(F(c).desc())
        else:
            order.append(F(c).desc(nulls_last=True))
    order.append(F("id").desc() if desc else F("id").asc())
    return order


@dataclass
class PageLink:
    number: int | None  # None = a gap ("…")
    current: bool = False


@dataclass
class ProjectPage:
    projects: list[StagedProject]
    filters: ProjectFilters
    counts: StatusCounts
    total: int  # rows matching search + status (across all pages), or at least this many
    number: int
    num_pages: int  # with total_at_least, the pages known so far
    page_size: int = PAGE_SIZE
    links: list[PageLink] = field(default_factory=list)
    total_at_least: bool = False  # a search matched more than SEARCH_COUNT_LIMIT rows

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.page_size + 1 if self.projects else 0

    @property
    def failed_count(self) -> int | None:
        """Failed rows matching the search (None: not counted, there may be some), and the
        failure-code filter when it narrows the Failed chip."""
        if self.filters.codes and self.filters.status == SyncStatus.FAILED:
            return self.total
        return self.counts.get(SyncStatus.FAILED.value)

    @property
    def failed_at_least(self) -> bool:
        """More Failed rows match than failed_count (a search past SEARCH_COUNT_LIMIT)."""
        if self.filters.codes and self.filters.status == SyncStatus.FAILED:
            return self.total_at_least
        return SyncStatus.FAILED.value in self.counts.at_least

    @property
    def end_index(self) -> int:
        return self.start_index + len(self.projects) - 1 if self.projects else 0

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def has_queued(self) -> bool:
        return any(p.status == SyncStatus.QUEUED for p in self.projects)

    def rows(self) -> list[tuple[int, StagedProject]]:
        """(serial number, project) pairs; the serial continues across pages."""
        return [(self.start_index + i, p) for i, p in enumerate(self.projects)]


# What the list reads of a row (and of its customer). The JSON payloads (source_payload,
# last_request, last_response, address) can be kilobytes a row and the list never shows
# them: loading and decoding them for 50 rows was work thrown away on every request.
# Anything else read from a listed row would be a query per row (a deferred field).
LIST_COLUMNS = (
    "id",
    "company_id",
    "linarc_id",
    "number",
    "name",
    "client_name",
    "project_status",
    "start_date",
    "end_date",
    "problems",
    "deleted_in_linarc",
    "qbo_customer",
    "qbo_customer__display_name",
    "qbo_record_id",
    "qbo_display_name",
    "status",
    "status_reason",
    "failure_code",
    "intuit_tid",
    "last_synced_at",
    # A Queued row's wait and estimate (staging.sync.queue.queue_estimates).
    "queued_at",
    "sync_priority",
    "lease_id",
    "leased_until",
)


def _listed(projects: QuerySet[StagedProject]) -> QuerySet[StagedProject]:
    return projects.select_related("qbo_customer").only(*LIST_COLUMNS)


def _page_links(number: int, num_pages: int, around: int = 2) -> list[PageLink]:
    wanted = {1, num_pages, *range(number - around, number + around + 1)}
    pages = sorted(p for p in wanted if 1 <= p <= num_pages)
    links: list[PageLink] = []
    previous = 0
    for p in pages:
        if p - previous > 1:
            links.append(PageLink(None))
        links.append(PageLink(p, current=p == number))
        previous = p
    return links


def project_page(
    *, company: Company, filters: ProjectFilters, page_size: int = PAGE_SIZE
) -> ProjectPage:
    """One page of the list: two queries (the counts, then the page) whatever the row count;
    one more for a deep page (its ids, then its rows), for a search with a status chip
    chosen (the chip's matches are read first, see project_status_counts) and for a
    failure-code filter (its rows counted)."""
    counts = project_status_counts(company=company, filters=filters)
    key = filters.status or ""
    total = counts.listed_total(key)
    total_at_least = key in counts.at_least
    if total_at_least:
        # How many pages there are is not known: any page may be asked for, and one row
        # more than a page is read to tell whether a next one exists.
        number = filters.page
        wanted = page_size + 1
    else:
        number = min(filters.page, max(1, math.ceil(total / page_size)))
        wanted = page_size
    matching: QuerySet[StagedProject]
    if counts.listed_ids is not None:
        matching = StagedProject.objects.for_company(company).filter(pk__in=counts.listed_ids)
    else:
        matching = projects_matching(company=company, filters=filters)
    if filters.sort_key == "status":
        matching = matching.annotate(status_rank=_status_rank())
    ordered = matching.order_by(*_ordering(filters))
    offset = (number - 1) * page_size
    if offset < DEEP_PAGE_OFFSET:
        rows = list(_listed(ordered)[offset : offset + wanted])
    else:
        # A deep page: OFFSET walks the skipped rows, so walk only an index (the page's ids,
        # an index-only scan of the sort's index), then load the 50 rows with their customer.
        ids = list(ordered.values_list("id", flat=True)[offset : offset + wanted])
        by_id = {p.pk: p for p in _listed(StagedProject.objects.filter(pk__in=ids))}
        rows = [by_id[pk] for pk in ids if pk in by_id]
    if total_at_least:
        # The pages the counted rows fill surely exist; past them, one more while a row is
        # left.
        counted = math.ceil(total / page_size)
        num_pages = max(counted, number + 1 if len(rows) > page_size else number)
        rows = rows[:page_size]
    else:
        num_pages = max(1, math.ceil(total / page_size))
    return ProjectPage(
        projects=rows,
        filters=filters,
        counts=counts,
        total=total,
        number=number,
        num_pages=num_pages,
        page_size=page_size,
        links=_page_links(number, num_pages),
        total_at_least=total_at_least,
    )


def projects_by_ids(*, company: Company, ids: list[int]) -> list[StagedProject]:
    return list(
        _listed(
            StagedProject.objects.for_company(company).filter(pk__in=ids[: PAGE_SIZE * 4])
        ).order_by("id")
    )
