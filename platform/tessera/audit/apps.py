from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "tessera.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from tessera.audit import signals  # noqa: F401  (records writes and task context)
