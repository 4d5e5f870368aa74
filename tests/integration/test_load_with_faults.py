"""Load with faults on PostgreSQL and Redis: a thousand jobs through two `cpu` and two `gpu`
worker processes, one of which is SIGKILLed every twenty seconds and started again. Every job
succeeds exactly once (one result each), and the run prints its jobs per second."""

import itertools
import os
import signal
import subprocess
import time
from contextlib import ExitStack

import pytest

from tests.integration.processes import (
    manage,
    pipeline_environment,
    query,
    submit,
    throwaway_database,
    worker_process,
)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://")
        or not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
        reason="needs PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL)",
    ),
]
JOBS = 1000
KILL_EVERY_SECONDS = 20
WITHIN_SECONDS = 1200
FINISHED = "select count(*) from jobs_analysisjob where status in ('succeeded', 'failed')"


def test_a_thousand_jobs_with_a_worker_killed_every_twenty_seconds_each_succeed_once(
    tmp_path, models_dir, media_files, capsys
):
    with throwaway_database(tmp_path) as database_url:
        env = pipeline_environment(
            tmp_path,
            database_url,
            models_dir,
            # a killed worker's job is taken over within seconds, not a minute
            TESSERA_JOB_LEASE_SECONDS="4",
            TESSERA_SWEEP_EVERY="2",
            TESSERA_JOB_STALE_AFTER="30",
            # transcription is another queue's work, not this test's
            TESSERA_TRANSCRIPT_WAIT_SECONDS="0",
        )
        manage(env, "migrate", "-v", "0")
        submit(env, media_files, JOBS)
        logs = tmp_path / "workers"
        logs.mkdir()
        roles = [("cpu", 1), ("cpu", 1), ("gpu", None), ("gpu", None)]
        started = time.monotonic()
        kills = 0
        with ExitStack() as running:
            # beat (the sweeper) in a process of its own, never killed
            running.enter_context(
                worker_process(env, logs / "beat.log", beat=True, queues="reports")
            )
            workers = [
                running.enter_context(
                    _RestartableWorker(env, logs / f"{queue}-{number}.log", queue, concurrency)
                )
                for number, (queue, concurrency) in enumerate(roles)
            ]
            victims = itertools.cycle(range(len(workers)))
            next_kill = time.monotonic() + KILL_EVERY_SECONDS
            while query(database_url, FINISHED)[0][0] < JOBS:
                assert time.monotonic() - started < WITHIN_SECONDS, _progress(database_url)
                if time.monotonic() >= next_kill:
                    victim = next(victims)
                    workers[victim].process.send_signal(signal.SIGKILL)
                    workers[victim].process.wait()
                    workers[victim].restart()
                    kills += 1
                    next_kill += KILL_EVERY_SECONDS
                time.sleep(0.5)
        seconds = time.monotonic() - started
        outcomes = query(
            database_url,
            "select j.status, count(r.id) from jobs_analysisjob j "
            "left join jobs_analysisresult r on r.job_id = j.id group by j.id, j.status",
        )
    with capsys.disabled():  # the figure is the point: shown whatever pytest captures
        print(f"\n{JOBS} jobs in {seconds:.0f} s, {kills} workers killed: {JOBS / seconds:.2f}/s")
    assert kills >= 1, "the run ended before any worker was killed: it tested no fault"
    assert sorted(set(outcomes)) == [("succeeded", 1)], outcomes[:10]
    assert len(outcomes) == JOBS


class _RestartableWorker:
    """A worker process (`worker_process`) that can be started again after it was killed,
    logging to one file; every process it started is stopped when the block ends."""

    def __init__(self, env: dict[str, str], log, queue: str, concurrency: int | None) -> None:
        self.env, self.log, self.queue, self.concurrency = env, log, queue, concurrency
        self._started = ExitStack()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "_RestartableWorker":
        self.restart()
        return self

    def __exit__(self, *_: object) -> None:
        self._started.close()

    def restart(self) -> None:
        self.process = self._started.enter_context(
            worker_process(self.env, self.log, queues=self.queue, concurrency=self.concurrency)
        )


def _progress(database_url: str) -> str:
    rows = query(database_url, "select status, count(*) from jobs_analysisjob group by status")
    return f"not every job finished in {WITHIN_SECONDS} s: {rows}"
