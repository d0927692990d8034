"""The current company of a request, and the role checks every view goes through.

A user may belong to several companies; the one they work in is kept in the session. Every
view is wrapped in `company_required(role)`, which answers 403 for a role that may not act,
and every query the view makes is scoped to `request.company` so another company's record
answers 404.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from integrations.models import Company, Membership, Role

SESSION_KEY = "current_company_id"

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., HttpResponse])


def memberships_for(user: Any) -> list[Membership]:
    if not user.is_authenticated:
        return []
    return list(
        Membership.objects.filter(user=user).select_related("company").order_by("company__name")
    )


def pick_membership(request: HttpRequest, memberships: list[Membership]) -> Membership | None:
    if not memberships:
        return None
    wanted = request.session.get(SESSION_KEY)
    for membership in memberships:
        if membership.company_id == wanted:
            return membership
    return memberships[0]


def company_required(role: str = Role.VIEWER) -> Callable[[ViewFunc], ViewFunc]:
    """Require login, a membership in the current company, and at least `role`."""

    def decorator(view: ViewFunc) -> ViewFunc:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership: Membership | None = getattr(request, "membership", None)
            if membership is None:
                return render(request, "no_company.html", status=403)
            if not membership.has_role(role):
                raise PermissionDenied(
                    f"This needs the {Role(role).label} role; "
                    f"you are {membership.get_role_display()}."
                )
            return view(request, *args, **kwargs)

        return cast(ViewFunc, wrapper)

    return decorator


def current_company(request: HttpRequest) -> Company:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    return membership.company
