"""A job's inputs as mlcore features, cached on disk by content: the same files preprocessed
for the same model version are decoded once."""

import hashlib
import io
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings

from mlcore.config import ModelConfig
from mlcore.data import Case, Features, Preprocessor
from mlcore.errors import InputError
from tessera.audit import services as audit
from tessera.jobs.models import AnalysisJob
from tessera.records.kinds import topic_of, visit_of
from tessera.records.models import MODALITY_OF
from tessera.records.storage import StoredContentCorrupted, content_store


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


def contents_by_modality(job: AnalysisJob) -> dict[str, bytes]:
    """The newest file of each modality among the job's media, read from the content store
    (checked, and decrypted where the organization encrypts media at rest)."""
    store = content_store()
    newest = {}
    for asset in job.media.order_by("created_at"):
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


def case_for(job: AnalysisJob) -> Case:
    files = contents_by_modality(job)
    return Case(
        id=str(job.pk),
        image=files.get("image"),
        text=files["text"].decode("utf-8-sig") if "text" in files else None,
        audio=files.get("audio"),
        subject=topic_of(visit_of(job)),
    )


def cache_key(job: AnalysisJob) -> str:
    digest = hashlib.sha256(job.model_version.name.encode())
    for sha in sorted(job.media.values_list("sha256", flat=True)):
        digest.update(sha.encode())
    topic = topic_of(visit_of(job))
    if topic is not None:
        digest.update(topic.encode())
    return digest.hexdigest()


def cache_path(job: AnalysisJob) -> Path:
    return Path(settings.TESSERA_FEATURE_CACHE) / f"{cache_key(job)}.npz"


def prepare(job: AnalysisJob) -> Features:
    """Features for `job`: from the cache, or decoded now and cached. Raises InputError, or
    ModelUnavailable when the job's model bundle cannot be read.

    Features of encrypted media are never cached: the cache would hold their content (as
    arrays) in the clear."""
    if job.media.filter(encrypted=True).exists():
        return _preprocessor(job)(case_for(job))
    path = cache_path(job)
    if path.is_file():
        return _load(path)
    features = _preprocessor(job)(case_for(job))
    _save(features, path)
    return features


def _save(features: Features, path: Path) -> None:
    arrays = {
        name: value
        for name, value in (
            ("image", features.image),
            ("text_ids", features.text_ids),
            ("audio", features.audio),
        )
        if value is not None
    }
    if features.subject:
        arrays["subject"] = np.array(features.subject)
    if features.facts:
        arrays["facts"] = np.array(json.dumps(features.facts))
    if features.sentences:
        arrays["sentences"] = np.array(json.dumps(features.sentences))
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    with os.fdopen(handle, "wb") as out:
        out.write(buffer.getvalue())
    os.replace(temporary, path)  # readers never see half a file


def _load(path: Path) -> Features:
    with np.load(path) as stored:
        return Features(
            image=stored.get("image"),
            text_ids=stored.get("text_ids"),
            audio=stored.get("audio"),
            subject=str(stored["subject"]) if "subject" in stored else None,
            # Features cached before the input checks have no facts: nothing to check.
            facts=json.loads(str(stored["facts"])) if "facts" in stored else {},
            sentences=[tuple(span) for span in json.loads(str(stored["sentences"]))]
            if "sentences" in stored
            else [],
        )
