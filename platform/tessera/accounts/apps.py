from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tessera.accounts"
    label = "accounts"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        from tessera.accounts import sessions  # noqa: F401  (notes each sign-in's time)
