"""The analysis pipeline end to end with real processes: jobs requested from one process are
taken by real Celery workers (file-system broker and SQLite, or Redis and PostgreSQL when
CELERY_BROKER_URL / DATABASE_URL point at them), and each ends exactly once, whatever happens
to the workers, the broker or the process that asked."""

import json
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tessera.webhooks.signing import verify
from tests.integration.processes import (
    manage,
    pipeline_environment,
    query,
    shell,
    submit,
    throwaway_database,
    wait_for_jobs,
    worker_process,
)
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.worker
JOBS = 6
needs_redis = pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"),
    reason="CELERY_BROKER_URL does not point at Redis (redis://…)",
)


@dataclass
class Pipeline:
    """A migrated throwaway database, and the environment of the processes that share it."""

    tmp_path: Path
    models_dir: Path
    database_url: str

    def env(self, **settings: str) -> dict[str, str]:
        return pipeline_environment(self.tmp_path, self.database_url, self.models_dir, **settings)


@pytest.fixture
def pipeline(tmp_path, models_dir):
    with throwaway_database(tmp_path) as database_url:
        ready = Pipeline(tmp_path, models_dir, database_url)
        manage(ready.env(), "migrate", "-v", "0")
        yield ready


def assert_each_succeeded_once(outcomes, log, *, expected: int) -> None:
    assert len(outcomes) == expected, log.read_text()[-3000:]
    for outcome in outcomes.values():
        assert (outcome.status, outcome.results) == ("succeeded", 1), (
            outcome,
            log.read_text()[-3000:],
        )


def test_two_hundred_jobs_at_once_each_end_once_and_a_damaged_image_fails_alone(
    tmp_path, pipeline, media_files
):
    env = pipeline.env()
    good = submit(env, media_files, 199)
    (damaged,) = submit(env, media_files, 1, prefix="damaged-", image="other-ct.dcm", corrupt=True)
    log = tmp_path / "workers.log"
    with worker_process(env, log), worker_process(env, log):
        outcomes = wait_for_jobs(env, seconds=420)
    failed = outcomes.pop(damaged)
    assert (failed.status, failed.results, failed.attempts) == ("failed", 0, 1)
    assert failed.error_code == "bad_input"
    assert "DICOM" in failed.error, failed.error
    assert_each_succeeded_once(outcomes, log, expected=len(good))
    assert {outcome.attempts for outcome in outcomes.values()} == {1}
    batches = shell(
        env,
        "from tessera.jobs.models import AnalysisJob\n"
        "print(max(AnalysisJob.objects.filter(status='succeeded')"
        ".values_list('timings__batch_cases', flat=True)))",
    )
    assert int(batches) > 1, "under load, jobs share forward passes"


def test_the_same_message_delivered_to_two_workers_at_once_runs_the_job_once(
    tmp_path, pipeline, media_files
):
    env = pipeline.env()
    ids = submit(env, media_files, JOBS)
    shell(  # every job's messages published twice more: three deliveries of each stage
        env,
        "from tessera.jobs.services import publish\n"
        f"for job_id in {ids!r}:\n"
        "    for _ in range(2):\n"
        "        publish(job_id=job_id)\n"
        "        publish(job_id=job_id, stage='infer')\n",
    )
    log = tmp_path / "workers.log"
    with worker_process(env, log), worker_process(env, log):
        outcomes = wait_for_jobs(env)
    assert_each_succeeded_once(outcomes, log, expected=JOBS)
    assert {outcome.attempts for outcome in outcomes.values()} == {1}, "no claim was taken twice"


def test_a_request_whose_process_dies_between_commit_and_publish_still_runs_once(
    tmp_path, pipeline, media_files
):
    env = pipeline.env(TESSERA_JOB_PUBLISH_GRACE="1", TESSERA_SWEEP_EVERY="1")
    shell(  # the process dies right after its transaction commits, before it publishes
        env,
        "import os\n"
        "from tessera.jobs.services import requests\n"
        "requests.publish = lambda **kwargs: os._exit(0)\n"
        + SUBMIT_ONE.format(data=str(media_files)),
    )
    ((published,),) = query(pipeline.database_url, "select published_at from jobs_analysisjob")
    assert published is None, "no message was ever sent"
    log = tmp_path / "worker.log"
    with worker_process(env, log, beat=True):
        outcomes = wait_for_jobs(env)
    assert_each_succeeded_once(outcomes, log, expected=1)


