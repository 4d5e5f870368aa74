"""Settings come from the environment, with embedded defaults and a strict production mode."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PRINT_SETTINGS = (
    "from django.conf import settings as s; "
    "print(s.DATABASES['default']['ENGINE']); print(s.DATABASES['default']['NAME']); "
    "print(s.CELERY_BROKER_URL); print(s.MEDIA_ROOT); print(s.DEBUG)"
)


def run_manage(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def test_embedded_defaults_live_under_var(tmp_path):
    result = run_manage(
        "shell", "-v", "0", "-c", PRINT_SETTINGS, env={"TESSERA_VAR_DIR": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    engine, name, broker, media, debug = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert Path(name) == tmp_path / "tessera.sqlite3"
    assert broker.startswith("filesystem://")
    assert Path(media) == tmp_path / "media"
    assert debug == "True"
    assert (tmp_path / "celery" / "broker" / "queue").is_dir()


def test_production_parts_switch_on_from_the_environment(tmp_path):
    result = run_manage(
        "shell",
        "-v",
        "0",
        "-c",
        PRINT_SETTINGS,
        env={
            "TESSERA_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://tessera:secret@db.internal:5432/tessera",
            "CELERY_BROKER_URL": "redis://cache.internal:6379/0",
        },
    )
    assert result.returncode == 0, result.stderr
    engine, name, broker, _, _ = result.stdout.split()
    assert engine == "django.db.backends.postgresql"
    assert name == "tessera"
    assert broker == "redis://cache.internal:6379/0"
    assert not (tmp_path / "celery").exists(), "no file-system broker folders for a Redis broker"


def test_production_refuses_debug(tmp_path):
    result = run_manage(
        "check",
        env={
            "TESSERA_VAR_DIR": str(tmp_path),
            "DJANGO_ENV": "production",
            "DEBUG": "true",
            "SECRET_KEY": "x" * 60,
        },
    )
    assert result.returncode != 0
    assert "refuses to start with DEBUG on" in result.stderr


def test_production_refuses_the_embedded_secret_key(tmp_path):
    result = run_manage(
        "check",
        env={"TESSERA_VAR_DIR": str(tmp_path), "DJANGO_ENV": "production", "DEBUG": "false"},
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_with_its_own_secret_starts(tmp_path):
    result = run_manage(
        "check",
        env={
            "TESSERA_VAR_DIR": str(tmp_path),
            "DJANGO_ENV": "production",
            "SECRET_KEY": "k3y-" * 16,
            "ALLOWED_HOSTS": "tessera.example.org",
        },
    )
    assert result.returncode == 0, result.stderr
