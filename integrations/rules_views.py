"""Sync rules: the Linarc connection, Auto-Create / Auto-Update, schedule, naming rule."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from integrations.models import Role
from integrations.tenancy import company_required


@company_required(Role.ADMIN)
def sync_rules(request: HttpRequest) -> HttpResponse:
    return render(request, "integration/sync_rules.html", {"erp_tab": "rules"})
