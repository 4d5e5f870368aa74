from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "tessera.dashboards"
    label = "dashboards"
    verbose_name = "Dashboards"
