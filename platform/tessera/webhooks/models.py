"""Webhook subscriptions (an organization's URL and the events it wants) and their deliveries,
each one kept as the log an integration engineer reads when a receiver missed something."""

import uuid

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models

from tessera.accounts.models import Organization


class Event(models.TextChoices):
    JOB_SUCCEEDED = "job.succeeded", "An analysis succeeded"
    JOB_FAILED = "job.failed", "An analysis failed"
    REPORT_READY = "report.ready", "A report is ready"
    PING = "ping", "A test delivery, sent on request"


class WebhookSubscription(models.Model):
    ORGANIZATION_LOOKUP = "organization"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhook_subscriptions"
    )
    url = models.URLField(
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where deliveries are POSTed (http or https).",
    )
    events = models.JSONField(default=list, help_text="Event types delivered to this URL.")
    secret = models.CharField(
        max_length=64, editable=False, help_text="Signs every delivery (HMAC-SHA256)."
    )
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.organization} → {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class WebhookDelivery(models.Model):
    """One event for one subscription, tried until the receiver answers 2xx or the attempts
    run out. `id` is sent as the `Tessera-Delivery` header: receivers de-duplicate on it."""

    ORGANIZATION_LOOKUP = "subscription__organization"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=32, choices=Event.choices)
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription.url} ({self.status})"
