from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tessera.accounts.services import issue_api_token


class Command(BaseCommand):
    help = "Issue an API token for a user and print it (it is shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist as missing:
            raise CommandError(f"No user named {username!r}.") from missing
        if not user.is_active:
            raise CommandError(f"User {username!r} is deactivated; activate them first.")
        _, key = issue_api_token(user=user, name=name)
        self.stdout.write(key)
