"""The analysis pipeline through real Celery workers: where a job's time goes, how fast jobs
move with micro-batching off (one case per forward pass) and on (up to N cases, waiting at most
T ms), a lone job's latency in each mode, and the platform's efficiency against a plain loop
that makes the same preprocessing and engine calls, on the same cores, in the same run.

Each stack is measured on its own fresh platform: "embedded" (SQLite and the file-system broker)
and "production" (a throwaway PostgreSQL database and Redis on this machine), each with a `cpu`
worker (prefork) and a `gpu` worker (solo) as in production, sharing this host's cores (by
default one process each with one torch thread: on 2 cores nothing is oversubscribed), and the
model of the demo's shape (DenseNet on 64 px CT, the shipped MiniLM, a log-mel CNN; untrained
weights do the same work, and its heatmaps count as trusted so that Grad-CAM runs as it does
for the demo's model). The direct loop runs in one process with torch's default threads.

Per stack and mode: a burst of jobs, each its own visit with a distinct CT, note and recording,
committed at once ("cold": every file decoded), then the same visits analysed again at once
("cached": the features come from the cache, so inference dominates), then lone jobs one after
another. Throughput counts from the burst's commit to its last finish. Transcription is its own
queue and benchmark (bench/asr.py): jobs here do not wait for transcripts.

The breakdown is each job's own `timings` (written by the workers: tessera.jobs.models.Timing),
as the mean and 95th percentile per job; a batch's forward pass and explanation are shared by
its cases, so each job is charged its share. "unaccounted" is the rest of the job's time from
the commit to its finish (hand-overs, the broker's polling, waiting behind other jobs' work
that is not its own). With --profile DIR, py-spy samples both workers during each stack's
batching-on run and the share of samples in each part is printed (the stacks stay in DIR).

Usage: .venv/bin/python bench/pipeline.py [--jobs 96] [--lone 7] [--max-cases 16]
    [--wait-ms 50] [--device cpu|cuda] [--cpu-processes 1] [--torch-threads 1]
    [--broker filesystem|redis --database sqlite|postgres]
    [--postgres postgres://postgres@127.0.0.1:5432] [--redis redis://127.0.0.1:6379/9]
    [--profile DIR]
(with neither --broker nor --database, both stacks are measured)
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from _common import ROOT, throwaway_database
from inference import bench_config

from mlcore.data import Case
from mlcore.engine import InferenceEngine
from mlcore.model import build_model
from mlcore.registry import save_bundle
from mlcore.synthetic import write_dataset

# every heatmap is computed, as for a model whose heatmaps passed the pointing game
TRUSTED_HEATMAPS = {
    "pointing_game": {
        "hit_rate": 1.0,
        "cases": 1000,
        "interval": [0.99, 1.0],
        "trusted_from": 0.0,
        "trusted_after": 0,
    }
}

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

def visit_for(entry, number):
    patient = create_patient(organization=clinic, mrn=f"{{number}}", full_name=f"P {{number}}")
    visit = create_encounter(patient=patient, occurred_at=timezone.now())
    for kind, key in (("dicom", "image"), ("clinical_note", "text"), ("speech", "audio")):
        with (data / entry[key]).open("rb") as file:
            add_media(attached_to=visit, kind=kind, file=file)
    return visit

def wait(ids):
    while AnalysisJob.objects.filter(pk__in=ids).exclude(status__in=FINISHED).exists():
        time.sleep(0.02)
    return list(AnalysisJob.objects.filter(pk__in=ids))

def burst(visits):
    with transaction.atomic():  # every job is published at once, when this commits
        jobs = [request_analysis(attached_to=visit, task="all") for visit in visits]
    committed = timezone.now()
    done = wait([job.pk for job in jobs])
    return {{
        "seconds": (max(job.finished_at for job in done) - committed).total_seconds(),
        "succeeded": sum(job.status == "succeeded" for job in done),
        "jobs": [
            {{**job.timings, "end to end": (job.finished_at - committed).total_seconds()}}
            for job in done
        ],
    }}

with transaction.atomic():
    visits = [visit_for(entry, number) for number, entry in enumerate(entries[:{jobs}])]
report = {{"cold": burst(visits), "cached": burst(visits), "lone": [], "lone_inference": []}}
for number, entry in enumerate(entries[{jobs}:], start={jobs}):
    visit = visit_for(entry, number)
    started = time.monotonic()
    (job,) = wait([request_analysis(attached_to=visit, task="all").pk])
    report["lone"].append(time.monotonic() - started)
    report["lone_inference"].append(job.timings["inference"])
print(json.dumps(report))
"""

