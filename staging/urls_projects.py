"""URLs of the Projects tab (list, mapping, selection, sync, history, Json Script)."""

from __future__ import annotations

from django.urls import URLPattern, path

from staging.project_views import bulk_map, csv_map, drawers, listing, rows

P = "integration/erp/projects/"

urlpatterns: list[URLPattern] = [
    # The list, its poll and the bulk actions
    path(P, listing.projects_tab, name="projects"),
    path(f"{P}rows/", listing.project_rows, name="project_rows"),
    path(f"{P}sync/", listing.projects_sync, name="projects_sync"),
    path(f"{P}sync/preview/", listing.projects_sync_preview, name="projects_sync_preview"),
    path(f"{P}retry-failed/", listing.projects_retry_failed, name="projects_retry_failed"),
    path(f"{P}map/preview/", bulk_map.projects_map_preview, name="projects_map_preview"),
    path(f"{P}map/", bulk_map.projects_map_selected, name="projects_map_selected"),
    path(f"{P}map/csv/", csv_map.map_csv, name="projects_map_csv"),
    path(f"{P}map/csv/apply/", csv_map.map_csv_apply, name="projects_map_csv_apply"),
    path(f"{P}map/csv/template.csv", csv_map.map_csv_template, name="projects_map_csv_template"),
    # One row: the QBO Customer picker, mapping, retry
    path(f"{P}<int:pk>/customers/", rows.project_customer_options, name="project_customer_options"),
    path(f"{P}<int:pk>/map/", rows.project_map_customer, name="project_map_customer"),
    path(
        f"{P}<int:pk>/create-customer/",
        rows.project_create_customer,
        name="project_create_customer",
    ),
    path(f"{P}<int:pk>/retry/", rows.project_retry, name="project_retry"),
    # The drawers
    path(f"{P}<int:pk>/history/", drawers.project_history, name="project_history"),
    path(f"{P}<int:pk>/history.csv", drawers.project_history_csv, name="project_history_csv"),
    path(f"{P}<int:pk>/json/", drawers.project_json, name="project_json"),
    path(f"{P}<int:pk>/manual-map/", drawers.project_manual_map, name="project_manual_map"),
    path(
        f"{P}<int:pk>/manual-map/jobs/",
        drawers.project_manual_map_jobs,
        name="project_manual_map_jobs",
    ),
    path(
        f"{P}<int:pk>/manual-map/preview/",
        drawers.project_manual_map_preview,
        name="project_manual_map_preview",
    ),
    path(
        f"{P}<int:pk>/manual-map/save/",
        drawers.project_manual_map_save,
        name="project_manual_map_save",
    ),
]
