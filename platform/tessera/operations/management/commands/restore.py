from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tessera.operations.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore a backup (manage.py backup) into this installation, which must be empty: no "
        "tables (do not migrate first) and no files. Checks every part's checksum before and "
        "every table's row count after. Set the same secrets as where it was made."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="source", type=Path, required=True)

    def handle(self, *args, source: Path, **options) -> None:
        try:
            manifest = restore(source=source)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"restored {sum(manifest['rows'].values())} rows and the files of {source}"
        )
