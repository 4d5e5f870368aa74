"""The layout keeps Python's standard `platform` module reachable and the core Django-free."""

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_platform_is_the_standard_library_module_inside_the_project():
    import platform

    import tessera  # the project is loaded, platform/ is on sys.path

    assert tessera.REPO_ROOT == REPO
    assert Path(platform.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    assert platform.python_version().startswith("3.")


def test_platform_is_the_standard_module_for_manage_py():
    # The same check through the real entry point, which is what a user runs.
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-v",
            "0",
            "-c",
            "import platform, uuid; print(platform.__file__)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()).parent == Path(sysconfig.get_paths()["stdlib"])


def test_source_root_is_not_a_package_and_tests_is():
    assert not (REPO / "platform" / "__init__.py").exists()
    assert (REPO / "tests" / "__init__.py").exists()


@pytest.mark.parametrize(
    "path",
    [
        "manage.py",
        "platform/tessera",
        "analytics",
        "mlcore",
        "templates",
        "tests",
        "bench",
        "docker-compose.yml",
        "Dockerfile",
        "README.md",
        "Makefile",
        "pyproject.toml",
        "docs/architecture.md",
        ".ci/run",
    ],
)
def test_design_layout_exists(path):
    assert (REPO / path).exists()


FORBIDDEN_IN_MLCORE = ("django", "celery", "tessera", "analytics")


def _imported_modules(source: Path):
    tree = ast.parse(source.read_text(), filename=str(source))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_mlcore_module_imports_django_celery_or_the_platform():
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in sorted((REPO / "mlcore").rglob("*.py"))
        for module in _imported_modules(path)
        if module.split(".")[0] in FORBIDDEN_IN_MLCORE
    ]
    assert offenders == []


def test_the_web_process_publishes_jobs_without_loading_the_model_code():
    """A web worker that imported torch to publish its first job answered it 14 s late. Pages
    draw DICOM previews and heatmaps with pydicom and Pillow alone."""
    script = (
        "import sys\n"
        "from tessera.wsgi import application\n"
        "from django.urls import resolve\n"
        "import tessera.jobs.tasks, tessera.webhooks.tasks\n"
        "resolve('/api/v1/jobs/')\n"
        "resolve('/patients/1/')\n"
        "from tessera.dashboards.imaging import dicom_png, heatmap_png\n"
        "heatmap_png([[0.0, 1.0]])\n"
        "print(sorted({'torch', 'monai', 'transformers', 'librosa'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'platform'}:{REPO}"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
