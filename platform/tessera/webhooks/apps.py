from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "tessera.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"
