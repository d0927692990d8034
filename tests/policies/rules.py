"""URL permission policies of the rules area, merged into tests/test_url_matrix.py."""

from __future__ import annotations

from integrations.models import Role
from tests.policy import Policy

POLICY: dict[str, Policy] = {
    "portfolio:sync_rules": Policy(role=Role.ADMIN),
    "portfolio:sync_rules_test": Policy(method="post", role=Role.ADMIN),
}
