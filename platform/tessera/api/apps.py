from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "tessera.api"
    verbose_name = "REST API"
