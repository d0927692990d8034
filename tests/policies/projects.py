"""URL permission policies of the projects area, merged into tests/test_url_matrix.py."""

from __future__ import annotations

from integrations.models import Role
from tests.policy import Policy

OPERATOR_POST_PROJECT = Policy(method="post", role=Role.OPERATOR, obj="project")

POLICY: dict[str, Policy] = {
    # Reads: every member of the company may look.
    "portfolio:projects": Policy(),
    "portfolio:project_rows": Policy(),
    "portfolio:projects_sync_preview": Policy(),
    "portfolio:integration_health": Policy(),
    "portfolio:integration_health_retry": Policy(method="post", role=Role.OPERATOR),
    "portfolio:integration_health_notifications": Policy(method="post", role=Role.ADMIN),
    "portfolio:project_history": Policy(obj="project"),
    "portfolio:project_history_csv": Policy(obj="project"),
    "portfolio:project_json": Policy(obj="project"),
    # Mapping, syncing and retrying need an Operator.
    "portfolio:projects_sync": Policy(method="post", role=Role.OPERATOR),
    "portfolio:projects_retry_failed": Policy(method="post", role=Role.OPERATOR),
    "portfolio:projects_map_preview": Policy(role=Role.OPERATOR),
    "portfolio:projects_map_selected": Policy(method="post", role=Role.OPERATOR),
    "portfolio:projects_map_csv": Policy(role=Role.OPERATOR),
    "portfolio:projects_map_csv_apply": Policy(method="post", role=Role.OPERATOR),
    "portfolio:projects_map_csv_template": Policy(role=Role.OPERATOR),
    "portfolio:project_customer_options": Policy(role=Role.OPERATOR, obj="project"),
    "portfolio:project_map_customer": OPERATOR_POST_PROJECT,
    "portfolio:project_create_customer": OPERATOR_POST_PROJECT,
    "portfolio:project_retry": OPERATOR_POST_PROJECT,
    "portfolio:project_manual_map": Policy(role=Role.OPERATOR, obj="project"),
    "portfolio:project_manual_map_jobs": Policy(role=Role.OPERATOR, obj="project"),
    "portfolio:project_manual_map_preview": Policy(role=Role.OPERATOR, obj="project"),
    "portfolio:project_manual_map_save": OPERATOR_POST_PROJECT,
}
