"""What a web process needs before it takes requests, as django-health-check checks: the
database answers, the broker takes connections, the media store is writable, and every active
model version's bundle is on this host and whole. Each failure says what failed in words an IT
team acts on, never a path or a password."""

import dataclasses
import os

from django.conf import settings
from django.db import connection
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.exceptions import ServiceUnavailable
from kombu import Connection

from mlcore.bundle_check import bundle_problem
from tessera.jobs.selectors import serving_versions
from tessera.storage import blob_store

BROKER_TIMEOUT_SECONDS = 3


@dataclasses.dataclass
class Broker(HealthCheck):
    """The embedded broker's folders are there and writable; a network broker (Redis) takes a
    connection."""

    def run(self) -> None:
        if settings.EMBEDDED_BROKER:
            options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
            folders = {options["data_folder_in"], options["data_folder_out"]}
            if not all(os.access(folder, os.W_OK) for folder in folders):
                raise ServiceUnavailable("the embedded broker's folders are missing or read-only")
            return
        try:
            with Connection(
                settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_SECONDS
            ) as connection:
                connection.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
        except Exception as error:  # kombu raises the transport's own errors
            raise ServiceUnavailable(
                f"the broker does not take connections ({type(error).__name__})"
            ) from error


@dataclasses.dataclass
class MediaStore(HealthCheck):
    """Uploads and reports can be written where media live (this host's disk, or the bucket)."""

    def run(self) -> None:
        try:
            blob_store("media").check_writable()
        except Exception as error:  # OSError, or the bucket's (botocore's) own errors
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise ServiceUnavailable(f"the media store cannot be written ({reason})") from error


@dataclasses.dataclass
class ModelBundles(HealthCheck):
    """Every active model version's bundle is on this host and would load."""

    def run(self) -> None:
        try:
            versions = list(serving_versions())
        finally:
            connection.close()  # this check's thread's own connection, opened for the query
        problems = [
            f"model {version.name}: {problem}"
            for version in versions
            if (problem := bundle_problem(version.bundle_dir))
        ]
        if problems:
            raise ServiceUnavailable("; ".join(problems))


# The checks of /readyz, under the names its answer gives them.
READINESS = {
    "database": Database(),
    "broker": Broker(),
    "media": MediaStore(),
    "models": ModelBundles(),
}
