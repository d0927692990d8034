from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Concat, Upper
from django.utils import timezone

from integrations.models import Company, QboCustomer
from qbo_client.names import QBO_ID_MAX_LENGTH
from staging import triggers as db_triggers

# Between the fields of StagedProject.search_key (\x1f, the unit separator).
SEARCH_KEY_SEPARATOR = "\x1f"


class SyncStatus(models.TextChoices):
    NEEDS_ACTION = "needs_action", "Needs Action"
    NEEDS_SYNC = "needs_sync", "Needs Sync"
    QUEUED = "queued", "Queued"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"


class StagedProjectQuerySet(models.QuerySet["StagedProject"]):
    def for_company(self, company: Company) -> StagedProjectQuerySet:
        return self.filter(company=company)


class StagedProject(models.Model):
    """One Linarc project in staging, and everything known about its QBO sub-customer."""

    # No index of its own: every index of the table but one starts with the company.
    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, related_name="staged_projects", db_index=False
    )
    linarc_id = models.CharField(max_length=64)

    # Fields pulled from Linarc (the source of truth for these).
    number = models.CharField(max_length=64, blank=True)
    name = models.TextField(blank=True)
    project_status = models.CharField(max_length=64, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    client_name = models.CharField(max_length=500, blank=True)
    address = models.JSONField(default=dict, blank=True)
    source_payload = models.JSONField(default=dict, blank=True)
    source_hash = models.CharField(max_length=64, blank=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    problems = models.JSONField(default=list, blank=True)
    deleted_in_linarc = models.BooleanField(default=False)

    # The permanent mapping: set once, then refused by a database trigger (Meta.triggers).
    # These three are empty on an imported row: their indexes (in Meta) hold only the rows
    # that have one, so a first import does not write an entry per row into each.
    qbo_customer = models.ForeignKey(
        QboCustomer,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="projects",
        db_index=False,
    )
    mapped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    mapped_at = models.DateTimeField(null=True, blank=True)

    # The QBO sub-customer this project became: one job belongs to one project (the
    # constraint one_project_per_qbo_job in Meta), whichever path links it.
    qbo_record_id = models.CharField(max_length=QBO_ID_MAX_LENGTH, blank=True)
    qbo_sync_token = models.CharField(max_length=QBO_ID_MAX_LENGTH, blank=True)
    qbo_display_name = models.CharField(max_length=500, blank=True)
    # Appended to the naming rule's name when the name belongs to another project (an older
    # one makes it, or its job holds it in QBO): " (P-1042)". Kept, so every later update
    # sends the same name (sync/push.py).
    qbo_name_suffix = models.CharField(max_length=60, blank=True, default="")

    status = models.CharField(
        max_length=16, choices=SyncStatus.choices, default=SyncStatus.NEEDS_ACTION
    )
    status_reason = models.TextField(blank=True)
    failure_code = models.CharField(max_length=32, blank=True)
    intuit_tid = models.CharField(max_length=100, blank=True)
    last_synced_hash = models.CharField(max_length=64, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_request = models.JSONField(null=True, blank=True)
    last_response = models.JSONField(null=True, blank=True)

    # attempt_id is set when the row is queued (each Sync/Retry is a new attempt) and derives
    # the QBO requestid, so a re-delivered task replays rather than duplicates. lease_id is
    # set by the worker that claims the row; outcomes are written only while it matches.
    attempt_id = models.UUIDField(null=True, blank=True)
    lease_id = models.UUIDField(null=True, blank=True)
    sync_run = models.ForeignKey(
        "Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="projects",
        db_index=False,
    )
    attempts = models.PositiveIntegerField(default=0)
    # While Queued: the claim's expiry, or (no lease) the moment the row may be claimed again
    # after a transient error (backoff). See staging/sync.
    leased_until = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    # The order of a company's Queued rows: interactive work (a retry, a hand-picked
    # selection) before bulk work, then oldest first (staging/sync/lanes.py).
    sync_priority = models.PositiveSmallIntegerField(default=1)
    # Transient failures of this attempt so far; the row is Failed when integrations/retry.py's
    # QBO_RETRY policy gives up.
    sync_tries = models.PositiveSmallIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    # What the Projects tab's search reads (staging.selectors.projects_matching): the three
    # searched columns in upper case, computed and stored by the database on every write
    # (never written by the application), with a trigram index on PostgreSQL (migration
    # 0008). The separator keeps a match from spanning two fields.
    search_key = models.GeneratedField(
        expression=Upper(
            Concat(
                "name",
                Value(SEARCH_KEY_SEPARATOR),
                "number",
                Value(SEARCH_KEY_SEPARATOR),
                "client_name",
                output_field=models.TextField(),
            )
        ),
        output_field=models.TextField(),
        db_persist=True,
    )

    objects = StagedProjectQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "linarc_id"], name="unique_staged_project"),
            # Every project exists in QBO exactly once, and every QBO job stands for one
            # project: Manual Mapping, adoption of an existing job and the sync's outcome
            # writer all meet this constraint (staging.services.mapping, .sync).
            models.UniqueConstraint(
                fields=["company", "qbo_record_id"],
                condition=~Q(qbo_record_id=""),
                name="one_project_per_qbo_job",
            ),
        ]
        indexes = [
            models.Index(fields=["company", "status", "id"]),
            # Failures by kind (the health page, the digest, /metrics) counted from the
            # index alone, and the Projects tab's filter by QuickBooks code.
            models.Index(
                fields=["company", "status", "failure_code", "id"], name="staged_status_code"
            ),
            # The reaper's (sync.projects_requeue_stale) and the claim's read: Queued rows.
            models.Index(
                fields=["status", "leased_until"],
                condition=Q(status=SyncStatus.QUEUED),
                name="staged_queued_lease",
            ),
            # A lane's read: the company's next Queued rows in the order they are sent.
            models.Index(
                fields=["company", "sync_priority", "queued_at", "id"],
                condition=Q(status=SyncStatus.QUEUED),
                name="staged_lane_order",
            ),
            models.Index(
                fields=["qbo_customer"],
                condition=Q(qbo_customer__isnull=False),
                name="staged_qbo_customer",
            ),
            models.Index(
                fields=["mapped_by"], condition=Q(mapped_by__isnull=False), name="staged_mapped_by"
            ),
            # Suggestions: which customer the client's other mapped projects have
            # (staging.services.suggestions), counted from the index alone.
            models.Index(
                fields=["company", "client_name", "qbo_customer"],
                condition=Q(qbo_customer__isnull=False),
                name="staged_client_mapped",
            ),
            models.Index(
                fields=["sync_run"], condition=Q(sync_run__isnull=False), name="staged_sync_run"
            ),
            # One index per sort the Projects tab offers (staging.selectors.SORT_COLUMNS), so
            # a sorted page reads 50 index entries instead of sorting every row. Name and
            # project status are NOT NULL, so one index serves both directions; the dates
            # sort NULLS LAST both ways and need one index per direction: the descending ones
            # are PostgreSQL-only (SQLite refuses NULLS LAST in an index), see migration 0005.
            models.Index(F("company"), F("id"), name="staged_sort_serial"),
            models.Index(F("company"), F("name"), F("id"), name="staged_sort_name"),
            models.Index(
                F("company"), F("project_status"), F("id"), name="staged_sort_project_status"
            ),
            models.Index(F("company"), F("start_date"), F("id"), name="staged_sort_start"),
            models.Index(F("company"), F("end_date"), F("id"), name="staged_sort_end"),
        ]
        ordering = ["id"]
        # PostgreSQL's, through django-pgtrigger; SQLite's equivalent is installed after
        # every migrate (staging/triggers.py explains why).
        triggers = [
            db_triggers.permanent_customer_mapping,
            db_triggers.status_count_insert,
            db_triggers.status_count_update,
            db_triggers.status_count_delete,
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}".strip()


