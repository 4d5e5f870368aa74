"""A job's inputs as mlcore features, cached by content (on disk or in the bucket, see
tessera.storage): the same files preprocessed for the same model version are decoded once.

A recording is two inputs: its sound (`audio`) and what it says (`speech_text`, its
transcript). The job's `left_out` may keep the sound out (then it is never read) and the
transcript out of the affect estimate (then the model's emotion head does not see it)."""

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from django.db import DatabaseError

from mlcore.config import ModelConfig
from mlcore.data import Case, Features, Preprocessor
from mlcore.errors import InputError
from mlcore.speech import text_of
from tessera.audit import services as audit
from tessera.jobs.models import AnalysisJob, JobTask, ModelVersion, Timing
from tessera.jobs.selectors import model_inputs, serving_versions
from tessera.records.kinds import topic_of, visit_of
from tessera.records.models import (
    MODALITY_OF,
    TRANSCRIPT_FINISHED,
    Transcript,
    TranscriptStatus,
)
from tessera.records.selectors import transcript_segments
from tessera.records.storage import StoredContentCorrupted, content_store
from tessera.storage import BlobStore, blob_store

logger = logging.getLogger(__name__)
# What a worker reads once before its first job, so that job does not pay for the first call.
WARM_UP_NOTE = "Warming up before the first job."


class ModelUnavailable(Exception):
    """A model version's bundle cannot be read or loaded on this worker: its jobs cannot run
    here, whatever their input. The message names the version, never a person's data."""


def model_unavailable_message(version_name: str) -> str:
    return (
        f"The model '{version_name}' could not be loaded, so this analysis could not run. "
        "An organization admin can promote a working model version; then retry the analysis."
    )


def _preprocessor(job: AnalysisJob) -> Preprocessor:
    try:
        return _preprocessor_for(job.model_version.bundle_dir)
    except Exception as error:  # any fault of the bundle: unreadable, invalid, mismatched
        raise ModelUnavailable(model_unavailable_message(job.model_version.name)) from error


@lru_cache(maxsize=8)
def _preprocessor_for(bundle_dir: Path) -> Preprocessor:
    return Preprocessor(ModelConfig.load(bundle_dir / "config.json"))


def warm_up_preprocessors() -> None:
    """Load the serving versions' preprocessors (their tokenizers: seconds) and run each once,
    before the worker takes a job. A bundle that cannot be loaded is left for its jobs to
    report (`ModelUnavailable`); a database not ready yet (not migrated, not reachable) leaves
    the first jobs to pay for it."""
    for version in versions_to_warm_up():
        try:
            _preprocessor_for(version.bundle_dir)(Case(id="warm-up", text=WARM_UP_NOTE))
        except Exception:
            logger.warning("the preprocessor of %s could not be warmed up", version.name)


def contents_by_modality(job: AnalysisJob) -> dict[str, bytes]:
    """The newest file of each modality among the job's media, read from the content store
    (checked, and decrypted where the organization encrypts media at rest); none of an input
    the job leaves out (a recording kept in the job for its transcript alone)."""
    store = content_store()
    newest = {}
    for asset in job.media.order_by("created_at"):
        if MODALITY_OF[asset.kind] not in job.left_out:
            newest[MODALITY_OF[asset.kind]] = asset
    contents = {}
    for modality, asset in newest.items():
        try:
            contents[modality] = store.read_media(asset)
        except StoredContentCorrupted as error:
            raise InputError(
                f"the stored file ({asset.get_kind_display()}) is damaged: its content no "
                "longer matches the checksum taken at upload; upload it again"
            ) from error
    audit.record_each(newest.values(), action=audit.Action.VIEW)
    return contents


def _transcript_read(job: AnalysisJob) -> Transcript | None:
    """The transcript of the job's newest recording, when the model reads transcripts and some
    answer of the job may read it (not an affect estimate that may not)."""
    if "speech_text" not in model_inputs(version=job.model_version):
        return None
    if job.task == JobTask.EMOTION and "speech_text" in withheld_from(job).get("emotion", ()):
        return None
    return (
        Transcript.objects.filter(media__in=job.media.all()).order_by("-media__created_at").first()
    )


def transcript_pending(job: AnalysisJob) -> bool:
    """Whether what the job's recording says is still being written down (the job waits for
    it: the words are evidence)."""
    transcript = _transcript_read(job)
    return transcript is not None and transcript.status not in TRANSCRIPT_FINISHED


