"""The QuickBooks connection panel (Company Administrator only).

It lives in staging although the connection is integrations' (integrations/services/
qbo_connection.py): the panel also shows and starts the customer refresh, whose progress is
a staging Run, and integrations never imports staging (docs/architecture.md).
"""

from __future__ import annotations

from typing import cast

from csp.decorators import csp_update
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from integrations.http import HtmxHttpRequest, is_partial_request, render_page_or_partial
from integrations.models import QboConnection, Role
from integrations.services.qbo import qbo_config
from integrations.services.qbo_connection import (
    ConnectError,
    qbo_connect_finish,
    qbo_connect_start,
    qbo_disconnect,
)
from integrations.tenancy import company_required, current_company
from qbo_client.oauth import sign_in_origin
from staging.models import Run, RunKind, RunState
from staging.services.qbo_customer_refresh import customers_refresh_start

TEMPLATE = "integration/qbo_connection.html"


def _panel_context(request: HttpRequest) -> dict[str, object]:
    company = current_company(request)
    connection = (
        QboConnection.objects.filter(company=company).select_related("connected_by").first()
    )
    latest_refresh = (
        Run.objects.filter(company=company, kind=RunKind.REFRESH_CUSTOMERS).order_by("-pk").first()
    )
    return {
        "erp_tab": "qbo",
        "connection": connection,
        "refresh_run": latest_refresh,
        "customer_count": company.qbo_customers.count(),
        "now": timezone.now(),
    }


def _render_panel(request: HttpRequest, *, partial: str | None = None) -> HttpResponse:
    """The panel page, or (HTMX, when `partial` is named) one of its partials."""

    # Connect and Reconnect post to qbo_connect, which redirects to QuickBooks' sign-in page,
    # and browsers apply this page's CSP form-action to that redirect too
    # (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy/form-action).
    # So this page, and only this one, also allows the sign-in origin; it is read from
    # settings per request (https://django-csp.readthedocs.io/en/latest/decorators.html).
    @csp_update({"form-action": [sign_in_origin(qbo_config())]})
    def panel(request: HttpRequest) -> HttpResponse:
        context = _panel_context(request)
        return render_page_or_partial(request, TEMPLATE, context, partial=partial)

    return cast(HttpResponse, panel(request))  # csp_update is typed for HttpResponseBase


@company_required(Role.ADMIN)
@require_GET
def qbo_connection(request: HttpRequest) -> HttpResponse:
    return _render_panel(request)


@company_required(Role.ADMIN)
@require_POST
def qbo_connect(request: HttpRequest) -> HttpResponse:
    try:
        url = qbo_connect_start(company=current_company(request), session=request.session)
    except ConnectError as exc:
        messages.error(request, str(exc))
        return redirect("portfolio:qbo_connection")
    return redirect(url)


@company_required(Role.ADMIN)
@require_GET
def qbo_callback(request: HttpRequest) -> HttpResponse:
    if request.GET.get("error"):
        messages.error(request, f"QuickBooks sign-in was cancelled ({request.GET['error']}).")
        return redirect("portfolio:qbo_connection")
    try:
        connection = qbo_connect_finish(
            company=current_company(request),
            actor=request.user,
            session=request.session,
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
            realm_id=request.GET.get("realmId", ""),
        )
    except ConnectError as exc:
        messages.error(request, str(exc))
        return redirect("portfolio:qbo_connection")
    messages.success(
        request, f"Connected to QuickBooks company {connection.realm_id}. Refreshing customers…"
    )
    customers_refresh_start(company=current_company(request), actor=request.user)
    return redirect("portfolio:qbo_connection")


@company_required(Role.ADMIN)
@require_POST
def qbo_disconnect_view(request: HttpRequest) -> HttpResponse:
    messages.info(request, qbo_disconnect(company=current_company(request), actor=request.user))
    return redirect("portfolio:qbo_connection")


@company_required(Role.ADMIN)
@require_POST
def qbo_refresh_customers(request: HtmxHttpRequest) -> HttpResponse:
    customers_refresh_start(company=current_company(request), actor=request.user)
    if is_partial_request(request):
        return _render_panel(request, partial="customers")
    messages.info(request, "Refreshing customers from QuickBooks…")
    return redirect("portfolio:qbo_connection")


@company_required(Role.ADMIN)
@require_GET
def qbo_refresh_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The customers section, polled while a refresh runs (a page load: the panel)."""
    run = get_object_or_404(
        Run, pk=pk, company=current_company(request), kind=RunKind.REFRESH_CUSTOMERS
    )
    response = _render_panel(request, partial="customers")
    if is_partial_request(request) and run.state in (RunState.DONE, RunState.FAILED):
        # 286 tells htmx to stop polling; the final section is still swapped in.
        response.status_code = HttpResponseStopPolling.status_code
        response.reason_phrase = "Stop Polling"
    return response
