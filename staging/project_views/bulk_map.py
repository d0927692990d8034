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
from staging.project_views.listing import after_bulk, can_operate, selection
from staging.services import bulk_mapping

DRAWER = "staging/_project_drawers.html#map_plan"
PANEL_TEMPLATE = "staging/project_panel.html"
NOTHING_SELECTED = "Select one or more projects first (click a serial number, or Select All)."


@require_GET
@company_required(Role.OPERATOR)
def projects_map_preview(request: HtmxHttpRequest) -> HttpResponse:
    """What Map selected… would make permanent, per customer; nothing is written."""
    filters, chosen, projects = selection(request, request.GET)
    plan = (
        bulk_mapping.bulk_map_plan(company=current_company(request), projects=projects)
        if chosen
        else None
    )
    context = {
        "erp_tab": "projects",
        "can_operate": can_operate(request),
        "drawer": DRAWER,
        "plan": plan,
        "filters": filters,
        "ids": request.GET.get("ids", ""),
        "select_all": request.GET.get("select_all", ""),
    }
    return render_page_or_partial(request, PANEL_TEMPLATE, context, partial=DRAWER)


@require_POST
@company_required(Role.OPERATOR)
def projects_map_suggested(request: HtmxHttpRequest) -> HttpResponse:
    filters, chosen, projects = selection(request, request.POST)
    if not chosen:
        return after_bulk(request, filters, NOTHING_SELECTED, level=messages.WARNING, status=422)
    result = bulk_mapping.projects_map_suggested(
        company=current_company(request), projects=projects, actor=request.user
    )
    level = messages.SUCCESS if result.mapped else messages.WARNING
    return after_bulk(request, filters, result.describe(), level=level)
