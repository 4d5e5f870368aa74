"""Transcription on the `speech` queue: one task per span of a recording, each publishing the
next (`records.transcription`)."""

from datetime import timedelta

from celery import shared_task
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_process_init, worker_ready
from django.conf import settings

from tessera.celery import RETRY_WHEN_DATABASE_GONE, TASK_QUEUES, TaskName, app
from tessera.records import transcription


def _takes_recordings() -> bool:
    """Whether this worker consumes the transcription queue (`-Q`): the others never load the
    speech model."""
    return TASK_QUEUES[TaskName.TRANSCRIBE] in app.amqp.queues.consume_from


@worker_process_init.connect  # prefork pool: each child, after the fork
def _warm_up_child(**_: object) -> None:
    """Load the speech model, and run it once, before the child takes a recording."""
    if _takes_recordings():
        transcription.warm_up()


@worker_ready.connect
def _warm_up_worker(sender, **_: object) -> None:
    """The solo and threads pools run tasks in the worker process itself: warm it up before it
    consumes. A prefork parent never loads the model: its OpenMP threads would not survive the
    fork of a child (the child hangs in its first transcription)."""
    if _takes_recordings() and not isinstance(sender.pool, PreforkPool):
        transcription.warm_up()


@shared_task(name=TaskName.TRANSCRIBE, acks_late=True, **RETRY_WHEN_DATABASE_GONE)
def transcribe(transcript_id: int, start: float) -> None:
    following = transcription.transcribe_next_span(transcript_id=transcript_id, start=start)
    if following is not None:
        transcription.publish_span(transcript_id=transcript_id, start=following)


@shared_task(name=TaskName.SWEEP_TRANSCRIPTS)
def sweep() -> int:
    """Periodic (celery beat): resume transcriptions that stopped moving."""
    return transcription.resume_lost_transcriptions(
        stale_after=timedelta(seconds=settings.TESSERA_JOB_STALE_AFTER)
    )
