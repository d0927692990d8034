"""URL permission policies of the qbo area, merged into tests/test_url_matrix.py."""

from __future__ import annotations

from integrations.models import Role
from tests.policy import Policy

POLICY: dict[str, Policy] = {
    "portfolio:qbo_connection": Policy(role=Role.ADMIN),
    "portfolio:qbo_connect": Policy(method="post", role=Role.ADMIN),
    "portfolio:qbo_callback": Policy(role=Role.ADMIN),
    "portfolio:qbo_disconnect": Policy(method="post", role=Role.ADMIN),
    "portfolio:qbo_refresh_customers": Policy(method="post", role=Role.ADMIN),
    "portfolio:qbo_refresh_status": Policy(role=Role.ADMIN, obj="refresh_run"),
}
