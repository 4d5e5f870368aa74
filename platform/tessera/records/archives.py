"""A zip of a DICOM series, opened defensively: the archive's own directory is judged before any
entry is read — entry count, declared total size, compression ratio, names that climb out
(`..`) or start at the root, symlinks, encryption — and every entry is read with a hard cap,
since a zip's declared sizes are the attacker's word. Nothing is extracted to disk."""

import io
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import BinaryIO

from django.conf import settings
from django.template.defaultfilters import filesizeformat

from tessera.records.uploads import UploadRejected

ZIP_MAGIC = b"PK\x03\x04"
# More bytes out per byte in than this is a bomb, not a series (DICOM compresses 2-10 times).
MAX_COMPRESSION_RATIO = 100
_IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db", "DICOMDIR")


@dataclass(frozen=True)
class ArchiveEntry:
    name: str
    content: BinaryIO


def is_zip(file: BinaryIO) -> bool:
    file.seek(0)
    head = file.read(4)
    file.seek(0)
    return head == ZIP_MAGIC


def dicom_entries(file: BinaryIO) -> Iterator[ArchiveEntry]:
    """The files of a zipped series, one at a time, each in memory and capped at the upload
    limit. Raises UploadRejected for an archive that is unsafe or unreadable; the caller has
    written nothing at that point, since the whole directory is checked first."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UploadRejected(
            "the zip archive is damaged and cannot be opened",
            code="zip_damaged",
            technical_detail=str(error),
        ) from error
    with archive:
        members = _checked_members(archive)
        for member in members:
            yield ArchiveEntry(name=member.filename, content=_read_capped(archive, member))


def _checked_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = [
        member
        for member in archive.infolist()
        if not member.is_dir() and not _ignored(member.filename)
    ]
    limit = settings.TESSERA_ZIP_MAX_ENTRIES
    if len(archive.infolist()) > limit:
        raise UploadRejected(
            f"zip archive has {len(archive.infolist())} entries, over the limit of {limit}",
            code="zip_too_many_entries",
        )
    if not members:
        raise UploadRejected("zip archive holds no files", code="zip_empty")
    for member in archive.infolist():
        _check_name(member)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise UploadRejected(
                f"zip archive entry {member.filename!r} is a symbolic link; "
                "links are never followed",
                code="zip_unsafe_entry",
            )
        if member.flag_bits & 0x1:
            raise UploadRejected(
                f"zip archive entry {member.filename!r} is encrypted", code="zip_encrypted"
            )
    declared = sum(member.file_size for member in members)
    total_limit = settings.TESSERA_ZIP_MAX_TOTAL_BYTES
    if declared > total_limit:
        raise UploadRejected(
            f"zip archive unpacks to {filesizeformat(declared)}, over the "
            f"{filesizeformat(total_limit)} limit",
            code="zip_too_large",
        )
    for member in members:
        if member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1):
            raise UploadRejected(
                f"zip archive entry {member.filename!r} expands {member.file_size:,} bytes "
                f"from {member.compress_size:,}: refused as a zip bomb",
                code="zip_bomb",
            )
    return members


def _ignored(name: str) -> bool:
    return name.startswith(_IGNORED[0]) or PurePosixPath(name).name in _IGNORED[1:]


def _check_name(member: zipfile.ZipInfo) -> None:
    name = member.filename
    windows = PureWindowsPath(name)
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or windows.drive or windows.root or ".." in posix.parts:
        raise UploadRejected(
            f"zip archive entry {name!r} points outside the archive (an absolute path or '..')",
            code="zip_unsafe_entry",
        )


def _read_capped(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> io.BytesIO:
    """The entry's bytes, refusing it the moment it outgrows what its header declared or the
    per-file limit (a forged header could claim anything)."""
    cap = min(member.file_size, settings.TESSERA_MAX_UPLOAD_BYTES)
    out = io.BytesIO()
    try:
        with archive.open(member) as entry:
            while chunk := entry.read(1024 * 1024):
                if out.tell() + len(chunk) > cap:
                    raise UploadRejected(
                        f"zip archive entry {member.filename!r} is larger than it says",
                        code="zip_bomb",
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
        raise UploadRejected(
            f"zip archive entry {member.filename!r} could not be read: {error}",
            code="zip_damaged",
        ) from error
    out.seek(0)
    return out
