"""DICOMweb reads of the images Tessera stores, de-identified (PS3.18), so a viewer such as OHIF
can show them: QIDO-RS searches (studies, a study's series, a series' instances) answer DICOM
JSON, WADO-RS retrieves a study, a series or an instance as `multipart/related;
type="application/dicom"`, and a series' metadata as DICOM JSON without the pixels. Everything
is named by the stand-in UIDs the files carry and the patient's pseudonym: the way back to the
PACS is not served here. Scoped to the user's organizations (another's study is not found)
and audited: a search lists the images, a retrieve downloads them.

A search answers a page at a time, as QIDO-RS clients ask (`limit`, at most 1,000, by default
100; `offset`), saying in a `Warning` header when there are more."""

import json
import secrets
from uuid import UUID

import pydicom
from django.http import HttpResponse

from tessera.accounts.selectors import organizations_of
from tessera.api.problems import Problem
from tessera.audit import services as audit
from tessera.records.models import DicomOrigin
from tessera.records.selectors import dicom_instances
from tessera.records.storage import content_store

DICOM_JSON = "application/dicom+json"
OCTETS = "application/octet-stream"
PAGE, LARGEST_PAGE = 100, 1000
MORE = '299 tessera "There are additional results that can be requested"'  # PS3.18 8.3.4.1


def search_studies(request) -> HttpResponse:
    instances = _visible(request)
    if study := request.query_params.get("StudyInstanceUID"):
        instances = instances.filter(study_uid=study)
    if patient := request.query_params.get("PatientID"):
        try:
            instances = instances.filter(
                media__visit_key__encounter__patient__pseudonym=UUID(patient)
            )
        except ValueError:
            instances = instances.none()  # no stored file carries it
    start, size = _page(request)
    uids = instances.order_by("study_uid").values_list("study_uid", flat=True).distinct()
    page = list(uids[start : start + size + 1])
    studies: dict[str, list[DicomOrigin]] = {}
    for item in instances.filter(study_uid__in=page[:size]).order_by(
        "study_uid", "series_uid", "sop_instance_uid"
    ):
        studies.setdefault(item.study_uid, []).append(item)
    audit.record_each(
        [item.media for items in studies.values() for item in items], action=audit.Action.LIST
    )
    return _json(
        [
            {
                "0020000D": element("UI", uid),
                "00100020": element("LO", str(_patient(items[0]).pseudonym)),
                "00100010": element("PN", {"Alphabetic": str(_patient(items[0]).pseudonym)}),
                "00080061": element("CS", *sorted({_modality(item) for item in items} - {""})),
                "00201206": element("IS", len({item.series_uid for item in items})),
                "00201208": element("IS", len(items)),
                "00081190": element("UR", request.build_absolute_uri(f"/dicomweb/studies/{uid}")),
            }
            for uid, items in studies.items()
        ],
        more=len(page) > size,
    )


def search_series(request, study: str) -> HttpResponse:
    start, size = _page(request)
    items = _found(request, study_uid=study)
    series: dict[str, list[DicomOrigin]] = {}
    for item in items:
        series.setdefault(item.series_uid, []).append(item)
    shown = dict(list(series.items())[start : start + size])
    audit.record_each(
        [item.media for members in shown.values() for item in members], action=audit.Action.LIST
    )
    return _json(
        [
            {
                "0020000D": element("UI", study),
                "0020000E": element("UI", uid),
                "00080060": element("CS", _modality(members[0])),
                "00201209": element("IS", len(members)),
            }
            for uid, members in shown.items()
        ],
        more=len(series) > start + size,
    )


def search_instances(request, study: str, series: str) -> HttpResponse:
    start, size = _page(request)
    every = _found(request, study_uid=study, series_uid=series)
    items = every[start : start + size]
    audit.record_each([item.media for item in items], action=audit.Action.LIST)
    return _json(
        [
            {
                "0020000D": element("UI", study),
                "0020000E": element("UI", series),
                "00080016": element("UI", item.sop_class_uid),
                "00080018": element("UI", item.sop_instance_uid),
            }
            for item in items
        ],
        more=len(every) > start + size,
    )


