"""The actions of one row of the Projects list: the QBO Customer picker and its permanent
mapping, and retrying a Failed row. HTMX gets the row back (the chips follow out of band);
a plain form post goes back to the list."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from integrations.errors import Conflict, Refused
from integrations.http import HtmxHttpRequest, is_partial_request, vary_on_htmx
from integrations.models import Role
from integrations.tenancy import company_required, current_company
from staging import selectors
from staging.models import StagedProject
from staging.project_views.listing import (
    PAGE_TEMPLATE,
    can_operate,
    company_project,
    render_list,
    status_bar_only,
)
from staging.project_views.table import int_or_none, list_url, row_context, serial_from
from staging.services import mapping
from staging.sync import queue as sync
from staging.templatetags.bidi import bidi_isolate


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
    if not is_partial_request(request):
        if status >= 400:
            messages.add_message(request, level, message or cell_error or status_error)
            return render_list(request, filters, status=status)
        if message:
            messages.add_message(request, level, message)
        return HttpResponseRedirect(list_url(filters))
    if message and status < 400:
        messages.add_message(request, level, message)
    context = {
        **row_context(project, serial_from(request.POST)),
        "filters": filters,
        "can_operate": can_operate(request),
        "cell_error": cell_error,
        "status_error": status_error,
        **status_bar_only(request, filters),
    }
    return vary_on_htmx(render(request, f"{PAGE_TEMPLATE}#row_response", context, status=status))


@require_GET
@company_required(Role.OPERATOR)
def project_customer_options(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Type-ahead for the QBO Customer cell: suggestions first, then matching customers."""
    project = company_project(request, pk)
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
        "create_name": "" if q.strip() else mapping.customer_to_create(project=project),
        "create_url": reverse("portfolio:project_create_customer", args=[project.pk]),
        "jobs": selectors.qbo_job_search(company=current_company(request), q=q),
        "manual_map_url": reverse("portfolio:project_manual_map", args=[project.pk]),
    }
    return vary_on_htmx(render(request, f"{PAGE_TEMPLATE}#customer_options", context))


@require_POST
@company_required(Role.OPERATOR)
def project_map_customer(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    customer_id = int_or_none(request.POST.get("qbo_customer"))
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
    except mapping.MappingError as exc:
        # A conflict means someone else mapped the row meanwhile: show the row as it is now.
        current = company_project(request, pk) if isinstance(exc, Conflict) else project
        return _row_response(request, current, cell_error=str(exc), status=exc.status)
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
def project_create_customer(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Create the row's Linarc client in QuickBooks and map the row to it (confirmed in the
    browser first, like any mapping)."""
    project = company_project(request, pk)
    try:
        project, existed = mapping.project_create_customer_and_map(
            company=current_company(request), project_id=project.pk, actor=request.user
        )
    except Refused as exc:
        current = company_project(request, pk) if isinstance(exc, Conflict) else project
        return _row_response(request, current, cell_error=str(exc), status=exc.status)
    assert project.qbo_customer is not None
    name = bidi_isolate(project.qbo_customer.display_name)
    if existed:
        message = format_html(
            "QuickBooks already had “{}”: mapped “{}” to it, nothing was created.",
            name,
            bidi_isolate(project.name),
        )
    else:
        message = format_html(
            "Created “{}” in QuickBooks and mapped “{}” to it.", name, bidi_isolate(project.name)
        )
    return _row_response(request, project, message=message)


@require_POST
@company_required(Role.OPERATOR)
def project_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    try:
        project = sync.project_retry(
            company=current_company(request), project_id=project.pk, actor=request.user
        )
    except sync.NotRetryable as exc:
        return _row_response(request, project, status_error=str(exc), status=exc.status)
    message = format_html("Retrying “{}”.", bidi_isolate(project.name))
    return _row_response(request, company_project(request, pk), message=message)
