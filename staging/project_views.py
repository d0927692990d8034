"""The Projects tab: the staged list, customer mapping, selection and Sync to QBO, retries,
Change History, Manual Mapping and Json Script.

Views stay thin: authorise with `company_required(role)`, look objects up inside the
current company (another company's id answers 404), validate, call ONE service or
selector, then render a partial for HTMX or redirect for a plain form post. Errors keep
honest codes: 409 for a permanent mapping that exists or a row that cannot be retried,
422 for a bad choice; projects.js lets htmx swap those into the row or drawer.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from integrations.models import Role
from integrations.tenancy import company_required, current_company
from staging import selectors
from staging.models import StagedProject
from staging.selectors import ProjectFilters, ProjectPage, ProjectRow
from staging.services import mapping
from staging.services.qbo_payload import project_qbo_request_preview
from staging.services.workers import workers_online
from staging.sync import queue as sync
from staging.templatetags.bidi import bidi_isolate

PAGE_TEMPLATE = "staging/projects.html"
DRAWERS_TEMPLATE = "staging/_project_drawers.html"
PANEL_TEMPLATE = "staging/project_panel.html"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _is_partial(request: HtmxHttpRequest) -> bool:
    # A history restore (back button after a cache miss) needs the whole page.
    return bool(request.htmx) and not request.htmx.history_restore_request


def _can_operate(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership and membership.has_role(Role.OPERATOR))


def _vary(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ("HX-Request",))
    return response


def _int_or_none(value: Any) -> int | None:
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # "²" is a digit to isdigit
        return None
    return int(text)


def _serial(params: QueryDict) -> int:
    """The row's position in the list, echoed back so a re-rendered row keeps its number."""
    value = _int_or_none(params.get("serial"))
    return value if value and value < 10**7 else 0


def _list_url(filters: ProjectFilters, **overrides: Any) -> str:
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
        self, project: StagedProject, serial: int, queue: sync.QueueEstimate | None = None
    ) -> ProjectRow:
        return selectors.project_row(
            project,
            serial=serial,
            urls=self(project.pk),
            queue_label=queue.label() if queue else "",
        )

    def rows(self, numbered: list[tuple[int, StagedProject]]) -> list[ProjectRow]:
        """Rows of one company, with the Queued ones' wait and estimate."""
        if not numbered:
            return []
        estimates = sync.queue_estimates(
            company_id=numbered[0][1].company_id, projects=[p for _, p in numbered]
        )
        return [self.row(p, serial, estimates.get(p.pk)) for serial, p in numbered]


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


# --- the list -----------------------------------------------------------------------------

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


def _sort_headers(filters: ProjectFilters) -> list[SortHeader]:
    headers = []
    for key, label in COLUMNS:
        if filters.sort_key == key:
            aria = "descending" if filters.descending else "ascending"
            next_sort = key if filters.descending else f"-{key}"
            arrow = "▼" if filters.descending else "▲"
        else:
            aria, next_sort, arrow = "none", key, ""
        headers.append(
            SortHeader(key, label, _list_url(filters, sort=next_sort, page=1), aria, arrow)
        )
    return headers


def _chips(page: ProjectPage) -> list[Chip]:
    filters = page.filters
    return [
        Chip(
            c.status,
            c.label,
            c.count,
            _list_url(filters, status=c.status, page=1),
            c.status == filters.status,
            c.at_least,
        )
        for c in selectors.status_chips(page.counts)
    ]


def _pager(page: ProjectPage) -> dict[str, Any]:
    f = page.filters
    return {
        "first_url": _list_url(f, page=1),
        "prev_url": _list_url(f, page=page.number - 1),
        "next_url": _list_url(f, page=page.number + 1),
        "last_url": _list_url(f, page=page.num_pages),
        "links": [
            PagerLink(
                link.number, _list_url(f, page=link.number) if link.number else "", link.current
            )
            for link in page.links
        ],
    }


def _status_bar_context(request: HttpRequest, page: ProjectPage) -> dict[str, Any]:
    return {
        "chips": _chips(page),
        "workers_online": workers_online(),
        "search_count_limit": selectors.SEARCH_COUNT_LIMIT,
    }


def _status_bar_only(request: HttpRequest, filters: ProjectFilters) -> dict[str, Any]:
    """The chips (with fresh counts) for an answer that re-renders a row, not the list."""
    counts = selectors.project_status_counts(company=current_company(request), filters=filters)
    page = ProjectPage(projects=[], filters=filters, counts=counts, total=0, number=1, num_pages=1)
    return _status_bar_context(request, page)


