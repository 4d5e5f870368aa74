"""Where Tessera keeps its files: on this host's disk (the embedded default) or in one
S3-compatible bucket (`TESSERA_STORAGE=s3`, through django-storages), so that every web and
worker host of an installation shares them.

Three areas, each a `BlobStore` of named blobs:
- `media`: uploads, kept originals and reports (records.storage.ContentStore names them by
  their SHA-256 and encrypts them, before they reach a store, where the organization asks);
- `features`: the feature cache (jobs.features);
- `models`: model bundles. PyTorch loads from a directory, so with S3 a host keeps a copy of
  each bundle it serves in MLCORE_MODELS_DIR, fetched once: a bundle never changes under its
  name (`local_bundle`, `publish_bundle`).

A blob is written whole or not at all, on disk (a temporary file renamed into place) and in a
bucket (an object appears when its upload completes)."""

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

AREAS = ("media", "features", "models")
# A read or a write from a bucket stays in memory up to this, and spills to a temporary file.
SPOOL_BYTES = 16 * 1024 * 1024
INCOMING_PREFIX = ".incoming-"


class BlobStore(ABC):
    """Named blobs of one area. Names are relative POSIX paths (`ab/cd/abcd….fernet`)."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether a blob is stored under `name`."""

    @abstractmethod
    def open(self, name: str) -> BinaryIO:
        """The blob for reading, seekable. Raises FileNotFoundError."""

    @abstractmethod
    def writer(self, name: str) -> AbstractContextManager[BinaryIO]:
        """A file to write the blob into: stored under `name` when the block ends, discarded
        when it raises."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the blob; nothing happens when there is none."""

    @abstractmethod
    def names(self, *, under: str = "") -> Iterator[str]:
        """Every blob's name (or those under the folder `under`, "a/b/"), in no order."""

    @abstractmethod
    def check_writable(self) -> None:
        """Raise OSError (or the bucket's error) unless a blob could be written now."""


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        """Where the blob lies on this host's disk."""
        return self.root / name

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def open(self, name: str) -> BinaryIO:
        return self.path(name).open("rb")

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=INCOMING_PREFIX)
        try:
            with os.fdopen(handle, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def names(self, *, under: str = "") -> Iterator[str]:
        folder = self.root / under
        if not folder.is_dir():
            return
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith(INCOMING_PREFIX):
                yield path.relative_to(self.root).as_posix()

    def check_writable(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)  # a new install has stored nothing yet
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=INCOMING_PREFIX):
            pass


class S3BlobStore(BlobStore):
    """An area of the bucket: its blobs are the objects under `<area>/`."""

    def __init__(self, area: str) -> None:
        from storages.backends.s3 import S3Storage  # boto3: only where S3 is configured

        self.area = area
        # AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, AWS_S3_REGION_NAME and the credentials
        # (or the host's role) come from the settings and the environment, as django-storages
        # reads them; a blob is never public and never renamed to make room.
        self._storage = S3Storage(location=area, file_overwrite=True, default_acl=None)

    def exists(self, name: str) -> bool:
        return self._storage.exists(name)

    def open(self, name: str) -> BinaryIO:
        body = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned)
        try:
            self._object(name).download_fileobj(body)
        except Exception as error:
            body.close()
            if _is_missing(error):
                raise FileNotFoundError(f"no {name} in the bucket's {self.area}") from error
            raise
        body.seek(0)
        return body

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            yield body
            body.seek(0)
            self._object(name).upload_fileobj(body)  # multipart for large blobs, atomic

    def delete(self, name: str) -> None:
        self._storage.delete(name)

    def names(self, *, under: str = "") -> Iterator[str]:
        prefix = f"{self.area}/"
        for summary in self._storage.bucket.objects.filter(Prefix=f"{prefix}{under}"):
            yield summary.key.removeprefix(prefix)

    def check_writable(self) -> None:
        with self.writer(f"{INCOMING_PREFIX}ready") as probe:
            probe.write(b"ready")
        self.delete(f"{INCOMING_PREFIX}ready")

    def _object(self, name: str):
        return self._storage.bucket.Object(f"{self.area}/{name}")


def _is_missing(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}


def uses_bucket() -> bool:
    if settings.TESSERA_STORAGE == "local":
        return False
    if settings.TESSERA_STORAGE != "s3":
        raise ImproperlyConfigured(
            f"TESSERA_STORAGE is {settings.TESSERA_STORAGE!r}: it is 'local' or 's3'"
        )
    if not settings.AWS_STORAGE_BUCKET_NAME:
        raise ImproperlyConfigured(
            "TESSERA_STORAGE is 's3', but AWS_STORAGE_BUCKET_NAME is not set"
        )
    return True


def blob_store(area: str) -> BlobStore:
    """The store of `area` ("media", "features" or "models") as this installation keeps it."""
    if area not in AREAS:
        raise ValueError(f"no storage area {area!r}: one of {AREAS}")
    if uses_bucket():
        return S3BlobStore(area)
    return LocalBlobStore(_local_root(area))


def _local_root(area: str) -> Path:
    return Path(
        {
            "media": settings.MEDIA_ROOT,
            "features": settings.TESSERA_FEATURE_CACHE,
            "models": settings.MLCORE_MODELS_DIR,
        }[area]
    )


def local_bundle(bundle_path: str) -> Path:
    """The directory of a model bundle on this host, fetched from the bucket the first time this
    host needs it (into a temporary directory renamed into place, so a half-fetched bundle is
    never loaded)."""
    target = Path(settings.MLCORE_MODELS_DIR) / bundle_path
    if target.is_dir() or not uses_bucket():
        return target
    store = blob_store("models")
    prefix = f"{bundle_path.rstrip('/')}/"
    names = list(store.names(under=prefix))  # this bundle's objects alone, listed by the bucket
    if not names:
        return target  # missing: loading it says so, as for a bundle missing from disk
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(dir=target.parent, prefix=INCOMING_PREFIX))
    try:
        for name in names:
            destination = incoming / name.removeprefix(prefix)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with store.open(name) as blob, destination.open("wb") as out:
                shutil.copyfileobj(blob, out)
        try:
            incoming.rename(target)
        except OSError:
            if not target.is_dir():  # else another process of this host fetched it first
                raise
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    return target


def publish_bundle(bundle_path: str) -> None:
    """Put a bundle just written under MLCORE_MODELS_DIR into the bucket, for every other host
    (with local storage it is already where every process looks)."""
    if not uses_bucket():
        return
    source = Path(settings.MLCORE_MODELS_DIR) / bundle_path
    store = blob_store("models")
    for path in sorted(source.rglob("*")):
        if path.is_file():
            name = f"{bundle_path.rstrip('/')}/{path.relative_to(source).as_posix()}"
            with store.writer(name) as out, path.open("rb") as local:
                shutil.copyfileobj(local, out)
