from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from integrations.models import Company, QboConnection, QboConnectionStatus, Role


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
        # Read only by the pages that show the QuickBooks banner (integration/erp.html).
        "qbo_state": SimpleLazyObject(lambda: _qbo_state(membership.company)),
    }


def _qbo_state(company: Company) -> str:
    """connected, needs_reconnect or disconnected (never connected, or let go)."""
    status = QboConnection.objects.filter(company=company).values_list("status", flat=True).first()
    return status or QboConnectionStatus.DISCONNECTED
