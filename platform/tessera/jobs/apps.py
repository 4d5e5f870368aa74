from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "tessera.jobs"
    label = "jobs"
    verbose_name = "Analysis jobs"
