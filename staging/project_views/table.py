"""The parts of the Projects table beyond the rows themselves: each row's URLs, the sort
headers, the status chips and the pager, with the list's filters kept in every link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import QueryDict
from django.urls import reverse

from staging import selectors
from staging.models import StagedProject
from staging.presenters.project_rows import ProjectRow, project_row
from staging.selectors import ProjectFilters, ProjectPage
from staging.services.suggestions import Suggestion, suggestions_for
from staging.sync import queue as sync


def int_or_none(value: Any) -> int | None:
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # "²" is a digit to isdigit
        return None
    return int(text)


def serial_from(params: QueryDict) -> int:
    """The row's position in the list, echoed back so a re-rendered row keeps its number."""
    value = int_or_none(params.get("serial"))
    return value if value and value < 10**7 else 0


def list_url(filters: ProjectFilters, **overrides: Any) -> str:
    query = urlencode(filters.as_params(**overrides))
    base = reverse("portfolio:projects")
    return f"{base}?{query}" if query else base


# Per-row URLs, reversed once per request and filled in per row: reversing six URLs for
# each of 50 rows was a third of the page's render time.
_ROW_URL_NAMES = {
    "map": "portfolio:project_map_customer",
    "retry": "portfolio:project_retry",
    "customers": "portfolio:project_customer_options",
    "history": "portfolio:project_history",
    "manual_map": "portfolio:project_manual_map",
    "json": "portfolio:project_json",
}
_PK_SENTINEL = "918273645"


class RowUrls:
    def __init__(self) -> None:
        self._patterns = {
            key: reverse(name, args=[int(_PK_SENTINEL)]) for key, name in _ROW_URL_NAMES.items()
        }

    def __call__(self, pk: int) -> dict[str, str]:
        return {key: url.replace(_PK_SENTINEL, str(pk)) for key, url in self._patterns.items()}

    def row(
        self,
        project: StagedProject,
        serial: int,
        queue: sync.QueueEstimate | None = None,
        suggestion: Suggestion | None = None,
    ) -> ProjectRow:
        return project_row(
            project,
            serial=serial,
            urls=self(project.pk),
            queue_label=queue.label() if queue else "",
            suggestion=suggestion,
        )

    def rows(self, numbered: list[tuple[int, StagedProject]]) -> list[ProjectRow]:
        """Rows of one company, with the Queued ones' wait and estimate and the unmapped
        ones' suggested customer."""
        if not numbered:
            return []
        company_id = numbered[0][1].company_id
        projects = [p for _, p in numbered]
        estimates = sync.queue_estimates(company_id=company_id, projects=projects)
        suggestions = suggestions_for(company_id=company_id, projects=projects)
        return [
            self.row(p, serial, estimates.get(p.pk), suggestions.get(p.pk))
            for serial, p in numbered
        ]


# What the row partial tests on every row, present and false in every context that renders
# rows: a variable missing from the context costs the template engine four exceptions per
# lookup (150 lookups a page, a millisecond).
ROW_DEFAULTS: dict[str, Any] = {"oob": False, "cell_error": "", "status_error": ""}


def row_context(project: StagedProject, serial: int) -> dict[str, Any]:
    """What the row partial needs when one row is rendered alone (`project` and `serial`
    for the drawers that show it too)."""
    return {
        **ROW_DEFAULTS,
        "project": project,
        "serial": serial,
        "row": RowUrls().rows([(serial, project)])[0],
    }


# --- the list's headers, chips and pager ---------------------------------------------------

COLUMNS = (
    ("customer", "QBO Customer"),
    ("name", "Project Name"),
    ("project_status", "Project Status"),
    ("start_date", "Start Date / End Date"),
    ("status", "Status"),
)


@dataclass(frozen=True)
class SortHeader:
    key: str
    label: str
    url: str
    aria_sort: str  # "ascending" | "descending" | "none"
    arrow: str


@dataclass(frozen=True)
class Chip:
    status: str
    label: str
    count: int | None  # None: not counted (a search matching over SEARCH_COUNT_LIMIT rows)
    url: str
    current: bool
    at_least: bool = False  # more than ``count`` match


@dataclass(frozen=True)
class PagerLink:
    number: int | None
    url: str
    current: bool


def sort_headers(filters: ProjectFilters) -> list[SortHeader]:
    headers = []
    for key, label in COLUMNS:
        if filters.sort_key == key:
            aria = "descending" if filters.descending else "ascending"
            next_sort = key if filters.descending else f"-{key}"
            arrow = "▼" if filters.descending else "▲"
        else:
            aria, next_sort, arrow = "none", key, ""
        headers.append(
            SortHeader(key, label, list_url(filters, sort=next_sort, page=1), aria, arrow)
        )
    return headers


@dataclass(frozen=True)
class CodeFilter:
    """The failure-code filter in force, shown next to the chips with a link that drops it."""

    label: str  # "QuickBooks code 6000 or no code"
    remove_url: str


def code_filter(filters: ProjectFilters) -> CodeFilter | None:
    if not filters.codes:
        return None
    named = [code for code in filters.codes if code]
    parts = []
    if named:
        parts.append(f"QuickBooks code{'s' if len(named) > 1 else ''} {', '.join(named)}")
    if "" in filters.codes:
        parts.append("no QuickBooks code" if not named else "no code")
    return CodeFilter(" or ".join(parts), list_url(filters, codes=(), page=1))


def chips(page: ProjectPage) -> list[Chip]:
    filters = page.filters
    return [
        Chip(
            c.status,
            c.label,
            c.count,
            # A chip shows all of its status: the failure-code filter is dropped.
            list_url(filters, status=c.status, codes=(), page=1),
            c.status == filters.status,
            c.at_least,
        )
        for c in selectors.status_chips(page.counts)
    ]


def pager(page: ProjectPage) -> dict[str, Any]:
    f = page.filters
    return {
        "first_url": list_url(f, page=1),
        "prev_url": list_url(f, page=page.number - 1),
        "next_url": list_url(f, page=page.number + 1),
        "last_url": list_url(f, page=page.num_pages),
        "links": [
            PagerLink(
                link.number, list_url(f, page=link.number) if link.number else "", link.current
            )
            for link in page.links
        ],
    }
