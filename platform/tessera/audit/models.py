"""The access log: one row per read or write of a patient's or student's data, appended and never
changed. For students it is also the FERPA record of disclosures.

Rows name what they are about by type and id, not by foreign key: an erased patient's trail
survives the erasure, and deleting a user or an organization never reaches into the log.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnly(Exception):
    """Something tried to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("audit events cannot be changed")

    def delete(self):
        raise AppendOnly("audit events cannot be deleted")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnly("audit events cannot be changed")


class AuditEvent(models.Model):
    ORGANIZATION_LOOKUP = "organization"

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        LIST = "list", "Listed"
        DOWNLOAD = "download", "Downloaded"
        CREATE = "create", "Created"
        UPDATE = "update", "Changed"
        DELETE = "delete", "Deleted"
        EXPORT = "export", "Exported"

    class Channel(models.TextChoices):
        PAGE = "page", "Web page"
        API = "api", "API"
        ADMIN = "admin", "Admin site"
        TASK = "task", "Background task"
        SYSTEM = "system", "Command line"

    at = models.DateTimeField(default=timezone.now, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        editable=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
        editable=False,
    )
    # Who, in words that outlive the account: a username, or the task that read.
    actor_name = models.CharField(max_length=150, editable=False)
    channel = models.CharField(max_length=8, choices=Channel.choices, editable=False)
    action = models.CharField(max_length=8, choices=Action.choices, editable=False)
    object_type = models.CharField(max_length=32, editable=False)
    object_id = models.CharField(max_length=64, editable=False)
    # The patient or student the object belongs to ("patient:12"), so one person's trail is
    # one indexed lookup.
    subject = models.CharField(max_length=48, blank=True, editable=False)
    address = models.GenericIPAddressField(null=True, blank=True, editable=False)
    # The request path (ids only, never a query string) or the task's name.
    via = models.CharField(max_length=200, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["organization", "-at"], name="audit_org_time"),
            models.Index(fields=["subject", "-at"], name="audit_subject_time"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        action = self.get_action_display().lower()
        return f"{self.actor_name} {action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnly("audit events cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("audit events cannot be deleted")
