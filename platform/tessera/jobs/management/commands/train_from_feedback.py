from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tessera.accounts.policy import OrganizationKind
from tessera.jobs.training import request_training
from tessera.refusals import Refused


class Command(BaseCommand):
    help = (
        "Queue a training run on the gpu queue: fine-tune the active model on the results "
        "professionals confirmed or corrected, and promote it only if it is not worse."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("serves", choices=OrganizationKind.values)
        parser.add_argument("--by", help="Username recorded as requester (and promoter).")

    def handle(self, *args, serves: str, by: str | None, **options) -> None:
        user = None
        if by:
            user = get_user_model().objects.filter(username=by).first()
            if user is None:
                raise CommandError(f"no user named {by!r}")
        try:
            run = request_training(serves=serves, requested_by=user)
        except Refused as refusal:
            raise CommandError(refusal.message) from refusal
        self.stdout.write(f"Training run {run.pk} queued; a gpu worker will take it.")
