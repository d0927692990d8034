"""What the Projects list shows (status chip, failure codes, search, sort, page: all from the
URL) and which of the company's rows match it, for the list and for the bulk actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet, Value
from django.db.models.functions import Upper

from integrations.models import Company
from staging.models import SEARCH_KEY_SEPARATOR, StagedProject, SyncStatus

MAX_SEARCH_LENGTH = 200
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

# The failure-code filter narrows a Failed or Needs Action chip to some QuickBooks fault
# codes (the health page's "Show" of one kind of failure): ?status=failed&code=6000,6190.
# NO_CODE stands for the rows without one (failure_code ""). Only with one of these
# statuses, so the read is the chip's (company, status) index plus a filter.
FAILURE_STATUSES: frozenset[str] = frozenset({SyncStatus.FAILED, SyncStatus.NEEDS_ACTION})
NO_CODE = "none"
MAX_CODES = 20
_CODE_LENGTH = 32  # StagedProject.failure_code
_CODE_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True)
class ProjectFilters:
    """What the list shows: status chip, search text, sort, page and failure codes, all from
    the URL."""

    status: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    page: int = 1
    # QuickBooks fault codes within a Failed or Needs Action chip, sorted ("" = no code).
    codes: tuple[str, ...] = ()

    @property
    def sort_key(self) -> str:
        return self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def code_param(self) -> str:
        """The failure codes as the URL writes them ("6000,none"), for the forms' inputs."""
        return codes_param(self.codes)

    def as_params(self, **overrides: Any) -> dict[str, str]:
        """Query-string values for links (empty values and defaults left out)."""
        values: dict[str, Any] = {
            "status": self.status,
            "q": self.q,
            "sort": self.sort,
            "page": self.page,
            "codes": self.codes,
            **overrides,
        }
        params: dict[str, str] = {}
        if values["status"]:
            params["status"] = str(values["status"])
        if values["codes"] and values["status"] in FAILURE_STATUSES:
            params["code"] = codes_param(values["codes"])
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
    q = " ".join(without_nul(str(params.get("q") or "")).split())[:MAX_SEARCH_LENGTH]
    sort = str(params.get("sort") or DEFAULT_SORT)
    if sort.removeprefix("-") not in SORT_COLUMNS:
        sort = DEFAULT_SORT
    try:
        page = int(str(params.get("page") or 1))
    except ValueError:
        page = 1
    codes = _codes_from(params) if status in FAILURE_STATUSES else ()
    return ProjectFilters(status=status, q=q, sort=sort, page=max(1, min(page, 10**6)), codes=codes)


def _codes_from(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The failure codes of ``code`` (repeated, or comma-separated). A value that cannot be a
    fault code is dropped, never a 500; past MAX_CODES the rest are ignored."""
    getlist = getattr(params, "getlist", None)
    values = getlist("code") if getlist is not None else [params.get("code") or ""]
    codes: set[str] = set()
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if part == NO_CODE:
                codes.add("")
            elif 0 < len(part) <= _CODE_LENGTH and set(part) <= _CODE_CHARACTERS:
                codes.add(part)
            if len(codes) >= MAX_CODES:
                return tuple(sorted(codes))
    return tuple(sorted(codes))


def codes_param(codes: Iterable[str]) -> str:
    """The URL's ``code`` value for these failure codes ("" is written NO_CODE)."""
    return ",".join(code or NO_CODE for code in codes)


def without_nul(text: str) -> str:
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
    """The company's projects matching the search (and the status chip with its failure
    codes, unless told not to)."""
    projects: QuerySet[StagedProject] = StagedProject.objects.for_company(company)
    if filters.q:
        projects = _searched(projects, filters.q)
    if with_status and filters.status:
        projects = projects.filter(status=filters.status)
        if filters.codes:
            # Read through the (company, status, id) index, then filtered: bounded by the
            # chip's rows, never the company's.
            projects = projects.filter(failure_code__in=filters.codes)
    return projects


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
