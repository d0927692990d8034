from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from integrations.tenancy import memberships_for, pick_membership


class CurrentCompanyMiddleware:
    """Attach `request.membership` and `request.company` for the session's current company."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        memberships = memberships_for(request.user)
        membership = pick_membership(request, memberships)
        request.memberships = memberships  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        request.company = membership.company if membership else None  # type: ignore[attr-defined]
        return self.get_response(request)
