"""End-to-end throughput of the analysis pipeline through real Celery workers, with
micro-batching on the GPU queue off (one case per forward pass) and on (up to N cases, waiting
at most T ms), on the same load in the same run; and the latency of a lone job in each mode.

Each mode gets its own embedded platform (SQLite, file-system broker, empty feature cache), a
`cpu` worker (prefork) and a `gpu` worker (solo) as in production, and the model of the demo's
shape (DenseNet on 64 px CT, the shipped MiniLM, a log-mel CNN; untrained weights do the same
work). A burst of jobs, each its own visit with a distinct CT, note and recording, is committed
at once; throughput counts from the first publish to the last finish.

Usage: .venv/bin/python bench/pipeline.py [--jobs 96] [--lone 7] [--max-cases 16]
    [--wait-ms 50] [--device cpu|cuda]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from _common import ROOT
from inference import bench_config

from mlcore.model import build_model
from mlcore.registry import save_bundle
from mlcore.synthetic import write_dataset

SETUP = """
from tessera.accounts.services import create_organization
from tessera.jobs.services import promote_model_version, register_model_version
create_organization(name="Bench Clinic", slug="bench", kind="clinic", jurisdiction="US")
version = register_model_version(name="bench", serves="clinic", bundle_path="bench", metrics={})
promote_model_version(version=version, promoted_by=None)
from tessera.celery import ping
for queue in ("cpu", "gpu"):
    ping.apply_async(queue=queue).get(timeout=600)  # both workers up and warm
"""

JOBS = """
import json, time
from pathlib import Path
from django.db import transaction
from django.utils import timezone
from tessera.accounts.models import Organization
from tessera.jobs.models import FINISHED, AnalysisJob
from tessera.jobs.services import request_analysis
from tessera.records.services import add_media, create_encounter, create_patient
entries = [json.loads(line) for line in Path({manifest!r}).read_text().splitlines()]
data = Path({manifest!r}).parent
clinic = Organization.objects.get(slug="bench")

def request(entry, number):
    patient = create_patient(organization=clinic, mrn=f"{{number}}", full_name=f"P {{number}}")
    visit = create_encounter(patient=patient, occurred_at=timezone.now())
    for kind, key in (("dicom", "image"), ("clinical_note", "text"), ("speech", "audio")):
        with (data / entry[key]).open("rb") as file:
            add_media(attached_to=visit, kind=kind, file=file)
    return request_analysis(attached_to=visit, task="all")

def wait(ids):
    while AnalysisJob.objects.filter(pk__in=ids).exclude(status__in=FINISHED).exists():
        time.sleep(0.02)
    return list(AnalysisJob.objects.filter(pk__in=ids))

with transaction.atomic():  # every job is published at once, when this commits
    burst = [request(entry, number) for number, entry in enumerate(entries[:{jobs}])]
done = wait([job.pk for job in burst])
first = min(job.published_at for job in done)
last = max(job.finished_at for job in done)
report = {{
    "seconds": (last - first).total_seconds(),
    "succeeded": sum(job.status == "succeeded" for job in done),
    "mean_batch": sum(job.timings.get("batch_cases", 0) for job in done) / len(done),
    "lone": [],
}}
for number, entry in enumerate(entries[{jobs}:], start={jobs}):
    (job,) = wait([request(entry, number).pk])
    report["lone"].append((job.finished_at - job.published_at).total_seconds())
    report.setdefault("lone_inference", []).append(job.timings["inference"])
print(json.dumps(report))
"""


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@contextmanager
def worker(env: dict[str, str], queues: str, log: Path):
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "worker", "--queues", queues],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=120)


def run_mode(work: Path, models: Path, manifest: Path, args, max_cases: int) -> dict:
    var = work / f"var-{max_cases}"
    env = {
        **os.environ,
        "TESSERA_VAR_DIR": str(var),
        "MLCORE_MODELS_DIR": str(models),
        "MLCORE_DEVICE": args.device,
        "TESSERA_BATCH_MAX_CASES": str(max_cases),
        "TESSERA_BATCH_WAIT_MS": str(args.wait_ms),
    }
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)  # the embedded defaults: each mode on its own platform
    manage(env, "migrate", "-v", "0")
    with ExitStack() as workers:
        workers.enter_context(worker(env, "cpu", work / f"cpu-{max_cases}.log"))
        workers.enter_context(worker(env, "gpu", work / f"gpu-{max_cases}.log"))
        manage(env, "shell", "-v", "0", "-c", SETUP)
        script = JOBS.format(manifest=str(manifest), jobs=args.jobs)
        return json.loads(manage(env, "shell", "-v", "0", "-c", script))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=96, help="jobs in the burst")
    parser.add_argument("--lone", type=int, default=7, help="lone jobs, one after another")
    parser.add_argument("--max-cases", type=int, default=16, help="N with micro-batching on")
    parser.add_argument("--wait-ms", type=float, default=50.0, help="T with micro-batching on")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        config = bench_config()
        config.name = "bench-pipeline"
        save_bundle(work / "models" / "bench", build_model(config), metrics={})
        manifest = write_dataset(
            work / "data", kind="clinic", cases=args.jobs + args.lone, seed=5, image_size=64
        )
        started = time.perf_counter()
        off = run_mode(work, work / "models", manifest, args, max_cases=1)
        on = run_mode(work, work / "models", manifest, args, max_cases=args.max_cases)
        total = time.perf_counter() - started

    print(
        f"{args.jobs} jobs at once (64 px CT + note + 3 s speech each), cpu worker (prefork) + "
        f"gpu worker (solo) on {args.device}; lone jobs: {args.lone}; run took {total:.0f} s"
    )
    for name, report in (
        ("off (N=1)", off),
        (f"on (N={args.max_cases}, T={args.wait_ms:g} ms)", on),
    ):
        print(
            f"micro-batching {name:24} {args.jobs / report['seconds']:7.2f} jobs/s   "
            f"mean batch {report['mean_batch']:5.1f}   succeeded {report['succeeded']}/{args.jobs}"
            f"   lone job median {statistics.median(report['lone']) * 1000:5.0f} ms "
            f"(inference stage {statistics.median(report['lone_inference']) * 1000:4.0f} ms)"
        )
    print(f"throughput on / off: {off['seconds'] / on['seconds']:.2f}x")
    for stage, key in (("end to end", "lone"), ("inference stage", "lone_inference")):
        delta = statistics.median(on[key]) - statistics.median(off[key])
        print(
            f"lone job median {stage}, on - off: {delta * 1000:+.0f} ms (T = {args.wait_ms:g} ms)"
        )
    print("(end to end includes the file-system broker's polling: up to 0.2 s per queue)")


if __name__ == "__main__":
    main()
