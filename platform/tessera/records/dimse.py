"""The DICOM listener a PACS or a modality sends to over DIMSE (pynetdicom): C-ECHO, and
C-STORE of any storage SOP class in any transfer syntax.

Only the calling AE titles an organization has registered (`DicomSender`) may associate; any
other is rejected at association ("calling AE title not recognised"), so an image never
arrives without knowing whose it is. Each C-STORE is stored by records.dicom_arrivals as a
STOW-RS delivery of one image is, and answered with its DICOM status: success, or the failure
reason (0xC000 cannot understand, 0x0122 a SOP class without an image, 0x0124 a patient the
organization refuses) with the reason in the status's Error Comment and in the log.
"""

import logging
from collections.abc import Callable

from django.db import close_old_connections
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from tessera.records.dicom_arrivals import receive_dicom
from tessera.records.models import DicomSender

logger = logging.getLogger(__name__)
SUCCESS = 0x0000
NOT_AUTHORIZED = 0x0124
# pynetdicom accepts every calling AE title when its list is empty: with no sender registered,
# the list holds a title no PACS can announce (it is longer than 16 characters), so none may.
NOBODY = "no sender is registered"


class Listener(AE):
    """An AE whose allowed calling AE titles are read from the database at each association,
    so a sender an admin adds or removes counts from its next association on."""

    @property
    def require_calling_aet(self) -> list[str]:
        try:
            return list(DicomSender.objects.values_list("ae_title", flat=True)) or [NOBODY]
        finally:
            close_old_connections()  # each association has its own thread, hence connection

    @require_calling_aet.setter
    def require_calling_aet(self, titles: list[str]) -> None:
        pass  # AE.__init__ sets an empty list: the database decides


def listener(ae_title: str) -> Listener:
    ae = Listener(ae_title=ae_title)
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    return ae


def handlers() -> list[tuple[evt.InterventionEvent, Callable]]:
    return [(evt.EVT_C_ECHO, _echo), (evt.EVT_C_STORE, _store)]


def _echo(event) -> int:
    return SUCCESS


def _store(event) -> Dataset:
    status = Dataset()
    calling = event.assoc.requestor.ae_title.strip()
    try:
        sender = DicomSender.objects.select_related("organization").filter(ae_title=calling)
        sender = sender.first()
        if sender is None:  # removed since it associated
            status.Status = NOT_AUTHORIZED
            status.ErrorComment = "calling AE title not registered"
            return status
        delivery = receive_dicom(
            organization=sender.organization,
            instances=[event.encoded_dataset(include_meta=True)],
            received_by=None,
        )
    finally:
        close_old_connections()
    if delivery.refused:
        refusal = delivery.refused[0]
        logger.warning(
            "C-STORE from %s refused (0x%04X): %s", calling, refusal.failure_reason, refusal.why
        )
        status.Status = refusal.failure_reason
        status.ErrorComment = refusal.why[:64]  # VR LO
        return status
    status.Status = SUCCESS
    return status
