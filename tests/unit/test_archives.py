"""Zipped DICOM series: a good one is stored whole (each image de-identified); a zip bomb, an
entry climbing out with `..` or starting at the root, a symlink, too many entries or one bad
image each refuse the whole archive with nothing written."""

import io
import stat
import zipfile
from datetime import UTC, datetime

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tessera.records.models import MediaAsset
from tessera.records.services import create_encounter, create_patient
from tests.conftest import slice_bytes, stored_files
from tests.unit.api import assert_problem, client_for

pytestmark = pytest.mark.django_db


def zipped(entries: dict[str, bytes], *, symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


@pytest.fixture
def visit(clinic):
    patient = create_patient(organization=clinic, mrn="Z-1", full_name="Series Patient")
    return create_encounter(patient=patient, occurred_at=datetime(2026, 10, 1, tzinfo=UTC))


@pytest.fixture
def api(clinic, make_user):
    return client_for(make_user("zip-doc", organization=clinic))


def post_series(api, visit, content: bytes, name: str = "series.zip"):
    return api.post(
        "/api/v1/media/series/",
        {"encounter": visit.pk, "file": SimpleUploadedFile(name, content, "application/zip")},
        format="multipart",
    )


def test_a_zipped_series_is_stored_image_by_image_and_de_identified(api, visit, media_root):
    archive = zipped(
        {f"study/slice-{n}.dcm": slice_bytes(n) for n in (1, 2, 3)} | {"__MACOSX/._x": b"junk"}
    )
    response = post_series(api, visit, archive)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["count"] == 3
    assert sorted(item["original_filename"] for item in body["media"]) == [
        "study/slice-1.dcm",
        "study/slice-2.dcm",
        "study/slice-3.dcm",
    ]
    assets = MediaAsset.objects.filter(visit_key__encounter=visit)
    assert assets.count() == 3
    for asset in assets:
        stored = pydicom.dcmread(media_root / asset.storage_path)
        assert str(stored.PatientName) == str(visit.patient.pseudonym)
    assert len(stored_files(media_root)) == 3


@pytest.mark.parametrize(
    ("entries", "symlinks", "code", "says"),
    [
        ({"../../etc/cron.d/evil.dcm": b"x"}, (), "zip_unsafe_entry", "outside the archive"),
        ({"/etc/passwd": b"x"}, (), "zip_unsafe_entry", "outside the archive"),
        ({"C:\\Windows\\evil.dcm": b"x"}, (), "zip_unsafe_entry", "outside the archive"),
        ({"link.dcm": b"/etc/shadow"}, ("link.dcm",), "zip_unsafe_entry", "symbolic link"),
        ({"bomb.dcm": b"\0" * 50_000_000}, (), "zip_bomb", "zip bomb"),
        ({"notes.txt": b"not an image"}, (), "not_dicom", "notes.txt"),
    ],
)
def test_an_unsafe_or_bad_archive_is_refused_whole_with_nothing_written(
    api, visit, media_root, entries, symlinks, code, says
):
    good = {"slice-1.dcm": slice_bytes(1)}  # stored first, if anything were stored
    response = post_series(api, visit, zipped(good | entries, symlinks=symlinks))
    body = assert_problem(response, 400, code)
    assert says in body["detail"]
    assert not MediaAsset.objects.exists()
    assert stored_files(media_root) == []


def test_an_archive_of_nothing_but_folders_is_refused(api, visit):
    empty = zipped({"study/": b"", "__MACOSX/._study": b"resource fork"})
    assert "no files" in assert_problem(post_series(api, visit, empty), 400, "zip_empty")["detail"]


def test_too_many_entries_are_refused_before_any_is_read(api, visit, media_root, settings):
    settings.TESSERA_ZIP_MAX_ENTRIES = 3
    archive = zipped({f"slice-{n}.dcm": slice_bytes(n) for n in range(1, 5)})
    assert (
        "over the limit of 3"
        in assert_problem(post_series(api, visit, archive), 400, "zip_too_many_entries")["detail"]
    )
    assert stored_files(media_root) == []


def test_an_archive_that_unpacks_past_the_total_limit_is_refused(api, visit, settings):
    settings.TESSERA_ZIP_MAX_TOTAL_BYTES = 5_000
    archive = zipped({f"slice-{n}.dcm": slice_bytes(n) for n in (1, 2)})
    assert_problem(post_series(api, visit, archive), 400, "zip_too_large")
    assert not MediaAsset.objects.exists()


def test_a_header_that_understates_an_entry_is_caught_while_reading(api, visit, media_root):
    archive = bytearray(zipped({"slice-1.dcm": slice_bytes(1)}))
    honest = len(slice_bytes(1))
    understated = (honest // 2).to_bytes(4, "little")
    # the uncompressed size, in the central directory (offset 24 from "PK\1\2") and local header
    central = archive.rindex(b"PK\x01\x02")
    archive[central + 24 : central + 28] = understated
    archive[22:26] = understated
    response = post_series(api, visit, bytes(archive))
    assert_problem(response, 400)
    assert not MediaAsset.objects.exists()
    assert stored_files(media_root) == []


def test_the_page_takes_a_zip_in_the_image_upload(client, clinic, make_user, visit, media_root):
    client.force_login(make_user("zip-page-doc", organization=clinic))
    archive = zipped({f"slice-{n}.dcm": slice_bytes(n) for n in (1, 2)})
    response = client.post(
        reverse("upload", args=["encounter", visit.pk, "dicom"]),
        {"file": SimpleUploadedFile("series.zip", archive, "application/zip")},
    )
    assert response.status_code == 302
    assert MediaAsset.objects.filter(visit_key__encounter=visit).count() == 2
    bomb = zipped({"bomb.dcm": b"\0" * 50_000_000})
    refused = client.post(
        reverse("upload", args=["encounter", visit.pk, "dicom"]),
        {"file": SimpleUploadedFile("bomb.zip", bomb, "application/zip")},
        HTTP_HX_REQUEST="true",
    )
    assert refused.status_code == 422
    assert "zip bomb" in refused.content.decode()
    assert MediaAsset.objects.filter(visit_key__encounter=visit).count() == 2
