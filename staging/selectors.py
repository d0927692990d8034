"""Read queries of the Projects tab, always scoped to a company.

The list must stay fast with 100,000 staged rows, so every function here issues a fixed
number of queries and none reads every row: the per-status counts (which also give the
total the pager needs, so no separate COUNT) are the ones PostgreSQL keeps per company
(StatusCountDelta) or, for a search, read from at most SEARCH_COUNT_LIMIT + 1 matches
(the trigram index over the stored search key; a text with no three letters or digits in
a row has no trigram, and if it matches few rows every row is read); each sort has an
index (migration 0005), so a page reads 50 index entries; a deep page reads its ids from
the index first; the customer of each row is joined, never fetched per row.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    OrderBy,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Upper
from django.utils import formats, timezone
from django.utils.dates import MONTHS_3
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString

from integrations.models import Company, QboCustomer
from staging.models import (
    SEARCH_KEY_SEPARATOR,
    ChangeEvent,
    Run,
    RunKind,
    RunState,
    StagedProject,
    SyncStatus,
)
from staging.services import status_counts
from staging.templatetags.bidi import (
    escape_bidi_controls,
    strip_bidi_controls,
    strip_bidi_overrides,
)

PAGE_SIZE = 50
# From this offset on, a page is read as its ids first (see project_page).
DEEP_PAGE_OFFSET = 1000
CUSTOMER_OPTIONS_LIMIT = 20
MAX_SEARCH_LENGTH = 200
# A search's matches are counted up to this many; past it the list says "more than 500"
# (staging.selectors.project_status_counts).
SEARCH_COUNT_LIMIT = 500
# A selection posted as explicit ids is capped; "Select All" posts the filter instead.
MAX_SELECTED_IDS = 5000
_MAX_PK = 2**63 - 1

# The status chips, in the order a row moves through them.
STATUS_ORDER: tuple[SyncStatus, ...] = (
    SyncStatus.NEEDS_ACTION,
    SyncStatus.NEEDS_SYNC,
    SyncStatus.QUEUED,
    SyncStatus.SYNCED,
    SyncStatus.FAILED,
)


def _status_rank() -> Case:
    return Case(
        *(When(status=s.value, then=Value(i)) for i, s in enumerate(STATUS_ORDER)),
        default=Value(len(STATUS_ORDER)),
        output_field=IntegerField(),
    )


# Sort keys the URL may carry → the columns they order by (the id breaks ties, so paging
# is stable). Anything else falls back to the import order.
SORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "serial": (),
    "customer": ("qbo_customer__display_name",),
    "name": ("name",),
    "project_status": ("project_status",),
    "start_date": ("start_date",),
    "end_date": ("end_date",),
    "status": ("status_rank",),
}
DEFAULT_SORT = "serial"


@dataclass(frozen=True)
class ProjectFilters:
    """What the list shows: status chip, search text, sort and page, all from the URL."""

    status: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    page: int = 1

    @property
    def sort_key(self) -> str:
        return self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    def as_params(self, **overrides: Any) -> dict[str, str]:
        """Query-string values for links (empty values and defaults left out)."""
        values: dict[str, Any] = {
            "status": self.status,
            "q": self.q,
            "sort": self.sort,
            "page": self.page,
            **overrides,
        }
        params: dict[str, str] = {}
        if values["status"]:
            params["status"] = str(values["status"])
        if values["q"]:
            params["q"] = str(values["q"])
        if values["sort"] and values["sort"] != DEFAULT_SORT:
            params["sort"] = str(values["sort"])
        if values["page"] and int(values["page"]) > 1:
            params["page"] = str(values["page"])
        return params


def project_filters_from(params: Mapping[str, Any]) -> ProjectFilters:
    """Read the list state from GET/POST values; anything unknown falls back to a default."""
    status = str(params.get("status") or "")
    if status not in SyncStatus.values:
        status = ""
    q = " ".join(_without_nul(str(params.get("q") or "")).split())[:MAX_SEARCH_LENGTH]
    sort = str(params.get("sort") or DEFAULT_SORT)
    if sort.removeprefix("-") not in SORT_COLUMNS:
        sort = DEFAULT_SORT
    try:
        page = int(str(params.get("page") or 1))
    except ValueError:
        page = 1
    return ProjectFilters(status=status, q=q, sort=sort, page=max(1, min(page, 10**6)))


def _without_nul(text: str) -> str:
    # PostgreSQL refuses a NUL in any query parameter: a typed or forged %00 would be a 500.
    return text.replace("\x00", "")


def _searched(projects: QuerySet[StagedProject], text: str) -> QuerySet[StagedProject]:
    """The projects whose name, number or client name contains ``text``, any case.

    Reads the stored ``search_key`` column (the three fields upper-cased, migration 0008;
    a trigram index on PostgreSQL): contains (LIKE) with the pattern's wildcards escaped by
    Django, upper-cased by the database as the key is, so both sides agree on every
    character. The key's field separator is taken out of the text, so a match never spans
    two fields.
    """
    pattern = Upper(Value(text.replace(SEARCH_KEY_SEPARATOR, "")))
    return projects.filter(search_key__contains=pattern)


def projects_matching(
    *, company: Company, filters: ProjectFilters, with_status: bool = True
) -> QuerySet[StagedProject]:
    """The company's projects matching the search (and the status chip, unless told not to)."""
    projects: QuerySet[StagedProject] = StagedProject.objects.for_company(company)
    if filters.q:
        projects = _searched(projects, filters.q)
    if with_status and filters.status:
        projects = projects.filter(status=filters.status)
    return projects


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
    ) -> None:
        super().__init__(counts)
        self.at_least = frozenset(at_least)
        # A search whose listed rows (search + chosen chip) were all read while counting:
        # their ids, so the page is read by id instead of by searching again.
        self.listed_ids = listed_ids


