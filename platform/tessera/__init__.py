"""Tessera's web platform: the Django project and its apps.

Entry points that start from platform/ (gunicorn --chdir platform, celery --workdir platform)
still need the repository root on sys.path for `mlcore` and `analytics`; importing this package
puts it there, once, for every entry point.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from tessera.celery import app as celery_app  # noqa: E402  (needs the path above)

__all__ = ["REPO_ROOT", "celery_app"]
