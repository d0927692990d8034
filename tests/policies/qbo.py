"""URL permission policies of the qbo area, merged into tests/test_url_matrix.py."""

from __future__ import annotations

from integrations.models import Role
from tests.policy import Policy

POLICY: dict[str, Policy] = {
    "portfolio:qbo_connection": Policy(role=Role.ADMIN),
}
