"""Health probes of the processes without a web page: beat answers whether it has sent its
sweepers lately (`manage.py beat_alive`, read from the schedule in the database). (Workers'
readiness, `manage.py worker_ready`, needs Redis: tests/integration/test_worker.py.)"""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

pytestmark = pytest.mark.django_db


def sweeper(last_run_at):
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(
        name="sweep", task="tessera.jobs.sweep", interval=every, last_run_at=last_run_at
    )


def test_beat_is_alive_while_it_sends_its_sweepers(capsys):
    sweeper(timezone.now() - timedelta(minutes=4))  # beat writes its last runs every 3 min
    call_command("beat_alive")
    assert "beat sent a periodic task" in capsys.readouterr().out


def test_beat_that_stopped_sending_is_not(settings):
    settings.TESSERA_SWEEP_EVERY = 60
    sweeper(timezone.now() - timedelta(minutes=10))
    with pytest.raises(CommandError, match="beat last sent a periodic task at"):
        call_command("beat_alive")


def test_beat_that_never_sent_is_not():
    with pytest.raises(CommandError, match="has not sent any periodic task yet"):
        call_command("beat_alive")