def project_status_counts(*, company: Company, filters: ProjectFilters) -> StatusCounts:
    """Rows per status for the current search; "" holds the total.

    Without a search, on PostgreSQL, the counts are the ones the database keeps up to date
    in the same transaction as every write (StatusCountDelta): a few rows summed instead of
    every project counted. A search reads the status of at most SEARCH_COUNT_LIMIT + 1 of
    its matches (found through the trigram index when they are few, by the first rows read
    when they are many), so its cost never grows with the company's row count; a chosen
    status chip is read first, the same way (the pager needs its count). Each read takes
    the ids too, so a page of a search counted in full is read by id (project_page), not by
    searching every row again.
    """
    if filters.q:
        with _search_reads():
            return _search_counts(company=company, filters=filters)
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
    return StatusCounts(counts)


def _search_counts(*, company: Company, filters: ProjectFilters) -> StatusCounts:
    matching = projects_matching(company=company, filters=filters, with_status=False)
    limited, chosen = filters.status, None
    if limited:
        # The chosen chip first: the pager needs its count, and when more than the limit
        # match it, more than the limit match the search too, so nothing else is read.
        chosen = _first_matches(matching.filter(status=limited))
        if len(chosen) > SEARCH_COUNT_LIMIT:
            return StatusCounts(
                {"": SEARCH_COUNT_LIMIT, limited: SEARCH_COUNT_LIMIT}, {"", limited}
            )
    first = _first_matches(matching)
    if len(first) <= SEARCH_COUNT_LIMIT:
        counts = {s.value: 0 for s in STATUS_ORDER} | Counter(status for _, status in first)
        listed = [pk for pk, status in first if not limited or status == limited]
        return StatusCounts({**counts, "": len(first)}, listed_ids=listed)
    # More match than are counted: the total is "more than the limit", and the statuses are
    # not counted, except the chosen one.
    if chosen is None:
        return StatusCounts({"": SEARCH_COUNT_LIMIT}, {""})
    return StatusCounts(
        {"": SEARCH_COUNT_LIMIT, limited: len(chosen)}, {""}, listed_ids=[pk for pk, _ in chosen]
    )


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
        """Failed rows matching the search (None: not counted, there may be some)."""
        return self.counts.get(SyncStatus.FAILED.value)

    @property
    def failed_at_least(self) -> bool:
        """More Failed rows match than failed_count (a search past SEARCH_COUNT_LIMIT)."""
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


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """One row of the list as the row partial shows it: each cell's text computed and
    HTML-escaped once, here, so the template only substitutes. Django's template engine
    otherwise spent most of a page's render time per cell: trying a model instance as a
    dict first (an exception), formatting numbers and dates through the locale machinery,
    escaping. The text fields are SafeStrings because they ARE escaped (`_html`); never
    build one from unescaped input."""

    id: SafeString  # str(pk): a dozen attributes of the row carry it
    serial: SafeString  # "0" when unknown (a row rendered alone, without its position)
    serial_label: SafeString  # the serial, or "•"
    status: SafeString
    name: SafeString  # for attributes (data-project-name, aria-label): no bidi controls
    name_label: SafeString  # the name, or "(no name)"; the template puts it in a <bdi>
    number_label: SafeString  # the number, or the Linarc id
    client_name: SafeString
    project_status_label: SafeString  # or "—"
    start_label: SafeString  # "Jun 30, 2025", or "—"
    end_label: SafeString
    mapped: bool  # a permanent QBO customer is set
    customer_name: SafeString
    deleted_in_linarc: bool
    problems: tuple[SafeString, ...]  # each validation problem's message
    problems_label: SafeString  # "2 problems"
    status_reason: SafeString
    failure_code: SafeString
    intuit_tid: SafeString
    qbo_name: SafeString  # the name in QuickBooks, or the project's
    qbo_record_id: SafeString
    last_synced_label: SafeString  # "" when never synced
    queue_label: SafeString  # a Queued row's wait and estimate, else ""
    map_url: SafeString
    retry_url: SafeString
    customers_url: SafeString
    history_url: SafeString
    manual_map_url: SafeString  # with ?serial=
    json_url: SafeString

    def __getitem__(self, key: str) -> Any:
        # The template engine tries `row[key]` before `row.key`: answering it spares an
        # exception per cell.
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


