"""Lease heartbeats: while a worker works on a job, a thread renews the job's lease, so a long
job is never taken by another worker, and a dead worker's job is taken over within one lease."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import connection

from tessera.jobs.services import lease_length, renew_leases


@contextmanager
def heartbeat(
    *, job_ids: list, worker: str, lease: timedelta | None = None
) -> Iterator[threading.Event]:
    """Renew the leases of `job_ids` every third of their length until the block ends; the
    yielded event is set once every lease is lost (the jobs were cancelled or taken over)."""
    lease = lease or lease_length()
    stop, lost = threading.Event(), threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(lease.total_seconds() / 3):
                if not renew_leases(job_ids=job_ids, worker=worker, lease=lease):
                    lost.set()
                    return
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=beat, name=f"lease-{job_ids[0]}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()
