"""Two-factor sign-in: an organization that requires it for clinicians holds them at setting up an
authenticator app; after that, the password alone opens no page and no API call, a wrong or
replayed code is refused, and wrong codes slow the next try. Other roles may opt in."""

import re

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tessera.accounts.models import Role
from tessera.records.services import create_patient
from tests.unit.api import assert_problem, client_for

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-42"


@pytest.fixture
def strict_clinic(clinic):
    clinic.require_two_factor_for_clinicians = True
    clinic.save()
    return clinic


@pytest.fixture
def patient(clinic):
    return create_patient(organization=clinic, mrn="2FA-1", full_name="Ines Varga")


@pytest.fixture
def clinician(strict_clinic, make_user):
    return make_user("tf-doc", organization=strict_clinic)


def sign_in(client, user):
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, "the password is right"
    return response


def code_of(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, t0=device.t0, step=device.step, drift=steps_ahead):06d}"


def enrol(client, user) -> TOTPDevice:
    page = client.get(reverse("two_factor"))
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(reverse("two_factor"), {"code": code_of(device)})
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    return device


def test_a_clinician_of_a_strict_organization_must_set_up_an_app_before_any_record(
    client, clinician, patient
):
    sign_in(client, clinician)
    page = client.get(reverse("patient", args=[patient.pk]))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("two_factor"))
    assert f"next=%2Fpatients%2F{patient.pk}%2F" in page["Location"]
    api = client.get(f"/api/v1/patients/{patient.pk}/")
    assert "set up an authenticator" in assert_problem(api, 403, "two_factor_required")["detail"]
    assert client.get("/admin/").status_code == 302

    setup = client.get(reverse("two_factor"))
    assert b"<svg" in setup.content, "a QR code, drawn on the server"
    secret = re.search(rb'id="two-factor-secret">([A-Z2-7 ]+)<', setup.content).group(1)
    device = TOTPDevice.objects.get(user=clinician)
    assert secret.replace(b" ", b"").decode() in device.config_url

    wrong = client.post(reverse("two_factor"), {"code": "000000"})
    assert wrong.status_code == 422
    assert not TOTPDevice.objects.get(user=clinician).confirmed
    device.throttle_reset()

    done = client.post(
        reverse("two_factor"),
        {"code": code_of(device), "next": reverse("patient", args=[patient.pk])},
    )
    assert done["Location"] == reverse("patient", args=[patient.pk])
    assert client.get(reverse("patient", args=[patient.pk])).status_code == 200
    assert client.get(f"/api/v1/patients/{patient.pk}/").status_code == 200


def test_the_password_alone_opens_nothing_once_an_app_is_set_up(
    client, clinician, patient, django_user_model
):
    sign_in(client, clinician)
    device = enrol(client, clinician)
    client.post(reverse("logout"))

    sign_in(client, clinician)
    page = client.get(reverse("patient", args=[patient.pk]))
    assert page["Location"].startswith(reverse("two_factor_verify"))
    assert client.get(reverse("two_factor")).status_code == 302, "no new app without the code"
    api = client.get(f"/api/v1/patients/{patient.pk}/")
    assert "enter the code" in assert_problem(api, 403, "two_factor_required")["detail"]

    wrong = client.post(reverse("two_factor_verify"), {"code": "123456"})
    assert wrong.status_code == 422
    assert b"not right" in wrong.content
    right_after_failure = client.post(reverse("two_factor_verify"), {"code": code_of(device)})
    assert right_after_failure.status_code == 422, "a wrong code makes the next try wait"
    device.throttle_reset()

    fresh = code_of(device, steps_ahead=1)  # the next time step: not used yet
    verified = client.post(
        reverse("two_factor_verify"),
        {"code": fresh, "next": reverse("patient", args=[patient.pk])},
    )
    assert verified["Location"] == reverse("patient", args=[patient.pk])
    assert client.get(reverse("patient", args=[patient.pk])).status_code == 200

    client.post(reverse("logout"))
    sign_in(client, clinician)
    replay = client.post(reverse("two_factor_verify"), {"code": fresh})
    assert replay.status_code == 422, "a code works once"
    assert client.get(reverse("patient", args=[patient.pk])).status_code == 302


def test_the_verify_page_never_sends_anyone_off_site(client, clinician):
    sign_in(client, clinician)
    device = enrol(client, clinician)
    client.post(reverse("logout"))
    sign_in(client, clinician)
    response = client.post(
        reverse("two_factor_verify"),
        {"code": code_of(device, steps_ahead=1), "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_only_clinicians_are_held_and_others_may_opt_in(client, strict_clinic, make_user, patient):
    teacher_like = make_user("tf-analyst", organization=strict_clinic, role=Role.ANALYST)
    sign_in(client, teacher_like)
    assert client.get(reverse("home")).status_code == 200, "analysts are not required"
    assert b"Set it up" in client.get(reverse("settings")).content

    enrol(client, teacher_like)
    client.post(reverse("logout"))
    sign_in(client, teacher_like)
    assert client.get(reverse("home"))["Location"].startswith(reverse("two_factor_verify"))


def test_a_required_app_cannot_be_turned_off_but_an_optional_one_can(
    client, clinician, strict_clinic, make_user
):
    sign_in(client, clinician)
    enrol(client, clinician)
    client.post(reverse("two_factor"), {"action": "remove"})
    assert TOTPDevice.objects.filter(user=clinician, confirmed=True).exists()

    strict_clinic.require_two_factor_for_clinicians = False
    strict_clinic.save()
    client.post(reverse("two_factor"), {"action": "remove"})
    assert not TOTPDevice.objects.filter(user=clinician).exists()


def test_an_api_token_is_not_held(clinician, patient):
    response = client_for(clinician).get(f"/api/v1/patients/{patient.pk}/")
    assert response.status_code == 200, "tokens are issued from a verified session"


def test_an_organization_admin_resets_a_lost_app_only_for_their_own_staff(
    client, clinician, strict_clinic, other_clinic, make_user
):
    sign_in(client, clinician)
    enrol(client, clinician)
    changelist = reverse("admin:auth_user_changelist")
    action = {"action": "reset_two_factor", "_selected_action": [clinician.pk]}

    outsider = make_user("tf-other-admin", organization=other_clinic, role=Role.ORG_ADMIN)
    client.force_login(outsider)
    client.post(changelist, action)
    assert TOTPDevice.objects.filter(user=clinician).exists(), "not their staff"

    own_admin = make_user("tf-admin", organization=strict_clinic, role=Role.ORG_ADMIN)
    client.force_login(own_admin)
    client.post(changelist, action)
    assert not TOTPDevice.objects.filter(user=clinician).exists()
