from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "tessera.records"
    label = "records"
    verbose_name = "Records"

    def ready(self) -> None:
        from tessera.records import signals  # noqa: F401  (connects the media clean-up)
