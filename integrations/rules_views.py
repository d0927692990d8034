"""Sync rules: the Linarc connection, Auto-Create / Auto-Update, schedule, naming rule.

Company Administrator only. *Test connection* is one of the two Linarc reads made inside a
request (the other is the Import Selected picker): a short timeout, no retries, and the
result shown inline.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from integrations.forms import LinarcConnectionForm, SyncRulesForm
from integrations.http import is_partial_request, render_page_or_partial
from integrations.models import Role
from integrations.services.linarc import linarc_connection_test
from integrations.services.rules import (
    SyncRulesError,
    SyncRulesSettings,
    renamed_message,
    sync_rules_get,
    sync_rules_update,
)
from integrations.tenancy import company_required, current_company

TEMPLATE = "integration/sync_rules.html"


def _stored(current: SyncRulesSettings) -> dict[str, Any]:
    """What the forms need to know of the stored connection (never the key itself)."""
    return {
        "has_stored_key": current.has_api_key,
        "stored_base_url": current.connection.base_url if current.connection else "",
    }


def _context(request: HttpRequest, form: SyncRulesForm, **extra: Any) -> dict[str, Any]:
    settings = sync_rules_get(company=current_company(request))
    return {"erp_tab": "rules", "form": form, "settings": settings, **extra}


def _render(
    request: HttpRequest,
    form: SyncRulesForm,
    *,
    partial: str = "rules-form",
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    context = _context(request, form, **extra)
    return render_page_or_partial(request, TEMPLATE, context, partial=partial, status=status)


@company_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def sync_rules(request: HttpRequest) -> HttpResponse:
    company = current_company(request)
    current = sync_rules_get(company=company)
    if request.method == "GET":
        form = SyncRulesForm(initial=current.initial, **_stored(current))
        return _render(request, form)
    form = SyncRulesForm(request.POST, **_stored(current))
    if not form.is_valid():
        return _render(request, form, status=422)
    data = form.cleaned_data
    try:
        saved = sync_rules_update(
            company=company,
            base_url=data["base_url"],
            api_key=data["api_key"] or None,
            auto_create=data["auto_create"],
            auto_update=data["auto_update"],
            pull_every_minutes=data["pull_every_minutes"],
            display_name_template=data["display_name_template"],
            actor=request.user,
        )
    except SyncRulesError as exc:
        form.add_error(exc.field, str(exc))
        return _render(request, form, status=exc.status)
    renamed = renamed_message(saved.renamed)
    if not is_partial_request(request):
        messages.success(request, f"Sync rules saved. {renamed}".strip())
        return redirect("portfolio:sync_rules")
    current = sync_rules_get(company=company)
    fresh = SyncRulesForm(initial=current.initial, **_stored(current))
    return _render(request, fresh, saved=True, renamed=renamed)


@company_required(Role.ADMIN)
@require_POST
def sync_rules_test(request: HttpRequest) -> HttpResponse:
    """*Test connection* with the URL and key typed in the form (blank key: the stored one,
    for the stored URL only)."""
    company = current_company(request)
    current = sync_rules_get(company=company)
    form = LinarcConnectionForm(request.POST, **_stored(current))
    if not form.is_valid():
        errors = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        check_context: dict[str, Any] = {"check_ok": False, "check_message": errors}
        status = 422
    else:
        check = linarc_connection_test(
            company=company,
            base_url=form.cleaned_data["base_url"],
            api_key=form.cleaned_data["api_key"],
        )
        check_context = {"check_ok": check.ok, "check_message": check.message}
        status = 200
    # HTMX: the result next to the button. Without JavaScript: the whole page again, keeping
    # what was typed.
    rules_form = SyncRulesForm(request.POST, **_stored(current))
    return _render(request, rules_form, partial="connection-test", status=status, **check_context)
