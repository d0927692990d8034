"""URLs of Linarc imports (Import drop-down, runs, Import Selected picker)."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
