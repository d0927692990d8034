"""The Import drop-down of the Projects tab, the Import Selected picker and run progress.

Thin views: authorise, call one service, render a partial (HTMX) or redirect (plain POST).
The imports themselves run in Celery workers; the only Linarc call made in a request is the
picker's read of one page of Linarc's project list, through a service with a short timeout.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from integrations.models import Role
from integrations.services.linarc import LinarcNotConfigured, linarc_projects_browse
from integrations.tenancy import company_required, current_company
from linarc_client import LinarcError
from staging.models import Run, RunKind, RunState
from staging.services.imports import (
    IMPORT_KINDS,
    ImportAlreadyRunning,
    ImportRefused,
    import_run_active,
    import_start,
    staged_linarc_ids,
)

PROGRESS_PARTIAL = "staging/_run_progress.html#run-progress"
# Sent when an import run is seen finished, so the Projects table can reload itself:
# hx-trigger="importFinished from:body".
FINISHED_EVENT = "importFinished"


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _progress(request: HttpRequest, run: Run, *, status: int = 200) -> HttpResponse:
    finished = run.state in (RunState.DONE, RunState.FAILED)
    if finished and status == 200:
        # 286 tells htmx to stop polling; the final summary is still swapped in.
        status = HttpResponseStopPolling.status_code
    response = render(request, PROGRESS_PARTIAL, {"run": run}, status=status)
    if finished:
        trigger_client_event(response, FINISHED_EVENT, {"run_id": run.pk, "state": run.state})
    patch_vary_headers(response, ["HX-Request"])
    return response


def _start(request: HttpRequest, kind: str, linarc_ids: list[str] | None = None) -> HttpResponse:
    company = current_company(request)
    try:
        run = import_start(company=company, kind=kind, actor=request.user, linarc_ids=linarc_ids)
    except ImportRefused as exc:
        status = 409 if isinstance(exc, ImportAlreadyRunning) else 422
        if _is_htmx(request):
            return render(
                request,
                "staging/_run_progress.html#run-refused",
                {"message": str(exc)},
                status=status,
            )
        messages.error(request, str(exc))
        return redirect("portfolio:projects")
    if _is_htmx(request):
        return _progress(request, run, status=202)
    messages.success(request, f"{run.get_kind_display()} started.")
    return redirect("portfolio:import_run", pk=run.pk)


@company_required(Role.OPERATOR)
@require_POST
def import_new(request: HttpRequest) -> HttpResponse:
    return _start(request, RunKind.IMPORT_NEW)


@company_required(Role.OPERATOR)
@require_POST
def import_all(request: HttpRequest) -> HttpResponse:
    return _start(request, RunKind.IMPORT_ALL)


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 100_000))
    except ValueError:
        return 1


@company_required(Role.OPERATOR)
@require_http_methods(["GET", "POST"])
def import_selected(request: HttpRequest) -> HttpResponse:
    """GET: the picker over Linarc's project list; POST: import the ticked projects."""
    if request.method == "POST":
        return _start(request, RunKind.IMPORT_SELECTED, request.POST.getlist("linarc_id"))
    company = current_company(request)
    search = request.GET.get("search", "").strip()[:200]
    page_number = _page_number(request.GET.get("page"))
    context: dict[str, Any] = {"erp_tab": "projects", "search": search, "page": page_number}
    status = 200
    try:
        page = linarc_projects_browse(company=company, page=page_number, search=search)
    except LinarcNotConfigured as exc:
        context["error"], status = str(exc), 409
    except LinarcError as exc:
        # Linarc down or refusing: say so; nothing else on the page depends on it.
        context["error"] = (
            f"Linarc's project list could not be loaded: {exc.reason}. "
            "Try again in a moment; projects already staged are not affected."
        )
        status = 502
    else:
        context.update(
            linarc_page=page,
            staged_ids=staged_linarc_ids(
                company=company, linarc_ids=[r.linarc_id for r in page.records]
            ),
            previous_page=page_number - 1 if page_number > 1 else None,
        )
    context["active_run"] = import_run_active(company=company)
    template = "staging/import_selected.html"
    if _is_htmx(request) and request.headers.get("HX-Target") == "linarc-picker":
        template += "#picker"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@company_required()
@require_GET
def import_run(request: HttpRequest, pk: int) -> HttpResponse:
    """One import run: its progress bar (HTMX polls this every second) or its page."""
    run = get_object_or_404(
        Run.objects.select_related("started_by"),
        pk=pk,
        company=current_company(request),
        kind__in=IMPORT_KINDS,
    )
    if _is_htmx(request):
        return _progress(request, run)
    return render(request, "staging/import_run.html", {"run": run, "erp_tab": "projects"})


@company_required()
@require_GET
def import_run_latest(request: HttpRequest) -> HttpResponse:
    """The company's import in progress, if any (the Import menu loads it on page load)."""
    run = import_run_active(company=current_company(request), kinds=IMPORT_KINDS)
    if run is None:
        return HttpResponse(status=204)
    return _progress(request, run)