class StatusCountDelta(models.Model):
    """A change in how many of a company's staged projects are in one status.

    On PostgreSQL, statement-level triggers on the staged projects (staging/triggers.py) write
    one row per (company, status) that a statement changed, in the same transaction, so the
    status chips sum a few rows instead of counting every project (100,000 rows cost
    10-60 ms per request). Insert-only, so concurrent writers never wait on each other; a
    compaction now and then folds a company's rows into one per status
    (staging.services.status_counts). No foreign key: the trigger also runs while a company's
    projects are deleted with it. Unused on SQLite, where the chips count the rows."""

    company_id = models.BigIntegerField()
    status = models.CharField(max_length=16)
    n = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["company_id", "status"], name="staged_count_company")]

    def __str__(self) -> str:
        return f"{self.company_id}/{self.status}: {self.n:+d}"


class EventKind(models.TextChoices):
    IMPORTED = "imported", "Imported"
    UPDATED = "updated", "Updated from Linarc"
    DELETED_IN_LINARC = "deleted_in_linarc", "Deleted in Linarc"
    MAPPED = "mapped", "Customer mapped"
    MANUALLY_MAPPED = "manually_mapped", "Manual mapping"
    QUEUED = "queued", "Queued for sync"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"
    NEEDS_ACTION = "needs_action", "Needs action"
    RETRIED = "retried", "Retried"
    REQUEUED = "requeued", "Re-queued after lost worker"
    NAMING_RULE = "naming_rule", "Naming rule changed"