def retrieve(request, **uids: str) -> HttpResponse:
    """The instances under `uids` (study_uid, and series_uid, sop_instance_uid), as files."""
    items = _found(request, **uids)
    store = content_store()
    contents = []
    for item in items:
        with store.open_media(item.media) as stored:
            contents.append(stored.read())
    audit.record_each([item.media for item in items], action=audit.Action.DOWNLOAD)
    return _multipart(contents, "application/dicom")


def _multipart(contents: list[bytes], part_type: str) -> HttpResponse:
    boundary = secrets.token_hex(16)
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + content + b"\r\n"
        for content in contents
    )
    return HttpResponse(
        body + f"--{boundary}--\r\n".encode(),
        content_type=f'multipart/related; type="{part_type}"; boundary={boundary}',
    )


def frames(request, study: str, series: str, instance: str, numbers: str) -> HttpResponse:
    """The pixels of frames `numbers` ("1" or "1,3", from 1) of an instance, uncompressed,
    each an application/octet-stream part (how a viewer's image loader reads them)."""
    [item] = _found(request, study_uid=study, series_uid=series, sop_instance_uid=instance)
    with content_store().open_media(item.media) as stored:
        pixels = pydicom.dcmread(stored).pixel_array
    count = int(item.media.metadata.get("frames", 1))
    if count == 1:  # pydicom gives a single frame without the frame axis
        pixels = pixels[None]
    wanted = [int(number) for number in numbers.split(",")]
    if any(not 1 <= number <= count for number in wanted):
        raise Problem(
            f"this instance has {count} frame{'s' if count != 1 else ''}, numbered from 1",
            code="not_found",
            status_code=404,
        )
    audit.record_each([item.media], action=audit.Action.DOWNLOAD)
    return _multipart([pixels[number - 1].tobytes() for number in wanted], OCTETS)


def series_metadata(request, study: str, series: str) -> HttpResponse:
    """Each instance's header as DICOM JSON, without its pixels (what a viewer reads first)."""
    items = _found(request, study_uid=study, series_uid=series)
    store = content_store()
    headers = []
    for item in items:
        with store.open_media(item.media) as stored:
            header = pydicom.dcmread(stored, stop_before_pixels=True)
        headers.append(header.to_json_dict())
    audit.record_each([item.media for item in items], action=audit.Action.VIEW)
    return _json(headers)


def _page(request) -> tuple[int, int]:
    """The search's `offset` and `limit`; refused in words when either is not a count."""
    asked = {name: request.query_params.get(name, "") for name in ("offset", "limit")}
    if not all(value.isdigit() for value in asked.values() if value):
        raise Problem(
            "offset and limit are whole numbers (limit at most 1000)",
            code="invalid_page",
            status_code=400,
        )
    limit = int(asked["limit"]) if asked["limit"] else PAGE
    if not 1 <= limit <= LARGEST_PAGE:
        raise Problem(
            f"limit is 1 to {LARGEST_PAGE} results a page", code="invalid_page", status_code=400
        )
    return int(asked["offset"] or 0), limit


def _visible(request):
    return dicom_instances(organizations=organizations_of(user=request.user))


def _found(request, **uids: str) -> list[DicomOrigin]:
    items = list(_visible(request).filter(**uids).order_by("series_uid", "sop_instance_uid"))
    if not items:
        raise Problem(
            "no such study, series or instance of yours", code="not_found", status_code=404
        )
    return items


def _patient(item: DicomOrigin):
    return item.media.visit_key.encounter.patient


def _modality(item: DicomOrigin) -> str:
    return str(item.media.metadata.get("modality", ""))


def element(vr: str, *values) -> dict:
    """A DICOM JSON attribute (PS3.18 F.2): its VR and values."""
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _json(body, *, more: bool = False) -> HttpResponse:
    response = HttpResponse(json.dumps(body), content_type=DICOM_JSON)
    if more:
        response["Warning"] = MORE
    return response