# The breakdown's parts: (label, how a job's timings give its share).
PARTS = [
    ("broker wait", lambda t: t.get("queued", 0) + t.get("waiting for inference", 0)),
    ("claims and hand-overs", lambda t: t.get("claims", 0)),
    ("feature cache I/O", lambda t: t.get("feature cache", 0)),
    ("preprocessing (decoding)", lambda t: t.get("decoding", 0)),
    ("waiting for company (T)", lambda t: t.get("waiting for company", 0)),
    ("inference (forward, share)", lambda t: t.get("forward", 0) / t["batch_cases"]),
    ("Grad-CAM and explanation (share)", lambda t: t.get("explanation", 0) / t["batch_cases"]),
    ("result write, audit, webhooks", lambda t: t.get("result write", 0)),
]
# Where py-spy's samples are counted: (label, a frame that marks it).
PROFILE_PARTS = [
    ("decoding (Preprocessor)", "__call__ (mlcore/data.py"),
    ("feature cache", "_load (tessera/jobs/features.py"),
    ("forward pass", "forward (mlcore/engine.py"),
    ("explanation", "_write_evidence (mlcore/engine.py"),
    ("result write", "complete_job (tessera/jobs/services/results.py"),
    ("claims", "claim_for_"),
    ("database queries", "CursorWrapper._execute (django/db/backends/utils.py"),
    ("publishing to the broker", "publish (kombu/messaging.py"),
]


@dataclass(frozen=True)
class Stack:
    name: str
    env: dict[str, str]


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
def worker(env: dict[str, str], queues: str, log: Path, *options: str):
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "worker", "--queues", queues, *options],
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


@contextmanager
def sampled(process: subprocess.Popen, out: Path):
    """py-spy sampling `process` and its children (prefork) until the block ends, into `out`
    (.txt: collapsed stacks, which flamegraph.pl or speedscope draw)."""
    recorder = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(process.pid),
            "--subprocesses",
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out.with_suffix(".txt")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=120)


def profile_shares(raw: Path) -> dict[str, float]:
    """Each part's share of the samples (a sample counts for every part on its stack)."""
    counts, total = dict.fromkeys((label for label, _ in PROFILE_PARTS), 0), 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        total += int(number)
        for label, frame in PROFILE_PARTS:
            if frame in stack:
                counts[label] += int(number)
    return {label: count / max(total, 1) for label, count in counts.items()}


def run_mode(stack: Stack, work: Path, manifest: Path, args, *, max_cases: int) -> dict:
    """One stack with one batching setting, on a platform of its own (and a database of its
    own, for production)."""
    if stack.name != "production":
        return _run_mode(stack.env, stack.name, work, manifest, args, max_cases=max_cases)
    with throwaway_database(args.postgres) as database:
        env = {**stack.env, "DATABASE_URL": database}
        return _run_mode(env, stack.name, work, manifest, args, max_cases=max_cases)


