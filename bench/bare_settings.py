"""Tessera's settings with bench/bare_api.py's URLs (its own and the bare baseline's)."""

from tessera.settings import *  # noqa: F403 (every setting, as the platform runs)

ROOT_URLCONF = "bare_api"
