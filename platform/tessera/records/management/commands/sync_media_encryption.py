from django.core.management.base import BaseCommand, CommandError

from tessera.records.services import sync_media_encryption


class Command(BaseCommand):
    help = (
        "Encrypt the stored files of organizations that encrypt media at rest, decrypt those of "
        "organizations that stopped; with --rotate, re-encrypt everything under the first key "
        "of TESSERA_MEDIA_ENCRYPTION_KEYS."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="also re-encrypt files already encrypted, under the first (newest) key",
        )

    def handle(self, *args, rotate: bool = False, **options) -> None:
        done = sync_media_encryption(rotate=rotate)
        self.stdout.write(
            f"{done.encrypted} file(s) encrypted, {done.decrypted} decrypted, "
            f"{done.rotated} re-encrypted under the first key."
        )
        if done.damaged:
            ids = ", ".join(str(pk) for pk in done.damaged)
            raise CommandError(
                f"{len(done.damaged)} file(s) were left as they are because they are damaged "
                f"or cannot be decrypted with the configured keys (media ids: {ids})."
            )
