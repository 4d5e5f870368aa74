"""`make run`'s steps before the server starts, run as a new user runs them (their own processes,
embedded defaults): they print what happened and nothing a user cannot act on."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Servers named for the integration run are not the embedded defaults a new user gets.
NOT_INHERITED = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")


def test_setting_up_the_demo_prints_no_library_noise(tmp_path):
    """No torchao kernel notices, no torch deprecation lines, no progress bars for weights read
    from a local directory, no version banners."""
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    env |= {"TESSERA_VAR_DIR": str(tmp_path), "PYTHONPATH": "platform:."}
    output = ""
    for command in (
        ["migrate", "--noinput", "-v", "0"],
        ["train_demo_models", "--cases", "12", "--epochs", "1"],
        ["seed_demo"],
    ):
        done = subprocess.run(
            [sys.executable, str(REPO / "manage.py"), *command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        output += done.stdout + done.stderr
    assert "test macro-F1" in output
    assert "past visits analysed" in output
    for noise in ("torchao", "_pytree", "register_constant", "Loading weights", "AXES"):
        assert noise not in output, output
