"""WSGI entry point (gunicorn --chdir platform tessera.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")
application = get_wsgi_application()

from tessera.telemetry import start_telemetry  # noqa: E402  (needs the settings loaded)

start_telemetry()
