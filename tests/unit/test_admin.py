"""The Django admin, as an organization admin uses it: only their organization's rows, choices
and objects; uploads through the validation service; nothing of another organization."""

import io

import pydicom
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tessera.accounts.models import Membership, Role
from tessera.records.admin import EncounterAdmin
from tessera.records.models import Encounter, MediaAsset, Patient
from tessera.records.services import add_media, create_encounter, create_patient
from tests.conftest import stored_files, upload

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def org_admin(clinic, make_user, client):
    admin_user = make_user("clinic-admin", organization=clinic, role=Role.ORG_ADMIN, is_staff=True)
    client.force_login(admin_user)
    return admin_user


@pytest.fixture
def patients(clinic, other_clinic):
    return (
        create_patient(organization=clinic, mrn="OWN-1", full_name="Own Patient"),
        create_patient(organization=other_clinic, mrn="FOREIGN-1", full_name="Foreign Patient"),
    )


def test_the_admin_lists_only_the_admins_organization(org_admin, patients, client):
    response = client.get(reverse("admin:records_patient_changelist"))
    assert response.status_code == 200
    assert b"Own Patient" in response.content
    assert b"Foreign Patient" not in response.content
    assert b"Other Clinic" not in response.content, "filters must not leak other organizations"


def test_another_organizations_object_cannot_be_opened_changed_or_deleted(
    org_admin, patients, client
):
    foreign = patients[1]
    for view in ("change", "delete"):
        response = client.get(reverse(f"admin:records_patient_{view}", args=[foreign.pk]))
        assert response.status_code in (302, 403, 404)
        assert b"Foreign Patient" not in response.content
    response = client.post(
        reverse("admin:records_patient_delete", args=[foreign.pk]), {"post": "yes"}
    )
    assert Patient.objects.filter(pk=foreign.pk).exists()


def test_an_org_admin_can_add_a_patient_only_to_their_organization(
    org_admin, clinic, other_clinic, client
):
    url = reverse("admin:records_patient_add")
    form = client.get(url)
    assert form.status_code == 200
    assert b"Other Clinic" not in form.content
    data = {
        "organization": other_clinic.pk,
        "mrn": "NEW",
        "full_name": "Smuggled In",
        "sex": "unknown",
    }
    client.post(url, data)
    assert not Patient.objects.filter(mrn="NEW").exists()
    client.post(url, {**data, "organization": clinic.pk, "full_name": "Added Here"})
    assert Patient.objects.get(mrn="NEW").organization == clinic


def test_organization_admins_cannot_change_kind_or_jurisdiction(org_admin, clinic, client):
    response = client.post(
        reverse("admin:accounts_organization_change", args=[clinic.pk]),
        {
            "name": "Renamed Clinic",
            "kind": "school",
            "jurisdiction": "EU",
            "allowed_analyses": ["diagnosis"],
            "dicom_unknown_patients": "create",
            "dicom_visit": "accession",
            "pacs_send": "never",
        },
    )
    assert response.status_code == 302
    clinic.refresh_from_db()
    assert (clinic.name, clinic.kind, clinic.jurisdiction) == ("Renamed Clinic", "clinic", "US")
    assert clinic.allowed_analyses == ["diagnosis"]
    assert (clinic.dicom_unknown_patients, clinic.dicom_visit) == ("create", "accession")


def test_membership_choices_never_list_another_organizations_staff(
    org_admin, other_clinic, make_user, client
):
    make_user("foreign-doctor", organization=other_clinic)
    make_user("new-hire")
    page = client.get(reverse("admin:accounts_membership_add"))
    assert b"new-hire" in page.content
    assert b"foreign-doctor" not in page.content


