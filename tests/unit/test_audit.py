"""The access log: reads and writes through pages, API, downloads and tasks each append a row;
nothing — ORM, raw SQL, admin — changes or deletes one; org admins filter and export it."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tessera.accounts.models import Role
from tessera.audit.context import Actor, Channel, acting_as
from tessera.audit.models import AppendOnly, AuditEvent
from tessera.jobs.services import request_analysis
from tessera.records.models import MediaKind
from tessera.records.services import add_media, create_encounter, create_patient
from tessera.records.storage import content_store
from tessera.reports.content import report_content
from tessera.reports.services import request_report
from tests.conftest import upload
from tests.unit.api import assert_problem, client_for
from tests.unit.conftest import finished

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def patient(clinic):
    return create_patient(organization=clinic, mrn="A-1", full_name="Audit Subject")


@pytest.fixture
def note(patient):
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    return add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"Chest pain."))


@pytest.fixture
def clinician(clinic, make_user):
    return make_user("audit-doc", organization=clinic)


def events(**match):
    return list(AuditEvent.objects.filter(**match).order_by("pk"))


def test_reading_a_patient_page_appends_who_what_when_and_from_where(client, clinician, patient):
    client.force_login(clinician)
    before = AuditEvent.objects.count()
    response = client.get(reverse("patient", args=[patient.pk]), REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    [event] = AuditEvent.objects.all()[: AuditEvent.objects.count() - before]
    assert (event.actor, event.actor_name, event.action) == (clinician, "audit-doc", "view")
    assert (event.object_type, event.object_id) == ("patient", str(patient.pk))
    assert event.subject == f"patient:{patient.pk}"
    assert event.organization == patient.organization
    assert (event.address, event.channel, event.via) == (
        "10.1.2.3",
        "page",
        f"/patients/{patient.pk}/",
    )


def test_downloading_media_appends_a_row_on_the_page_and_in_the_api(client, clinician, note):
    client.force_login(clinician)
    assert client.get(reverse("media_file", args=[note.pk])).status_code == 200
    assert client_for(clinician).get(f"/api/v1/media/{note.pk}/download/").status_code == 200
    downloads = events(action="download", object_type="media", object_id=str(note.pk))
    assert [(e.channel, e.actor_name) for e in downloads] == [
        ("page", "audit-doc"),
        ("api", "audit-doc"),
    ]
    assert downloads[0].subject == f"patient:{note.visit_key.encounter.patient_id}"


def test_api_reads_lists_and_writes_are_logged_with_the_token_user(clinician, patient):
    api = client_for(clinician)
    api.get(f"/api/v1/patients/{patient.pk}/")
    api.get("/api/v1/patients/")
    created = api.post(
        "/api/v1/patients/",
        {"organization": patient.organization_id, "mrn": "A-2", "full_name": "New Person"},
    ).json()
    api.patch(f"/api/v1/patients/{created['id']}/", {"full_name": "Renamed Person"})
    trail = [
        (e.action, e.object_id)
        for e in events(actor=clinician, object_type="patient", channel="api")
    ]
    assert trail == [
        ("view", str(patient.pk)),
        ("list", str(patient.pk)),
        ("create", str(created["id"])),
        ("update", str(created["id"])),
    ]


def test_a_list_page_is_logged_row_by_row_in_one_statement(clinic, clinician, patient):
    """Each listed patient gets its own event, all written by one INSERT with no query of
    their facts (a patient holds its organization and is its own subject)."""
    others = [create_patient(organization=clinic, mrn=f"A-{n}", full_name=f"P {n}") for n in (7, 8)]
    api = client_for(clinician)
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/v1/patients/", REMOTE_ADDR="10.1.2.3").status_code == 200
    statements = [query["sql"] for query in queries.captured_queries]
    assert len([sql for sql in statements if "audit_auditevent" in sql]) == 1
    assert not any(sql.startswith(("BEGIN", "SAVEPOINT")) for sql in statements)
    listed = events(action="list", channel="api")
    assert sorted(event.object_id for event in listed) == sorted(
        str(person.pk) for person in [patient, *others]
    )
    for event in listed:
        assert event.subject == f"patient:{event.object_id}"
        assert (event.organization_id, event.actor, event.address) == (
            clinic.pk,
            clinician,
            "10.1.2.3",
        )
        assert event.via == "/api/v1/patients/"


@pytest.mark.django_db(transaction=True)  # autocommit, as requests run
def test_a_long_list_is_appended_whole_or_not_at_all(clinic, clinician, patient, monkeypatch):
    """More rows than one statement takes go in several statements of one transaction: a
    failure in the last leaves none of the first."""
    from tessera.audit import services

    people = [patient] + [
        create_patient(organization=clinic, mrn=f"L-{n}", full_name=f"L {n}") for n in range(4)
    ]
    monkeypatch.setattr(services, "APPEND_BATCH", 2)
    services.record_each(people, action=AuditEvent.Action.LIST)
    assert len(events(action="list")) == len(people)
    orphan = type(patient)(pk=10**6, organization_id=None)  # of no organization: refused
    too_long = [*people[:4], orphan]
    with pytest.raises(DatabaseError):
        services.record_each(too_long, action=AuditEvent.Action.LIST)
    assert len(events(action="list")) == len(people)


def test_what_a_celery_task_reads_and_writes_is_logged_under_its_name(
    note, clinic_model, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # the task runs as a worker would
        job = request_analysis(attached_to=note.visit_key.encounter, task="diagnosis")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    by_tasks = events(channel="task")
    assert {(e.action, e.object_type) for e in by_tasks} >= {
        ("view", "media"),
        ("create", "result"),
    }
    assert all(e.actor_name.startswith("task tessera.jobs.") for e in by_tasks)
    assert all(
        e.actor is None and e.subject == f"patient:{note.visit_key.encounter.patient_id}"
        for e in by_tasks
    )


def test_what_a_report_reads_is_logged_under_the_renderer(patient, clinician):
    report = request_report(
        organization=patient.organization, requested_by=clinician, subject=patient
    )
    renderer = Actor(name="task tessera.reports.render", channel=Channel.TASK)
    with acting_as(renderer):
        report_content(report)
    [read] = events(channel="task", action="view")
    assert (read.actor_name, read.object_type, read.object_id) == (
        "task tessera.reports.render",
        "patient",
        str(patient.pk),
    )


def test_no_code_path_changes_or_deletes_an_event(client, clinician, patient, make_user):
    client.force_login(clinician)
    client.get(reverse("patient", args=[patient.pk]))
    event = AuditEvent.objects.latest("pk")

    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(actor_name="someone else")
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnly):
        event.delete()
    event.actor_name = "someone else"
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET actor_name = %s WHERE id = %s", ["forged", event.pk]
        )
    event.refresh_from_db()
    assert event.actor_name == "audit-doc"

    superuser = get_user_model().objects.create_superuser("root", password="pw-root-12345")
    client.force_login(superuser)
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    change = reverse("admin:audit_auditevent_change", args=[event.pk])
    assert client.post(change, {"actor_name": "forged"}).status_code == 403
    delete = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    event.refresh_from_db()
    assert event.actor_name == "audit-doc"


@pytest.mark.django_db(transaction=True)
def test_an_erased_patients_trail_survives_the_erasure(clinic, clinician, client):
    patient = create_patient(organization=clinic, mrn="E-1", full_name="Gone Soon")
    client.force_login(clinician)
    client.get(reverse("patient", args=[patient.pk]))
    subject = f"patient:{patient.pk}"
    patient.delete()
    assert [e.action for e in events(subject=subject)] == ["create", "view", "delete"]


def test_org_admins_filter_and_export_the_log_and_clinicians_may_not(
    client, clinic, clinician, patient, note, make_user
):
    client.force_login(clinician)
    client.get(reverse("patient", args=[patient.pk]))
    client.get(reverse("media_file", args=[note.pk]))
    assert client.get(reverse("audit")).status_code == 403, "a clinician is not an org admin"

    admin = make_user("audit-admin", organization=clinic, role=Role.ORG_ADMIN)
    client.force_login(admin)
    page = client.get(reverse("audit"), {"action": "download"}).content.decode()
    assert "audit-doc" in page
    assert "<td>Downloaded</td>" in page
    assert "<td>Viewed</td>" not in page

    exported = client.get(reverse("audit_export"), {"subject": f"patient:{patient.pk}"})
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert {(row["actor_name"], row["action"], row["object_type"]) for row in rows} >= {
        ("audit-doc", "view", "patient"),
        ("audit-doc", "download", "media"),
    }
    assert all(row["subject"] == f"patient:{patient.pk}" for row in rows)
    assert client.get(reverse("audit"), {"subject": "Gone Soon"}).status_code == 200


def test_the_other_organizations_admin_sees_none_of_this_organizations_log(
    client, clinic, other_clinic, clinician, patient, make_user
):
    client.force_login(clinician)
    client.get(reverse("patient", args=[patient.pk]))
    outsider = make_user("outsider", organization=other_clinic, role=Role.ORG_ADMIN)
    client.force_login(outsider)
    page = client.get(reverse("audit"))
    assert page.status_code == 200
    assert "audit-doc" not in page.content.decode()
    exported = b"".join(client.get(reverse("audit_export")).streaming_content).decode()
    assert "audit-doc" not in exported


def test_a_spoofed_forwarded_for_is_not_believed_unless_a_proxy_of_ours_added_it(
    client, clinician, patient, settings
):
    client.force_login(clinician)
    url = reverse("patient", args=[patient.pk])
    client.get(url, REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert AuditEvent.objects.latest("pk").address == "10.0.0.9"
    settings.TESSERA_TRUSTED_PROXIES = 1
    client.get(url, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4")
    assert AuditEvent.objects.latest("pk").address == "198.51.100.4", "what our proxy saw"


def test_a_stored_file_that_no_longer_matches_its_checksum_is_never_served(client, clinician, note):
    content_store().path(note.sha256).write_bytes(b"Chest pain? No: tampered.")
    client.force_login(clinician)
    page = client.get(reverse("media_file", args=[note.pk]))
    assert page.status_code == 500
    assert b"damaged" in page.content
    assert b"tampered" not in page.content
    api = client_for(clinician).get(f"/api/v1/media/{note.pk}/download/")
    assert "damaged" in assert_problem(api, 500, "damaged")["detail"]
    shown = client.get(reverse("patient", args=[note.visit_key.encounter.patient_id])).content
    assert b"This file is damaged" in shown
    assert b"tampered" not in shown


def test_a_verdict_on_a_result_is_logged_as_the_patients_data(clinician, note, clinic_model):
    result = finished(note.visit_key.encounter, clinic_model, mass=0.9)
    client_for(clinician).post(
        f"/api/v1/results/{result.pk}/feedback/", {"kind": "confirm"}, format="json"
    )
    [event] = events(object_type="feedback", action="create")
    assert event.actor == clinician
    assert event.subject == f"patient:{note.visit_key.encounter.patient_id}"


def test_a_patient_page_logs_the_notes_and_results_it_shows(client, clinician, note, clinic_model):
    result = finished(note.visit_key.encounter, clinic_model, mass=0.9)
    client.force_login(clinician)
    before = AuditEvent.objects.latest("pk").pk
    client.get(reverse("patient", args=[note.visit_key.encounter.patient_id]))
    shown = {
        (event.object_type, event.object_id)
        for event in AuditEvent.objects.filter(pk__gt=before, action="view", actor=clinician)
    }
    assert shown == {
        ("patient", str(note.visit_key.encounter.patient_id)),
        ("media", str(note.pk)),
        ("result", str(result.pk)),
    }

    before = AuditEvent.objects.latest("pk").pk
    client.get(reverse("job_status", args=[result.job_id]))
    [event] = AuditEvent.objects.filter(pk__gt=before)
    assert (event.object_type, event.object_id) == ("result", str(result.pk))