def _html(value: Any) -> SafeString:
    """A JSON value as `{{ value }}` prints it: localised (numbers), then escaped."""
    return conditional_escape(formats.localize(value))


def _text(value: str) -> SafeString:
    # `_html` for the str columns (Django's `escape` is this, behind a lazy-string check),
    # without the bidi overrides (staging.templatetags.bidi).
    return SafeString(strip_bidi_overrides(html.escape(value)))


def _date_label(value: datetime | None, fmt: str) -> SafeString:
    # `{{ value|date:fmt|default:"—" }}`: an aware datetime is shown in the current zone.
    if value is None:
        return SafeString("—")
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return _text(formats.date_format(local, fmt) or "—")


def _day_label(value: date | None) -> SafeString:
    """`{{ value|date:"M j, Y"|default:"—" }}` for a date, spelled out as Django's DateFormat
    does it (M: MONTHS_3[month].title(), j: day, Y: "%04d" year). date_format parses the
    format string on every call: 100 dates a page cost a millisecond."""
    if value is None:
        return SafeString("—")
    return _text(f"{MONTHS_3[value.month].title()} {value.day}, {value.year:04d}")


def _problem_texts(problems: Any) -> tuple[SafeString, ...]:
    # `{% for problem in problems %}{{ problem.message|default:problem }}{% endfor %}`
    if not problems:
        return ()
    items = problems if isinstance(problems, list | tuple | dict | str) else [problems]
    return tuple(_html((p.get("message") or p) if isinstance(p, dict) else p) for p in items)


