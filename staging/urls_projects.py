"""URLs of the Projects tab (list, mapping, selection, sync, history, Json Script)."""

from __future__ import annotations

from django.urls import URLPattern, path

from staging import views

urlpatterns: list[URLPattern] = [
    path("integration/erp/projects/", views.projects_tab, name="projects"),
]
