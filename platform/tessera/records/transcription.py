"""Transcribing recordings: every speech recording gets a transcript, made by the local
speech model (`mlcore.speech`) on the `speech` queue.

A recording is worked through a span at a time, one task per span, each queued behind whatever
arrived meanwhile: a 30-minute recording never holds a worker for more than a span, and its
progress shows after each. A span that is transcribed twice (a redelivered task) is not
appended twice: each task names the point it starts from.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mlcore.errors import ConfigError, InputError
from mlcore.speech import (
    Segment,
    SpeechModel,
    load_speech_model,
    recording_seconds,
    speech_device,
    transcribe_span,
    understood,
)
from mlcore.speech import warm_up as warm_up_model
from tessera.audit import services as audit
from tessera.celery import TaskName, enqueue
from tessera.records.models import MODALITY_OF, MediaAsset, Transcript, TranscriptStatus
from tessera.records.selectors import sealed, transcript_segments
from tessera.records.storage import StoredContentCorrupted, content_store

logger = logging.getLogger(__name__)

NO_SPEECH = "No speech was found in this recording: it holds silence, noise or music."
OTHER_LANGUAGE = (
    "This recording does not sound like English, the only language the installed speech model "
    "({model}) understands. The IT team can install a multilingual model."
)
NOT_UNDERSTOOD = "The speech model ({model}) could not make out the words in this recording."
DAMAGED = (
    "This recording could not be transcribed: its stored copy failed its integrity check. "
    "The IT team has been told."
)
UNDECODABLE = (
    "This recording could not be transcribed: its sound could not be decoded, although it "
    "passed the checks at upload. The IT team has been told."
)
UNAVAILABLE = (
    "This recording could not be transcribed: the speech model is not available on this "
    "server. The IT team has been told."
)


def is_recording(media: MediaAsset) -> bool:
    return MODALITY_OF[media.kind] == "audio"


def request_transcription(*, media: MediaAsset) -> Transcript:
    """A transcript for a new recording, queued once the upload is committed."""
    transcript, _ = Transcript.objects.get_or_create(
        media=media,
        defaults={
            "duration_seconds": float(media.metadata.get("duration_seconds", 0.0)),
            "encrypted": media.encrypted,
        },
    )
    transaction.on_commit(lambda: publish_span(transcript_id=transcript.pk, start=0.0))
    return transcript


def publish_span(*, transcript_id: int, start: float) -> None:
    enqueue(TaskName.TRANSCRIBE, transcript_id, start)


def speech_model() -> SpeechModel:
    return load_speech_model(
        device=speech_device(settings.MLCORE_DEVICE), cpu_threads=settings.TESSERA_SPEECH_THREADS
    )


def warm_up() -> None:
    """Load the model and run it over a second of silence (its voice activity detector too),
    so that the first recording does not wait for it. A server without the model warms
    nothing: its transcripts will say why."""
    try:
        model = speech_model()
    except (ConfigError, OSError, RuntimeError, ValueError):
        logger.exception("the speech model cannot be loaded")
        return
    warm_up_model(model)


def transcribe_next_span(*, transcript_id: int, start: float) -> float | None:
    """Transcribe the span of the recording that starts at `start` seconds, and return where
    the next one starts, or None when there is nothing more to do (finished, or deleted, or
    this span was done already)."""
    transcript = Transcript.objects.select_related("media").filter(pk=transcript_id).first()
    if transcript is None or transcript.finished or start != transcript.transcribed_seconds:
        return None
    media = transcript.media
    try:
        model = speech_model()
    except (ConfigError, OSError, RuntimeError, ValueError):
        logger.exception("transcript %s: the speech model cannot be loaded", transcript_id)
        _finish(transcript, [], status=TranscriptStatus.FAILED, message=UNAVAILABLE)
        return None
    try:
        with content_store().open_media(media) as recording:
            if start == 0.0:
                audit.record(media, action=audit.Action.VIEW)
            duration = recording_seconds(recording)
            span = transcribe_span(
                model,
                recording,
                start=start,
                duration=duration,
                span_seconds=settings.TESSERA_SPEECH_SPAN_SECONDS,
            )
    except StoredContentCorrupted:
        logger.exception("transcript %s: stored recording %s is damaged", transcript_id, media.pk)
        _finish(transcript, [], status=TranscriptStatus.FAILED, message=DAMAGED)
        return None
    except InputError:
        logger.exception("transcript %s: recording %s cannot be decoded", transcript_id, media.pk)
        _finish(transcript, [], status=TranscriptStatus.FAILED, message=UNDECODABLE)
        return None
    segments = transcript_segments(transcript) + span.segments
    if span.end < duration:
        _progress(transcript, segments, model=model, until=span.end, duration=duration)
        return span.end
    transcript.duration_seconds = duration
    transcript.speech_model = model.name
    if not segments:
        _finish(transcript, segments, status=TranscriptStatus.NO_SPEECH, message=NO_SPEECH)
    elif not understood(segments):
        wording = OTHER_LANGUAGE if model.english_only else NOT_UNDERSTOOD
        message = wording.format(model=model.name)
        _finish(transcript, [], status=TranscriptStatus.NOT_UNDERSTOOD, message=message)
    else:
        transcript.language = span.language
        words = [segment for segment in segments if not segment.looping]
        _finish(transcript, words, status=TranscriptStatus.DONE, message="")
    return None


def transcribe_now(*, transcript_id: int) -> None:
    """Transcribe a whole recording in this process, span after span (the demo's seeding, which
    analyses its history before any worker runs)."""
    transcript = Transcript.objects.get(pk=transcript_id)
    start: float | None = transcript.transcribed_seconds
    while start is not None:
        start = transcribe_next_span(transcript_id=transcript_id, start=start)


def resume_lost_transcriptions(*, stale_after: timedelta) -> int:
    """Publish again every transcription that has not moved for `stale_after`: its message was
    lost (a broker restart), its worker died, or it predates transcription. A span published
    twice is done once (each task names where it starts)."""
    stale = Transcript.objects.filter(
        status__in=(TranscriptStatus.QUEUED, TranscriptStatus.RUNNING),
        updated_at__lt=timezone.now() - stale_after,
    ).values_list("pk", "transcribed_seconds")
    resumed = 0
    for transcript_id, start in stale:
        publish_span(transcript_id=transcript_id, start=start)
        Transcript.objects.filter(pk=transcript_id).update(updated_at=timezone.now())
        resumed += 1
    return resumed


def _progress(
    transcript: Transcript,
    segments: list[Segment],
    *,
    model: SpeechModel,
    until: float,
    duration: float,
) -> None:
    """Progress is not a change to the record: an update without an audit event each span
    (and none at all if another task got there first)."""
    Transcript.objects.filter(
        pk=transcript.pk, transcribed_seconds=transcript.transcribed_seconds
    ).update(
        status=TranscriptStatus.RUNNING,
        speech_model=model.name,
        duration_seconds=duration,
        transcribed_seconds=until,
        sealed_segments=sealed(segments, encrypted=transcript.encrypted),
        updated_at=timezone.now(),
    )


def _finish(transcript: Transcript, segments: list[Segment], *, status: str, message: str) -> None:
    transcript.status = status
    transcript.message = message
    transcript.sealed_segments = sealed(segments, encrypted=transcript.encrypted)
    transcript.transcribed_seconds = transcript.duration_seconds
    transcript.finished_at = timezone.now()
    transcript.save()
