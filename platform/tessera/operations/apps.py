from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """What the IT team runs Tessera with: probes, backups. No models of its own."""

    name = "tessera.operations"
    label = "operations"
    verbose_name = "Operations"