class ChangeEvent(models.Model):
    """Append-only history of a staged project."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    # Indexed by (project, -at) in Meta, which also serves every lookup by project.
    project = models.ForeignKey(
        StagedProject, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    summary = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-at"])]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"


class RunKind(models.TextChoices):
    IMPORT_NEW = "import_new", "Import New Items from Linarc"
    IMPORT_ALL = "import_all", "Import All from Linarc"
    IMPORT_SELECTED = "import_selected", "Import Selected"
    SCHEDULED_PULL = "scheduled_pull", "Scheduled pull"
    SYNC = "sync", "Sync to QBO"
    REFRESH_CUSTOMERS = "refresh_customers", "Refresh QBO customers"


class RunState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Run(models.Model):
    """One bulk import or sync, for progress bars and the run summary."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=24, choices=RunKind.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.PENDING)
    params = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["company", "kind", "-created_at"]),
            # The health page's last runs, newest first, of every kind.
            models.Index(fields=["company", "-created_at", "-id"], name="run_company_newest"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_state_display()})"

    @property
    def percent(self) -> int:
        if self.state == RunState.DONE:
            return 100
        if not self.total:
            return 0
        return min(100, int(self.processed * 100 / self.total))


class SyncLane(models.Model):
    """One of a company's lanes through the workers (staging/sync/lanes.py).

    A lane is a chain of Celery messages, each sending one chunk of the company's Queued rows
    and then the next message to the tail of the queue, so every company with work has at
    most SYNC_LANES_PER_REALM messages waiting at any time, whatever its backlog. A lane is
    taken with a conditional UPDATE of ``active_until``; its ``token`` tells the chain's
    current message from a stale duplicate. An ``active_until`` in the past means the chain
    was lost (the reaper starts it again)."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    slot = models.PositiveSmallIntegerField()
    token = models.UUIDField(null=True, blank=True)
    active_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "slot"], name="unique_sync_lane"),
        ]

    def __str__(self) -> str:
        return f"lane {self.slot} of company {self.company_id}"


class WorkerHeartbeat(models.Model):
    """Last time a Celery worker ran the heartbeat task: the UI shows whether workers are up."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.hostname} at {self.seen_at:%H:%M:%S}"


class DigestSent(models.Model):
    """One row per company and day the daily digest was decided (sent, or nothing to say):
    a beat task delivered twice finds the row and sends nothing more."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    sent_at = models.DateTimeField(default=timezone.now)
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "day"], name="one_digest_per_day"),
        ]

    def __str__(self) -> str:
        return f"Digest for {self.company} on {self.day}"
