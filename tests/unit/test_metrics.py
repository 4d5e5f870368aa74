"""`/metrics` (operations.metrics): refused without the scraper's token or network, off while the
server has neither; after a job it shows the backlog by status, the stage histogram and the
batch size, counted from the database, and django-prometheus' request metrics."""

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tessera.jobs.models import Activity, AnalysisJob
from tessera.jobs.services import (
    claim_for_preprocessing,
    complete_job,
    fail_job,
    hand_to_inference,
    register_model_version,
)
from tests.unit.conftest import prediction

pytestmark = pytest.mark.django_db
TOKEN = "scrape-me-0123456789"


@pytest.fixture
def scraper(settings):
    settings.TESSERA_METRICS_TOKEN = TOKEN
    return Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def samples(response) -> dict[tuple[str, tuple], float]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_metrics_are_refused_without_the_token_and_off_without_one(settings):
    assert Client().get("/metrics").status_code == 403, "neither token nor network set: off"
    settings.TESSERA_METRICS_TOKEN = TOKEN
    refused = Client().get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert Client(HTTP_AUTHORIZATION="Bearer guess").get("/metrics").status_code == 401
    forwarded = Client(HTTP_X_FORWARDED_FOR="10.1.2.3").get("/metrics")
    assert forwarded.status_code == 401, "a forwarded-for header is the client's to write"


def test_an_allowed_network_may_scrape_without_a_token(settings):
    settings.TESSERA_METRICS_NETWORKS = ["127.0.0.0/8"]
    assert Client().get("/metrics").status_code == 200
    settings.TESSERA_METRICS_NETWORKS = ["10.0.0.0/8"]
    assert Client().get("/metrics").status_code == 401, "127.0.0.1 is not in it"


def test_after_a_job_the_backlog_and_stage_histogram_show_it(scraper, clinic, encounter):
    version = register_model_version(
        name="clinic-v7", serves="clinic", bundle_path="clinic-v7", metrics={}
    )
    done, failed, waiting = (
        AnalysisJob.objects.create(
            organization=clinic, visit_key=encounter.visit_key, task="all", model_version=version
        )
        for _ in range(3)
    )
    assert claim_for_preprocessing(job_id=done.pk, worker="cpu")  # as workers do
    assert hand_to_inference(job_id=done.pk, worker="cpu", timings={Activity.PREPROCESSING: 0.3})
    complete_job(
        job_id=done.pk,
        worker="gpu",
        prediction=prediction(mass=0.9),
        timings={Activity.INFERENCE: 0.08, "batch_cases": 3},
    )
    fail_job(job_id=failed.pk, code="bad_input", message="The note is empty.")

    seen = samples(scraper.get("/metrics"))
    assert seen[("tessera_jobs", (("status", "succeeded"),))] == 1
    assert seen[("tessera_jobs", (("status", "failed"),))] == 1
    assert seen[("tessera_jobs", (("status", "queued"),))] == 1, "the backlog"
    stage = "tessera_job_stage_seconds_bucket"
    assert seen[(stage, (("le", "0.25"), ("stage", "preprocessing")))] == 0
    assert seen[(stage, (("le", "0.5"), ("stage", "preprocessing")))] == 1
    assert seen[(stage, (("le", "0.1"), ("stage", "inference")))] == 1
    assert seen[("tessera_job_stage_seconds_sum", (("stage", "preprocessing"),))] == 0.3
    assert seen[("tessera_batch_cases_bucket", (("le", "2.0"),))] == 0
    assert seen[("tessera_batch_cases_bucket", (("le", "4.0"),))] == 1
    assert seen[("tessera_failed_jobs", (("code", "bad_input"),))] == 1
    assert seen[("tessera_failed_deliveries", (("destination", "fhir"),))] == 0
    assert ("tessera_report_render_seconds_count", ()) in seen
    assert any(name.startswith("django_http_requests") for name, _ in seen), "requests too"
    assert AnalysisJob.objects.get(pk=waiting.pk).status == "queued"
