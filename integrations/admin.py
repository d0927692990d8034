from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from integrations.models import (
    Company,
    LinarcConnection,
    Membership,
    QboConnection,
    QboCustomer,
    SyncRules,
)


class ViewOnlyAdminMixin:
    """Support staff may look, never add, change or delete: the rows are written by services
    (with their Change History) or are a cache of QuickBooks, and an edit in the admin would
    bypass both. Django shows such a model's pages read-only and answers a POST with 403."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline[Membership, Company]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin[Company]):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def has_delete_permission(self, request: HttpRequest, obj: Company | None = None) -> bool:
        # Deleting a company cascades to its staged projects, their Change History and its
        # QBO customer cache: only a company with none of those can go from the admin.
        # (Django also refuses a cascade into a model whose admin may not delete, so the
        # "Delete selected" action on the list is refused the same way.)
        if obj is not None and (obj.staged_projects.exists() or obj.qbo_customers.exists()):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["user", "company", "role"]
    list_filter = ["role", "company"]
    search_fields = ["user__username", "company__name"]


@admin.register(LinarcConnection)
class LinarcConnectionAdmin(admin.ModelAdmin[LinarcConnection]):
    list_display = ["company", "base_url", "last_pull_at", "last_successful_pull_at"]
    # The API key is a secret: support staff see that one is set, never its value.
    exclude = ["api_key"]
    readonly_fields = ["last_pull_at", "last_successful_pull_at", "last_error"]


@admin.register(QboConnection)
class QboConnectionAdmin(admin.ModelAdmin[QboConnection]):
    list_display = [
        "company",
        "realm_id",
        "status",
        "connected_by",
        "connected_at",
        "access_expires_at",
    ]
    list_filter = ["status"]
    exclude = ["access_token", "refresh_token"]
    readonly_fields = [
        "realm_id",
        "environment",
        "access_expires_at",
        "refresh_expires_at",
        "connected_by",
        "connected_at",
        "refreshed_at",
        "customers_refreshed_at",
    ]


@admin.register(SyncRules)
class SyncRulesAdmin(admin.ModelAdmin[SyncRules]):
    list_display = [
        "company",
        "auto_create",
        "auto_update",
        "pull_every_minutes",
        "display_name_template",
    ]


@admin.register(QboCustomer)
class QboCustomerAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[QboCustomer]):
    # A cache of the company's QBO customers, rewritten by the refresh service: an edited
    # qbo_id would point a permanent mapping at a different QBO customer.
    list_display = ["display_name", "company", "qbo_id", "is_job", "active", "parent_qbo_id"]
    list_filter = ["company", "is_job", "active"]
    search_fields = ["display_name", "qbo_id"]
