"""Content-addressed media storage: a file's name is its sha256, so identical uploads are stored
once and a stored file can always be checked against its name.

A file of an organization that encrypts media at rest is stored as Fernet tokens (one per
chunk, one per line) under its plaintext's address plus ENCRYPTED_SUFFIX; readers get the
plaintext back, checked against the same sha256, and never see the difference."""

import hashlib
import io
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tessera.storage import BlobStore, LocalBlobStore, blob_store

ENCRYPTED_SUFFIX = ".fernet"
# Fernet has no streaming mode; chunks keep memory bounded while encrypting a large upload.
CHUNK_BYTES = 4 * 1024 * 1024


class StoredContentMismatch(Exception):
    """The bytes written do not hash to the expected sha256 (the source changed under us)."""


class StoredContentCorrupted(Exception):
    """A stored file is missing, no longer hashes to its name or cannot be decrypted: damaged
    on disk, or tampered with. Never served or analysed as if it were the upload."""


class StoredMedia(Protocol):
    sha256: str
    encrypted: bool
    original_sha256: str


class ContentStore:
    def __init__(self, blobs: BlobStore, *, keys: list[str] = ()) -> None:
        self.blobs = blobs
        self._keys = list(keys)

    @cached_property
    def _cipher(self) -> MultiFernet:
        """The first key encrypts; every key decrypts (so a new key can be put first and the
        files re-encrypted at leisure)."""
        if not self._keys:
            raise ImproperlyConfigured(
                "this organization keeps its media encrypted, but TESSERA_MEDIA_ENCRYPTION_KEYS "
                "is not set on this server"
            )
        return MultiFernet([Fernet(key) for key in self._keys])

    @staticmethod
    def relative_path(sha256: str, *, encrypted: bool = False) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}{ENCRYPTED_SUFFIX if encrypted else ''}"

    def path(self, sha256: str, *, encrypted: bool = False) -> Path:
        """Where a stored file lies on this host's disk, with local storage only."""
        if not isinstance(self.blobs, LocalBlobStore):
            raise ImproperlyConfigured("media are kept in a bucket, not on this host's disk")
        return self.blobs.path(self.relative_path(sha256, encrypted=encrypted))

    def exists(self, sha256: str, *, encrypted: bool = False) -> bool:
        return self.blobs.exists(self.relative_path(sha256, encrypted=encrypted))

    def open(self, sha256: str, *, encrypted: bool = False) -> BinaryIO:
        """The stored file's content, opened for reading after it was checked against its hash
        (decrypted first, in memory, when it is stored encrypted). Raises
        StoredContentCorrupted."""
        try:
            handle = self.blobs.open(self.relative_path(sha256, encrypted=encrypted))
        except FileNotFoundError as error:
            raise StoredContentCorrupted(f"stored file {sha256} is missing") from error
        if encrypted:
            with handle:
                handle = self._decrypted(handle, sha256=sha256)
        if hashlib.file_digest(handle, "sha256").hexdigest() != sha256:
            handle.close()
            raise StoredContentCorrupted(f"stored file {sha256} does not match its checksum")
        handle.seek(0)
        return handle

    def open_media(self, media: StoredMedia) -> BinaryIO:
        """A media asset's content (see `open`). Raises StoredContentCorrupted."""
        return self.open(media.sha256, encrypted=media.encrypted)

    def open_original(self, media: StoredMedia) -> BinaryIO:
        """The DICOM file as uploaded, kept (always encrypted) where the organization opts in.
        Raises StoredContentCorrupted."""
        return self.open(media.original_sha256, encrypted=True)

    def read_media(self, media: StoredMedia) -> bytes:
        """All of a media asset's content, checked. Raises StoredContentCorrupted."""
        with self.open_media(media) as stored:
            return stored.read()

    def save(self, file: BinaryIO, *, sha256: str, encrypted: bool = False) -> bool:
        """Store `file` under `sha256` (as Fernet tokens when `encrypted`); return False when
        that content was already stored in that form.

        The bytes are stored only once their hash checks out (see BlobStore.writer), so a crash
        never leaves a half-written file under a content address.
        """
        name = self.relative_path(sha256, encrypted=encrypted)
        if self.blobs.exists(name):
            return False
        cipher = self._cipher if encrypted else None
        file.seek(0)
        digest = hashlib.sha256()
        try:
            with self.blobs.writer(name) as out:
                while chunk := file.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(cipher.encrypt(chunk) + b"\n" if cipher else chunk)
                if digest.hexdigest() != sha256:
                    raise StoredContentMismatch(f"content changed while storing {sha256}")
        finally:
            file.seek(0)
        return True

    def rotate(self, sha256: str) -> None:
        """Re-encrypt a stored encrypted file under the first key (after a new key was put
        first), replacing it only once every token decrypted."""
        name = self.relative_path(sha256, encrypted=True)
        try:
            stored = self.blobs.open(name)
        except FileNotFoundError as error:
            raise StoredContentCorrupted(f"stored file {sha256} is missing") from error
        try:
            with stored, self.blobs.writer(name) as out:
                for token in _tokens(stored):
                    out.write(self._cipher.rotate(token) + b"\n")
        except InvalidToken as error:
            raise StoredContentCorrupted(f"stored file {sha256} cannot be decrypted") from error

    def seal(self, plaintext: bytes) -> str:
        """A short text kept in the database encrypted like the files (a transcript)."""
        return self._cipher.encrypt(plaintext).decode("ascii")

    def unseal(self, token: str) -> bytes:
        """What `seal` sealed. Raises StoredContentCorrupted."""
        try:
            return self._cipher.decrypt(token.encode("ascii"))
        except InvalidToken as error:
            raise StoredContentCorrupted(
                "a sealed record cannot be decrypted with this server's keys"
            ) from error

    def delete(self, sha256: str, *, encrypted: bool = False) -> None:
        self.blobs.delete(self.relative_path(sha256, encrypted=encrypted))

    def _decrypted(self, handle: BinaryIO, *, sha256: str) -> BinaryIO:
        plaintext = io.BytesIO()
        try:
            for token in _tokens(handle):
                plaintext.write(self._cipher.decrypt(token))
        except InvalidToken as error:
            raise StoredContentCorrupted(
                f"stored file {sha256} cannot be decrypted with this server's keys: it was "
                "damaged, or the key it was encrypted with is no longer configured"
            ) from error
        plaintext.seek(0)
        return plaintext


def _tokens(handle: BinaryIO) -> Iterator[bytes]:
    return filter(None, (line.strip() for line in handle))


def content_store() -> ContentStore:
    return ContentStore(blob_store("media"), keys=settings.TESSERA_MEDIA_ENCRYPTION_KEYS)
