"""Reads of the access log, for organization admins."""

from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from tessera.accounts.models import Organization
from tessera.audit.models import AuditEvent


def events_of(
    *,
    organization: Organization,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    subject: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """The organization's events, newest first, narrowed by whichever filters are given
    (`until` includes its whole day)."""
    events = AuditEvent.objects.filter(organization=organization)
    if actor:
        events = events.filter(actor_name=actor)
    if action:
        events = events.filter(action=action)
    if object_type:
        events = events.filter(object_type=object_type)
    if subject:
        events = events.filter(subject=subject)
    if since:
        events = events.filter(at__gte=_midnight(since))
    if until:
        events = events.filter(at__lt=_midnight(until) + timedelta(days=1))
    return events.order_by("-at", "-pk")


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
