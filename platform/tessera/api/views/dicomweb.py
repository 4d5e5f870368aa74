"""DICOMweb, for the PACS and the modalities a hospital wires to Tessera (PS3.18); the
searches and retrieves a viewer makes are api.views.dicomweb_reads'.

`POST /dicomweb/studies` (STOW-RS): a `multipart/related; type="application/dicom"` body, one
DICOM file per part, stored by records.dicom_arrivals (whole or not at all) for the
organization the token's user writes in (`?organization=<id>` where they write in several).
The answer is the standard STOW response (application/dicom+json): the stored instances in the
Referenced SOP Sequence, the refused ones in the Failed SOP Sequence with their DICOM failure
reason, and each refusal's reason in words in a `Warning` header (PS3.18 8.3.5.1). Status: 200
when all were stored, 409 when the delivery was refused; a body that is not such a multipart
is a problem (application/problem+json): 400, or 415 for another content type.
"""

import json
from email.parser import BytesParser
from email.policy import HTTP

from django.conf import settings
from django.http import HttpResponse
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from tessera.api.problems import Problem
from tessera.api.receiving import receiving_clinic
from tessera.api.views import dicomweb_reads as reads
from tessera.records.dicom_arrivals import Delivery, Refusal, receive_dicom

DICOM_JSON = reads.DICOM_JSON
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_CLASS = "00081150"
REFERENCED_SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"


class DicomJsonRenderer(JSONRenderer):
    """What a DICOMweb client asks for (Accept: application/dicom+json)."""

    media_type = DICOM_JSON
    format = "dicom-json"


class _DicomwebView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes: list = []  # the body is read as it came: multipart/related is ours to parse
    renderer_classes = [DicomJsonRenderer, JSONRenderer]
    schema = None  # DICOMweb, not the REST API: PS3.18 documents it

    def perform_content_negotiation(self, request, force=False):
        """Answers are DICOM JSON or multipart/related DICOM, whatever the client's Accept
        lists (viewers ask for `multipart/related; type="application/dicom"`, which no DRF
        renderer matches); a problem is problem+json."""
        return DicomJsonRenderer(), DICOM_JSON


class StudiesView(_DicomwebView):
    def get(self, request):
        return reads.search_studies(request)

    def post(self, request):
        organization = receiving_clinic(request)
        parts = _dicom_parts(request)
        delivery = receive_dicom(
            organization=organization, instances=parts, received_by=request.user
        )
        return _stow_response(delivery)


class StudyView(_DicomwebView):
    def get(self, request, study: str):
        return reads.retrieve(request, study_uid=study)


class StudySeriesView(_DicomwebView):
    def get(self, request, study: str):
        return reads.search_series(request, study)


class SeriesView(_DicomwebView):
    def get(self, request, study: str, series: str):
        return reads.retrieve(request, study_uid=study, series_uid=series)


class SeriesMetadataView(_DicomwebView):
    def get(self, request, study: str, series: str):
        return reads.series_metadata(request, study, series)


class SeriesInstancesView(_DicomwebView):
    def get(self, request, study: str, series: str):
        return reads.search_instances(request, study, series)


class InstanceView(_DicomwebView):
    def get(self, request, study: str, series: str, instance: str):
        return reads.retrieve(
            request, study_uid=study, series_uid=series, sop_instance_uid=instance
        )


class FramesView(_DicomwebView):
    def get(self, request, study: str, series: str, instance: str, frames: str):
        return reads.frames(request, study, series, instance, frames)


def _dicom_parts(request) -> list[bytes]:
    content_type = request.META.get("CONTENT_TYPE", "")
    parsed = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    )
    if parsed.get_content_type() != "multipart/related":
        raise Problem(
            'STOW-RS takes multipart/related; type="application/dicom", one DICOM file per part',
            code="unsupported_media_type",
            status_code=415,
        )
    declared = (parsed.get_param("type") or "").lower()
    if declared != "application/dicom":
        raise Problem(
            f'this server stores DICOM files (type="application/dicom"), not "{declared}"',
            code="unsupported_media_type",
            status_code=415,
        )
    body = _body(request)
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace") + body
    )
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if not parts:
        raise Problem(
            "the body holds no part: is the boundary in Content-Type the one the body uses?",
            code="malformed_multipart",
        )
    contents = []
    for number, part in enumerate(parts, start=1):
        if part.get_content_type() != "application/dicom":
            raise Problem(
                f"part {number} is {part.get_content_type()}, not application/dicom",
                code="malformed_multipart",
            )
        contents.append(part.get_payload(decode=True) or b"")
    return contents


def _body(request) -> bytes:
    """The request's body, read as a stream: Django's request.body stops at
    DATA_UPLOAD_MAX_MEMORY_SIZE (1 MiB); the request's size limit (TESSERA_MAX_REQUEST_BYTES)
    was checked from Content-Length. A chunked body (a PACS streaming a study) has no length:
    it is read from a server that decodes chunks (gunicorn says so with wsgi.input_terminated),
    up to the same limit."""
    environ = request._request.environ
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return request.stream.read() if request.stream is not None else b""
    if not environ.get("wsgi.input_terminated"):
        raise Problem(
            "this server cannot read a chunked body: send Content-Length (in Orthanc, the "
            'DICOMweb server\'s "ChunkedTransfers": false)',
            code="length_required",
            status_code=411,
        )
    limit = settings.TESSERA_MAX_REQUEST_BYTES
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise Problem(
            f"the body is larger than this server accepts ({limit} bytes)",
            code="too_large",
            status_code=413,
        )
    return body


def _stow_response(delivery: Delivery) -> HttpResponse:
    body: dict = {}
    if delivery.stored:
        body[REFERENCED_SOP_SEQUENCE] = reads.element(
            "SQ",
            *(_reference(item.sop_class_uid, item.sop_instance_uid) for item in delivery.stored),
        )
    if delivery.refused:
        body[FAILED_SOP_SEQUENCE] = reads.element(
            "SQ",
            *(
                {
                    **_reference(item.sop_class_uid, item.sop_instance_uid),
                    FAILURE_REASON: reads.element("US", item.failure_reason),
                }
                for item in delivery.refused
            ),
        )
    response = HttpResponse(
        json.dumps(body), content_type=DICOM_JSON, status=409 if delivery.refused else 200
    )
    if delivery.refused:
        response["Warning"] = ", ".join(_warning(item) for item in delivery.refused)
    return response


def _warning(refusal: Refusal) -> str:
    """A refusal in words, as an HTTP warning (one line, no double quotes inside)."""
    why = " ".join(refusal.why.replace('"', "'").split())
    return f'299 tessera "part {refusal.part}: {why}"'


def _reference(sop_class: str, sop_instance: str) -> dict:
    reference = {}
    if sop_class:
        reference[REFERENCED_SOP_CLASS] = reads.element("UI", sop_class)
    if sop_instance:
        reference[REFERENCED_SOP_INSTANCE] = reads.element("UI", sop_instance)
    return reference
