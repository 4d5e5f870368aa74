"""A result to its organization's PACS (interop.deliveries calls it): its DICOM objects
(interop.pacs_objects) stored by STOW-RS at the PACS's DICOMweb URL where one is set, else by
C-STORE (pynetdicom, calling as TESSERA_DICOM_AE_TITLE) to its AE title, host and port.

The heatmap's Parametric Map is for the PACS that takes one: a PACS that refuses its SOP class
still gets the Secondary Capture, and the delivery counts as sent."""

import io
import json
import secrets

import pydicom
from django.conf import settings
from pynetdicom import AE

from tessera.interop.outbound_http import outgoing_authorization, post
from tessera.interop.pacs_objects import pacs_objects
from tessera.jobs.models import ResultDelivery

SUCCESS = 0x0000
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"
# DICOM JSON tags of a STOW response (PS3.18 10.5.3): stored and failed instances
REFERENCED_SOPS, FAILED_SOPS = "00081199", "00081198"
REFERENCED_SOP_INSTANCE, FAILURE_REASON = "00081155", "00081197"


def send_to_pacs(delivery: ResultDelivery) -> tuple[list[str], str]:
    """(the SOP instance UIDs stored, "") or (what was stored, why the rest was not). Raises
    Refused (interop.pacs_objects) when the result read no image from the PACS."""
    organization = delivery.result.organization
    objects = pacs_objects(result=delivery.result)
    if organization.pacs_dicomweb_url:
        authorization = outgoing_authorization(organization, "pacs")
        return _stow_rs(organization.pacs_dicomweb_url, objects, authorization=authorization)
    return _c_store(organization, objects)


def _c_store(organization, objects: list[pydicom.Dataset]) -> tuple[list[str], str]:
    caller = AE(ae_title=settings.TESSERA_DICOM_AE_TITLE)
    for dataset in objects:
        caller.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    association = caller.associate(
        organization.pacs_host, organization.pacs_port, ae_title=organization.pacs_ae_title
    )
    where = f"{organization.pacs_ae_title} at {organization.pacs_host}:{organization.pacs_port}"
    if not association.is_established:
        return [], f"the PACS ({where}) did not accept an association"
    accepted = {context.abstract_syntax for context in association.accepted_contexts}
    sent = []
    try:
        for dataset in objects:
            if dataset.SOPClassUID == PARAMETRIC_MAP and PARAMETRIC_MAP not in accepted:
                continue  # this PACS takes no Parametric Maps: the Secondary Capture shows it
            status = association.send_c_store(dataset)
            code = getattr(status, "Status", None)
            if code != SUCCESS:
                described = "no answer" if code is None else f"status 0x{code:04X}"
                return sent, f"the PACS ({where}) did not store {dataset.Modality}: {described}"
            sent.append(str(dataset.SOPInstanceUID))
    finally:
        association.release()
    return sent, ""


def _stow_rs(
    root: str, objects: list[pydicom.Dataset], *, authorization: str
) -> tuple[list[str], str]:
    url = f"{root.rstrip('/')}/studies"
    boundary = secrets.token_hex(16)
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + _part10(item)
        + b"\r\n"
        for item in objects
    )
    body += f"--{boundary}--\r\n".encode()
    answer = post(
        url,
        body=body,
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        accept="application/dicom+json",
        authorization=authorization,
    )
    if answer.status is None:
        return [], f"the PACS ({url}) could not be reached: {answer.unreachable}"
    stored, failed = _stow_outcome(answer.body)
    if answer.status not in (200, 202, 409) or not (stored or failed):
        return [], f"the PACS ({url}) answered STOW-RS with HTTP {answer.status}"
    kinds = {str(item.SOPInstanceUID): item for item in objects}
    refused = {uid: reason for uid, reason in failed.items() if uid in kinds}
    optional = {uid for uid in refused if kinds[uid].SOPClassUID == PARAMETRIC_MAP}
    missing = [uid for uid in kinds if uid not in stored and uid not in optional]
    if missing:
        reasons = ", ".join(
            f"{kinds[uid].Modality} (failure reason {refused[uid]})"
            if uid in refused
            else f"{kinds[uid].Modality} (not in its answer)"
            for uid in missing
        )
        return stored, f"the PACS ({url}) did not store {reasons}"
    return stored, ""


def _stow_outcome(body: bytes) -> tuple[list[str], dict[str, str]]:
    """The SOP instance UIDs a STOW response says were stored, and those that failed with the
    failure reason (hex)."""
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        return [], {}
    if isinstance(answer, list):  # some servers answer with a one-item array
        answer = answer[0] if answer and isinstance(answer[0], dict) else {}
    if not isinstance(answer, dict):
        return [], {}

    def items(tag: str) -> list[dict]:
        value = answer.get(tag, {})
        return [item for item in value.get("Value", []) if isinstance(item, dict)]

    def uid(item: dict) -> str:
        return str((item.get(REFERENCED_SOP_INSTANCE, {}).get("Value") or [""])[0])

    def reason(item: dict) -> str:
        code = (item.get(FAILURE_REASON, {}).get("Value") or [None])[0]
        return f"0x{code:04X}" if isinstance(code, int) else "unknown"

    return [uid(item) for item in items(REFERENCED_SOPS)], {
        uid(item): reason(item) for item in items(FAILED_SOPS)
    }


def _part10(dataset: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
