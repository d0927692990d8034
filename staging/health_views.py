"""The integration health page (ERP Integration → Health): the connections, the queue, the
workers, the last runs and the failures by kind, polled while open; Operators can retry a
kind of failure in one click."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from integrations.http import render_page_or_partial
from integrations.models import Role
from integrations.services.alerts import membership_notifications_set
from integrations.tenancy import company_required, current_company
from staging.selectors.filters import projects_matching
from staging.selectors.health import failure_classes, integration_health
from staging.sync import queue as sync

PAGE = "staging/health.html"


@require_GET
@company_required()
def integration_health_page(request: HttpRequest) -> HttpResponse:
    # membership, can_operate and is_company_admin come from the context processor.
    health = integration_health(company=current_company(request))
    # The floor of the realm's pace (40 batches of 30 rows a minute): "within about".
    eta = sync.duration_label(health.queued / sync.realm_rows_per_second()) if health.queued else ""
    context = {"erp_tab": "health", "health": health, "queue_eta": eta}
    return render_page_or_partial(request, PAGE, context, partial="health")


@require_POST
@company_required(Role.OPERATOR)
def health_retry_class(request: HttpRequest) -> HttpResponse:
    """Retry the Failed rows of one kind of failure (named as the page lists it)."""
    company = current_company(request)
    name = request.POST.get("name", "")
    chosen = next(
        (c for c in failure_classes(company=company) if c.name == name and c.retryable), None
    )
    if chosen is None:
        messages.warning(request, "No failed projects of that kind are left.")
    else:
        # The rows its Show link lists (the Failed chip narrowed to its codes).
        projects = projects_matching(company=company, filters=chosen.filters)
        summary = sync.projects_retry_failed(company=company, projects=projects, actor=request.user)
        messages.success(request, f"Retrying {summary.queued:,} projects: {chosen.name}.")
    return HttpResponseRedirect(reverse("portfolio:integration_health"))


@require_POST
@company_required(Role.ADMIN)
def health_notifications(request: HttpRequest) -> HttpResponse:
    """The admin's own e-mail choices for this company (the digest and the alerts)."""
    membership_notifications_set(
        membership=request.membership,  # type: ignore[attr-defined]
        digest=request.POST.get("email_digest") == "1",
        alerts=request.POST.get("email_alerts") == "1",
    )
    messages.success(request, "Your e-mail choices are saved.")
    return HttpResponseRedirect(reverse("portfolio:integration_health"))
