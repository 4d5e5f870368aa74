"""Whatever a client sends and whatever DEBUG says, the API answers problem+json: bodies that
cannot be parsed are a 400 with a sentence, unknown URLs a 404, a fault of ours a logged 500;
never Django's HTML debug pages (they list every route and show the settings)."""

import json

import pytest

from tests.unit.api import PROBLEM, assert_problem, client_for

pytestmark = pytest.mark.django_db
DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.parametrize(
    "path", ["/api/v1/jobs/", "/api/v1/patients/", "/api/v1/webhooks/", "/api/v1/cohorts/"]
)
def test_json_nested_too_deep_is_a_400_problem_at_any_endpoint(people, debug, path):
    client = client_for(people["admin"])
    response = client.post(path, DEEP, content_type="application/json")
    body = assert_problem(response, 400, "parse_error")
    assert body["detail"] == (
        "the JSON body is nested more than 32 levels deep; no request of this API needs more "
        "than a few"
    )
    below_the_recursion_limit = "[" * 200 + "]" * 200
    response = client.post(path, below_the_recursion_limit, content_type="application/json")
    assert_problem(response, 400, "parse_error")


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        ("{", "the body is not valid JSON (Expecting property name"),
        (b"\xff\xfe{}", "the body is not valid JSON ("),
        ('{"task": NaN}', "the body is not valid JSON ("),
    ],
)
def test_a_body_that_is_not_json_is_a_400_problem_with_a_sentence(people, debug, body, sentence):
    response = client_for(people["clinician"]).post(
        "/api/v1/jobs/", body, content_type="application/json"
    )
    assert assert_problem(response, 400, "parse_error")["detail"].startswith(sentence)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tokens/1.4e-213/",
        "/api/v1/webhooks/0.5/ping/",
        "/api/v1/no-such-endpoint/",
        "/api/v2/patients/",
        "/api/",
    ],
)
def test_an_unknown_api_url_is_a_problem_even_with_debug_on(people, debug, path):
    client = client_for(people["clinician"])
    for response in (client.get(path), client.post(path, {}, format="json")):
        body = assert_problem(response, 404, "not_found")
        assert body["detail"] == "no such endpoint or object; see /api/v1/docs/"
        assert b"URLconf" not in response.content


def test_a_path_missing_its_slash_is_told_so(people, debug):
    response = client_for(people["clinician"]).get("/api/v1/patients")
    body = assert_problem(response, 404, "not_found")
    assert body["detail"] == "no such endpoint: API paths end with a slash (/api/v1/patients/)"


def test_a_fault_of_ours_is_a_logged_500_problem_even_with_debug_on(
    people, debug, monkeypatch, caplog
):
    from tessera.api import views

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a selector")

    monkeypatch.setattr(views.PatientViewSet, "list", broken)
    response = client_for(people["clinician"]).get("/api/v1/patients/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith(PROBLEM)
    body = json.loads(response.content)
    assert body["detail"] == "something went wrong on our side; the error was logged"
    assert "a bug in a selector" not in response.content.decode()
    assert any("a bug in a selector" in str(record.exc_info) for record in caplog.records)


def test_pages_keep_their_html_404(people, client, debug):
    client.force_login(people["clinician"])
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_damaged_dicom_is_refused_in_plain_words_with_the_decoder_apart(people, clinic):
    import pathlib

    import pydicom
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tessera.records.services import create_encounter, create_patient
    from tests.unit.conftest import WHEN

    patient = create_patient(organization=clinic, mrn="D-1", full_name="Damaged Upload")
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    corpus = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"
    part = SimpleUploadedFile(
        "bad.dcm", (corpus / "badVR.dcm").read_bytes(), content_type="application/dicom"
    )
    response = client_for(people["clinician"]).post(
        "/api/v1/media/",
        {"kind": "dicom", "encounter": visit.pk, "file": part},
        format="multipart",
    )
    body = assert_problem(response, 400, "dicom_damaged")
    assert body["detail"] == "the image data in this file is damaged and cannot be read"
    assert body["technical_detail"] == (
        "Explicit VR Little Endian: invalid literal for int() with base 10: '1A'"
    )
