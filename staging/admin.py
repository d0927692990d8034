from __future__ import annotations

from django.contrib import admin

from staging.models import ChangeEvent, Run, StagedProject, WorkerHeartbeat


class ChangeEventInline(admin.TabularInline[ChangeEvent, StagedProject]):
    model = ChangeEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "actor", "summary")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # history is append-only, written by services


@admin.register(StagedProject)
class StagedProjectAdmin(admin.ModelAdmin[StagedProject]):
    list_display = [
        "linarc_id",
        "number",
        "name",
        "company",
        "qbo_customer",
        "status",
        "last_synced_at",
    ]
    list_filter = ["company", "status", "deleted_in_linarc"]
    search_fields = ["linarc_id", "number", "name", "client_name", "qbo_record_id"]
    list_select_related = ["company", "qbo_customer"]
    raw_id_fields = ["qbo_customer", "mapped_by"]
    inlines = [ChangeEventInline]


@admin.register(ChangeEvent)
class ChangeEventAdmin(admin.ModelAdmin[ChangeEvent]):
    list_display = ["at", "project", "kind", "actor", "summary"]
    list_filter = ["kind", "company"]
    raw_id_fields = ["project", "actor"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin[Run]):
    list_display = ["created_at", "company", "kind", "state", "processed", "total", "started_by"]
    list_filter = ["kind", "state", "company"]


admin.site.register(WorkerHeartbeat)
admin.site.site_header = "Linarc staging: support"
