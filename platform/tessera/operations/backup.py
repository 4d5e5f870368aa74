"""A whole installation backed up into one folder and restored into an empty one: the database
(SQLite's online backup, or PostgreSQL's pg_dump in its custom format) and the files (media:
uploads, originals and reports, encrypted or not, exactly as stored; the model bundles, where
versions trained from feedback live), from this host's disk or from the bucket (tessera.storage)
and back into either. The feature cache is left out: it is made again.

The folder's manifest.json holds each part's SHA-256 and every table's row count: a restore
checks the parts before it touches anything, and the counts after. A restore goes into an
empty installation only (no tables, no files), so it never mixes two. What is not in a backup
are the secrets: the same SECRET_KEY, TESSERA_DEIDENTIFICATION_KEY and
TESSERA_MEDIA_ENCRYPTION_KEYS must be set where it is restored (encrypted files, the sealed way
back to the PACS and the organizations' sealed credentials open with them alone)."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tessera.storage import BlobStore, blob_store

MANIFEST = "manifest.json"
FORMAT = 1
PARTS = {"media": "media.tar.gz", "models": "models.tar.gz"}


class BackupError(Exception):
    """What went wrong, in words. A refused restore (a damaged backup, an installation that is
    not empty, another database) has changed nothing; one whose counts differ afterwards says
    which tables."""


def back_up(*, to: Path) -> dict:
    """Write a backup of this installation into the new folder `to`; returns its manifest."""
    if to.exists() and any(to.iterdir()):
        raise BackupError(f"{to} is not empty: a backup goes into a new folder")
    to.mkdir(parents=True, exist_ok=True)
    database, rows = _dump_database(to)
    manifest = {
        "format": FORMAT,
        "created_at": timezone.now().isoformat(),
        "database": {"vendor": connection.vendor, "file": database.name, "sha256": _sha(database)},
        "rows": rows,
        "files": {},
    }
    for part, name in PARTS.items():
        archive = to / name
        manifest["files"][part] = {
            "file": name,
            "count": _archive(blob_store(part), archive),
            "sha256": _sha(archive),
        }
    (to / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def restore(*, source: Path) -> dict:
    """Restore the backup in `source` into this installation, which must be empty; returns its
    manifest once the database's rows and the files are all there."""
    manifest = _checked_manifest(source)
    _refuse_unless_empty()
    _restore_database(source / manifest["database"]["file"])
    for part, entry in manifest["files"].items():
        _extract(source / entry["file"], blob_store(part))
    with connection.cursor() as cursor:
        found = _row_counts(cursor)
    if found != manifest["rows"]:
        differing = sorted(t for t in manifest["rows"] if found.get(t) != manifest["rows"][t])
        raise BackupError(f"the restored database differs from the backup in {differing}")
    for part, entry in manifest["files"].items():
        if sum(1 for _ in blob_store(part).names()) != entry["count"]:
            raise BackupError(
                f"the restored {part} does not hold the backup's {entry['count']} files"
            )
    return manifest


def _row_counts(cursor) -> dict[str, int]:
    """Each model table's rows, as `cursor` (a DB-API cursor) sees them."""
    tables = set(connection.introspection.table_names())
    counts = {}
    for model in apps.get_models(include_auto_created=True):
        table = model._meta.db_table
        if table in tables and table not in counts:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def _dump_database(to: Path) -> tuple[Path, dict[str, int]]:
    """The database's dump, and its tables' row counts in that same snapshot (the platform may
    go on writing meanwhile)."""
    database = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        target = to / "database.sqlite3"
        with sqlite3.connect(database["NAME"]) as live, sqlite3.connect(target) as copy:
            live.backup(copy)  # consistent while the platform keeps writing
            return target, _row_counts(copy.cursor())
    if connection.vendor == "postgresql":
        target = to / "database.pgdump"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
            rows = _row_counts(cursor)
            _postgres("pg_dump", "--format=custom", f"--snapshot={snapshot}", f"--file={target}")
        return target, rows
    raise BackupError(f"no backup for a {connection.vendor} database")


def _restore_database(dump: Path) -> None:
    if connection.vendor == "sqlite":
        connection.close()
        with (
            sqlite3.connect(dump) as saved,
            sqlite3.connect(settings.DATABASES["default"]["NAME"]) as live,
        ):
            saved.backup(live)
        return
    _postgres("pg_restore", "--exit-on-error", "--single-transaction", str(dump))


def _postgres(program: str, *args: str) -> None:
    """Run pg_dump or pg_restore against the default database, its password in the environment
    (never on a command line others can read)."""
    database = settings.DATABASES["default"]
    if shutil.which(program) is None:
        raise BackupError(f"{program} is not installed (Debian: postgresql-client)")
    env = {**os.environ, "PGPASSWORD": str(database.get("PASSWORD") or "")}
    done = subprocess.run(
        [
            program,
            "--no-owner",
            "--no-privileges",
            f"--host={database.get('HOST') or 'localhost'}",
            f"--port={database.get('PORT') or 5432}",
            f"--username={database.get('USER') or 'postgres'}",
            f"--dbname={database['NAME']}",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"{program} failed: {done.stderr.strip()[-500:]}")


def _archive(store: BlobStore, archive: Path) -> int:
    """Every blob of `store` into the tar archive; returns how many."""
    count = 0
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(store.names()):
            with store.open(name) as blob:
                member = tarfile.TarInfo(name)
                member.size = blob.seek(0, os.SEEK_END)
                blob.seek(0)
                tar.addfile(member, blob)
            count += 1
    return count


def _extract(archive: Path, store: BlobStore) -> None:
    """Every regular file of the tar archive into `store`, under its name there; a name that
    would leave the store (absolute, or with "..") is refused before anything is written."""
    with tarfile.open(archive) as tar:
        members = [member for member in tar.getmembers() if member.isfile()]
        for member in members:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise BackupError(f"{archive.name} holds a file outside its store: {member.name}")
        for member in members:
            with tar.extractfile(member) as source, store.writer(member.name) as out:
                shutil.copyfileobj(source, out)


def _checked_manifest(source: Path) -> dict:
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BackupError(f"{source} holds no readable {MANIFEST}: not a Tessera backup") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(f"this backup's format ({manifest.get('format')}) is not {FORMAT}")
    vendor = manifest["database"]["vendor"]
    if vendor != connection.vendor:
        raise BackupError(
            f"the backup is of a {vendor} database; this installation's is {connection.vendor}"
        )
    parts = [manifest["database"], *manifest["files"].values()]
    for part in parts:
        path = source / part["file"]
        if not path.is_file() or _sha(path) != part["sha256"]:
            raise BackupError(f"{part['file']} is missing or damaged: its SHA-256 differs")
    return manifest


def _refuse_unless_empty() -> None:
    tables = connection.introspection.table_names()
    if tables:
        raise BackupError(
            f"a restore goes into an empty installation; this database has {len(tables)} tables"
        )
    for part in PARTS:
        if files := sum(1 for _ in blob_store(part).names()):
            raise BackupError(
                f"a restore goes into an empty installation; its {part} store holds {files} files"
            )


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
