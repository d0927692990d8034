"""URLs of the Projects tab (list, mapping, selection, sync, history, Json Script)."""

from __future__ import annotations

from django.urls import URLPattern, path

from staging import project_views as views

P = "integration/erp/projects/"

urlpatterns: list[URLPattern] = [
    path(P, views.projects_tab, name="projects"),
    path(f"{P}rows/", views.project_rows, name="project_rows"),
    path(f"{P}sync/", views.projects_sync, name="projects_sync"),
    path(f"{P}sync/preview/", views.projects_sync_preview, name="projects_sync_preview"),
    path(f"{P}retry-failed/", views.projects_retry_failed, name="projects_retry_failed"),
    path(
        f"{P}<int:pk>/customers/", views.project_customer_options, name="project_customer_options"
    ),
    path(f"{P}<int:pk>/map/", views.project_map_customer, name="project_map_customer"),
    path(f"{P}<int:pk>/retry/", views.project_retry, name="project_retry"),
    path(f"{P}<int:pk>/history/", views.project_history, name="project_history"),
    path(f"{P}<int:pk>/history.csv", views.project_history_csv, name="project_history_csv"),
    path(f"{P}<int:pk>/json/", views.project_json, name="project_json"),
    path(f"{P}<int:pk>/manual-map/", views.project_manual_map, name="project_manual_map"),
    path(
        f"{P}<int:pk>/manual-map/jobs/",
        views.project_manual_map_jobs,
        name="project_manual_map_jobs",
    ),
    path(
        f"{P}<int:pk>/manual-map/preview/",
        views.project_manual_map_preview,
        name="project_manual_map_preview",
    ),
    path(
        f"{P}<int:pk>/manual-map/save/",
        views.project_manual_map_save,
        name="project_manual_map_save",
    ),
]
