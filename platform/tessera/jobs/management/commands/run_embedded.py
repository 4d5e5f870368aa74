import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from tessera.celery import QUEUE_NAMES


class Command(BaseCommand):
    help = "Run the web server and one worker on every queue: the whole platform in one command."

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport: str, **options) -> None:
        # SIGTERM would otherwise end this process without stopping its worker.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        worker = subprocess.Popen(
            [
                sys.executable,
                str(settings.BASE_DIR / "manage.py"),
                "worker",
                "--queues",
                ",".join(QUEUE_NAMES),
                "--beat",
            ]
        )
        self.stdout.write(f"Worker started (pid {worker.pid}) on queues {', '.join(QUEUE_NAMES)}.")
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
