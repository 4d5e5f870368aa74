"""`seed_demo` builds the demo clinic and school through the real services, and is idempotent."""

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.urls import reverse

from tessera.accounts.models import Membership, Organization, Role
from tessera.demo import DEMO_PASSWORD, PATIENT_COUNT, STUDENT_COUNT
from tessera.records.models import MediaAsset, MediaKind, Patient, Student
from tessera.records.storage import content_store
from tessera.records.uploads import validate_upload

pytestmark = pytest.mark.django_db


def counts():
    return {
        model.__name__: model.objects.count()
        for model in (Organization, Membership, Patient, Student, MediaAsset)
    }


def test_seed_demo_creates_every_role_and_the_records(capsys, client):
    call_command("seed_demo")
    output = capsys.readouterr().out
    assert DEMO_PASSWORD in output
    assert "dr-okafor" in output
    assert "ms-lindqvist" in output

    clinic = Organization.objects.get(kind="clinic")
    school = Organization.objects.get(kind="school")
    assert set(Membership.objects.values_list("role", flat=True)) == set(Role.values)
    assert Patient.objects.filter(organization=clinic).count() == PATIENT_COUNT
    assert Student.objects.filter(organization=school).count() == STUDENT_COUNT
    kinds = dict(MediaAsset.objects.values_list("kind").annotate(n=Count("id")))
    assert kinds == {
        MediaKind.DICOM: PATIENT_COUNT,
        MediaKind.CLINICAL_NOTE: PATIENT_COUNT,
        MediaKind.SPEECH: PATIENT_COUNT,
        MediaKind.LEARNER_TEXT: STUDENT_COUNT,
        MediaKind.LEARNER_AUDIO: STUDENT_COUNT,
    }
    signed_in = client.post(reverse("login"), {"username": "dr-okafor", "password": DEMO_PASSWORD})
    assert signed_in.status_code == 302, "the demo password signs in"
    assert Membership.objects.filter(user__username="analyst").count() == 2


def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    first = counts()
    call_command("seed_demo")
    assert counts() == first


def test_demo_dicom_is_well_formed_and_passes_validation():
    call_command("seed_demo")
    asset = MediaAsset.objects.filter(kind=MediaKind.DICOM).first()
    with content_store().path(asset.sha256).open("rb") as stored:
        accepted = validate_upload(kind=MediaKind.DICOM, file=stored)
    meta = accepted.metadata
    assert meta["sop_class"] == "CT Image Storage"
    assert meta["bits_allocated"] == 16
    assert meta["rescale_slope"] == 1.0
    assert meta["rescale_intercept"] == -1024.0
    assert meta["pixel_spacing_mm"] == [0.7, 0.7]


def test_seed_demo_refuses_production(settings):
    from django.core.management import CommandError

    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="not in production"):
        call_command("seed_demo")
