"""The drawers of a Projects row: Change History (and its CSV export), Json Script and
Manual Mapping. HTMX opens each in the list's drawer; a plain link shows it as a page."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from integrations.http import (
    HtmxHttpRequest,
    is_partial_request,
    render_page_or_partial,
    vary_on_htmx,
)
from integrations.models import Role
from integrations.tenancy import company_required, current_company
from staging import selectors
from staging.presenters.history_csv import project_history_csv_rows
from staging.presenters.json_script import project_json_documents
from staging.project_views.listing import can_operate, company_project, status_bar_only
from staging.project_views.table import int_or_none, list_url, row_context, serial_from
from staging.services import mapping
from staging.services.qbo_payload import project_qbo_request_preview
from staging.templatetags.bidi import bidi_isolate

DRAWERS_TEMPLATE = "staging/_project_drawers.html"
PANEL_TEMPLATE = "staging/project_panel.html"


def _drawer(
    request: HtmxHttpRequest, partial: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """The drawer `partial` for HTMX; as a page, project_panel.html around it."""
    drawer = f"{DRAWERS_TEMPLATE}#{partial}"
    context = {"erp_tab": "projects", "can_operate": can_operate(request), **context}
    context["drawer"] = drawer
    return render_page_or_partial(request, PANEL_TEMPLATE, context, partial=drawer, status=status)


@require_GET
@company_required()
def project_history(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    history = selectors.project_history(project=project)
    return _drawer(request, "history", {"project": project, "history": history})


@require_GET
@company_required()
def project_history_csv(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"change-history-{project.number or project.pk}.csv"
    safe_name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in filename)
    response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response.write("\ufeff")  # so spreadsheet apps read the file as UTF-8
    writer = csv.writer(response)
    writer.writerows(project_history_csv_rows(project=project))
    return response


@require_GET
@company_required()
def project_json(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    documents = project_json_documents(
        project=project, next_request=project_qbo_request_preview(project=project)
    )
    return _drawer(request, "json", {"project": project, "documents": documents})


# --- Manual Mapping -----------------------------------------------------------------------


@require_GET
@company_required(Role.OPERATOR)
def project_manual_map(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    q = request.GET.get("q", "")[:200]  # the customer picker links here with a job's name
    jobs = selectors.qbo_job_options(company=current_company(request), project=project, q=q)
    context = {"project": project, "jobs": jobs, "serial": serial_from(request.GET), "q": q}
    return _drawer(request, "manual_map", context)


@require_GET
@company_required(Role.OPERATOR)
def project_manual_map_jobs(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    jobs = selectors.qbo_job_options(
        company=current_company(request), project=project, q=request.GET.get("q", "")
    )
    context = {"project": project, "jobs": jobs, "serial": serial_from(request.GET)}
    return vary_on_htmx(render(request, f"{DRAWERS_TEMPLATE}#job_options", context))


@require_GET
@company_required(Role.OPERATOR)
def project_manual_map_preview(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    job_id = int_or_none(request.GET.get("qbo_customer"))
    context: dict[str, Any] = {"project": project, "serial": serial_from(request.GET)}
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
        except mapping.MappingError as exc:
            context["error"], status = str(exc), exc.status
    return vary_on_htmx(
        render(request, f"{DRAWERS_TEMPLATE}#manual_map_preview", context, status=status)
    )


@require_POST
@company_required(Role.OPERATOR)
def project_manual_map_save(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = company_project(request, pk)
    job_id = int_or_none(request.POST.get("qbo_customer"))
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
        except mapping.MappingError as exc:
            error, status = str(exc), exc.status
    filters = selectors.project_filters_from(request.POST)
    if not is_partial_request(request):
        if error:
            messages.error(request, error)
            jobs = selectors.qbo_job_options(
                company=current_company(request), project=project, q=""
            )
            return _drawer(request, "manual_map", {"project": project, "jobs": jobs}, status=status)
        messages.success(
            request, format_html("Manual Mapping saved for “{}”.", bidi_isolate(project.name))
        )
        return HttpResponseRedirect(list_url(filters))
    project = company_project(request, pk)
    if not error:
        messages.success(
            request, format_html("Manual Mapping saved for “{}”.", bidi_isolate(project.name))
        )
    context = {
        **row_context(project, serial_from(request.POST)),
        "filters": filters,
        "error": error,
        "can_operate": can_operate(request),
        **status_bar_only(request, filters),
    }
    return vary_on_htmx(
        render(request, f"{DRAWERS_TEMPLATE}#manual_map_saved", context, status=status)
    )
