from __future__ import annotations

from django.contrib import admin

from integrations.admin import ViewOnlyAdminMixin
from staging.models import ChangeEvent, Run, StagedProject, WorkerHeartbeat

# The permanent mapping and the append-only Change History are promises of the product, so
# the admin shows staged projects and their history but cannot change or delete them:
# - every field of a staged project is either the mapping (permanent; the database trigger
#   of staging/triggers.py refuses a change, which used to surface here as a 500), sync state
#   owned by the workers, or a copy of Linarc that the next pull rewrites, and an edit here
#   would write no ChangeEvent;
# - deleting a project would cascade its history away, and re-importing it would let it be
#   mapped to another customer. Unmapped projects cannot be deleted either: the simple rule
#   is easier to trust than a per-row one, and nothing in the product needs it.
# Because these admins may not delete, Django also refuses any cascade into them (a company
# or a QBO customer deleted from the admin), see tests/test_admin_hardening.py.


class ChangeEventInline(ViewOnlyAdminMixin, admin.TabularInline[ChangeEvent, StagedProject]):
    model = ChangeEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "actor", "summary")
    readonly_fields = fields


@admin.register(StagedProject)
class StagedProjectAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[StagedProject]):
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
    inlines = [ChangeEventInline]


@admin.register(ChangeEvent)
class ChangeEventAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[ChangeEvent]):
    list_display = ["at", "project", "kind", "actor", "summary"]
    list_filter = ["kind", "company"]
    list_select_related = ["project", "actor"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin[Run]):
    list_display = ["created_at", "company", "kind", "state", "processed", "total", "started_by"]
    list_filter = ["kind", "state", "company"]


admin.site.register(WorkerHeartbeat)
admin.site.site_header = "Linarc staging: support"
