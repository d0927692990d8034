"""URL permission policies of the projects area, merged into tests/test_url_matrix.py."""

from __future__ import annotations

from tests.policy import Policy

POLICY: dict[str, Policy] = {
    "portfolio:projects": Policy(),
}
