"""Sending a result to one of its organization's systems (a worker's part): the PACS
(interop.pacs_delivery) or the FHIR server (interop.fhir_delivery). Tried with backoff, like a
webhook, until the destination has stored everything or TESSERA_DELIVERY_MAX_ATTEMPTS have
failed; a result that cannot be sent at all (say, no image from the PACS) fails at once, saying
why. The delivery row is the log."""

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from tessera.interop.fhir_delivery import send_to_fhir_server
from tessera.interop.pacs_delivery import send_to_pacs
from tessera.jobs.models import ResultDelivery
from tessera.refusals import Refused

# Each sends a delivery once: (what the destination stored, "") or (what it stored, why the
# rest was not). Raises Refused when the result can never be sent there.
SENDERS: dict[str, Callable[[ResultDelivery], tuple[list[str], str]]] = {
    ResultDelivery.Destination.PACS: send_to_pacs,
    ResultDelivery.Destination.FHIR: send_to_fhir_server,
}


def attempt_delivery(*, delivery_id) -> float | None:
    """Send once. Returns the seconds before the next attempt, or None when there is nothing
    more to do (sent, given up, or not due)."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    try:
        sent, error = SENDERS[delivery.destination](delivery)
    except Refused as refusal:
        _finish(delivery, status=ResultDelivery.Status.FAILED, error=refusal.message)
        return None
    if not error:
        ResultDelivery.objects.filter(pk=delivery.pk).update(
            status=ResultDelivery.Status.SENT,
            sent_objects=sent,
            sent_at=timezone.now(),
            last_error="",
        )
        return None
    if delivery.attempts >= settings.TESSERA_DELIVERY_MAX_ATTEMPTS:
        _finish(
            delivery,
            status=ResultDelivery.Status.FAILED,
            error=f"{error} (gave up after {delivery.attempts} attempts)",
        )
        return None
    delay = min(settings.TESSERA_DELIVERY_BACKOFF_SECONDS * 2 ** (delivery.attempts - 1), 3600.0)
    ResultDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() + timedelta(seconds=delay), last_error=error[:500]
    )
    return delay


def _claim(delivery_id) -> ResultDelivery | None:
    """Take a due, pending delivery for one attempt; a duplicate message finds it not due."""
    now = timezone.now()
    claimed = ResultDelivery.objects.filter(
        pk=delivery_id, status=ResultDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + timedelta(minutes=5))
    if not claimed:
        return None
    return ResultDelivery.objects.select_related(
        "result__organization", "result__model_version", "result__job", "report"
    ).get(pk=delivery_id)


def _finish(delivery: ResultDelivery, *, status: str, error: str) -> None:
    ResultDelivery.objects.filter(pk=delivery.pk).update(status=status, last_error=error[:500])
