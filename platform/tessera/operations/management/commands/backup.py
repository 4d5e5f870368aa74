from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tessera.operations.backup import BackupError, back_up


class Command(BaseCommand):
    help = (
        "Back up this installation into a new folder: the database, the media (uploads, "
        "reports) and the model bundles, with a manifest of checksums and row counts. The "
        "secrets (SECRET_KEY, TESSERA_DEIDENTIFICATION_KEY, TESSERA_MEDIA_ENCRYPTION_KEYS) are "
        "not in it: keep them apart."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--to", type=Path, required=True, help="A new (or empty) folder.")

    def handle(self, *args, to: Path, **options) -> None:
        try:
            manifest = back_up(to=to)
        except BackupError as error:
            raise CommandError(str(error)) from error
        files = ", ".join(
            f"{entry['count']} {part} files" for part, entry in manifest["files"].items()
        )
        self.stdout.write(f"backed up {sum(manifest['rows'].values())} rows and {files} to {to}")
