"""Real processes for the integration tests."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def worker_process(
    env: dict[str, str], log: Path, *, beat: bool = False
) -> Iterator[subprocess.Popen]:
    """`manage.py worker` on every queue (and the sweeper with `beat`), output into `log`;
    stopped (killed if it will not stop) when the block ends."""
    command = [sys.executable, str(REPO / "manage.py"), "worker", "--loglevel", "info"]
    with log.open("w") as output:
        worker = subprocess.Popen(
            command + (["--beat"] if beat else []),
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
