"""URLs of Linarc imports (Import drop-down, runs, Import Selected picker)."""

from __future__ import annotations

from django.urls import URLPattern, path

from staging import import_views

urlpatterns: list[URLPattern] = [
    path("integration/erp/projects/import/new/", import_views.import_new, name="import_new"),
    path("integration/erp/projects/import/all/", import_views.import_all, name="import_all"),
    path(
        "integration/erp/projects/import/selected/",
        import_views.import_selected,
        name="import_selected",
    ),
    path(
        "integration/erp/projects/import/runs/latest/",
        import_views.import_run_latest,
        name="import_run_latest",
    ),
    path(
        "integration/erp/projects/import/runs/<int:pk>/",
        import_views.import_run,
        name="import_run",
    ),
]
