"""`manage.py dicom_listener`: the DICOM listener (records.dimse) a PACS or a modality sends to,
until SIGTERM or Ctrl-C."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from tessera.records.dimse import handlers, listener
from tessera.records.models import DicomSender


class Command(BaseCommand):
    help = "Receive DICOM images by C-STORE (and answer C-ECHO) from the registered senders."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ae-title", default=settings.TESSERA_DICOM_AE_TITLE)
        parser.add_argument("--port", type=int, default=settings.TESSERA_DICOM_PORT)
        parser.add_argument(
            "--host",
            default=settings.TESSERA_DICOM_HOST,
            help="the address to listen on (0.0.0.0: every interface)",
        )

    def handle(self, *args, ae_title: str, port: int, host: str, **options) -> None:
        server = listener(ae_title).start_server((host, port), block=False, evt_handlers=handlers())
        senders = DicomSender.objects.count()
        self.stdout.write(
            f"Listening for DICOM as {ae_title} on {host}:{port} (C-ECHO, C-STORE) from "
            f"{senders} registered sender{'' if senders == 1 else 's'}."
        )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
        server.shutdown()
        self.stdout.write("Stopped.")
