"""Results back to the PACS: which results go, and when (`Organization.pacs_send`). The
sending itself is a worker's (jobs.pacs_delivery, task tessera.jobs.send_to_pacs)."""

from datetime import timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from tessera.accounts.models import Organization
from tessera.celery import TaskName, enqueue
from tessera.jobs.models import AnalysisResult, PacsDelivery


def send_to_pacs_if_wanted(
    *, result: AnalysisResult, moment: Organization.PacsSending
) -> PacsDelivery | None:
    """Queue `result` for the organization's PACS when it sends results at this `moment`
    (Organization.PacsSending: on confirm, on analysis) and the result has findings to send;
    once per result (a second confirm sends nothing more)."""
    if result.organization.pacs_send != moment or not result.diagnosis:
        return None
    if result.pacs_deliveries.exists():
        return None
    delivery = PacsDelivery.objects.create(result=result)
    transaction.on_commit(partial(publish, delivery_id=delivery.pk))
    return delivery


def publish(*, delivery_id, countdown: float = 0) -> None:
    enqueue(TaskName.SEND_TO_PACS, str(delivery_id), countdown=countdown)


def resend_overdue(*, grace: timedelta) -> int:
    """Sweeper: publish again the pending deliveries overdue by more than `grace` (their
    message was lost, say when Redis restarted); the claim keeps a surviving one from sending
    twice."""
    overdue = list(
        PacsDelivery.objects.filter(
            status=PacsDelivery.Status.PENDING, next_attempt_at__lt=timezone.now() - grace
        ).values_list("pk", flat=True)[:1000]
    )
    for delivery_id in overdue:
        publish(delivery_id=delivery_id)
    return len(overdue)
