"""Against the real PostgreSQL named by DATABASE_URL: constraints hold under concurrency."""

import os
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections

from tessera.records.models import Patient
from tessera.records.services import create_patient

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
        reason="DATABASE_URL does not point at PostgreSQL (postgres://…)",
    ),
]


@pytest.mark.django_db
def test_the_suite_really_runs_on_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("show server_version_num")
        assert int(cursor.fetchone()[0]) >= 130000


@pytest.mark.django_db(transaction=True)
def test_two_clerks_registering_the_same_mrn_at_once_make_one_patient(clinic):
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def register(name: str) -> None:
        try:
            barrier.wait()
            create_patient(organization=clinic, mrn="SAME-1", full_name=name)
            outcomes.append("created")
        except (IntegrityError, ValidationError):
            outcomes.append("refused")
        finally:
            connections.close_all()

    clerks = [threading.Thread(target=register, args=(name,)) for name in ("First", "Second")]
    for clerk in clerks:
        clerk.start()
    for clerk in clerks:
        clerk.join()

    assert sorted(outcomes) == ["created", "refused"]
    assert Patient.objects.filter(organization=clinic, mrn="SAME-1").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_identical_job_requests_at_once_with_one_idempotency_key_make_one_job(
    clinic, make_user, monkeypatch, tmp_path, settings
):
    from django.utils import timezone
    from rest_framework.test import APIClient

    from tessera.accounts.services import issue_api_token
    from tessera.api.views import jobs as views
    from tessera.jobs.models import AnalysisJob
    from tessera.jobs.services import promote_model_version, register_model_version
    from tessera.records.services import add_media, create_encounter
    from tests.conftest import upload

    settings.MLCORE_MODELS_DIR = tmp_path
    version = register_model_version(name="any", serves="clinic", bundle_path="any", metrics={})
    promote_model_version(version=version, promoted_by=None)
    doctor = make_user("doctor", organization=clinic)
    _, key = issue_api_token(user=doctor, name="bridge")
    visit = create_encounter(
        patient=create_patient(organization=clinic, mrn="I-1", full_name="Ida"),
        occurred_at=timezone.now(),
    )
    add_media(attached_to=visit, kind="clinical_note", file=upload(b"Fever."))
    published = []
    monkeypatch.setattr("tessera.jobs.services.requests.publish", lambda **kw: published.append(kw))
    both_inside = threading.Barrier(2, timeout=30)
    real_request_analysis = views.request_analysis

    def request_analysis_in_step(**kwargs):
        both_inside.wait()  # both requests are past the key lookup, inside their transactions
        return real_request_analysis(**kwargs)

    monkeypatch.setattr(views, "request_analysis", request_analysis_in_step)
    responses = []

    def post() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
            responses.append(
                client.post(
                    "/api/v1/jobs/",
                    {"encounter": visit.pk, "task": "diagnosis"},
                    format="json",
                    HTTP_IDEMPOTENCY_KEY="retry-storm",
                )
            )
        finally:
            connections.close_all()

    clients = [threading.Thread(target=post) for _ in range(2)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()

    assert [response.status_code for response in responses] == [202, 202]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    assert AnalysisJob.objects.count() == 1
    assert len(published) == 1, "the duplicate's job was rolled back before it was published"
