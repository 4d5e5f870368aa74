"""Results out to the organization's systems: which go, and when. A clinic's result goes to
its PACS as DICOM at the moment the organization chose (`Organization.pacs_send`), once; and
to its FHIR server (`Organization.fhir_server_url`) whenever its DiagnosticReport's status
changes: preliminary when the analysis is done, final on confirm, amended on correct. The
sending itself is a worker's (interop.deliveries, task tessera.interop.deliver_result)."""

from datetime import timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from tessera.accounts.models import Organization
from tessera.celery import TaskName, enqueue
from tessera.fhir import report_status
from tessera.jobs.models import AnalysisResult, Feedback, ResultDelivery

# The moments a result can go out at: what `Organization.pacs_send` names, and a correction.
ON_ANALYSIS = Organization.PacsSending.ON_ANALYSIS
ON_CONFIRM = Organization.PacsSending.ON_CONFIRM
ON_CORRECT = Feedback.Kind.CORRECT


def deliver_result_if_wanted(*, result: AnalysisResult, moment: str) -> list[ResultDelivery]:
    """Queue `result` for each destination that wants it at this `moment` (ON_ANALYSIS,
    ON_CONFIRM, ON_CORRECT); nothing twice (a second confirm sends nothing more)."""
    if not result.diagnosis:  # a patient's findings: what a PACS or an EHR keeps
        return []
    organization = result.organization
    wanted: list[dict] = []
    if organization.pacs_send == moment:
        wanted.append({"destination": ResultDelivery.Destination.PACS})
    if organization.fhir_server_url:
        wanted.append(
            {"destination": ResultDelivery.Destination.FHIR, "report_status": report_status(result)}
        )
    queued = []
    for fields in wanted:
        if result.deliveries.filter(**fields).exists():
            continue
        delivery = ResultDelivery.objects.create(result=result, **fields)
        transaction.on_commit(partial(publish, delivery_id=delivery.pk))
        queued.append(delivery)
    return queued


def publish(*, delivery_id, countdown: float = 0) -> None:
    enqueue(TaskName.DELIVER_RESULT, str(delivery_id), countdown=countdown)


def resend_overdue(*, grace: timedelta) -> int:
    """Sweeper: publish again the pending deliveries overdue by more than `grace` (their
    message was lost, say when Redis restarted); the claim keeps a surviving one from sending
    twice."""
    overdue = list(
        ResultDelivery.objects.filter(
            status=ResultDelivery.Status.PENDING, next_attempt_at__lt=timezone.now() - grace
        ).values_list("pk", flat=True)[:1000]
    )
    for delivery_id in overdue:
        publish(delivery_id=delivery_id)
    return len(overdue)
