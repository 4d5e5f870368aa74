"""The Celery application shared by the web process and every worker.

Three queues: `cpu` (preprocessing), `gpu` (inference and training; one process per GPU, pool
solo or threads: never fork after CUDA initialisation) and `reports` (PDF rendering). The
database, not the broker, is the source of truth for jobs, so delivery settings favour
at-least-once: acknowledge after the task ran, and hand a message back when its worker dies.
"""

import os
import socket

from celery import Celery
from django.db import InterfaceError, OperationalError
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")

QUEUE_NAMES = ("cpu", "gpu", "reports")

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


@app.task(name="tessera.ping")
def ping() -> dict[str, object]:
    """Liveness probe for a queue: answers with the worker that took it."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
