"""`manage.py run_embedded` (what `make run` starts): the web server and a worker on every queue,
on the embedded defaults; stopping it stops both."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.processes import REPO, free_port, wait_for_page

pytestmark = pytest.mark.worker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_embedded_serves_the_login_page_and_runs_a_worker(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}},
        "TESSERA_VAR_DIR": str(tmp_path),
    }
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=REPO)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [*manage, "run_embedded", f"127.0.0.1:{port}"],
            env=env,
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        page = wait_for_page(f"http://127.0.0.1:{port}/login/", seconds=60)
        assert "<title>Sign in · Tessera</title>" in page
        ping = subprocess.run(
            [
                *manage,
                "shell",
                "-v",
                "0",
                "-c",
                "from tessera.celery import ping; "
                "print(ping.apply_async(queue='gpu').get(timeout=60)['pid'])",
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        worker_pid = int(re.search(r"Worker started \(pid (\d+)\)", log.read_text()).group(1))
        assert ping.stdout.strip() == str(worker_pid), ping.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker_pid), "stopping run_embedded must stop its worker"
