"""URLs of the ERP Integration settings: the QuickBooks connection and the sync rules."""

from __future__ import annotations

from django.urls import URLPattern, path

from integrations import qbo_views, rules_views

# QuickBooks connection (owned by integrations/qbo_views.py)
qbo_patterns: list[URLPattern] = [
    path("integration/erp/qbo/", qbo_views.qbo_connection, name="qbo_connection"),
    path("integration/erp/qbo/connect/", qbo_views.qbo_connect, name="qbo_connect"),
    path("integration/erp/qbo/callback/", qbo_views.qbo_callback, name="qbo_callback"),
    path("integration/erp/qbo/disconnect/", qbo_views.qbo_disconnect_view, name="qbo_disconnect"),
    path(
        "integration/erp/qbo/customers/refresh/",
        qbo_views.qbo_refresh_customers,
        name="qbo_refresh_customers",
    ),
    path(
        "integration/erp/qbo/customers/refresh/<int:pk>/",
        qbo_views.qbo_refresh_status,
        name="qbo_refresh_status",
    ),
]
# Sync rules and the Linarc connection (owned by integrations/rules_views.py)
rules_patterns: list[URLPattern] = [
    path("integration/erp/rules/", rules_views.sync_rules, name="sync_rules"),
    path("integration/erp/rules/test/", rules_views.sync_rules_test, name="sync_rules_test"),
]
urlpatterns: list[URLPattern] = [*qbo_patterns, *rules_patterns]
