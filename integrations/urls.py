"""URLs of the ERP Integration settings owned by integrations: the sync rules.

The QuickBooks connection panel shows a staging Run (the customer refresh), so it lives in
staging (staging/urls_qbo.py), which may import integrations; never the reverse.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from integrations import rules_views

# Sync rules and the Linarc connection (owned by integrations/rules_views.py)
rules_patterns: list[URLPattern] = [
    path("integration/erp/rules/", rules_views.sync_rules, name="sync_rules"),
    path("integration/erp/rules/test/", rules_views.sync_rules_test, name="sync_rules_test"),
]
urlpatterns: list[URLPattern] = [*rules_patterns]
