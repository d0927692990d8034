"""URLs of the QuickBooks connection panel (ERP Integration → QuickBooks)."""

from __future__ import annotations

from django.urls import URLPattern, path

from staging import qbo_views

# QuickBooks connection (owned by staging/qbo_views.py)
urlpatterns: list[URLPattern] = [
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
