from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler


class Command(BaseCommand):
    help = (
        "Celery beat's health probe: exits 0 when beat sent one of its periodic tasks (the "
        "sweepers run every TESSERA_SWEEP_EVERY seconds) lately, else 1, saying when it last "
        "did. Beat keeps its schedule in the database, so this asks there."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--within",
            type=float,
            help="Seconds (default: three sweeps, and the few minutes beat takes to write "
            "its last runs to the database).",
        )

    def handle(self, *args, within: float | None, **options) -> None:
        within = within or 3 * settings.TESSERA_SWEEP_EVERY + DatabaseScheduler.sync_every
        last = (
            PeriodicTask.objects.filter(enabled=True, last_run_at__isnull=False)
            .order_by("-last_run_at")
            .values_list("last_run_at", flat=True)
            .first()
        )
        if last is None:
            raise CommandError("beat has not sent any periodic task yet")
        if timezone.now() - last > timedelta(seconds=within):
            raise CommandError(f"beat last sent a periodic task at {last:%Y-%m-%d %H:%M:%S %Z}")
        self.stdout.write(f"beat sent a periodic task at {last:%H:%M:%S}")
