"""Webhooks: a receiver on 127.0.0.1 gets signed deliveries of job events, retried with backoff
after a failure, logged, and never sent for an event whose transaction rolled back."""

import json
import re
import time
from pathlib import Path

import pytest
from django.db import transaction

from tessera.jobs.models import AnalysisJob, JobStatus
from tessera.jobs.services import fail_job, request_analysis
from tessera.webhooks.models import DeliveryStatus, Event, WebhookDelivery
from tessera.webhooks.services import attempt_delivery, create_subscription, emit, send_ping
from tessera.webhooks.signing import signature, verify
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def quick_retries(settings):
    settings.TESSERA_WEBHOOK_BACKOFF_SECONDS = 0
    settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS = 5
    settings.TESSERA_WEBHOOK_MAX_ATTEMPTS = 3


def subscribe(organization, url, events=(Event.JOB_SUCCEEDED, Event.JOB_FAILED)):
    return create_subscription(
        organization=organization, url=url, events=list(events), created_by=None
    )


def test_a_receiver_can_check_a_signature_and_refuses_a_forged_or_replayed_one():
    body = b'{"type":"job.succeeded"}'
    now = int(time.time())
    header = signature(secret="whsec_a", timestamp=now, body=body)
    assert verify(secret="whsec_a", header=header, body=body)
    assert not verify(secret="whsec_b", header=header, body=body), "another secret"
    assert not verify(secret="whsec_a", header=header, body=body + b" "), "a changed body"
    old = signature(secret="whsec_a", timestamp=now - 3600, body=body)
    assert not verify(secret="whsec_a", header=old, body=body), "a replay an hour later"
    assert not verify(secret="whsec_a", header="v1=abc", body=body)


def test_the_receiver_check_in_the_readme_accepts_our_signature_and_nothing_else():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (snippet,) = re.findall(r"```python\n(import hashlib.*?)```", readme, flags=re.DOTALL)
    namespace: dict = {}
    exec(snippet, namespace)
    is_from_tessera = namespace["is_from_tessera"]
    body = b'{"id":"d-1","type":"ping"}'
    header = signature(secret="whsec_x", timestamp=int(time.time()), body=body)
    assert is_from_tessera("whsec_x", header, body)
    assert not is_from_tessera("whsec_y", header, body)
    assert not is_from_tessera("whsec_x", header, body.replace(b"ping", b"pong"))


def test_a_succeeded_job_reaches_the_receiver_signed_and_again_after_it_first_answers_500(
    encounter, clinic_model, eager, quick_retries, django_capture_on_commit_callbacks
):
    with webhook_receiver(answers=[500]) as receiver:
        subscription = subscribe(encounter.patient.organization, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            job = request_analysis(attached_to=encounter, task="all", requested_by=None)
        assert receiver.arrived.wait(10)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    first, second = receiver.received
    assert (first.answered, second.answered) == (500, 200)
    assert first.body == second.body, "a retry sends the same delivery"
    assert first.headers["Tessera-Delivery"] == second.headers["Tessera-Delivery"]
    assert verify(
        secret=subscription.secret, header=second.headers["Tessera-Signature"], body=second.body
    )
    payload = json.loads(second.body)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["job"] == str(job.pk)
    assert payload["data"]["result"] == job.results.get().pk
    assert "Patient" not in second.body.decode(), "ids only, never a name"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 2
    assert delivery.last_status_code == 200


def test_a_failed_job_is_announced_only_to_subscribers_of_job_failed(
    encounter, clinic_model, eager, quick_retries, django_capture_on_commit_callbacks
):
    organization = encounter.patient.organization
    job = AnalysisJob.objects.create(
        organization=organization,
        visit_key=encounter.visit_key,
        task="diagnosis",
        model_version=clinic_model,
    )
    with webhook_receiver() as wants_failures, webhook_receiver() as wants_successes:
        subscribe(organization, wants_failures.url, events=[Event.JOB_FAILED])
        subscribe(organization, wants_successes.url, events=[Event.JOB_SUCCEEDED])
        with django_capture_on_commit_callbacks(execute=True):
            fail_job(job_id=job.pk, code="bad_input", message="the DICOM has no pixel data")
            fail_job(job_id=job.pk, code="bad_input", message="a second failure of a failed job")
        assert wants_failures.arrived.wait(10)
    (received,) = wants_failures.received
    payload = json.loads(received.body)
    assert payload["type"] == "job.failed"
    assert payload["data"]["error_message"] == "the DICOM has no pixel data"
    assert wants_successes.received == []


def test_an_event_rolled_back_with_its_transaction_is_never_sent(
    clinic, eager, quick_retries, django_capture_on_commit_callbacks
):
    def succeed_then_fail() -> None:
        with transaction.atomic():
            emit(organization_id=clinic.pk, event=Event.JOB_SUCCEEDED, data={"job": "x"})
            raise RuntimeError("the job's transaction failed")

    with webhook_receiver() as receiver:
        subscribe(clinic, receiver.url)
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
            succeed_then_fail()
    assert WebhookDelivery.objects.count() == 0
    assert receiver.received == []


def test_a_receiver_that_keeps_failing_is_given_up_after_the_attempt_cap(
    clinic, eager, quick_retries, django_capture_on_commit_callbacks
):
    with webhook_receiver(answers=[503, 503, 503, 503]) as receiver:
        subscription = subscribe(clinic, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            send_ping(subscription=subscription)
    delivery = WebhookDelivery.objects.get()
    assert [r.answered for r in receiver.received] == [503, 503, 503]
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_status_code == 503
    assert "gave up after 3 attempts" in delivery.last_error


def test_an_unreachable_or_redirecting_receiver_is_a_logged_failure(clinic, quick_retries):
    with webhook_receiver(answers=[302]) as redirecting:
        subscription = subscribe(clinic, redirecting.url)
        delivery = send_ping(subscription=subscription)
        assert attempt_delivery(delivery_id=delivery.pk) == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.PENDING, 302)
    closed = subscribe(clinic, "http://127.0.0.1:9/nothing-listens-here")
    delivery = send_ping(subscription=closed)
    attempt_delivery(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_status_code is None
    assert "could not be reached" in delivery.last_error


def test_a_delivery_not_due_is_not_sent_twice(clinic, settings):
    settings.TESSERA_WEBHOOK_BACKOFF_SECONDS = 60
    with webhook_receiver(answers=[500]) as receiver:
        delivery = send_ping(subscription=subscribe(clinic, receiver.url))
        assert attempt_delivery(delivery_id=delivery.pk) == 60
        assert attempt_delivery(delivery_id=delivery.pk) is None, "a duplicate message, too early"
    assert len(receiver.received) == 1