def test_a_user_without_admin_role_cannot_use_the_admin(clinic, make_user, client, patients):
    clinician = make_user("doc", organization=clinic, role=Role.CLINICIAN, is_staff=True)
    clinician.refresh_from_db()
    assert not clinician.is_staff, "staff status follows the org_admin role"
    client.force_login(clinician)
    response = client.get(reverse("admin:records_patient_changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_an_org_admin_creates_an_account_with_its_membership(
    org_admin, clinic, other_clinic, client
):
    url = reverse("admin:auth_user_add")
    page = client.get(url)
    assert page.status_code == 200
    assert b"Other Clinic" not in page.content
    form = {
        "username": "new-nurse",
        "password1": "a-long-passphrase-42",
        "password2": "a-long-passphrase-42",
        "first_name": "Nia",
        "last_name": "Nurse",
        "email": "nia@example.org",
        "role": Role.CLINICIAN,
    }
    client.post(url, {**form, "organization": other_clinic.pk})
    assert not User.objects.filter(username="new-nurse").exists()
    response = client.post(url, {**form, "organization": clinic.pk})
    assert response.status_code == 302
    nurse = User.objects.get(username="new-nurse")
    assert list(nurse.memberships.values_list("organization__slug", "role")) == [
        ("test-clinic", "clinician")
    ]
    assert not nurse.is_staff
    assert not nurse.is_superuser


def test_an_org_admin_sees_only_their_people_and_cannot_grant_flags(
    org_admin, clinic, other_clinic, make_user, client
):
    colleague = make_user("colleague", organization=clinic)
    stranger = make_user("stranger", organization=other_clinic)
    root = User.objects.create_superuser("root", password="root-pass-12345")
    listing = client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "colleague" in listing
    assert "stranger" not in listing
    assert "root" not in listing
    for other in (stranger, root):
        response = client.get(reverse("admin:auth_user_change", args=[other.pk]))
        assert response.status_code in (302, 403, 404)
    change = reverse("admin:auth_user_change", args=[colleague.pk])
    client.post(
        change,
        {
            "username": "colleague",
            "first_name": "Col",
            "last_name": "League",
            "email": "",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
        },
    )
    colleague.refresh_from_db()
    assert colleague.first_name == "Col"
    assert not colleague.is_staff
    assert not colleague.is_superuser


def test_making_someone_org_admin_gives_and_removing_it_takes_staff(
    org_admin, clinic, make_user, client
):
    colleague = make_user("colleague", organization=clinic, role=Role.TEACHER)
    membership = colleague.memberships.get()
    client.post(
        reverse("admin:accounts_membership_change", args=[membership.pk]),
        {"user": colleague.pk, "organization": clinic.pk, "role": Role.ORG_ADMIN},
    )
    colleague.refresh_from_db()
    assert colleague.is_staff
    client.post(reverse("admin:accounts_membership_delete", args=[membership.pk]), {"post": "yes"})
    colleague.refresh_from_db()
    assert not colleague.is_staff


def test_an_upload_in_the_admin_is_validated_and_stored(
    org_admin, clinic, client, dicom_bytes, media_root
):
    patient = create_patient(organization=clinic, mrn="UP-1", full_name="Upload Target")
    encounter = create_encounter(patient=patient, occurred_at="2026-10-01T10:00Z")
    url = reverse("admin:records_mediaasset_add")

    bad = SimpleUploadedFile(
        "scan.dcm", b"\x89PNG\r\n\x1a\n" + b"\0" * 300, content_type="application/dicom"
    )
    response = client.post(url, {"kind": "dicom", "encounter": encounter.pk, "file": bad})
    assert response.status_code == 200
    assert "file is not a DICOM file (it looks like a PNG image)" in response.content.decode()
    assert not MediaAsset.objects.exists()
    assert stored_files(media_root) == []

    good = SimpleUploadedFile("scan.dcm", dicom_bytes, content_type="application/dicom")
    response = client.post(url, {"kind": "dicom", "encounter": encounter.pk, "file": good})
    assert response.status_code == 302
    asset = MediaAsset.objects.get()
    assert asset.uploaded_by == org_admin
    assert asset.metadata["modality"] == "CT"
    stored = pydicom.dcmread(media_root / asset.storage_path)
    assert stored.PatientName != "Test^Patient", "de-identified on the way in"
    assert stored.PixelData == pydicom.dcmread(io.BytesIO(dicom_bytes)).PixelData


def test_memberships_of_other_organizations_are_invisible(
    org_admin, other_clinic, make_user, client
):
    make_user("foreign-doctor", organization=other_clinic)
    page = client.get(reverse("admin:accounts_membership_changelist"))
    assert b"foreign-doctor" not in page.content
    assert Membership.objects.count() == 2


def test_the_admin_writes_records_through_the_services_and_shows_a_visits_files(
    org_admin, clinic, other_clinic, client, monkeypatch
):
    created = []
    real_create = create_encounter

    def watched_create(**fields):
        created.append(fields)
        return real_create(**fields)

    monkeypatch.setattr(EncounterAdmin, "creates", staticmethod(watched_create))
    patient = create_patient(organization=clinic, mrn="ADM-1", full_name="Admin Visit")
    response = client.post(
        reverse("admin:records_encounter_add"),
        {"patient": patient.pk, "occurred_at_0": "2026-10-01", "occurred_at_1": "10:00"},
    )
    assert response.status_code == 302
    assert [fields["patient"] for fields in created] == [patient]
    encounter = Encounter.objects.get(patient=patient)
    add_media(attached_to=encounter, kind="clinical_note", file=upload(b"Seen in the admin."))

    page = client.get(reverse("admin:records_encounter_change", args=[encounter.pk]))
    assert "Clinical note" in page.content.decode()
    create_encounter(
        patient=create_patient(organization=other_clinic, mrn="F-2", full_name="Far Away"),
        occurred_at="2026-10-01T10:00Z",
    )
    upload_form = client.get(reverse("admin:records_mediaasset_add")).content.decode()
    assert "Admin Visit, 2026-10-01" in upload_form, "the visits the admin may attach files to"
    assert "Far Away" not in upload_form


def test_an_org_admin_keeps_credentials_for_the_pacs_and_the_ehr_sealed_and_unshown(
    org_admin, clinic, client
):
    url = reverse("admin:accounts_organization_change", args=[clinic.pk])
    form = {
        "name": "Test Clinic",
        "allowed_analyses": ["diagnosis"],
        "dicom_unknown_patients": "refuse",
        "dicom_visit": "study",
        "pacs_send": "never",
        "fhir_server_url": "https://ehr.example/fhir",
    }
    secret = "Bearer ehr-s3cret-token"
    assert client.post(url, {**form, "fhir_server_credentials": secret}).status_code == 302
    clinic.refresh_from_db()
    assert clinic.fhir_server_authorization, "kept"
    assert "s3cret" not in clinic.fhir_server_authorization, "sealed, not in the clear"
    assert clinic.outgoing_authorization("fhir") == secret
    assert clinic.outgoing_authorization("pacs") == ""
    page = client.get(url).content
    assert b"s3cret" not in page, "never shown again"
    assert page.count(b'placeholder="one is kept (hidden)"') == 1, "but said to be there"
    client.post(url, form)  # left empty: kept
    clinic.refresh_from_db()
    assert clinic.outgoing_authorization("fhir") == secret
    refused = client.post(url, {**form, "fhir_server_credentials": "Bearer a\nInjected: yes"})
    assert b"An Authorization header is one line." in refused.content
    client.post(url, {**form, "fhir_server_credentials": "-"})  # forgotten
    clinic.refresh_from_db()
    assert (clinic.fhir_server_authorization, clinic.outgoing_authorization("fhir")) == ("", "")
