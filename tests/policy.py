from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from integrations.models import Role


@dataclass(frozen=True)
class Policy:
    method: str = "get"
    # Minimum role that may use it; None = no login needed.
    role: str | None = Role.VIEWER
    # The kind of object the URL names ("project", "run", ...), built for the other company
    # to test 404; see OBJECT_BUILDERS in tests/test_url_matrix.py.
    obj: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Extra URL kwargs that are not objects (e.g. {"status": "failed"}).
    kwargs: dict[str, Any] = field(default_factory=dict)
