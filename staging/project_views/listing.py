"""The Projects list: the page, the poll while rows are Queued, and the bulk actions on a
selection (Select All, Sync to QBO and its preview, Retry all failed)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url

from integrations.http import (
    HtmxHttpRequest,
    is_partial_request,
    render_page_or_partial,
    vary_on_htmx,
)
from integrations.models import Role
from integrations.tenancy import company_required, current_company
from staging import selectors
from staging.models import StagedProject
from staging.project_views.table import (
    ROW_DEFAULTS,
    RowUrls,
    chips,
    code_filter,
    int_or_none,
    list_url,
    pager,
    sort_headers,
)
from staging.selectors import ProjectFilters, ProjectPage
from staging.services.workers import workers_online
from staging.sync import queue as sync

PAGE_TEMPLATE = "staging/projects.html"


# --- shared by the list, the rows and the drawers -----------------------------------------


def can_operate(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership and membership.has_role(Role.OPERATOR))


def company_project(request: HttpRequest, pk: int) -> StagedProject:
    """One project of the current company; another company's id answers 404."""
    return get_object_or_404(
        StagedProject.objects.select_related("qbo_customer"),
        pk=pk,
        company=current_company(request),
    )


def _status_bar_context(page: ProjectPage) -> dict[str, Any]:
    return {
        "chips": chips(page),
        "code_filter": code_filter(page.filters),
        "workers_online": workers_online(),
        "search_count_limit": selectors.SEARCH_COUNT_LIMIT,
    }


def status_bar_only(request: HttpRequest, filters: ProjectFilters) -> dict[str, Any]:
    """The chips (with fresh counts) for an answer that re-renders a row, not the list."""
    counts = selectors.project_status_counts(company=current_company(request), filters=filters)
    page = ProjectPage(projects=[], filters=filters, counts=counts, total=0, number=1, num_pages=1)
    return _status_bar_context(page)


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
        "filter_key": f"{filters.status}|{filters.code_param}|{filters.q}",
        "sort_headers": sort_headers(filters),
        "pager": pager(page),
        "can_operate": can_operate(request),
        "list_url": list_url(filters, page=page.number),
        **_status_bar_context(page),
        **_progress_context(request),
    }


def render_list(
    request: HtmxHttpRequest, filters: ProjectFilters, *, status: int = 200
) -> HttpResponse:
    """The list page, or (HTMX) the results with the toolbar and progress out of band."""
    context = _list_context(request, filters)
    response = render_page_or_partial(
        request, PAGE_TEMPLATE, context, partial="results_response", status=status
    )
    if is_partial_request(request) and request.method == "GET":
        # The canonical URL of this view (clamped page, defaults left out) for sharing.
        push_url(response, context["list_url"])
    return response


# --- the list and its poll ----------------------------------------------------------------


@require_GET
@company_required()
def projects_tab(request: HtmxHttpRequest) -> HttpResponse:
    return render_list(request, selectors.project_filters_from(request.GET))


@require_GET
@company_required()
def project_rows(request: HtmxHttpRequest) -> HttpResponse:
    """The poll while rows are Queued: those rows, the counts and the progress bar, all as
    out-of-band swaps, in a fixed number of queries."""
    serials: dict[int, int] = {}
    for pair in request.GET.get("rows", "").split(",")[: selectors.PAGE_SIZE * 4]:
        pk_text, _, serial_text = pair.partition(":")
        pk, serial = int_or_none(pk_text), int_or_none(serial_text)
        if pk:
            serials[pk] = serial if serial and serial < 10**7 else 0
    filters = selectors.project_filters_from(request.GET)
    rows = selectors.projects_by_ids(company=current_company(request), ids=list(serials))
    context = {
        **ROW_DEFAULTS,
        "poll_rows": RowUrls().rows([(serials[p.pk], p) for p in rows]),
        "filters": filters,
        "can_operate": can_operate(request),
        **status_bar_only(request, filters),
        **_progress_context(request),
    }
    return vary_on_htmx(render(request, f"{PAGE_TEMPLATE}#poll_response", context))


# --- bulk: Select All, Sync to QBO, Retry all failed -------------------------------------


def selection(request: HttpRequest, params: QueryDict) -> tuple[ProjectFilters, bool, Any]:
    filters = selectors.project_filters_from(params)
    select_all = params.get("select_all") == "1"
    ids = selectors.parse_project_ids(params.getlist("ids"))
    projects = selectors.projects_selected(
        company=current_company(request), ids=ids, select_all=select_all, filters=filters
    )
    return filters, (select_all or bool(ids)), projects


def after_bulk(
    request: HtmxHttpRequest, filters: ProjectFilters, text: str, *, level: int, status: int = 200
) -> HttpResponse:
    messages.add_message(request, level, text)
    if is_partial_request(request) or status >= 400:
        return render_list(request, filters, status=status)
    return HttpResponseRedirect(list_url(filters))


@require_POST
@company_required(Role.OPERATOR)
def projects_sync(request: HtmxHttpRequest) -> HttpResponse:
    filters, chosen, projects = selection(request, request.POST)
    if not chosen:
        return after_bulk(
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
    return after_bulk(request, filters, summary.describe(), level=level)


@require_GET
@company_required()
def projects_sync_preview(request: HtmxHttpRequest) -> HttpResponse:
    """What Sync to QBO would do with the current selection (no writes): the button's
    tooltip and the line under the toolbar."""
    _filters, chosen, projects = selection(request, request.GET)
    summary = (
        sync.sync_preview(company=current_company(request), projects=projects) if chosen else None
    )
    return vary_on_htmx(render(request, f"{PAGE_TEMPLATE}#sync_preview", {"summary": summary}))


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
        return after_bulk(request, filters, text, level=messages.SUCCESS)
    return after_bulk(request, filters, "No failed projects match this view.", level=messages.INFO)