# The two ways a mapping service refuses (they are not subclasses of one another).
MAPPING_REFUSALS = (mapping.MappingConflict, mapping.MappingError)


def _mapping_error_status(exc: Exception) -> int:
    """409 when a permanent mapping already exists, 422 for any other refused choice."""
    return 409 if isinstance(exc, mapping.MappingConflict) else 422


def _progress_context(request: HttpRequest) -> dict[str, Any]:
    run = selectors.latest_sync_run(company=current_company(request))
    eta = sync.run_eta_seconds(run=run) if run is not None else None
    return {
        "run": run,
        "run_active": bool(run and run.state in ("pending", "running")),
        "run_eta": sync.duration_label(eta) if eta is not None else "",
    }


def _list_context(request: HttpRequest, filters: ProjectFilters) -> dict[str, Any]:
    page = selectors.project_page(company=current_company(request), filters=filters)
    urls = RowUrls()
    return {
        **ROW_DEFAULTS,
        "erp_tab": "projects",
        "page": page,
        "rows": urls.rows(list(page.rows())),
        "filters": page.filters,
        "filter_key": f"{filters.status}|{filters.q}",
        "sort_headers": _sort_headers(filters),
        "pager": _pager(page),
        "can_operate": _can_operate(request),
        "list_url": _list_url(filters, page=page.number),
        **_status_bar_context(request, page),
        **_progress_context(request),
    }


def _render_list(
    request: HtmxHttpRequest, filters: ProjectFilters, *, status: int = 200
) -> HttpResponse:
    context = _list_context(request, filters)
    if _is_partial(request):
        response = render(request, f"{PAGE_TEMPLATE}#results_response", context, status=status)
        if request.method == "GET":
            # The canonical URL of this view (clamped page, defaults left out) for sharing.
            response["HX-Push-Url"] = context["list_url"]
        return _vary(response)
    return _vary(render(request, PAGE_TEMPLATE, context, status=status))


@require_GET
@company_required()
def projects_tab(request: HtmxHttpRequest) -> HttpResponse:
    return _render_list(request, selectors.project_filters_from(request.GET))


@require_GET
@company_required()
def project_rows(request: HtmxHttpRequest) -> HttpResponse:
    """The poll while rows are Queued: those rows, the counts and the progress bar, all as
    out-of-band swaps, in a fixed number of queries."""
    serials: dict[int, int] = {}
    for pair in request.GET.get("rows", "").split(",")[: selectors.PAGE_SIZE * 4]:
        pk_text, _, serial_text = pair.partition(":")
        pk, serial = _int_or_none(pk_text), _int_or_none(serial_text)
        if pk:
            serials[pk] = serial if serial and serial < 10**7 else 0
    filters = selectors.project_filters_from(request.GET)
    rows = selectors.projects_by_ids(company=current_company(request), ids=list(serials))
    urls = RowUrls()
    context = {
        **ROW_DEFAULTS,
        "poll_rows": urls.rows([(serials[p.pk], p) for p in rows]),
        "filters": filters,
        "can_operate": _can_operate(request),
        **_status_bar_only(request, filters),
        **_progress_context(request),
    }
    return _vary(render(request, f"{PAGE_TEMPLATE}#poll_response", context))


# --- rows: mapping and retry --------------------------------------------------------------


def _project(request: HttpRequest, pk: int) -> StagedProject:
    return get_object_or_404(
        StagedProject.objects.select_related("qbo_customer"),
        pk=pk,
        company=current_company(request),
    )


def _row_response(
    request: HtmxHttpRequest,
    project: StagedProject,
    *,
    message: str = "",
    level: int = messages.SUCCESS,
    cell_error: str = "",
    status_error: str = "",
    status: int = 200,
) -> HttpResponse:
    """HTMX: the row (and the counts, out of band). Plain post: back to the list, or the
    list page with the error and its honest status code."""
    filters = selectors.project_filters_from(request.POST)
    if not _is_partial(request):
        if status >= 400:
            messages.add_message(request, level, message or cell_error or status_error)
            return _render_list(request, filters, status=status)
        if message:
            messages.add_message(request, level, message)
        return HttpResponseRedirect(_list_url(filters))
    if message and status < 400:
        messages.add_message(request, level, message)
    context = {
        **row_context(project, _serial(request.POST)),
        "filters": filters,
        "can_operate": _can_operate(request),
        "cell_error": cell_error,
        "status_error": status_error,
        **_status_bar_only(request, filters),
    }
    return _vary(render(request, f"{PAGE_TEMPLATE}#row_response", context, status=status))


