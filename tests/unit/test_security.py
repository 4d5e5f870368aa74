"""Attacks on sign-in, sessions, forms, pages and headers, each expected to fail. (Object ids of
another organization, cross-organization links, mass assignment and role escalation are
attacked in test_api.py and test_api_roles.py.)"""

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tessera.accounts.sessions import SIGNED_IN_AT
from tessera.records.models import MediaKind
from tessera.records.services import add_media, create_encounter, create_patient
from tests.conftest import upload
from tests.unit.api import client_for

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-42"  # make_user's
ROOT = Path(__file__).resolve().parents[2]


def sign_in(client, username: str, password: str = PASSWORD, address: str = "10.0.0.5", **extra):
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        **extra,
    )


def signed_in(client) -> bool:
    return client.get(reverse("settings")).status_code == 200


@pytest.fixture
def doc(clinic, make_user):
    return make_user("sec-doc", organization=clinic)


# --- brute force ----------------------------------------------------------------------------


def test_repeated_wrong_passwords_lock_the_account_from_that_address(client, doc, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "sec-doc", "wrong").status_code == 200, attempt
    locked = sign_in(client, "sec-doc", "wrong")
    assert locked.status_code == 429
    assert locked["Content-Type"].startswith("text/html")
    page = locked.content.decode()
    assert "Signing in is paused" in page
    assert "signing in from here is paused for 15 minutes." in page
    assert "PT15M" not in page
    assert sign_in(client, "sec-doc").status_code == 429, "even the right password now"
    assert not signed_in(client)


def test_a_changing_forwarded_for_neither_dodges_the_lockout_nor_locks_out_someone_else(
    doc, settings
):
    attacker = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT + 2):
        sign_in(attacker, "sec-doc", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}")
    assert sign_in(attacker, "sec-doc", HTTP_X_FORWARDED_FOR="192.0.2.77").status_code == 429

    colleague = Client()  # the address the attacker pretended to be, really signing in
    response = sign_in(colleague, "sec-doc", address="192.0.2.77")
    assert response.status_code == 302
    assert signed_in(colleague)


# --- sessions -------------------------------------------------------------------------------


def test_signing_in_issues_a_new_session_id(client, doc):
    client.get(reverse("login"))
    session = client.session
    session["planted"] = "by an attacker"
    session.save()
    planted = session.session_key
    client.cookies["sessionid"] = planted
    assert sign_in(client, "sec-doc").status_code == 302
    assert client.cookies["sessionid"].value != planted
    assert not Session.objects.filter(session_key=planted).exists()


def test_a_session_does_not_outlive_sign_out(doc):
    browser = Client()
    sign_in(browser, "sec-doc")
    stolen = browser.cookies["sessionid"].value
    browser.post(reverse("logout"))
    thief = Client()
    thief.cookies["sessionid"] = stolen
    assert thief.get(reverse("settings")).status_code == 302


def test_changing_the_password_ends_every_other_session(doc):
    laptop, phone = Client(), Client()
    sign_in(laptop, "sec-doc")
    sign_in(phone, "sec-doc", address="10.0.0.6")
    changed = laptop.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-long-passphrase-7",
            "new_password2": "a-new-long-passphrase-7",
        },
    )
    assert changed.status_code == 302
    assert signed_in(laptop), "the session that changed it stays"
    assert not signed_in(phone)


def test_deactivating_a_user_ends_their_sessions_and_tokens(client, doc):
    sign_in(client, "sec-doc")
    api = client_for(doc)
    doc.is_active = False
    doc.save()
    assert not signed_in(client)
    assert api.get("/api/v1/patients/").status_code == 401


def test_an_idle_session_expires(client, doc):
    sign_in(client, "sec-doc")
    Session.objects.filter(session_key=client.cookies["sessionid"].value).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    assert not signed_in(client)


def test_a_busy_session_still_ends_at_its_absolute_limit(client, doc, settings):
    sign_in(client, "sec-doc")
    assert signed_in(client), "each request renews the idle limit"
    session = client.session
    session[SIGNED_IN_AT] = int(time.time()) - settings.TESSERA_SESSION_MAX_SECONDS - 1
    session.save()
    assert not signed_in(client)


# --- forms and pages ------------------------------------------------------------------------


def test_a_form_posted_without_its_csrf_token_is_refused(clinic, doc):
    patient = create_patient(organization=clinic, mrn="C-1", full_name="Csrf Target")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(doc)
    response = browser.post(
        reverse("new_encounter", args=[patient.pk]),
        {"occurred_at": "2026-11-02T09:30", "reason": "forged"},
    )
    assert response.status_code == 403
    assert not patient.encounters.exists()


def test_a_name_holding_markup_is_shown_as_text(client, clinic, doc):
    hostile = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
    patient = create_patient(organization=clinic, mrn="<b>X-1</b>", full_name=hostile)
    client.force_login(doc)
    for url in (reverse("patient", args=[patient.pk]), reverse("home")):
        page = client.get(url).content.decode()
        assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page, url
        assert "<script>alert" not in page
        assert "<img src=x" not in page