def project_row(
    project: StagedProject,
    *,
    serial: int,
    urls: Mapping[str, str],
    queue_label: str = "",
) -> ProjectRow:
    """The display values of one listed row (`urls`: its links, see project_views.RowUrls;
    `queue_label`: a Queued row's wait, see staging.sync.queue.QueueEstimate)."""
    customer = project.qbo_customer
    problems = _problem_texts(project.problems)
    count = len(problems)
    serial_text = SafeString(str(serial))  # digits
    name = _text(project.name)
    # An attribute cannot hold a <bdi>, so the name there loses its bidi controls.
    attribute_name = _text(strip_bidi_controls(project.name))
    return ProjectRow(
        id=SafeString(str(project.pk)),  # digits
        serial=serial_text,
        serial_label=serial_text if serial else SafeString("•"),
        status=_text(project.status),
        name=attribute_name,
        name_label=name or SafeString("(no name)"),
        number_label=_text(project.number or project.linarc_id),
        client_name=_text(project.client_name),
        project_status_label=_text(project.project_status or "—"),
        start_label=_day_label(project.start_date),
        end_label=_day_label(project.end_date),
        mapped=customer is not None,
        customer_name=_text(customer.display_name if customer is not None else ""),
        deleted_in_linarc=project.deleted_in_linarc,
        problems=problems,
        problems_label=SafeString(f"{count} problem{'' if count == 1 else 's'}"),
        status_reason=_text(project.status_reason),
        failure_code=_text(project.failure_code),
        intuit_tid=_text(project.intuit_tid),
        qbo_name=_text(project.qbo_display_name) or name,
        qbo_record_id=_text(project.qbo_record_id),
        last_synced_label=(
            _date_label(project.last_synced_at, "M j, Y H:i")
            if project.last_synced_at
            else SafeString("")
        ),
        queue_label=_text(queue_label),
        map_url=_text(urls["map"]),
        retry_url=_text(urls["retry"]),
        customers_url=_text(urls["customers"]),
        history_url=_text(urls["history"]),
        manual_map_url=_text(f"{urls['manual_map']}?serial={serial}"),
        json_url=_text(urls["json"]),
    )


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
    one more for a deep page (its ids, then its rows) and for a search with a status chip
    chosen (the chip's matches are read first, see project_status_counts)."""
    counts = project_status_counts(company=company, filters=filters)
    key = filters.status or ""
    total = counts[key]
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


def parse_project_ids(values: Iterable[str]) -> list[int]:
    """Ids from a posted selection ("1,2,3" or repeated fields). Junk is dropped, never a 500:
    the caller still scopes them to the company, so a foreign id selects nothing."""
    ids: list[int] = []
    seen: set[int] = set()
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            # isascii: str.isdigit() accepts superscripts and other scripts' digits, which
            # int() then refuses (a 500 from a tampered id).
            if not (part.isascii() and part.isdigit()) or len(part) > 19:
                continue
            pk = int(part)
            if 0 < pk <= _MAX_PK and pk not in seen:
                seen.add(pk)
                ids.append(pk)
                if len(ids) >= MAX_SELECTED_IDS:
                    return ids
    return ids


def projects_selected(
    *, company: Company, ids: list[int], select_all: bool, filters: ProjectFilters
) -> QuerySet[StagedProject]:
    """The rows a bulk action applies to: every row matching the filter (Select All), or the
    explicit ids that belong to this company."""
    if select_all:
        return projects_matching(company=company, filters=filters)
    return StagedProject.objects.for_company(company).filter(pk__in=ids)


def projects_by_ids(*, company: Company, ids: list[int]) -> list[StagedProject]:
    return list(
        _listed(
            StagedProject.objects.for_company(company).filter(pk__in=ids[: PAGE_SIZE * 4])
        ).order_by("id")
    )


RECENT_RUN_WINDOW = timedelta(minutes=2)


def latest_sync_run(*, company: Company) -> Run | None:
    """The sync run to show a progress bar for: one still running, or one that finished a
    moment ago (so the user sees it reach 100 %)."""
    recent = timezone.now() - RECENT_RUN_WINDOW
    return (
        Run.objects.filter(company=company, kind=RunKind.SYNC)
        .select_related("started_by")
        .filter(Q(state__in=(RunState.PENDING, RunState.RUNNING)) | Q(finished_at__gte=recent))
        .order_by("-created_at", "-id")
        .first()
    )


# --- QBO customers (the mapping drop-downs) ----------------------------------------------


def _customer_search(text: str) -> str:
    # search_name is display_name.casefold() (written by the cache refresh).
    return " ".join(_without_nul(text).split())[:MAX_SEARCH_LENGTH].casefold()


def qbo_customer_options(
    *, company: Company, q: str, limit: int = CUSTOMER_OPTIONS_LIMIT
) -> list[QboCustomer]:
    """Active top-level customers for the customer drop-down. The (company, is_job, active,
    search_name) index serves both the filter and the order, so LIMIT stops early."""
    customers = QboCustomer.objects.filter(
        company=company, is_job=False, active=True, deleted_in_qbo=False
    )
    text = _customer_search(q)
    if text:
        customers = customers.filter(search_name__contains=text)
    return list(customers.order_by("search_name", "id")[:limit])


@dataclass(frozen=True)
class JobOption:
    """A QBO sub-customer in the Manual Mapping picker, and the project that holds it (a job
    stands for one project only, so such a job is shown but cannot be chosen)."""

    job: QboCustomer
    held_by: StagedProject | None


def qbo_job_options(
    *, company: Company, project: StagedProject, q: str, limit: int = CUSTOMER_OPTIONS_LIMIT
) -> list[JobOption]:
    """QBO sub-customers for Manual Mapping: the jobs under the project's customer, or every
    job when no customer is mapped yet."""
    jobs = QboCustomer.objects.filter(company=company, is_job=True, deleted_in_qbo=False)
    if project.qbo_customer is not None:
        jobs = jobs.filter(parent_qbo_id=project.qbo_customer.qbo_id)
    text = _customer_search(q)
    if text:
        jobs = jobs.filter(search_name__contains=text)
    found = list(jobs.order_by("search_name", "id")[:limit])
    holders = {
        holder.qbo_record_id: holder
        for holder in StagedProject.objects.filter(
            company=company, qbo_record_id__in=[job.qbo_id for job in found]
        )
        .exclude(pk=project.pk)
        .only("pk", "qbo_record_id", "number", "name")
    }
    return [JobOption(job, holders.get(job.qbo_id)) for job in found]


def qbo_job_for_project(
    *, company: Company, project: StagedProject, qbo_customer_id: int
) -> QboCustomer | None:
    jobs = QboCustomer.objects.filter(company=company, is_job=True, pk=qbo_customer_id)
    if project.qbo_customer is not None:
        jobs = jobs.filter(parent_qbo_id=project.qbo_customer.qbo_id)
    return jobs.first()


# --- Change History ------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    event: ChangeEvent
    changes: list[FieldChange]
    qbo_id: str
    code: str
    intuit_tid: str

    @property
    def actor_name(self) -> str:
        actor = self.event.actor
        if actor is None:
            return "System"
        return actor.get_full_name() or actor.get_username()


def _as_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value or "—"
    return json.dumps(value, sort_keys=True, default=str)


def _field_changes(raw: Any) -> list[FieldChange]:
    """details["changes"] as {field: {"old": a, "new": b}} or {field: [a, b]}."""
    if not isinstance(raw, dict):
        return []
    changes: list[FieldChange] = []
    for name, diff in raw.items():
        if isinstance(diff, dict):
            old, new = diff.get("old"), diff.get("new")
        elif isinstance(diff, list | tuple) and len(diff) == 2:
            old, new = diff
        else:
            old, new = None, diff
        changes.append(FieldChange(str(name), _as_text(old), _as_text(new)))
    return changes


def _detail(details: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = details.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def project_history(*, project: StagedProject) -> list[HistoryEntry]:
    """Every event of the row, newest first, with its field diffs and QBO identifiers."""
    events = project.events.select_related("actor").order_by("-at", "-id")
    entries: list[HistoryEntry] = []
    for event in events:
        details = event.details if isinstance(event.details, dict) else {}
        entries.append(
            HistoryEntry(
                event=event,
                changes=_field_changes(details.get("changes")),
                qbo_id=_detail(details, "qbo_record_id", "qbo_id", "qbo_customer_id"),
                code=_detail(details, "code", "failure_code"),
                intuit_tid=_detail(details, "intuit_tid"),
            )
        )
    return entries


# Spreadsheet apps run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    # Bidi controls first (a CSV cell cannot hold an isolate, and an override would reverse
    # the rest of the line), so a cell that only hid its "=" behind one is still caught.
    value = strip_bidi_controls(value)
    return f"'{value}" if value.startswith(_FORMULA_PREFIXES) else value


HISTORY_CSV_HEADER = [
    "At (UTC)",
    "Actor",
    "Event",
    "Summary",
    "Changes",
    "QBO Id",
    "QBO code",
    "intuit_tid",
]


def project_history_csv_rows(*, project: StagedProject) -> list[list[str]]:
    rows = [list(HISTORY_CSV_HEADER)]
    for entry in project_history(project=project):
        changes = "; ".join(f"{c.field}: {c.old} → {c.new}" for c in entry.changes)
        cells = [
            entry.event.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            entry.actor_name,
            entry.event.get_kind_display(),
            entry.event.summary,
            changes,
            entry.qbo_id,
            entry.code,
            entry.intuit_tid,
        ]
        rows.append([csv_safe(cell) for cell in cells])
    return rows


# --- Json Script ------------------------------------------------------------------------

REDACTED = "••• redacted •••"
_SECRET_KEYS = {
    "access_token",
    "refresh_token",
    "id_token",
    "authorization",
    "proxy_authorization",
    "api_key",
    "apikey",
    "x_api_key",
    "client_secret",
    "client_id_secret",
    "password",
    "secret",
    "cookie",
    "set_cookie",
    "bearer",
}
_NOT_SECRET = {"sync_token"}  # QBO's SyncToken is a version number, not a credential
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _is_secret_key(key: str) -> bool:
    normal = _CAMEL.sub("_", key).lower().replace("-", "_").replace(" ", "_")
    if normal in _NOT_SECRET:
        return False
    return normal in _SECRET_KEYS or normal.endswith(("_token", "_secret", "_password", "_api_key"))


def redact_secrets(value: Any) -> Any:
    """A copy of a JSON value with credentials replaced, by key name and by value shape."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _is_secret_key(str(k)) else redact_secrets(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str) and value[:7].lower() in ("bearer ", "basic "):
        return REDACTED
    return value


@dataclass(frozen=True)
class JsonDocument:
    slug: str
    title: str
    help: str
    text: str  # pretty-printed, redacted; empty when there is nothing to show


def _pretty(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    # Bidi controls shown as their escapes: the same JSON, and nothing reordered on screen.
    text = json.dumps(redact_secrets(value), indent=2, ensure_ascii=False, default=str)
    return escape_bidi_controls(text)


def project_json_documents(
    *, project: StagedProject, next_request: dict[str, Any]
) -> list[JsonDocument]:
    return [
        JsonDocument(
            "source",
            "Linarc source payload",
            "The project as last pulled from Linarc.",
            _pretty(project.source_payload),
        ),
        JsonDocument(
            "next-request",
            "Next QBO request (dry run)",
            "What the next Sync to QBO will send. Nothing is sent from here.",
            _pretty(next_request),
        ),
        JsonDocument(
            "last-request",
            "Last QBO request",
            "What the last sync sent to QuickBooks.",
            _pretty(project.last_request),
        ),
        JsonDocument(
            "last-response",
            "Last QBO response",
            "What QuickBooks answered.",
            _pretty(project.last_response),
        ),
    ]
