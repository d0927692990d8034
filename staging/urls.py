from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView

from integrations import urls as integration_urls
from integrations import views as integration_views
from integrations import webhook_views
from staging import error_views, health_views, metrics, urls_imports, urls_projects, urls_qbo, views


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


portfolio_patterns = [
    path("", views.portfolio_home, name="home"),
    path("integration/", views.integration_home, name="integration"),
    path("integration/erp/", views.integration_home, name="erp"),
    *urls_projects.urlpatterns,
    *urls_imports.urlpatterns,
    *urls_qbo.urlpatterns,
    path(
        "integration/erp/health/", health_views.integration_health_page, name="integration_health"
    ),
    path(
        "integration/erp/health/retry/",
        health_views.health_retry_class,
        name="integration_health_retry",
    ),
    path(
        "integration/erp/health/notifications/",
        health_views.health_notifications,
        name="integration_health_notifications",
    ),
    *integration_urls.urlpatterns,
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="portfolio:home"), name="root"),
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("company/switch/", integration_views.switch_company, name="switch_company"),
    path("webhooks/qbo/", webhook_views.qbo_webhook, name="qbo_webhook"),
    path("metrics", metrics.metrics, name="metrics"),
    path("portfolio/", include((portfolio_patterns, "portfolio"))),
    path("admin/", admin.site.urls),
]

# A 400 names its cause and the webhook gets JSON (staging/error_views.py).
handler400 = error_views.bad_request
handler500 = error_views.server_error
