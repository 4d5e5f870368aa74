"""Schemathesis fuzzes every operation of the API's OpenAPI schema (the one served at
/api/v1/schema/) with a valid token: no request, however odd, gets a 5xx or a response that
breaks the published schema. Bounded: a few examples per operation, derandomized so a failure
reproduces."""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tessera.accounts.models import Role
from tessera.accounts.services import issue_api_token
from tessera.records.services import create_encounter, create_patient
from tessera.wsgi import application
from tests.unit.conftest import WHEN

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


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
    return issue_api_token(user=admin, name="fuzz")[1]


def served_schema() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


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
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
