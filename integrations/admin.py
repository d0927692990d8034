from __future__ import annotations

from django.contrib import admin

from integrations.models import (
    Company,
    LinarcConnection,
    Membership,
    QboConnection,
    QboCustomer,
    SyncRules,
)


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
class QboCustomerAdmin(admin.ModelAdmin[QboCustomer]):
    list_display = ["display_name", "company", "qbo_id", "is_job", "active", "parent_qbo_id"]
    list_filter = ["company", "is_job", "active"]
    search_fields = ["display_name", "qbo_id"]
    readonly_fields = ["search_name"]