def _run_mode(
    stack_env: dict[str, str], name: str, work: Path, manifest: Path, args, *, max_cases: int
) -> dict:
    var = work / f"var-{name}-{max_cases}"
    env = {
        **stack_env,
        "TESSERA_VAR_DIR": str(var),
        "MLCORE_MODELS_DIR": str(work / "models"),
        "MLCORE_DEVICE": args.device,
        "TESSERA_BATCH_MAX_CASES": str(max_cases),
        "TESSERA_BATCH_WAIT_MS": str(args.wait_ms),
        "TESSERA_TRANSCRIPT_WAIT_SECONDS": "0",
        "TESSERA_TORCH_THREADS": str(args.torch_threads),
    }
    manage(env, "migrate", "-v", "0")
    profiling = args.profile is not None and max_cases > 1
    with ExitStack() as running:
        cpu = running.enter_context(
            worker(
                env,
                "cpu",
                work / f"cpu-{name}-{max_cases}.log",
                f"--concurrency={args.cpu_processes}",
            )
        )
        gpu = running.enter_context(worker(env, "gpu", work / f"gpu-{name}-{max_cases}.log"))
        manage(env, "shell", "-v", "0", "-c", SETUP)
        script = JOBS.format(manifest=str(manifest), jobs=args.jobs)
        with (
            sampled(cpu, args.profile / f"{name}-cpu") if profiling else nullcontext(),
            sampled(gpu, args.profile / f"{name}-gpu") if profiling else nullcontext(),
        ):
            return json.loads(manage(env, "shell", "-v", "0", "-c", script))


def direct_loop(bundle: Path, manifest: Path, args) -> dict[str, float]:
    """Jobs per second of the same preprocessing and engine calls in a plain loop: no Celery,
    no database, batches of N; cold (decoding included) and with the features at hand."""
    engine = InferenceEngine(bundle, device=args.device)
    entries = [json.loads(line) for line in manifest.read_text().splitlines()][: args.jobs]
    data = manifest.parent
    cases = [
        Case(
            id=str(number),
            image=(data / entry["image"]).read_bytes(),
            text=(data / entry["text"]).read_text(),
            audio=(data / entry["audio"]).read_bytes(),
        )
        for number, entry in enumerate(entries)
    ]
    engine.predict_features([engine.prepare(cases[0])])  # warm, as the workers are
    started = time.perf_counter()
    features = [engine.prepare(case) for case in cases]
    decoded = time.perf_counter()
    for start in range(0, len(features), args.max_cases):
        engine.predict_features(features[start : start + args.max_cases])
    finished = time.perf_counter()
    return {"cold": len(cases) / (finished - started), "cached": len(cases) / (finished - decoded)}


def stacks_to_measure(args) -> list[Stack]:
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    }
    embedded = Stack("embedded", base)
    production = Stack(
        "production",
        {**base, "CELERY_BROKER_URL": args.redis, "CELERY_RESULT_BACKEND": args.redis},
    )
    if args.broker is None and args.database is None:
        return [embedded, production]
    if (args.broker, args.database) == ("redis", "postgres"):
        return [production]
    if (args.broker or "filesystem", args.database or "sqlite") == ("filesystem", "sqlite"):
        return [embedded]
    sys.exit("measure filesystem + sqlite (embedded) or redis + postgres (production)")


