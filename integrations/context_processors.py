from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from integrations.models import Role


def current_company(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {"membership": None, "company": None, "memberships": []}
    return {
        "membership": membership,
        "company": membership.company,
        "memberships": getattr(request, "memberships", []),
        "is_company_admin": membership.has_role(Role.ADMIN),
        "can_operate": membership.has_role(Role.OPERATOR),
    }
