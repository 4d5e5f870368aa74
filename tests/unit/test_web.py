"""The login page and the signed-in home page."""

import pytest
from django.urls import reverse

from tessera.accounts.models import Role
from tessera.records.services import create_patient

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_the_login_page_uses_only_self_hosted_assets(client):
    page = client.get(reverse("login")).content.decode()
    assert "<form" in page
    assert 'name="password"' in page
    assert "http://" not in page
    assert "https://" not in page


def test_a_wrong_password_is_refused(clinic, make_user, client):
    make_user("doc", organization=clinic)
    response = client.post(reverse("login"), {"username": "doc", "password": "wrong"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_a_signed_in_user_sees_only_their_organizations(clinic, other_clinic, make_user, client):
    make_user("doc", organization=clinic, role=Role.CLINICIAN)
    create_patient(organization=clinic, mrn="1", full_name="Visible")
    create_patient(organization=other_clinic, mrn="1", full_name="Hidden")
    response = client.post(
        reverse("login"), {"username": "doc", "password": "correct-horse-42"}, follow=True
    )
    page = response.content.decode()
    assert "Test Clinic" in page
    assert "Other Clinic" not in page
    assert "Clinician" in page
    assert "<dt>Patients</dt><dd>1</dd>" in page


def test_sign_out_ends_the_session(clinic, make_user, client):
    client.force_login(make_user("doc", organization=clinic))
    client.post(reverse("logout"))
    assert client.get("/").status_code == 302
