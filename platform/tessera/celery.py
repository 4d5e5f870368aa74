"""The Celery application shared by the web process and every worker.

Four queues: `cpu` (preprocessing, webhooks, sweepers), `gpu` (inference and training; one
process per GPU, pool solo or threads: never fork after CUDA initialisation), `reports` (PDF
rendering) and `speech` (transcription, a span of a recording per task). Which task goes to
which queue is said once, in `TASK_QUEUES` (Celery's `task_routes`): callers publish a task by
its name (`enqueue`), never naming a queue, and so need not import the task modules, which
import their services. The database, not the broker, is the source of truth for jobs, so
delivery settings favour at-least-once: acknowledge after the task ran, and hand a message back
when its worker dies.
"""

import os
import socket
from enum import StrEnum

from celery import Celery
from celery.signals import worker_init
from django.db import InterfaceError, OperationalError
from kombu import Exchange, Queue

import tessera.logs  # noqa: F401  (its task signals put the request's and job's ids on log lines)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")

QUEUE_NAMES = ("cpu", "gpu", "reports", "speech")


def worker_node_name(queues: list[str]) -> str:
    """The name a worker of `queues` on this host answers to ("cpu+reports@host"): one per set
    of queues and host, so that a probe on the host can ask it."""
    return f"{'+'.join(queues)}@{socket.gethostname()}"


class TaskName(StrEnum):
    PREPROCESS = "tessera.jobs.preprocess"
    INFER = "tessera.jobs.infer"
    TRAIN = "tessera.jobs.train"
    SWEEP_JOBS = "tessera.jobs.sweep"
    RENDER_REPORT = "tessera.reports.render"
    WEEKLY_REPORT = "tessera.reports.weekly"
    SWEEP_REPORTS = "tessera.reports.sweep"
    DELIVER_WEBHOOK = "tessera.webhooks.deliver"
    SWEEP_WEBHOOKS = "tessera.webhooks.sweep"
    TRANSCRIBE = "tessera.records.transcribe"
    SWEEP_TRANSCRIPTS = "tessera.records.sweep"
    DELIVER_RESULT = "tessera.interop.deliver_result"
    SWEEP_DELIVERIES = "tessera.interop.sweep_deliveries"


TASK_QUEUES = {
    TaskName.PREPROCESS: "cpu",
    TaskName.INFER: "gpu",
    TaskName.TRAIN: "gpu",
    TaskName.SWEEP_JOBS: "cpu",
    TaskName.RENDER_REPORT: "reports",
    TaskName.WEEKLY_REPORT: "reports",
    TaskName.SWEEP_REPORTS: "reports",
    TaskName.DELIVER_WEBHOOK: "cpu",
    TaskName.SWEEP_WEBHOOKS: "cpu",
    TaskName.TRANSCRIBE: "speech",
    TaskName.SWEEP_TRANSCRIPTS: "speech",
    TaskName.DELIVER_RESULT: "cpu",
    TaskName.SWEEP_DELIVERIES: "cpu",
}

# Task options: a lost database connection is transient, so the task retries with exponential
# backoff (services make a retried task safe to run again); bad input is never retried.
DATABASE_GONE = (OperationalError, InterfaceError)
RETRY_WHEN_DATABASE_GONE = {
    "autoretry_for": DATABASE_GONE,
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}

app = Celery("tessera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=tuple(Queue(name, Exchange(name), routing_key=name) for name in QUEUE_NAMES),
    task_routes={str(name): {"queue": queue} for name, queue in TASK_QUEUES.items()},
    task_default_queue="cpu",
    task_default_exchange="cpu",
    task_default_routing_key="cpu",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=24 * 3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
app.autodiscover_tasks()


@worker_init.connect
def _start_telemetry(**_: object) -> None:
    """Before the pool starts: prefork children inherit it (the exporters restart their threads
    after fork)."""
    from tessera.telemetry import start_telemetry

    start_telemetry()


def enqueue(name: TaskName, *args: object, countdown: float | None = None) -> None:
    """Publish a task to its queue (`TASK_QUEUES`); run inline where tasks run eagerly (tests).
    The task is looked up by name in the app's registry."""
    if name not in app.tasks:  # a web process: the task modules are imported on first use
        app.loader.import_default_modules()
    app.tasks[name].apply_async(args=list(args), countdown=countdown)


@app.task(name="tessera.ping")
def ping() -> dict[str, object]:
    """Liveness probe for a queue: answers with the worker that took it."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