SUBMIT_ONE = """
from pathlib import Path
from django.utils import timezone
from tessera.accounts.services import create_organization
from tessera.jobs.services import promote_model_version, register_model_version, request_analysis
from tessera.records.services import add_media, create_encounter, create_patient
data = Path({data!r})
clinic = create_organization(name="Clinic", slug="crash", kind="clinic", jurisdiction="US")
version = register_model_version(name="tiny", serves="clinic", bundle_path="tiny", metrics={{}})
promote_model_version(version=version, promoted_by=None)
patient = create_patient(organization=clinic, mrn="1", full_name="Patient One")
visit = create_encounter(patient=patient, occurred_at=timezone.now())
with (data / "note.txt").open("rb") as file:
    add_media(attached_to=visit, kind="clinical_note", file=file)
request_analysis(attached_to=visit, task="all")
"""


def test_a_job_out_of_memory_every_time_fails_at_the_attempt_cap_and_others_flow(
    tmp_path, pipeline, media_files
):
    env = pipeline.env(
        FAULT_OOM_ABOVE_TOKENS="32", TESSERA_RETRY_BACKOFF_SECONDS="0.5", TESSERA_SWEEP_EVERY="1"
    )
    (huge,) = submit(env, media_files, 1, prefix="huge-", note="long-note.txt")
    good = submit(env, media_files, JOBS)
    log = tmp_path / "worker.log"
    with worker_process(env, log, faulty=True, beat=True):
        outcomes = wait_for_jobs(env)
        time.sleep(3)  # a redelivery loop would show now
        after = wait_for_jobs(env, seconds=0)[huge]
    failed = outcomes.pop(huge)
    assert (failed.status, failed.attempts, failed.error_code) == ("failed", 3, "out_of_memory")
    assert "gave up after 3 attempts" in failed.error
    assert after == failed, "nothing ran it again"
    assert_each_succeeded_once(outcomes, log, expected=len(good))


def test_sigterm_during_a_long_job_finishes_it_and_hands_back_nothing_else(
    tmp_path, pipeline, media_files
):
    env = pipeline.env(FAULT_SLOW_INFERENCE_SECONDS="4", TESSERA_BATCH_MAX_CASES="2")
    submit(env, media_files, JOBS)
    running = "select id from jobs_analysisjob where stage = 'inference'"
    log = tmp_path / "first.log"
    with worker_process(env, log, faulty=True) as first:
        deadline = time.monotonic() + 120
        while not (in_flight := query(pipeline.database_url, running)):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0, "a warm shutdown"
    finished = query(
        pipeline.database_url,
        "select id, status, attempts from jobs_analysisjob where status <> 'queued' "
        "and status <> 'running' and status <> 'preprocessing'",
    )
    assert {row[0] for row in in_flight} <= {row[0] for row in finished}, "it finished its job"
    assert {row[1] for row in finished} == {"succeeded"}
    second_log = tmp_path / "second.log"
    with worker_process(env, second_log):
        outcomes = wait_for_jobs(env)
    assert_each_succeeded_once(outcomes, second_log, expected=JOBS)
    assert {outcome.attempts for outcome in outcomes.values()} == {1}, "nothing was taken over"


