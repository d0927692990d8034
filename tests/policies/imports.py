"""URL permission policies of the imports area, merged into tests/test_url_matrix.py."""

from __future__ import annotations

from integrations.models import Role
from tests.policy import Policy

POLICY: dict[str, Policy] = {
    # Operators may import; viewers only watch the progress.
    "portfolio:import_new": Policy(method="post", role=Role.OPERATOR),
    "portfolio:import_all": Policy(method="post", role=Role.OPERATOR),
    "portfolio:import_selected": Policy(role=Role.OPERATOR),
    "portfolio:import_run": Policy(obj="run"),
    "portfolio:import_run_latest": Policy(),
}