def said_in(job: AnalysisJob) -> str | None:
    """What the job's newest recording says, when it was transcribed and the job reads it; the
    read is audited."""
    transcript = _transcript_read(job)
    if transcript is None or transcript.status != TranscriptStatus.DONE:
        return None
    try:
        said = text_of(transcript_segments(transcript))
    except StoredContentCorrupted as error:
        raise InputError(
            "the transcript of the recording cannot be decrypted with this server's keys; "
            "tell your IT team"
        ) from error
    audit.record_each([transcript], action=audit.Action.VIEW)
    return said or None


def withheld_from(job: AnalysisJob) -> dict[str, list[str]]:
    """Task → inputs it may not read: the transcript, for the affect estimate, where the
    policy keeps it out of that (`speech_text` in the job's `left_out`)."""
    return {"emotion": ["speech_text"]} if "speech_text" in job.left_out else {}


def case_for(job: AnalysisJob) -> Case:
    files = contents_by_modality(job)
    return Case(
        id=str(job.pk),
        image=files.get("image"),
        text=files["text"].decode("utf-8-sig") if "text" in files else None,
        audio=files.get("audio"),
        speech_text=said_in(job),
        subject=topic_of(visit_of(job)),
    )


def cache_key(job: AnalysisJob) -> str:
    digest = hashlib.sha256(job.model_version.name.encode())
    for sha in sorted(job.media.values_list("sha256", flat=True)):
        digest.update(sha.encode())
    topic = topic_of(visit_of(job))
    if topic is not None:
        digest.update(topic.encode())
    # the same files, read otherwise: a sound left out, a transcript finished since
    digest.update(json.dumps(sorted(job.left_out)).encode())
    transcript = _transcript_read(job)
    if transcript is not None and transcript.status == TranscriptStatus.DONE:
        digest.update(transcript.sealed_segments.encode())
    return digest.hexdigest()


def cache_name(job: AnalysisJob) -> str:
    """The job's features' name in the feature cache (tessera.storage's `features`)."""
    return f"{cache_key(job)}.npz"


def prepare(job: AnalysisJob, *, timings: dict[str, float] | None = None) -> Features:
    """Features for `job`: from the cache, or decoded now and cached. Raises InputError, or
    ModelUnavailable when the job's model bundle cannot be read. `timings`, when given, gets
    the seconds spent decoding and on the cache's reads and writes added to it.

    Features of encrypted media are never cached: the cache would hold their content (as
    arrays) in the clear. Which inputs each task may read is the job's, never cached."""
    spent = timings if timings is not None else {}
    if job.media.filter(encrypted=True).exists():
        with _timed(spent, Timing.DECODING):
            features = _preprocessor(job)(case_for(job))
    else:
        cache, name = blob_store("features"), cache_name(job)
        try:
            with _timed(spent, Timing.FEATURE_CACHE), cache.open(name) as stored:
                features = _load(stored)
        except FileNotFoundError:
            with _timed(spent, Timing.DECODING):
                features = _preprocessor(job)(case_for(job))
            with _timed(spent, Timing.FEATURE_CACHE):
                _save(features, cache=cache, name=name)
    features.withheld = withheld_from(job)
    return features


def versions_to_warm_up() -> list[ModelVersion]:
    """The serving versions, or none when the database cannot say yet."""
    try:
        return list(serving_versions())
    except DatabaseError as error:
        logger.warning("no model was warmed up: the database is not ready (%s)", error)
        return []


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - started


def _save(features: Features, *, cache: BlobStore, name: str) -> None:
    arrays = {
        name: value
        for name, value in (
            ("image", features.image),
            ("text_ids", features.text_ids),
            ("audio", features.audio),
            ("speech_ids", features.speech_ids),
        )
        if value is not None
    }
    if features.facts:
        arrays["facts"] = np.array(json.dumps(features.facts))
    for spans in ("sentences", "spoken_sentences"):
        if getattr(features, spans):
            arrays[spans] = np.array(json.dumps(getattr(features, spans)))
    with cache.writer(name) as out:  # readers never see half a file
        np.savez(out, **arrays)


def _load(file: BinaryIO) -> Features:
    with np.load(file) as stored:
        return Features(
            image=stored.get("image"),
            text_ids=stored.get("text_ids"),
            audio=stored.get("audio"),
            speech_ids=stored.get("speech_ids"),
            # Features cached before the input checks have no facts: nothing to check.
            facts=json.loads(str(stored["facts"])) if "facts" in stored else {},
            sentences=_spans(stored, "sentences"),
            spoken_sentences=_spans(stored, "spoken_sentences"),
        )


def _spans(stored, name: str) -> list[tuple[str, int, int]]:
    return [tuple(span) for span in json.loads(str(stored[name]))] if name in stored else []
