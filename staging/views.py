"""The Portfolio console and ERP Integration pages. Views stay thin: authorise, call one
service or selector, render."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from integrations.tenancy import company_required


@company_required()
def portfolio_home(request: HttpRequest) -> HttpResponse:
    return render(request, "portfolio/home.html", {"console_tab": "home"})


@company_required()
def integration_home(request: HttpRequest) -> HttpResponse:
    return redirect("portfolio:projects")
