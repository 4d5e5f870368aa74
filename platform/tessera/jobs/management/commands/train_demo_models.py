from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tessera.jobs.demo_models import DEMO_CASES, DEMO_EPOCHS, ensure_demo_models


class Command(BaseCommand):
    help = (
        "Train, register and promote the demo clinic and school models from synthetic data, "
        "if they are missing (a few minutes on a laptop, once)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--cases", type=int, default=DEMO_CASES)
        parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)

    def handle(self, *args, cases: int, epochs: int, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo models are trained on synthetic data: not in production.")
        created = ensure_demo_models(cases=cases, epochs=epochs, log=self.stdout.write)
        if not created:
            self.stdout.write("The demo models are ready.")
