"""Sending a result to its organization's PACS (a worker's part: it builds the DICOM objects,
jobs.pacs_objects, and sends them by C-STORE with pynetdicom, calling as
TESSERA_DICOM_AE_TITLE). Tried with backoff, like a webhook, until the PACS has stored every
object or TESSERA_PACS_MAX_ATTEMPTS have failed; a result that cannot be sent at all (no image
from the PACS) fails at once, saying why. The delivery row is the log."""

from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from pynetdicom import AE

from tessera.jobs.models import PacsDelivery
from tessera.jobs.pacs_objects import pacs_objects
from tessera.refusals import Refused

SUCCESS = 0x0000


def attempt_pacs_delivery(*, delivery_id) -> float | None:
    """Send once. Returns the seconds before the next attempt, or None when there is nothing
    more to do (sent, given up, or not due)."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    try:
        objects = pacs_objects(result=delivery.result)
    except Refused as refusal:
        _finish(delivery, status=PacsDelivery.Status.FAILED, error=refusal.message)
        return None
    sent, error = _c_store(delivery.result.organization, objects)
    if not error:
        PacsDelivery.objects.filter(pk=delivery.pk).update(
            status=PacsDelivery.Status.SENT, sent_objects=sent, sent_at=timezone.now()
        )
        return None
    if delivery.attempts >= settings.TESSERA_PACS_MAX_ATTEMPTS:
        _finish(
            delivery,
            status=PacsDelivery.Status.FAILED,
            error=f"{error} (gave up after {delivery.attempts} attempts)",
        )
        return None
    delay = min(settings.TESSERA_PACS_BACKOFF_SECONDS * 2 ** (delivery.attempts - 1), 3600.0)
    PacsDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() + timedelta(seconds=delay), last_error=error[:500]
    )
    return delay


def _claim(delivery_id) -> PacsDelivery | None:
    """Take a due, pending delivery for one attempt; a duplicate message finds it not due."""
    now = timezone.now()
    claimed = PacsDelivery.objects.filter(
        pk=delivery_id, status=PacsDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + timedelta(minutes=5))
    if not claimed:
        return None
    return PacsDelivery.objects.select_related(
        "result__organization", "result__model_version", "result__job"
    ).get(pk=delivery_id)


def _c_store(organization, objects) -> tuple[list[str], str]:
    """(the SOP instance UIDs stored, "") or (what was stored, why the rest was not)."""
    caller = AE(ae_title=settings.TESSERA_DICOM_AE_TITLE)
    for dataset in objects:
        caller.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    association = caller.associate(
        organization.pacs_host, organization.pacs_port, ae_title=organization.pacs_ae_title
    )
    where = f"{organization.pacs_ae_title} at {organization.pacs_host}:{organization.pacs_port}"
    if not association.is_established:
        return [], f"the PACS ({where}) did not accept an association"
    sent = []
    try:
        for dataset in objects:
            status = association.send_c_store(dataset)
            code = getattr(status, "Status", None)
            if code != SUCCESS:
                described = "no answer" if code is None else f"status 0x{code:04X}"
                return sent, f"the PACS ({where}) did not store {dataset.Modality}: {described}"
            sent.append(str(dataset.SOPInstanceUID))
    finally:
        association.release()
    return sent, ""


def _finish(delivery: PacsDelivery, *, status: str, error: str) -> None:
    PacsDelivery.objects.filter(pk=delivery.pk).update(status=status, last_error=error[:500])
