from django.apps import AppConfig


class TutoringConfig(AppConfig):
    name = "tessera.tutoring"
    label = "tutoring"
    verbose_name = "Tutoring"