def test_a_worker_killed_mid_job_loses_no_job_and_duplicates_none(tmp_path, pipeline, media_files):
    env = pipeline.env(TESSERA_JOB_LEASE_SECONDS="2", TESSERA_SWEEP_EVERY="1")
    submit(env, media_files, JOBS)
    holding = "select id, status from jobs_analysisjob where lease_owner <> ''"
    with worker_process(env, tmp_path / "first.log") as first:
        deadline = time.monotonic() + 120
        while not (held := query(pipeline.database_url, holding)) and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert held, "the first worker never took a job"
    victim = held[0][0]
    unfinished = query(
        pipeline.database_url,
        f"select status from jobs_analysisjob where id = '{victim}' "
        "and status not in ('succeeded', 'failed', 'cancelled')",
    )
    log = tmp_path / "second.log"
    with worker_process(env, log, beat=True):
        outcomes = wait_for_jobs(env)
    assert_each_succeeded_once(outcomes, log, expected=JOBS)
    if unfinished:
        (attempts,) = query(
            pipeline.database_url, f"select attempts from jobs_analysisjob where id = '{victim}'"
        )[0]
        assert attempts >= 2, "the killed worker's job was taken over"


BREAK_THE_ACTIVE_MODEL = """
import json, shutil
from pathlib import Path
from django.conf import settings
from tessera.jobs.services import promote_model_version, register_model_version
models = Path(settings.MLCORE_MODELS_DIR)
shutil.rmtree(models / "tiny-broken", ignore_errors=True)
shutil.copytree(models / "tiny", models / "tiny-broken")
config = json.loads((models / "tiny-broken" / "config.json").read_text())
config["fusion"]["dim"] *= 2  # the weights no longer fit the model the config describes
(models / "tiny-broken" / "config.json").write_text(json.dumps(config))
version = register_model_version(
    name="tiny-broken", serves="clinic", bundle_path="tiny-broken", metrics={}
)
promote_model_version(version=version, promoted_by=None)
"""

ENDED = """
from tessera.jobs.models import AnalysisJob
for job in AnalysisJob.objects.all():
    print(job.pk, job.model_version.name, (job.finished_at - job.started_at).total_seconds())
"""


def test_a_broken_bundle_fails_its_jobs_clearly_while_a_healthy_model_keeps_flowing(
    tmp_path, pipeline, media_files
):
    env = pipeline.env(TESSERA_JOB_MAX_SECONDS="120", TESSERA_SWEEP_EVERY="1")
    healthy = submit(env, media_files, JOBS)  # requested while "tiny" served
    shell(env, BREAK_THE_ACTIVE_MODEL)
    broken = submit(env, media_files, JOBS, prefix="broken-")
    log = tmp_path / "worker.log"
    with worker_process(env, log, beat=True):
        outcomes = wait_for_jobs(env, seconds=180)
    for job in broken:
        failed = outcomes.pop(job)
        assert (failed.status, failed.results, failed.error_code) == (
            "failed",
            0,
            "model_unavailable",
        ), (failed, log.read_text()[-3000:])
        assert failed.error.startswith("The model 'tiny-broken' could not be loaded")
    assert_each_succeeded_once(outcomes, log, expected=len(healthy))
    for line in shell(env, ENDED).splitlines():
        _, version, seconds = line.split()
        assert float(seconds) < 120, f"a job of {version} ran past its maximum duration"


@pytest.mark.redis
@needs_redis
def test_jobs_survive_a_broker_that_loses_its_messages(tmp_path, pipeline, media_files):
    import redis

    env = pipeline.env()
    submit(env, media_files, JOBS)
    broker = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    assert broker.dbsize() > 0, "the jobs' messages are waiting in Redis"
    broker.flushall()  # what a Redis restart without persistence does
    swept = shell(
        {**env, "TESSERA_JOB_STALE_AFTER": "0"},
        "from tessera.jobs.tasks import sweep; print(sweep())",
    )
    assert f"'republished': {JOBS}" in swept
    log = tmp_path / "worker.log"
    with worker_process(env, log):
        outcomes = wait_for_jobs(env)
    assert_each_succeeded_once(outcomes, log, expected=JOBS)


