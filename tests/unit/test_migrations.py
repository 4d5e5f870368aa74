"""The models and their migrations agree, and Django's system checks pass."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    except SystemExit as missing:
        pytest.fail(f"makemigrations --check found changes without a migration ({missing})")


def test_system_checks_pass():
    call_command("check", fail_level="WARNING")
