"""Load on the REST API as an integration would put it: gunicorn in front of PostgreSQL, all on
loopback, a fixed number of concurrent clients for a fixed time per endpoint. Prints
requests/second and p50/p99 latency for a list, a detail and the job-create endpoint, and the
same list from a bare DRF ModelViewSet over the same table in the same server
(bench/bare_api.py), with ours ÷ bare: what authentication, scoping, audit and throttling cost.

A throwaway PostgreSQL database (created and dropped by the run) is seeded with one clinic,
`--patients` patients with a visit each, and a clinical note on `--analysable` of the visits.
Job requests are queued (no worker runs: this measures the API, not the analysis). The rate
limit is lifted for the run; everything else is the production request path.

Usage: .venv/bin/python bench/api_load.py [--seconds 10] [--clients 8,16] [--web-workers 2]
    [--patients 2000] [--analysable 200] [--server postgres://postgres@127.0.0.1:5432]
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _common import ROOT, throwaway_database

SEED = """
import json
from django.utils import timezone
from tessera.accounts.models import Role
from tessera.accounts.services import create_organization, issue_api_token, set_membership
from django.contrib.auth import get_user_model
from tessera.jobs.services import promote_model_version, register_model_version
from tessera.records.services import add_media, create_encounter, create_patient
from django.core.files.base import ContentFile
clinic = create_organization(name="Load Clinic", slug="load", kind="clinic", jurisdiction="US")
version = register_model_version(name="load", serves="clinic", bundle_path="load", metrics={{}})
promote_model_version(version=version, promoted_by=None)
user = get_user_model().objects.create_user("integration", password=None)
set_membership(user=user, organization=clinic, role=Role.CLINICIAN)
patients, analysable = [], []
for number in range({patients}):
    patient = create_patient(organization=clinic, mrn=f"L-{{number}}", full_name=f"Load {{number}}")
    visit = create_encounter(patient=patient, occurred_at=timezone.now())
    patients.append(patient.pk)
    if number < {analysable}:
        note = ContentFile(f"Visit {{number}}: cough for a week.".encode(), name="note.txt")
        add_media(attached_to=visit, kind="clinical_note", file=note)
        analysable.append(visit.pk)
print(json.dumps({{
    "token": issue_api_token(user=user, name="load")[1],
    "patients": patients,
    "encounters": analysable,
}}))
"""


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, status: int, expected: int) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if status != expected:
                self.failures[status] = self.failures.get(status, 0) + 1


Request = Callable[[], tuple[str, str, bytes | None]]


def hammer(port: int, token: str, make: Request, expected: int, seconds: float, clients: int):
    tally = Tally()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deadline = time.perf_counter() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.perf_counter() < deadline:
            method, path, body = make()
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            tally.add(time.perf_counter() - started, response.status, expected)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - began


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def web_server(env: dict[str, str], port: int, workers: int, log: Path) -> Iterator[None]:
    command = [
        sys.executable, "-m", "gunicorn", "--chdir", "platform", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "tessera.wsgi:application",
    ]  # fmt: skip
    with log.open("w") as output:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"gunicorn exited:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint")
    parser.add_argument("--clients", default="8,16", help="concurrent clients, each count in turn")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--analysable", type=int, default=200)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as scratch,
        throwaway_database(args.server, prefix="tessera_load") as database,
    ):
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}:{ROOT / 'bench'}",
            "DJANGO_SETTINGS_MODULE": "bare_settings",  # Tessera's URLs and the bare baseline's
            "DATABASE_URL": database,
            "TESSERA_VAR_DIR": scratch,
            "DEBUG": "false",
            "TESSERA_API_RATE": "100000000/hour",
        }
        env.pop("CELERY_BROKER_URL", None)  # the embedded broker: the queued jobs stay local
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
        started = time.perf_counter()
        seeded = subprocess.run(
            [*manage, "shell", "-v", "0", "-c", SEED.format(**vars(args))],
            env=env, check=True, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        print(
            f"seeded {len(seed['patients'])} patients in {time.perf_counter() - started:.0f} s; "
            f"{args.web_workers} gunicorn workers, "
            f"{args.seconds:.0f} s per endpoint, PostgreSQL on loopback"
        )
        patients, encounters = seed["patients"], seed["encounters"]
        scenarios: list[tuple[str, Request, int]] = [
            ("GET  /api/v1/patients/ (list, 50)", lambda: ("GET", "/api/v1/patients/", None), 200),
            ("GET  /bare/patients/ (bare DRF, 50)", lambda: ("GET", "/bare/patients/", None), 200),
            (
                "GET  /api/v1/patients/{id}/",
                lambda: ("GET", f"/api/v1/patients/{random.choice(patients)}/", None),
                200,
            ),
            (
                "POST /api/v1/jobs/",
                lambda: (
                    "POST",
                    "/api/v1/jobs/",
                    json.dumps({"encounter": random.choice(encounters), "task": "diagnosis"}),
                ),
                202,
            ),
        ]
        port = free_port()
        with web_server(env, port, args.web_workers, Path(scratch) / "gunicorn.log"):
            for _name, make, expected in scenarios[:2]:  # warm every worker on both lists
                hammer(port, seed["token"], make, expected, 1.0, 2)
            for clients in (int(count) for count in args.clients.split(",")):
                heading = f"{'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  errors"
                print(f"\n{clients} clients\n{'endpoint':36} {heading}")
                rates = []
                for name, make, expected in scenarios:
                    tally, elapsed = hammer(
                        port, seed["token"], make, expected, args.seconds, clients
                    )
                    count = len(tally.latencies)
                    rates.append(count / elapsed)
                    print(
                        f"{name:36} {count:9d} {count / elapsed:8.1f} "
                        f"{statistics.median(tally.latencies) * 1000:8.1f} "
                        f"{percentile(tally.latencies, 0.99) * 1000:8.1f}  "
                        f"{tally.failures or 'none'}"
                    )
                print(f"patient list, ours / bare DRF: {rates[0] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