@pytest.mark.redis
@needs_redis
def test_a_job_longer_than_the_visibility_timeout_is_not_started_twice(
    tmp_path, pipeline, media_files
):
    env = pipeline.env(
        CELERY_VISIBILITY_TIMEOUT="1",
        CELERY_UNACKED_RESTORE_SECONDS="1",
        FAULT_SLOW_INFERENCE_SECONDS="10",
        TESSERA_JOB_LEASE_SECONDS="3",
    )
    (job,) = submit(env, media_files, 1)
    log = tmp_path / "workers.log"
    with worker_process(env, log, faulty=True), worker_process(env, log, faulty=True):
        outcomes = wait_for_jobs(env)
    received = len(re.findall(r"Task tessera\.jobs\.infer\[[^]]+\] received", log.read_text()))
    assert_each_succeeded_once(outcomes, log, expected=1)
    assert outcomes[job].attempts == 1, "the redelivered message found the job leased"
    assert received >= 2, "Redis redelivered the message while the job ran"


FEEDBACK = """
from tessera.jobs.models import AnalysisResult
from tessera.jobs.services import record_feedback
for number, result in enumerate(AnalysisResult.objects.order_by("job__created_at")):
    if number % 2:
        record_feedback(result=result, kind="confirm", given_by=None)
    else:
        record_feedback(
            result=result, kind="correct", given_by=None, diagnosis=["suspicious_mass"],
            emotion_label="anxious",
        )
"""

TRAINING_OUTCOME = """
import time
from tessera.jobs.models import TrainingRun
deadline = time.monotonic() + 240
while TrainingRun.objects.filter(status__in=["queued", "running"]).exists():
    assert time.monotonic() < deadline, "the training run did not finish"
    time.sleep(0.5)
run = TrainingRun.objects.get()
print(run.status, run.cases, run.candidate.name, run.candidate.status, sorted(run.metrics))
"""


def test_feedback_trains_a_new_version_on_a_real_gpu_worker(tmp_path, pipeline, media_files):
    env = pipeline.env(TESSERA_TRAINING_MIN_CASES="8", TESSERA_TRAINING_EPOCHS="1")
    submit(env, media_files, 8)
    log = tmp_path / "worker.log"
    with worker_process(env, log):
        assert_each_succeeded_once(wait_for_jobs(env), log, expected=8)
        shell(env, FEEDBACK)
        queued = manage(env, "train_from_feedback", "clinic")
        assert "queued" in queued
        outcome = shell(env, TRAINING_OUTCOME).strip()
    status, cases, name, version_status, metrics = outcome.split(" ", 4)
    assert int(cases) == 8
    assert (status, version_status) in (("promoted", "active"), ("rejected", "rejected")), log
    assert name.startswith("clinic-")
    assert metrics == "['base_macro_f1', 'candidate_macro_f1', 'held_out_cases']"


SUBSCRIBE = """
from tessera.accounts.services import create_organization
from tessera.webhooks.services import create_subscription
clinic = create_organization(name="Clinic", slug="pipeline", kind="clinic", jurisdiction="US")
subscription = create_subscription(
    organization=clinic, url={url!r}, events=["job.succeeded"], created_by=None
)
print(subscription.secret)
"""


def test_a_webhook_receiver_gets_a_signed_delivery_from_the_worker_and_a_retry_after_a_500(
    tmp_path, pipeline, media_files
):
    env = pipeline.env(TESSERA_WEBHOOK_BACKOFF_SECONDS="1")
    with webhook_receiver(answers=[500]) as receiver:
        secret = shell(env, SUBSCRIBE.format(url=receiver.url)).strip()
        (job_id,) = submit(env, media_files, 1)
        log = tmp_path / "worker.log"
        with worker_process(env, log):
            assert receiver.arrived.wait(180), log.read_text()[-3000:]
    first, retry = receiver.received
    assert (first.answered, retry.answered) == (500, 200)
    assert first.headers["Tessera-Delivery"] == retry.headers["Tessera-Delivery"]
    assert verify(secret=secret, header=retry.headers["Tessera-Signature"], body=retry.body)
    assert json.loads(retry.body)["data"]["job"] == job_id
    delivered = query(
        pipeline.database_url, "SELECT status, attempts FROM webhooks_webhookdelivery"
    )
    assert delivered == [("delivered", 2)]
