"""The probes an IT team points a load balancer or Kubernetes at (issue 25): `/healthz` says the
process answers, whatever the host and scheme; `/readyz` runs the readiness checks for real and
names each one that fails, with 503."""

import json
import shutil

import pytest
from django.db import connection, connections

from tessera.jobs.services import promote_model_version, register_model_version

# A probe comes from the cluster: the pod's address as its host, plain HTTP.
FROM_THE_CLUSTER = {"HTTP_HOST": "10.42.0.7:8000", "secure": False}


def test_healthz_answers_any_host_over_plain_http_and_reads_nothing(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["tessera.example.org"]
    response = client.get("/healthz", **FROM_THE_CLUSTER)  # no database here: a query fails
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "alive"}
    assert "no-cache" in response["Cache-Control"]
    assert client.get("/healthz/", **FROM_THE_CLUSTER).status_code == 200


def _ready(client) -> tuple[int, dict]:
    response = client.get("/readyz", **FROM_THE_CLUSTER)
    return response.status_code, json.loads(response.content)


@pytest.mark.django_db(transaction=True)  # the checks run in threads of their own
def test_readyz_is_200_when_database_broker_media_and_bundles_are_there(
    client, clinic_model, media_root
):
    status, body = _ready(client)
    assert (status, body["status"]) == (200, "ready"), body
    assert body["checks"] == {"database": "ok", "broker": "ok", "media": "ok", "models": "ok"}


@pytest.mark.django_db(transaction=True)
def test_readyz_names_a_database_it_cannot_reach(client, monkeypatch, tmp_path):
    gone = "no_such_database" if connection.vendor == "postgresql" else str(tmp_path / "no" / "db")
    unreachable = {**connections.settings["default"], "NAME": gone}
    monkeypatch.setitem(connections.settings, "default", unreachable)  # new connections only
    status, body = _ready(client)
    assert (status, body["status"]) == (503, "not ready")
    assert body["checks"]["database"] not in ("ok", "unknown error"), body
    assert str(tmp_path) not in body["checks"]["database"], "no path in a public answer"
    assert body["checks"]["media"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_readyz_names_a_broker_it_cannot_reach(client, settings, tmp_path):
    settings.EMBEDDED_BROKER = True
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path / "gone"),
        "data_folder_out": str(tmp_path),
    }
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["broker"] == "the embedded broker's folders are missing or read-only"

    settings.EMBEDDED_BROKER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["broker"].startswith("the broker does not take connections")
    assert "127.0.0.1" not in body["checks"]["broker"], "no address in a public answer"
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_readyz_names_a_media_store_it_cannot_write(client, settings, tmp_path):
    (tmp_path / "a-file").write_text("where the volume should be mounted")
    settings.MEDIA_ROOT = tmp_path / "a-file" / "media"
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["media"].startswith("the media store cannot be written")


@pytest.mark.django_db(transaction=True)
def test_readyz_names_an_active_model_whose_bundle_is_missing_or_damaged(
    client, clinic_model, bundle_dir, settings, tmp_path
):
    school = register_model_version(
        name="school-gone", serves="school", bundle_path="school-gone", metrics={}
    )
    promote_model_version(version=school, promoted_by=None)
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["models"] == "model school-gone: its directory is missing"

    settings.MLCORE_MODELS_DIR = tmp_path / "models"
    shutil.copytree(bundle_dir, settings.MLCORE_MODELS_DIR / "clinic-v1")
    weights = settings.MLCORE_MODELS_DIR / "clinic-v1" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short, as by a full disk
    status, body = _ready(client)
    assert "model clinic-v1: model.safetensors is damaged" in body["checks"]["models"]
