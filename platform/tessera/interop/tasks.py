"""The delivery workers' tasks: a result to the PACS or the FHIR server, and the sweeper."""

from datetime import timedelta

from celery import shared_task

from tessera.celery import RETRY_WHEN_DATABASE_GONE, TaskName


@shared_task(name=TaskName.DELIVER_RESULT, acks_late=True, **RETRY_WHEN_DATABASE_GONE)
def deliver_result(delivery_id: str) -> None:
    from tessera.interop.deliveries import attempt_delivery  # highdicom, pynetdicom, ReportLab
    from tessera.jobs.services.deliveries import publish

    delay = attempt_delivery(delivery_id=delivery_id)
    if delay is not None:
        publish(delivery_id=delivery_id, countdown=delay)


@shared_task(name=TaskName.SWEEP_DELIVERIES)
def sweep_deliveries() -> int:
    """Periodic (celery beat): publish again the result deliveries whose message was lost."""
    from tessera.jobs.services.deliveries import resend_overdue

    return resend_overdue(grace=timedelta(minutes=10))
