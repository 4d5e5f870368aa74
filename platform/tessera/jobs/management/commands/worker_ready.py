from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tessera.celery import QUEUE_NAMES, app, worker_node_name
from tessera.jobs.management.commands.worker import queue_names


class Command(BaseCommand):
    help = (
        "A worker container's readiness probe: exits 0 when this host's worker of --queues "
        "answers a ping through the broker (it is up, warmed up and consuming), else 1, saying "
        "why. Needs Redis: the embedded file-system broker carries no pings."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--queues", default=",".join(QUEUE_NAMES), help="As the worker was started with."
        )
        parser.add_argument("--timeout", type=float, default=5.0, help="Seconds to wait.")

    def handle(self, *args, queues: str, timeout: float, **options) -> None:
        if settings.EMBEDDED_BROKER:
            raise CommandError(
                "the embedded file-system broker cannot carry a ping: probe workers where "
                "CELERY_BROKER_URL is Redis"
            )
        name = worker_node_name(queue_names(queues))
        if not app.control.ping(destination=[name], timeout=timeout):
            raise CommandError(f"the worker {name} did not answer within {timeout:g} s")
        self.stdout.write(f"{name} is ready")