def print_stack(stack: Stack, off: dict, on: dict, direct: dict[str, float], args) -> None:
    jobs = args.jobs
    print(f"\n== {stack.name} ==")
    for name, report in (
        ("off (N=1)", off),
        (f"on (N={args.max_cases}, T={args.wait_ms:g} ms)", on),
    ):
        for burst in ("cold", "cached"):
            result = report[burst]
            batches = [job["batch_cases"] for job in result["jobs"]]
            print(
                f"micro-batching {name:24} {burst:6} {jobs / result['seconds']:7.2f} jobs/s   "
                f"mean batch {statistics.mean(batches):5.1f}   "
                f"succeeded {result['succeeded']}/{jobs}"
            )
    for burst in ("cold", "cached"):
        print(
            f"micro-batching on / off, {burst:6}: "
            f"{off[burst]['seconds'] / on[burst]['seconds']:.2f}x"
        )
    for burst in ("cold", "cached"):
        pipeline = jobs / on[burst]["seconds"]
        print(
            f"efficiency (pipeline / direct loop), {burst:6}: {pipeline:.2f} / "
            f"{direct[burst]:.2f} jobs/s = {pipeline / direct[burst]:.2f}"
        )
    for key, label in (("lone", "end to end"), ("lone_inference", "inference stage")):
        delta = statistics.median(on[key]) - statistics.median(off[key])
        print(
            f"lone job median {label}: off {statistics.median(off[key]) * 1000:.0f} ms, "
            f"on {statistics.median(on[key]) * 1000:.0f} ms, added {delta * 1000:+.0f} ms "
            f"(T = {args.wait_ms:g} ms)"
        )
    print("where a job's time goes, batching on (seconds per job: mean / p95)")
    print(f"  {'':34} {'cold':>17} {'cached':>17}")
    rows = [*PARTS, ("end to end", lambda t: t["end to end"])]
    for label, share in rows:
        cells = [
            _mean_p95([share(job) for job in on[burst]["jobs"]]) for burst in ("cold", "cached")
        ]
        print(f"  {label:34} {cells[0]:>17} {cells[1]:>17}")
    cells = [
        _mean_p95(
            [job["end to end"] - sum(share(job) for _, share in PARTS) for job in on[burst]["jobs"]]
        )
        for burst in ("cold", "cached")
    ]
    print(f"  {'unaccounted':34} {cells[0]:>17} {cells[1]:>17}")
    if args.profile is not None:
        for queue in ("cpu", "gpu"):
            shares = profile_shares(args.profile / f"{stack.name}-{queue}.txt")
            listed = ", ".join(f"{label} {share:.0%}" for label, share in shares.items())
            print(f"py-spy, {queue} worker (share of its busy samples): {listed}")


def _mean_p95(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.mean(values):.3f} / {p95:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=96, help="jobs in the burst")
    parser.add_argument("--lone", type=int, default=7, help="lone jobs, one after another")
    parser.add_argument("--max-cases", type=int, default=16, help="N with micro-batching on")
    parser.add_argument("--wait-ms", type=float, default=50.0, help="T with micro-batching on")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--cpu-processes", type=int, default=1, help="the cpu worker's prefork children"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="TESSERA_TORCH_THREADS of every worker process (0: its share of the cores)",
    )
    parser.add_argument("--broker", choices=["filesystem", "redis"])
    parser.add_argument("--database", choices=["sqlite", "postgres"])
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--profile", type=Path, help="sample the workers with py-spy")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    stacks = stacks_to_measure(args)
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        config = bench_config()
        config.name = "bench-pipeline"
        save_bundle(work / "models" / "bench", build_model(config), metrics=TRUSTED_HEATMAPS)
        manifest = write_dataset(
            work / "data", kind="clinic", cases=args.jobs + args.lone, seed=5, image_size=64
        )
        started = time.perf_counter()
        direct = direct_loop(work / "models" / "bench", manifest, args)
        measured = [
            (
                stack,
                run_mode(stack, work, manifest, args, max_cases=1),
                run_mode(stack, work, manifest, args, max_cases=args.max_cases),
            )
            for stack in stacks
        ]
        total = time.perf_counter() - started

    threads = args.torch_threads or "its share of the cores"
    print(
        f"{args.jobs} jobs at once (64 px CT + note + 3 s speech each), cpu worker (prefork, "
        f"{args.cpu_processes} processes) + gpu worker (solo) on {args.device}, torch threads "
        f"per process: {threads}, {os.cpu_count()} cores; lone jobs: {args.lone}; "
        f"run took {total:.0f} s"
    )
    print(
        f"direct loop (same calls, no Celery, no database, batches of {args.max_cases}): "
        f"{direct['cold']:.2f} jobs/s cold, {direct['cached']:.2f} jobs/s with the features "
        "at hand"
    )
    for stack, off, on in measured:
        print_stack(stack, off, on, direct, args)


if __name__ == "__main__":
    main()
