"""The QuickBooks connection panel (Company Administrator only)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from integrations.models import Role
from integrations.tenancy import company_required


@company_required(Role.ADMIN)
def qbo_connection(request: HttpRequest) -> HttpResponse:
    return render(request, "integration/qbo_connection.html", {"erp_tab": "qbo"})
