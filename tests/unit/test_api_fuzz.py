"""Schemathesis fuzzes every operation of the API's OpenAPI schema (the one served at
/api/v1/schema/) with a valid token and every check Schemathesis has: no request, however odd,
gets a 5xx, a status, content type, header or body the schema does not publish, invalid data is
refused and valid data accepted. Bounded: a few examples per operation, derandomized so a
failure reproduces."""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tessera.accounts.models import Role
from tessera.accounts.services import issue_api_token
from tessera.jobs.services import register_model_version
from tessera.records.services import create_encounter, create_patient
from tessera.wsgi import application
from tests.unit.conftest import WHEN

# What a 400 may say about schema-valid data: what no OpenAPI schema can state. Which ids exist
# and are yours, and what kind of organization one is; rules between fields ("exactly one of");
# what a host name may be (`format: uri` allows labels longer than DNS does); and a file sent
# as a text part (how multipart carries a field is its encoding, not its schema).
BEYOND_THE_SCHEMA = (
    "among the records you can see",
    "only a school keeps an intervention library",
    "That choice is not one of the available choices",
    "name exactly one of",
    "Enter a valid URL.",
    "No file was submitted.",
)


@schemathesis.check
def valid_data_is_accepted(ctx, response, case):
    """Schemathesis' positive_data_acceptance, except for a 400 whose every error is beyond
    what the schema can say."""
    if response.status_code == 400:
        errors = json.loads(response.content).get("errors", {})
        messages = [str(message) for field in errors.values() for message in field]
        if messages and all(any(fact in m for fact in BEYOND_THE_SCHEMA) for m in messages):
            return None
    return positive_data_acceptance(ctx, response, case)


@pytest.fixture
def in_process_requests():
    """The app runs inside the test's transaction: requests must not close its connection
    (Django's own test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(db, clinic, make_user) -> str:
    admin = make_user("fuzzer", organization=clinic, role=Role.ORG_ADMIN)
    patient = create_patient(organization=clinic, mrn="F-1", full_name="Fuzz Patient")
    create_encounter(patient=patient, occurred_at=WHEN)
    register_model_version(name="never-promoted", serves="clinic", bundle_path="x", metrics={})
    return issue_api_token(user=admin, name="fuzz")[1]


def served_schema() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


load_all_checks()
schema = schemathesis.openapi.from_dict(served_schema())
schema.app = application


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_server_error_or_breaks_the_schema(case, token, in_process_requests):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[valid_data_is_accepted],
    )


@pytest.fixture
def admin_token(db, clinic, make_user, dicom_bytes, wav_audio):
    from tessera.records.models import MediaKind
    from tessera.records.services import add_media
    from tests.conftest import upload

    admin = make_user("schema-admin", organization=clinic, role=Role.ORG_ADMIN)
    patient = create_patient(organization=clinic, mrn="S-1", full_name="Schema Patient")
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    for kind, content in (
        (MediaKind.DICOM, dicom_bytes),
        (MediaKind.CLINICAL_NOTE, b"Short of breath."),
        (MediaKind.SPEECH, wav_audio),
    ):
        add_media(attached_to=visit, kind=kind, file=upload(content))
    register_model_version(name="never-promoted", serves="clinic", bundle_path="x", metrics={})
    return issue_api_token(user=admin, name="schema")[1]


def test_responses_with_real_rows_match_the_schema_under_every_check(
    admin_token, clinic, in_process_requests
):
    """What random ids never reach: a model version nobody promoted, an organization's
    members, and a download of each kind of file."""
    from tessera.records.models import MediaAsset

    headers = {"Authorization": f"Bearer {admin_token}"}
    calls = [
        ("/api/v1/model-versions/", {}),
        ("/api/v1/organizations/{id}/members/", {"id": clinic.pk}),
        *(("/api/v1/media/{id}/download/", {"id": asset.pk}) for asset in MediaAsset.objects.all()),
    ]
    for path, parameters in calls:
        case = schema[path]["GET"].Case(path_parameters=parameters)
        response = case.call_and_validate(headers=headers)
        assert response.status_code == 200, (path, response.text[:300])