def test_a_guessed_media_url_gives_nothing_without_sign_in(clinic, doc, other_clinic, make_user):
    patient = create_patient(organization=clinic, mrn="G-1", full_name="Guessed")
    visit = create_encounter(patient=patient, occurred_at=timezone.now())
    secret = b"Confidential: HIV positive, started ART."
    note = add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(secret))

    anonymous = Client()
    for url in (reverse("media_file", args=[note.pk]), f"/api/v1/media/{note.pk}/download/"):
        response = anonymous.get(url)
        assert response.status_code in (302, 401, 404), url
        assert secret not in b"".join(getattr(response, "streaming_content", [response.content]))
    assert anonymous.get(f"/media/{note.storage_path}").status_code == 404, "no public URL"

    outsider = Client()
    outsider.force_login(make_user("outsider", organization=other_clinic))
    assert outsider.get(reverse("media_file", args=[note.pk])).status_code == 404


# --- headers and deployment -----------------------------------------------------------------


def test_pages_carry_a_strict_content_security_policy(client, doc):
    client.force_login(doc)
    policy = client.get(reverse("home"))["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in policy
    docs = client.get("/api/v1/docs/")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", docs.content.decode()), "no inline"
    assert client.get("/api/v1/docs/", {"script": ""})["Content-Type"].startswith(
        "application/javascript"
    )
    assert "'unsafe-inline'" in docs["Content-Security-Policy"].split("style-src", 1)[1]
    assert "script-src 'self';" in docs["Content-Security-Policy"] + ";"


def test_our_templates_have_no_inline_script_or_style_for_the_policy_to_block():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
    handler_or_style = re.compile(r"\s(on[a-z]+|style)\s*=", re.I)
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert not inline_script.search(text), template
        assert not handler_or_style.search(text), template
        assert "<style" not in text, template


def test_production_settings_pass_the_deployment_check():
    environment = {
        **os.environ,
        "DJANGO_ENV": "production",
        "SECRET_KEY": "x" * 20 + "-production-secret-for-the-deploy-check-" + "y" * 20,
        "ALLOWED_HOSTS": "tessera.example.org",
        "STATIC_ROOT": "/tmp/tessera-static",
        "PYTHONPATH": "platform:.",
    }
    environment.pop("DEBUG", None)
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "System check identified no issues (0 silenced)." in checked.stdout


def test_a_patients_name_reaches_no_log_line_on_any_path(
    clinic, doc, dicom_bytes, logs_never_carry_phi, caplog
):
    """The canary walks through creation, a clash, uploads (a DICOM naming it too), refusals,
    not-found pages and a report; the session-wide watch fails the run if a log line named it,
    and this test looks at its own lines at once."""
    import pydicom

    from tests.conftest import PHI_CANARY

    api = client_for(doc)
    body = {"organization": clinic.pk, "mrn": "CANARY-1", "full_name": PHI_CANARY}
    created = api.post("/api/v1/patients/", body)
    assert created.status_code == 201
    patient_id = created.json()["id"]
    assert api.post("/api/v1/patients/", body).status_code == 400, "a clash, logged as a 400"
    assert api.get("/api/v1/patients/", {"search": PHI_CANARY}).status_code == 200
    visit = api.post(
        "/api/v1/encounters/",
        {"patient": patient_id, "occurred_at": "2026-11-02T09:30:00Z", "reason": PHI_CANARY},
    ).json()
    dataset = pydicom.dcmread(upload(dicom_bytes))
    dataset.PatientName = PHI_CANARY.replace(" ", "^")
    named = upload(b"")
    dataset.save_as(named, enforce_file_format=True)
    named.seek(0)
    named.name = f"{PHI_CANARY}.dcm"
    uploaded = api.post(
        "/api/v1/media/", {"kind": "dicom", "encounter": visit["id"], "file": named}, "multipart"
    )
    assert uploaded.status_code == 201, uploaded.content
    refused = upload(PHI_CANARY.encode("utf-16"))
    refused.name = f"{PHI_CANARY}.txt"
    assert (
        api.post(
            "/api/v1/media/",
            {"kind": "clinical_note", "encounter": visit["id"], "file": refused},
            "multipart",
        ).status_code
        == 400
    )
    browser = Client()
    browser.force_login(doc)
    assert browser.get(reverse("patient", args=[patient_id])).status_code == 200
    assert browser.get(f"/patients/{patient_id}99/").status_code == 404
    assert browser.post(reverse("patient_report", args=[patient_id])).status_code in (302, 303)

    assert not [r for r in caplog.records if PHI_CANARY in r.getMessage()]
    assert not logs_never_carry_phi.leaks


def test_the_favicon_is_served_to_anyone(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00", "an ICO file"
