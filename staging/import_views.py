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
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from integrations.http import is_partial_request, render_page_or_partial, vary_on_htmx
from integrations.models import Role
from integrations.services.linarc import LinarcNotConfigured, linarc_projects_browse
from integrations.tenancy import company_required, current_company
from linarc_client import LinarcError
from staging.imports.runs import (
    IMPORT_KINDS,
    ImportRefused,
    import_run_active,
    import_start,
)
from staging.models import Run, RunKind, RunState
from staging.selectors import staged_linarc_ids

RUN_PAGE = "staging/import_run.html"
PROGRESS_PARTIAL = "staging/_run_progress.html#run-progress"
# Sent when an import run is seen finished, so the Projects table and the Import Selected
# picker reload themselves: hx-trigger="importFinished from:body".
FINISHED_EVENT = "importFinished"


def _progress(request: HttpRequest, run: Run, *, status: int = 200) -> HttpResponse:
    """HTMX: the run's progress bar, which polls itself until the run finishes. A page
    load: the run's page."""
    finished = run.state in (RunState.DONE, RunState.FAILED)
    polled = is_partial_request(request)
    if finished and polled and status == 200:
        # 286 tells htmx to stop polling; the final summary is still swapped in.
        status = HttpResponseStopPolling.status_code
    context = {"run": run, "erp_tab": "projects"}
    response = render_page_or_partial(
        request, RUN_PAGE, context, partial=PROGRESS_PARTIAL, status=status
    )
    if finished and polled:
        trigger_client_event(response, FINISHED_EVENT, {"run_id": run.pk, "state": run.state})
    return response


def _start(request: HttpRequest, kind: str, linarc_ids: list[str] | None = None) -> HttpResponse:
    company = current_company(request)
    try:
        run = import_start(company=company, kind=kind, actor=request.user, linarc_ids=linarc_ids)
    except ImportRefused as exc:
        if is_partial_request(request):
            refused = render(
                request,
                "staging/_run_progress.html#run-refused",
                {"message": str(exc)},
                status=exc.status,
            )
            return vary_on_htmx(refused)
        messages.error(request, str(exc))
        return redirect("portfolio:projects")
    if is_partial_request(request):
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
        context["error"], status = str(exc), exc.status
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
    return render_page_or_partial(
        request, "staging/import_selected.html", context, partial="picker", status=status
    )


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
    return _progress(request, run)


@company_required()
@require_GET
def import_run_latest(request: HttpRequest) -> HttpResponse:
    """The company's import in progress, if any (the Import menu loads it on page load)."""
    run = import_run_active(company=current_company(request), kinds=IMPORT_KINDS)
    if run is None:
        return HttpResponse(status=204)
    return _progress(request, run)
