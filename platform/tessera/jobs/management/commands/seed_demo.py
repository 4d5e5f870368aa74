from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tessera.demo import DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = (
        "Create (or complete) the demo clinic and school with users, records, media and a "
        "history analysed by the demo models (train_demo_models first)."
    )

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "seed_demo creates users with published passwords: not in production."
            )
        users = seed_demo(log=self.stdout.write)
        self.stdout.write(self.style.SUCCESS("Demo data is ready. Sign in at /login/ with:"))
        width = max(len(user.username) for user in users)
        for user in users:
            organizations = ", ".join(user.organization_slugs)
            self.stdout.write(
                f"  {user.username:<{width}}  {DEMO_PASSWORD}   {user.role:<10} {organizations}"
            )
        self.stdout.write("Organization admins can also use the Django admin at /admin/.")
