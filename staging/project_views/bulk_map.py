"""*Map selected…*: the confirmation of what would become permanent, then the mapping.

The confirmation opens in the list's drawer (a page without htmx) and carries the same
selection to the mapping, which answers like the other bulk actions: a message and the
list."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.views.decorators.http import require_GET, require_POST

from integrations.http import HtmxHttpRequest, render_page_or_partial
from integrations.models import Role
from integrations.tenancy import company_required, current_company
from staging import selectors
from staging.project_views.listing import after_bulk, can_operate, selection
from staging.project_views.table import int_or_none
from staging.services import bulk_mapping
from staging.services.mapping import MappingError

DRAWER = "staging/_project_drawers.html#map_plan"
PANEL_TEMPLATE = "staging/project_panel.html"
CUSTOMER_CHOICES = 200  # the drop-down of "all to one customer"; a search narrows it
NOTHING_SELECTED = "Select one or more projects first (click a serial number, or Select All)."


@require_GET
@company_required(Role.OPERATOR)
def projects_map_preview(request: HtmxHttpRequest) -> HttpResponse:
    """What Map selected… would make permanent, per customer; nothing is written."""
    filters, chosen, projects = selection(request, request.GET)
    company = current_company(request)
    customer_id = int_or_none(request.GET.get("qbo_customer"))
    plan, error, status = None, "", 200
    if chosen:
        try:
            plan = bulk_mapping.bulk_map_plan(
                company=company, projects=projects, customer_id=customer_id
            )
        except MappingError as exc:
            error, status = str(exc), exc.status
    context = {
        "erp_tab": "projects",
        "can_operate": can_operate(request),
        "drawer": DRAWER,
        "plan": plan,
        "filters": filters,
        "ids": request.GET.get("ids", ""),
        "select_all": request.GET.get("select_all", ""),
        "customer_id": customer_id if plan is not None else None,
        "customers": selectors.qbo_customer_options(
            company=company, q=request.GET.get("customer_q", ""), limit=CUSTOMER_CHOICES
        ),
        "customer_q": request.GET.get("customer_q", ""),
        "error": error,
    }
    return render_page_or_partial(request, PANEL_TEMPLATE, context, partial=DRAWER, status=status)


@require_POST
@company_required(Role.OPERATOR)
def projects_map_selected(request: HtmxHttpRequest) -> HttpResponse:
    filters, chosen, projects = selection(request, request.POST)
    if not chosen:
        return after_bulk(request, filters, NOTHING_SELECTED, level=messages.WARNING, status=422)
    try:
        result = bulk_mapping.projects_map_selected(
            company=current_company(request),
            projects=projects,
            actor=request.user,
            customer_id=int_or_none(request.POST.get("qbo_customer")),
            create_missing=request.POST.get("create_missing") == "1",
        )
    except MappingError as exc:
        return after_bulk(request, filters, str(exc), level=messages.ERROR, status=exc.status)
    level = messages.SUCCESS if result.mapped else messages.WARNING
    return after_bulk(request, filters, result.describe(), level=level)
