"""Content-addressed media storage: a file's path is its sha256, so identical uploads are stored
once and a stored file can always be checked against its name."""

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from django.conf import settings


class StoredContentMismatch(Exception):
    """The bytes written do not hash to the expected sha256 (the source changed under us)."""


class StoredContentCorrupted(Exception):
    """A stored file is missing or no longer hashes to its name: damaged on disk, or tampered
    with. Never served or analysed as if it were the upload."""


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def relative_path(sha256: str) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path(self, sha256: str) -> Path:
        return self.root / self.relative_path(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """The stored file, opened for reading after its content was checked against its hash.
        Raises StoredContentCorrupted."""
        try:
            handle = self.path(sha256).open("rb")
        except FileNotFoundError as error:
            raise StoredContentCorrupted(f"stored file {sha256} is missing") from error
        if hashlib.file_digest(handle, "sha256").hexdigest() != sha256:
            handle.close()
            raise StoredContentCorrupted(f"stored file {sha256} does not match its checksum")
        handle.seek(0)
        return handle

    def verified_path(self, sha256: str) -> Path:
        """Where the stored file is, once its content checked out (for readers that take a
        path). Raises StoredContentCorrupted."""
        self.open(sha256).close()
        return self.path(sha256)

    def save(self, file: BinaryIO, *, sha256: str) -> bool:
        """Store `file` under `sha256`; return False when that content was already stored.

        The bytes go to a temporary file beside the target and are renamed into place only
        after their hash checks out, so a crash never leaves a half-written file under a
        content address.
        """
        target = self.path(sha256)
        if target.is_file():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        file.seek(0)
        digest = hashlib.sha256()
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := file.read(1024 * 1024):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise StoredContentMismatch(f"content changed while storing {sha256}")
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        finally:
            file.seek(0)
        return True

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


def content_store() -> ContentStore:
    return ContentStore(settings.MEDIA_ROOT)
