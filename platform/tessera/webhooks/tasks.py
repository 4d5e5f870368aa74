"""Celery task of webhooks: one delivery attempt on the `cpu` queue, retried with backoff."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from tessera.celery import RETRY_WHEN_DATABASE_GONE, TaskName
from tessera.webhooks.services import attempt_delivery, publish, resend_overdue


@shared_task(name=TaskName.DELIVER_WEBHOOK, acks_late=True, **RETRY_WHEN_DATABASE_GONE)
def deliver(delivery_id: str) -> None:
    delay = attempt_delivery(delivery_id=delivery_id)
    if delay is not None:
        publish(delivery_id=delivery_id, countdown=delay)


@shared_task(name=TaskName.SWEEP_WEBHOOKS)
def sweep() -> int:
    """Periodic (celery beat): publish again the deliveries whose message was lost."""
    return resend_overdue(grace=timedelta(seconds=settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS + 60))
