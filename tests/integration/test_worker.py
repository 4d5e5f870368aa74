"""Real Celery worker processes take tasks from every queue: on the embedded file-system broker
(no server at all), and on Redis when CELERY_BROKER_URL points at one."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.processes import worker_process

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CELERY_BROKER_URL", "")
pytestmark = pytest.mark.worker

PING_EVERY_QUEUE = """
from tessera.celery import QUEUE_NAMES, ping
for queue in QUEUE_NAMES:
    answer = ping.apply_async(queue=queue).get(timeout=60)
    print(queue, answer["pid"])
"""


def _environment(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL"}
    }
    return {**env, "TESSERA_VAR_DIR": str(var_dir), **overrides}


def _ping_every_queue(env: dict[str, str], worker: subprocess.Popen, log: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", PING_EVERY_QUEUE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"{result.stderr}\n--- worker log ---\n{log.read_text()}"
    answers = dict(line.split() for line in result.stdout.splitlines())
    assert set(answers) == {"cpu", "gpu", "reports", "speech"}
    assert set(answers.values()) == {str(worker.pid)}, "the worker process itself ran every task"
    assert time.monotonic() - started < 120


def test_a_worker_on_the_embedded_file_system_broker_serves_every_queue(tmp_path):
    env = _environment(tmp_path)
    log = tmp_path / "worker.log"
    with worker_process(env, log) as worker:
        _ping_every_queue(env, worker, log)
    assert (tmp_path / "celery" / "broker" / "queue").is_dir()
    assert "solo" in log.read_text(), "a worker with the gpu queue must not fork"


@pytest.mark.redis
@pytest.mark.skipif(
    not REDIS_URL.startswith("redis://"),
    reason="CELERY_BROKER_URL does not point at Redis (redis://…)",
)
def test_a_worker_on_redis_serves_every_queue(tmp_path):
    env = _environment(tmp_path, CELERY_BROKER_URL=REDIS_URL)
    log = tmp_path / "worker.log"
    with worker_process(env, log) as worker:
        _ping_every_queue(env, worker, log)
    assert not (tmp_path / "celery").exists(), "no file-system broker when Redis is configured"


def _worker_ready(env: dict[str, str], queues: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "worker_ready", "--queues", queues, "--timeout", "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.redis
@pytest.mark.skipif(
    not REDIS_URL.startswith("redis://"),
    reason="CELERY_BROKER_URL does not point at Redis (redis://…)",
)
def test_a_workers_readiness_probe_asks_the_worker_of_its_queues_on_this_host(tmp_path):
    env = _environment(tmp_path, CELERY_BROKER_URL=REDIS_URL)
    log = tmp_path / "worker.log"
    assert _worker_ready(env, "cpu,reports").returncode == 1, "no worker yet"
    with worker_process(env, log, queues="cpu,reports", concurrency=1):
        deadline = time.monotonic() + 90
        while (probe := _worker_ready(env, "cpu,reports")).returncode != 0:
            assert time.monotonic() < deadline, (
                f"{probe.stderr}\n--- worker log ---\n{log.read_text()}"
            )
        assert "is ready" in probe.stdout
        other = _worker_ready(env, "gpu")
        assert other.returncode == 1, "the gpu worker is not this one"
        assert "did not answer within 3 s" in other.stderr


def test_the_readiness_probe_says_the_embedded_broker_carries_no_ping(tmp_path):
    probe = _worker_ready(_environment(tmp_path), "cpu")
    assert probe.returncode == 1
    assert "file-system broker cannot carry a ping" in probe.stderr
