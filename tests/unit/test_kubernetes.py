"""deploy/kubernetes: every manifest is valid against the newest Kubernetes schemas that
kubernetes-validate ships (strict: no unknown fields), and what the manifests name exists in the
code: the probes' paths answer, the workers' queues are Tessera's and each has a worker, the
commands are manage.py's, every environment variable is a setting, beat is one and never two,
and the GPU autoscaler's backlog query runs against the real tables."""

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.core.management import get_commands
from django.db import connection
from django.test import Client

from tessera.celery import QUEUE_NAMES

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes" / "base"
OVERLAY = REPO / "deploy" / "kubernetes" / "overlays" / "production"
SETTINGS_SOURCES = [REPO / "platform" / "tessera" / "settings.py", *REPO.glob("mlcore/**/*.py")]
KEDA = "keda.sh/v1alpha1"  # a custom resource: Kubernetes' schemas do not know it
# read from the environment by boto3 itself, not by a setting
BOTO3_ENVIRONMENT = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (its kustomize) is not installed"
)


def documents() -> list[dict]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return [
        document
        for name in kustomization["resources"]
        for document in yaml.safe_load_all((BASE / name).read_text())
    ]


def of_kind(kind: str) -> list[dict]:
    return [document for document in documents() if document["kind"] == kind]


def containers() -> list[dict]:
    return [
        container
        for document in documents()
        if document["kind"] in {"Deployment", "Job"}
        for container in document["spec"]["template"]["spec"]["containers"]
    ]


def test_the_base_lists_every_manifest_and_the_overlay_builds_on_it():
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        path.name for path in BASE.glob("*.yaml") if path.name != "kustomization.yaml"
    )
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../base"]
    [secrets] = overlay["secretGenerator"]
    [base_secret] = of_kind("Secret")
    assert secrets["name"] == base_secret["metadata"]["name"]
    assert {entry.split("=")[0] for entry in secrets["files"]} == set(base_secret["stringData"])


@pytest.mark.parametrize(
    "document",
    [document for document in documents() if document["apiVersion"] != KEDA],
    ids=lambda document: f"{document['kind']}-{document['metadata']['name']}",
)
def test_each_manifest_is_valid_for_current_kubernetes(document):
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(document, version, strict=True)  # raises on any fault


def test_the_http_probes_are_served_without_signing_in(db):
    paths = {
        probe["httpGet"]["path"]
        for container in containers()
        for kind in ("livenessProbe", "readinessProbe")
        if "httpGet" in (probe := container.get(kind, {}))
    }
    assert paths == {"/healthz", "/readyz"}
    for path in paths:
        assert Client().get(path).status_code in {200, 503}, f"{path} is a probe, not a 404"


def test_every_queue_has_a_worker_whose_readiness_asks_for_its_own_queues():
    taken = set()
    for container in containers():
        command = container["command"]
        if command[:3] != ["python", "manage.py", "worker"]:
            continue
        queues = command[command.index("--queues") + 1]
        taken |= set(queues.split(","))
        probe = container["readinessProbe"]["exec"]["command"]
        assert probe == ["python", "manage.py", "worker_ready", "--queues", queues]
    assert taken == set(QUEUE_NAMES)


def test_the_gpu_worker_asks_for_a_gpu_and_scales_on_the_databases_backlog(db):
    [gpu] = [c for c in containers() if "gpu" in c["command"] and "worker" in c["command"]]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "solo" in gpu["command"], "never fork after CUDA starts"
    [scaler] = [document for document in documents() if document["apiVersion"] == KEDA]
    assert scaler["spec"]["scaleTargetRef"]["name"] == "tessera-worker-gpu"
    [trigger] = scaler["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    with connection.cursor() as cursor:  # the tables and columns it names exist
        cursor.execute(trigger["metadata"]["query"])
        assert cursor.fetchone() == (0,)


def test_beat_is_one_and_a_rollout_never_runs_two():
    [beat] = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "tessera-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert not [h for h in of_kind("HorizontalPodAutoscaler") if "beat" in h["metadata"]["name"]]


def test_the_commands_exist_and_every_environment_variable_is_a_setting():
    commands = get_commands()
    for container in containers():
        command = container["command"]
        if command[:2] == ["python", "manage.py"]:
            assert command[2] in commands, command
        for kind in ("livenessProbe", "readinessProbe"):
            probe = container.get(kind, {}).get("exec", {}).get("command", [])
            if probe[:2] == ["python", "manage.py"]:
                assert probe[2] in commands, probe
    read = "\n".join(path.read_text() for path in SETTINGS_SOURCES)
    named = {
        variable["name"] for container in containers() for variable in container.get("env", [])
    }
    for document in of_kind("ConfigMap"):
        named |= set(document["data"])
    for document in of_kind("Secret"):
        named |= set(document["stringData"])
    unread = sorted(name for name in named if f'"{name}"' not in read)
    assert not unread, f"set in the manifests but read by no setting: {unread}"


def rendered(overlay: str, tmp_path: Path) -> list[dict]:
    """`kubectl kustomize` of an overlay, in a copy given the secret files that a real one keeps
    out of the repository."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(REPO / "deploy" / "kubernetes", copy)
    for kustomization in copy.glob("overlays/*/kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("secretGenerator", []):
            for entry in generator["files"]:
                secret = kustomization.parent / entry.split("=", 1)[1]
                secret.parent.mkdir(parents=True, exist_ok=True)
                secret.write_text("not-a-real-secret")
    done = subprocess.run(
        ["kubectl", "kustomize", str(copy / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


@needs_kubectl
@pytest.mark.parametrize("overlay", ["production", "production-s3"])
def test_each_overlay_builds_into_valid_manifests(overlay, tmp_path):
    built = rendered(overlay, tmp_path)
    version = kubernetes_validate.latest_version()
    for document in built:
        if document["apiVersion"] != KEDA:
            kubernetes_validate.validate(document, version, strict=True)
    assert {document["metadata"].get("namespace") for document in built} == {"tessera"}


@needs_kubectl
def test_with_the_s3_component_files_live_in_the_bucket_and_no_volume_is_shared(tmp_path):
    built = rendered("production-s3", tmp_path)
    [config] = [document for document in built if document["kind"] == "ConfigMap"]
    assert config["data"]["TESSERA_STORAGE"] == "s3"
    [secret] = [document for document in built if document["kind"] == "Secret"]
    assert set(secret["data"]) >= BOTO3_ENVIRONMENT
    assert {"SECRET_KEY", "DATABASE_URL"} <= set(secret["data"]), "merged into, not replaced"
    assert not [document for document in built if document["kind"] == "PersistentVolumeClaim"]
    read = "\n".join(path.read_text() for path in SETTINGS_SOURCES)
    unread = sorted(name for name in config["data"] if f'"{name}"' not in read)
    assert not unread, f"set by the component but read by no setting: {unread}"
    for document in built:
        if document["kind"] != "Deployment":
            continue
        pod = document["spec"]["template"]["spec"]
        assert all("persistentVolumeClaim" not in volume for volume in pod.get("volumes", []))
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] == "models":  # each pod fetches the bundles it serves there
                    assert not mount.get("readOnly"), document["metadata"]["name"]
