"""Against the real PostgreSQL named by DATABASE_URL: constraints hold under concurrency."""

import os
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections

from tessera.records.models import Patient
from tessera.records.services import create_patient

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
        reason="DATABASE_URL does not point at PostgreSQL (postgres://…)",
    ),
]


@pytest.mark.django_db
def test_the_suite_really_runs_on_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("show server_version_num")
        assert int(cursor.fetchone()[0]) >= 130000


@pytest.mark.django_db(transaction=True)
def test_two_clerks_registering_the_same_mrn_at_once_make_one_patient(clinic):
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def register(name: str) -> None:
        try:
            barrier.wait()
            create_patient(organization=clinic, mrn="SAME-1", full_name=name)
            outcomes.append("created")
        except (IntegrityError, ValidationError):
            outcomes.append("refused")
        finally:
            connections.close_all()

    clerks = [threading.Thread(target=register, args=(name,)) for name in ("First", "Second")]
    for clerk in clerks:
        clerk.start()
    for clerk in clerks:
        clerk.join()

    assert sorted(outcomes) == ["created", "refused"]
    assert Patient.objects.filter(organization=clinic, mrn="SAME-1").count() == 1