@require_GET
@company_required(Role.OPERATOR)
def project_customer_options(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Type-ahead for the QBO Customer cell: suggestions first, then matching customers."""
    project = _project(request, pk)
    q = request.GET.get("q", "")
    suggestions = [] if q.strip() else mapping.customer_suggestions(project=project)
    suggested_ids = {s.customer.pk for s in suggestions}
    customers = [
        c
        for c in selectors.qbo_customer_options(company=current_company(request), q=q)
        if c.pk not in suggested_ids
    ]
    context = {
        "project": project,
        "suggestions": [(s.customer, s.reason[:1].lower() + s.reason[1:]) for s in suggestions],
        "customers": customers,
        "q": q,
    }
    return _vary(render(request, f"{PAGE_TEMPLATE}#customer_options", context))


@require_POST
@company_required(Role.OPERATOR)
def project_map_customer(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    customer_id = _int_or_none(request.POST.get("qbo_customer"))
    if customer_id is None:
        return _row_response(
            request, project, cell_error="Choose a QuickBooks customer.", status=422
        )
    try:
        project = mapping.project_map_customer(
            company=current_company(request),
            project_id=project.pk,
            qbo_customer_id=customer_id,
            actor=request.user,
        )
    except MAPPING_REFUSALS as exc:
        status = _mapping_error_status(exc)
        # A conflict means someone else mapped the row meanwhile: show the row as it is now.
        current = _project(request, pk) if status == 409 else project
        return _row_response(request, current, cell_error=str(exc), status=status)
    assert project.qbo_customer is not None
    return _row_response(
        request,
        project,
        message=format_html(
            "Mapped “{}” to “{}”.",
            bidi_isolate(project.name),
            bidi_isolate(project.qbo_customer.display_name),
        ),
    )


@require_POST
@company_required(Role.OPERATOR)
def project_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    try:
        project = sync.project_retry(
            company=current_company(request), project_id=project.pk, actor=request.user
        )
    except sync.NotRetryable as exc:
        return _row_response(request, project, status_error=str(exc), status=409)
    message = format_html("Retrying “{}”.", bidi_isolate(project.name))
    return _row_response(request, _project(request, pk), message=message)


# --- bulk: Select All, Sync to QBO, Retry all failed -------------------------------------


def _selection(request: HttpRequest, params: QueryDict) -> Any:
    filters = selectors.project_filters_from(params)
    select_all = params.get("select_all") == "1"
    ids = selectors.parse_project_ids(params.getlist("ids"))
    projects = selectors.projects_selected(
        company=current_company(request), ids=ids, select_all=select_all, filters=filters
    )
    return filters, (select_all or bool(ids)), projects


def _after_bulk(
    request: HtmxHttpRequest, filters: ProjectFilters, text: str, *, level: int, status: int = 200
) -> HttpResponse:
    messages.add_message(request, level, text)
    if _is_partial(request) or status >= 400:
        return _render_list(request, filters, status=status)
    return HttpResponseRedirect(_list_url(filters))


@require_POST
@company_required(Role.OPERATOR)
def projects_sync(request: HtmxHttpRequest) -> HttpResponse:
    filters, chosen, projects = _selection(request, request.POST)
    if not chosen:
        return _after_bulk(
            request,
            filters,
            "Select one or more projects first (click a serial number, or Select All).",
            level=messages.WARNING,
            status=422,
        )
    summary = sync.projects_enqueue_sync(
        company=current_company(request), projects=projects, actor=request.user
    )
    level = messages.SUCCESS if summary.queued else messages.WARNING
    return _after_bulk(request, filters, summary.describe(), level=level)


@require_GET
@company_required()
def projects_sync_preview(request: HtmxHttpRequest) -> HttpResponse:
    """What Sync to QBO would do with the current selection (no writes): the button's
    tooltip and the line under the toolbar."""
    _filters, chosen, projects = _selection(request, request.GET)
    summary = (
        sync.sync_preview(company=current_company(request), projects=projects) if chosen else None
    )
    return _vary(render(request, f"{PAGE_TEMPLATE}#sync_preview", {"summary": summary}))


@require_POST
@company_required(Role.OPERATOR)
def projects_retry_failed(request: HtmxHttpRequest) -> HttpResponse:
    filters = selectors.project_filters_from(request.POST)
    projects = selectors.projects_matching(company=current_company(request), filters=filters)
    summary = sync.projects_retry_failed(
        company=current_company(request), projects=projects, actor=request.user
    )
    if summary.queued:
        text = f"Retrying {summary.queued} failed project{'s' if summary.queued != 1 else ''}."
        return _after_bulk(request, filters, text, level=messages.SUCCESS)
    return _after_bulk(request, filters, "No failed projects match this view.", level=messages.INFO)


# --- drawers: Change History, Json Script, Manual Mapping --------------------------------


def _drawer(
    request: HtmxHttpRequest, partial: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    context = {"erp_tab": "projects", "can_operate": _can_operate(request), **context}
    if _is_partial(request):
        return _vary(render(request, f"{DRAWERS_TEMPLATE}#{partial}", context, status=status))
    context["panel"] = f"{DRAWERS_TEMPLATE}#{partial}"
    return _vary(render(request, PANEL_TEMPLATE, context, status=status))


@require_GET
@company_required()
def project_history(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    history = selectors.project_history(project=project)
    return _drawer(request, "history", {"project": project, "history": history})


@require_GET
@company_required()
def project_history_csv(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"change-history-{project.number or project.pk}.csv"
    safe_name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in filename)
    response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response.write("\ufeff")  # so spreadsheet apps read the file as UTF-8
    writer = csv.writer(response)
    writer.writerows(selectors.project_history_csv_rows(project=project))
    return response


@require_GET
@company_required()
def project_json(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    documents = selectors.project_json_documents(
        project=project, next_request=project_qbo_request_preview(project=project)
    )
    return _drawer(request, "json", {"project": project, "documents": documents})


@require_GET
@company_required(Role.OPERATOR)
def project_manual_map(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    jobs = selectors.qbo_job_options(company=current_company(request), project=project, q="")
    context = {"project": project, "jobs": jobs, "serial": _serial(request.GET)}
    return _drawer(request, "manual_map", context)


@require_GET
@company_required(Role.OPERATOR)
def project_manual_map_jobs(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    jobs = selectors.qbo_job_options(
        company=current_company(request), project=project, q=request.GET.get("q", "")
    )
    context = {"project": project, "jobs": jobs, "serial": _serial(request.GET)}
    return _vary(render(request, f"{DRAWERS_TEMPLATE}#job_options", context))


@require_GET
@company_required(Role.OPERATOR)
def project_manual_map_preview(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    job_id = _int_or_none(request.GET.get("qbo_customer"))
    context: dict[str, Any] = {"project": project, "serial": _serial(request.GET)}
    job = None
    if job_id is not None:
        job = selectors.qbo_job_for_project(
            company=current_company(request), project=project, qbo_customer_id=job_id
        )
    status = 200
    if job is None:
        context["error"], status = "Choose a QuickBooks sub-customer from the list.", 422
    else:
        try:
            lines = mapping.manual_map_preview(
                company=current_company(request), project=project, qbo_customer_id=job.pk
            )
            context.update(job=job, lines=lines)
        except MAPPING_REFUSALS as exc:
            context["error"], status = str(exc), _mapping_error_status(exc)
    return _vary(render(request, f"{DRAWERS_TEMPLATE}#manual_map_preview", context, status=status))


@require_POST
@company_required(Role.OPERATOR)
def project_manual_map_save(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = _project(request, pk)
    job_id = _int_or_none(request.POST.get("qbo_customer"))
    error = ""
    status = 200
    if job_id is None:
        error, status = "Choose a QuickBooks sub-customer from the list.", 422
    else:
        try:
            project = mapping.project_manual_map(
                company=current_company(request),
                project_id=project.pk,
                qbo_customer_id=job_id,
                actor=request.user,
            )
        except MAPPING_REFUSALS as exc:
            error, status = str(exc), _mapping_error_status(exc)
    filters = selectors.project_filters_from(request.POST)
    if not _is_partial(request):
        if error:
            messages.error(request, error)
            return _drawer(
                request,
                "manual_map",
                {
                    "project": project,
                    "jobs": selectors.qbo_job_options(
                        company=current_company(request), project=project, q=""
                    ),
                },
                status=status,
            )
        messages.success(
            request, format_html("Manual Mapping saved for “{}”.", bidi_isolate(project.name))
        )
        return HttpResponseRedirect(_list_url(filters))
    project = _project(request, pk)
    if not error:
        messages.success(
            request, format_html("Manual Mapping saved for “{}”.", bidi_isolate(project.name))
        )
    context = {
        **row_context(project, _serial(request.POST)),
        "filters": filters,
        "error": error,
        "can_operate": _can_operate(request),
        **_status_bar_only(request, filters),
    }
    return _vary(render(request, f"{DRAWERS_TEMPLATE}#manual_map_saved", context, status=status))
