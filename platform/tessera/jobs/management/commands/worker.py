from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tessera.celery import QUEUE_NAMES, app, worker_node_name


class Command(BaseCommand):
    help = (
        "Start a Celery worker on Tessera's queues (cpu, gpu, reports). A worker that takes the "
        "gpu queue runs the solo pool unless told otherwise: never fork after CUDA starts."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--queues", default=",".join(QUEUE_NAMES), help="Comma-separated queues."
        )
        parser.add_argument("--pool", choices=["solo", "threads", "prefork"])
        parser.add_argument("--concurrency", type=int)
        parser.add_argument("--loglevel", default="info")
        parser.add_argument(
            "--beat",
            action="store_true",
            help="Also run celery beat: the sweepers and scheduled reports (one worker only).",
        )

    def handle(
        self,
        *args,
        queues: str,
        pool: str | None,
        concurrency: int | None,
        loglevel: str,
        beat: bool,
        **options,
    ):
        names = queue_names(queues)
        if pool is None:
            pool = "solo" if "gpu" in names else "prefork"
        if pool == "prefork" and "gpu" in names:
            raise CommandError(
                "The gpu queue cannot run the prefork pool: CUDA does not survive fork."
            )
        argv = [
            "worker",
            f"--queues={','.join(names)}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            f"--hostname={worker_node_name(names)}",
        ]
        if concurrency:
            argv.append(f"--concurrency={concurrency}")
        if beat:
            argv += ["--beat", f"--scheduler={settings.CELERY_BEAT_SCHEDULER}"]
        app.worker_main(argv)


def queue_names(queues: str) -> list[str]:
    """The queues of a comma-separated `--queues`; refused when one is not Tessera's."""
    names = [name.strip() for name in queues.split(",") if name.strip()]
    unknown = sorted(set(names) - set(QUEUE_NAMES))
    if unknown or not names:
        raise CommandError(f"Unknown queues {unknown}; choose from {', '.join(QUEUE_NAMES)}.")
    return names
