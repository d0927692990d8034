from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.fields import EncryptedTextField
from qbo_client.names import QBO_ID_MAX_LENGTH


class Role(models.TextChoices):
    ADMIN = "admin", "Company Administrator"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class Company(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    # What this person receives by e-mail for this company (admins only; docs/operations.md).
    email_digest = models.BooleanField(default=True, help_text="The daily digest of failures.")
    email_alerts = models.BooleanField(
        default=True, help_text="An e-mail at once when QuickBooks needs reconnecting."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "company"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.company} ({self.get_role_display()})"

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]


class LinarcConnection(models.Model):
    company = models.OneToOneField(
        Company, on_delete=models.CASCADE, related_name="linarc_connection"
    )
    base_url = models.URLField(max_length=300)
    api_key = EncryptedTextField(blank=True)
    last_pull_at = models.DateTimeField(null=True, blank=True)
    last_successful_pull_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Linarc for {self.company}"


class QboConnectionStatus(models.TextChoices):
    CONNECTED = "connected", "Connected"
    NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
    DISCONNECTED = "disconnected", "Disconnected"


class QboConnection(models.Model):
    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="qbo_connection")
    realm_id = models.CharField(max_length=32, blank=True)
    environment = models.CharField(max_length=300, blank=True)
    access_token = EncryptedTextField(blank=True)
    refresh_token = EncryptedTextField(blank=True)
    access_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    # QBO's 5-year cap on a grant: refreshing does not move it, only a reconnect does.
    refresh_hard_expires_at = models.DateTimeField(null=True, blank=True)
    # When the admins were told the connection ends within EXPIRY_WARNING; cleared once a
    # refresh or a reconnect moves the end further out.
    expiry_warned_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=QboConnectionStatus.choices, default=QboConnectionStatus.DISCONNECTED
    )
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    connected_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    customers_refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"QuickBooks for {self.company} ({self.get_status_display()})"

    @property
    def ends_at(self) -> datetime | None:
        """When the connection lapses unless refreshed or reconnected: the refresh token's
        expiry or the grant's hard expiry, whichever comes first."""
        ends = [e for e in (self.refresh_expires_at, self.refresh_hard_expires_at) if e]
        return min(ends) if ends else None


class SyncRules(models.Model):
    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="sync_rules")
    auto_create = models.BooleanField(
        default=False, help_text="Pull new Linarc projects into staging on schedule."
    )
    auto_update = models.BooleanField(
        default=False, help_text="Pull edits of staged Linarc projects on schedule."
    )
    pull_every_minutes = models.PositiveIntegerField(default=15)
    display_name_template = models.CharField(
        max_length=200,
        default="{name}",
        help_text="QuickBooks display name for a project: {name}, {number}, {client}.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name_plural = "sync rules"

    def __str__(self) -> str:
        return f"Sync rules for {self.company}"


class QboCustomer(models.Model):
    """Local cache of the company's QBO customers, behind the customer drop-down."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="qbo_customers")
    qbo_id = models.CharField(max_length=QBO_ID_MAX_LENGTH)
    display_name = models.CharField(max_length=500)
    # casefolded display name for type-ahead; written by the cache-refresh service
    search_name = models.CharField(max_length=500)
    fully_qualified_name = models.CharField(max_length=2000, blank=True)
    parent_qbo_id = models.CharField(max_length=QBO_ID_MAX_LENGTH, blank=True)
    is_job = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    sync_token = models.CharField(max_length=QBO_ID_MAX_LENGTH, blank=True)
    deleted_in_qbo = models.BooleanField(default=False)
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "qbo_id"], name="unique_qbo_customer"),
        ]
        indexes = [
            models.Index(fields=["company", "is_job", "active", "search_name"]),
        ]
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name


class WebhookEvent(models.Model):
    """One QBO webhook notification, stored once (redeliveries are recognised by key)."""

    dedupe_key = models.CharField(max_length=300, unique=True)
    realm_id = models.CharField(max_length=32)
    entity = models.CharField(max_length=40)
    entity_id = models.CharField(max_length=QBO_ID_MAX_LENGTH)
    operation = models.CharField(max_length=20)
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True)
    # The processing run that took the event (its Celery task id) and when: a conditional
    # UPDATE on these lets one run, and only one, apply it (integrations.services.webhooks).
    claim_id = models.CharField(max_length=64, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            # The work queue: a realm's unprocessed events in arrival order. Partial, so the
            # processed history (nearly every row) stays out of it.
            models.Index(
                fields=["realm_id", "id"],
                condition=models.Q(processed_at__isnull=True),
                name="webhook_unprocessed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.entity_id} {self.operation} ({self.realm_id})"
