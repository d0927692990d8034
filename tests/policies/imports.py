"""URL permission policies of the imports area, merged into tests/test_url_matrix.py."""

from __future__ import annotations

from tests.policy import Policy

POLICY: dict[str, Policy] = {}
