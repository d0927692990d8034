"""Mapping by CSV: the upload page, its line-by-line preview, the confirmation, and the
template to fill in. Plain pages and forms (a file upload needs no htmx)."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations.models import Role
from integrations.tenancy import company_required, current_company
from staging.presenters.history_csv import csv_safe
from staging.services import csv_mapping
from staging.services.bulk_mapping import projects_map_pairs

PAGE = "staging/map_csv.html"


@require_http_methods(["GET", "POST"])
@company_required(Role.OPERATOR)
def map_csv(request: HttpRequest) -> HttpResponse:
    """GET: the upload form; POST: the file's preview, every line with its verdict."""
    context: dict[str, Any] = {"erp_tab": "projects", "max_mb": csv_mapping.MAX_CSV_BYTES >> 20}
    if request.method == "GET":
        return render(request, PAGE, context)
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise csv_mapping.CsvRefused("Choose a CSV file to upload.")
        if upload.size is not None and upload.size > csv_mapping.MAX_CSV_BYTES:
            raise csv_mapping.CsvRefused(
                f"The file is larger than {context['max_mb']} MB: split it in parts."
            )
        plan = csv_mapping.csv_map_plan(
            company=current_company(request), data=upload.read(csv_mapping.MAX_CSV_BYTES + 1)
        )
    except csv_mapping.CsvRefused as exc:
        context["error"] = str(exc)
        return render(request, PAGE, context, status=exc.status)
    context.update(plan=plan, file_name=upload.name, token=csv_mapping.pairs_sign(plan.pairs))
    return render(request, PAGE, context)


@require_POST
@company_required(Role.OPERATOR)
def map_csv_apply(request: HttpRequest) -> HttpResponse:
    """Map the previewed lines marked ok, permanently."""
    try:
        pairs = csv_mapping.pairs_unsign(request.POST.get("token", ""))
    except csv_mapping.CsvRefused as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("portfolio:projects_map_csv"))
    result = projects_map_pairs(company=current_company(request), pairs=pairs, actor=request.user)
    level = messages.SUCCESS if result.mapped else messages.WARNING
    messages.add_message(request, level, result.describe())
    return HttpResponseRedirect(reverse("portfolio:projects"))


@require_GET
@company_required(Role.OPERATOR)
def map_csv_template(request: HttpRequest) -> HttpResponse:
    """The unmapped projects, with their suggested customers prefilled."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="map-projects-to-customers.csv"'
    response.write("\ufeff")  # so spreadsheet apps read the file as UTF-8
    writer = csv.writer(response)
    for row in csv_mapping.csv_template_rows(company=current_company(request)):
        writer.writerow([csv_safe(cell) for cell in row])
    return response
