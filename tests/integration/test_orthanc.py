"""A real PACS (Debian's Orthanc, with its DICOMweb plugin) sends studies to Tessera: by C-STORE
to `manage.py dicom_listener`, and as a DICOMweb peer by STOW-RS to the web server. Each study
becomes de-identified media on its patient's encounter. `.ci/run` installs Orthanc; without it
these tests skip, naming the package."""

import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from tests.integration.processes import (
    free_port,
    manage,
    pipeline_environment,
    query,
    shell,
    started,
    stopped,
    throwaway_database,
    wait_for_page,
    web_server,
)
from tests.unit.test_dicomweb import instance
from tests.unit.test_pacs_objects import walk

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

SEED = """
from django.contrib.auth import get_user_model
from tessera.accounts.services import create_organization, issue_api_token, set_membership
from tessera.records.models import DicomSender
from tessera.records.services import create_patient
clinic = create_organization(name="Harbour Clinic", slug="harbour", kind="clinic",
                             jurisdiction="US")
for mrn in ("MRN-DIMSE", "MRN-STOW", "MRN-SR", "MRN-SR-WEB"):
    create_patient(organization=clinic, mrn=mrn, full_name="Eleanor Whitmore")
DicomSender.objects.create(organization=clinic, ae_title="ORTHANC", description="the PACS")
pacs = get_user_model().objects.create_user(username="pacs-service", password=None)
set_membership(user=pacs, organization=clinic, role="clinician")
print(issue_api_token(user=pacs, name="Orthanc DICOMweb peer")[1])
"""


CONFIRM = """
from tessera.accounts.models import Organization
from tessera.interop.deliveries import attempt_delivery
from tessera.jobs.models import AnalysisJob, AnalysisResult, ModelVersion, ResultDelivery
from tessera.jobs.services import record_feedback, register_model_version
from tessera.records.models import Patient
clinic = Organization.objects.get(slug="harbour")
clinic.pacs_send, clinic.pacs_ae_title = "confirm", "ORTHANC"
clinic.pacs_host, clinic.pacs_port = "127.0.0.1", {port}
clinic.pacs_dicomweb_url = "{dicomweb}"  # empty: by C-STORE
clinic.full_clean()
clinic.save()
encounter = Patient.objects.get(mrn="{mrn}").encounters.get()
version = ModelVersion.objects.filter(name="clinic-v9").first() or register_model_version(
    name="clinic-v9", serves="clinic", bundle_path="clinic-v9", metrics={{}})
job = AnalysisJob.objects.create(organization=clinic, visit_key=encounter.visit_key,
                                 task="diagnosis", status="succeeded", model_version=version)
job.media.set(encounter.media.all())
result = AnalysisResult.objects.create(
    job=job, organization=clinic, model_version=version, diagnosis={{"suspicious_mass": 0.9}},
    findings=["suspicious_mass"], modalities_used=["image"], uncertainty=0.1, abstain=False,
    explanation={{"finding": "suspicious_mass", "heatmap": [[0.0, 1.0], [0.0, 0.0]]}},
)
record_feedback(result=result, kind="confirm", given_by=None)
delivery = ResultDelivery.objects.get(result=result)
attempt_delivery(delivery_id=delivery.pk)  # as the worker's task does
delivery.refresh_from_db()
print(delivery.status, delivery.last_error or "-")
"""


@dataclass
class Hospital:
    orthanc: str  # Orthanc's REST API
    database_url: str
    media_root: Path
    env: dict[str, str]
    dicom_port: int

    def orthanc_get(self, path: str):
        with urllib.request.urlopen(f"{self.orthanc}{path}", timeout=60) as response:
            body = response.read()
        return body if path.endswith("/file") else json.loads(body)

    def orthanc_post(self, path: str, body: bytes | dict) -> dict:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.orthanc}{path}", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"{}")

    def media_of(self, mrn: str) -> list[tuple[str, str]]:
        """(storage path, encounter reason) of each image of the patient with `mrn`."""
        return query(
            self.database_url,
            "select m.storage_path, e.reason from records_mediaasset m "
            "join records_visitkey v on v.id = m.visit_key_id "
            "join records_encounter e on e.id = v.encounter_id "
            f"join records_patient p on p.id = e.patient_id where p.mrn = '{mrn}'",
        )


@pytest.fixture(scope="module")
def hospital(tmp_path_factory) -> Iterator[Hospital]:
    if not ORTHANC.is_file() or not DICOMWEB_PLUGIN.is_file():
        pytest.skip(
            "Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb): no PACS "
            "to test against"
        )
    root = tmp_path_factory.mktemp("hospital")
    web_port, listener_port, http_port, dicom_port = (free_port() for _ in range(4))
    with throwaway_database(root) as database_url:
        env = pipeline_environment(root, database_url, root / "models")
        manage(env, "migrate", "--noinput")
        token = shell(env, SEED).split()[-1]
        config = {
            "Name": "Test PACS",
            "StorageDirectory": str(root / "orthanc-storage"),
            "IndexDirectory": str(root / "orthanc-index"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": {"tessera": ["TESSERA", "127.0.0.1", listener_port]},
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {
                "Enable": True,
                "Servers": {
                    "tessera": {
                        "Url": f"http://127.0.0.1:{web_port}/dicomweb/",
                        "HttpHeaders": {"Authorization": f"Bearer {token}"},
                    }
                },
            },
        }
        (root / "orthanc.json").write_text(json.dumps(config))
        processes = [
            started([str(ORTHANC), str(root / "orthanc.json")], root / "orthanc.log"),
            started(
                [sys.executable, "manage.py", "dicom_listener", "--port", str(listener_port)],
                root / "listener.log",
                env,
            ),
            # as production serves it: gunicorn decodes Orthanc's chunked STOW
            web_server(env, web_port, root / "web.log"),
        ]
        try:
            wait_for_page(f"http://127.0.0.1:{http_port}/system", seconds=60, server=processes[0])
            wait_for_port(listener_port, seconds=60, server=processes[1])
            wait_for_page(f"http://127.0.0.1:{web_port}/login/", seconds=120, server=processes[2])
            yield Hospital(
                f"http://127.0.0.1:{http_port}",
                database_url,
                root / "var" / "media",
                env,
                dicom_port,
            )
        finally:
            for process in processes:
                stopped(process)


def wait_for_port(port: int, *, seconds: float, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the listener exited with {server.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


def assert_deidentified(hospital: Hospital, media: list[tuple[str, str]], *, mrn: str) -> None:
    for storage_path, _ in media:
        stored = pydicom.dcmread(hospital.media_root / storage_path)
        assert stored.PatientID != mrn, "the patient's pseudonym, not the PACS's id"
        assert stored.StudyInstanceUID.startswith("2.25."), "a stand-in UID"


def wait_for_media(hospital: Hospital, mrn: str, count: int) -> list[tuple[str, str]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        media = hospital.media_of(mrn)
        if len(media) >= count:
            return media
        time.sleep(0.5)
    return hospital.media_of(mrn)


def test_orthanc_c_stores_a_study_to_the_listener(hospital):
    ids = [
        hospital.orthanc_post("/instances", instance(patient_id="MRN-DIMSE", study="71", number=n))
        for n in (1, 2)
    ]
    study = ids[0]["ParentStudy"]
    sent = hospital.orthanc_post("/modalities/tessera/store", {"Resources": [study]})
    assert sent.get("InstancesCount", 2) == 2, sent
    media = wait_for_media(hospital, "MRN-DIMSE", 2)
    assert len(media) == 2
    assert {reason for _, reason in media} == {"CT study from the PACS"}
    assert_deidentified(hospital, media, mrn="MRN-DIMSE")


def test_orthanc_sends_a_study_by_stow_rs_as_a_dicomweb_peer(hospital):
    ids = [
        hospital.orthanc_post("/instances", instance(patient_id="MRN-STOW", study="72", number=n))
        for n in (1, 2)
    ]
    study = ids[0]["ParentStudy"]
    hospital.orthanc_post("/dicom-web/servers/tessera/stow", {"Resources": [study]})
    media = wait_for_media(hospital, "MRN-STOW", 2)
    assert len(media) == 2
    encounters = query(
        hospital.database_url,
        "select count(*) from records_encounter e join records_patient p "
        "on p.id = e.patient_id where p.mrn = 'MRN-STOW'",
    )
    assert encounters == [(1,)], "one study, one encounter"
    assert_deidentified(hospital, media, mrn="MRN-STOW")


def confirmed_in_orthanc(hospital: Hospital, *, mrn: str, study: str, dicomweb: str = ""):
    """Orthanc's series of the original study of a confirmed result of patient `mrn`, sent
    back by C-STORE, or by STOW-RS to `dicomweb`; and the SR among them, read by highdicom."""
    original = f"1.2.826.0.1.3680043.9.7.{study}"
    sent = hospital.orthanc_post("/instances", instance(patient_id=mrn, study=study))
    hospital.orthanc_post("/modalities/tessera/store", {"Resources": [sent["ParentStudy"]]})
    assert len(wait_for_media(hospital, mrn, 1)) == 1
    confirm = CONFIRM.format(port=hospital.dicom_port, dicomweb=dicomweb, mrn=mrn)
    outcome = shell(hospital.env, confirm).split()
    assert outcome[-2:] == ["sent", "-"], outcome
    [found] = hospital.orthanc_post(
        "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": original}}
    )
    series = hospital.orthanc_get(f"/studies/{found}/series")
    [report_series] = [item for item in series if item["MainDicomTags"]["Modality"] == "SR"]
    [report_id] = report_series["Instances"]
    report = hd.sr.srread(io.BytesIO(hospital.orthanc_get(f"/instances/{report_id}/file")))
    return series, report


def sop_classes(hospital: Hospital, series: list[dict]) -> list[str]:
    return sorted(
        hospital.orthanc_get(f"/instances/{item['Instances'][0]}/tags?simplify")["SOPClassUID"]
        for item in series
    )


def test_a_confirmed_result_appears_in_orthanc_under_the_original_study(hospital):
    series, report = confirmed_in_orthanc(hospital, mrn="MRN-SR", study="73")
    assert sop_classes(hospital, series) == [
        "1.2.840.10008.5.1.4.1.1.2",  # the CT
        "1.2.840.10008.5.1.4.1.1.30",  # the heatmap as a Parametric Map
        "1.2.840.10008.5.1.4.1.1.7",  # and as a Secondary Capture
        "1.2.840.10008.5.1.4.1.1.88.34",  # the findings as a Comprehensive 3D SR
    ]
    assert report.PatientID == "MRN-SR"
    assert "not for diagnosis" in report.SeriesDescription
    versions = [
        item.TextValue
        for item in walk(report.ContentSequence)
        if item.ValueType == "TEXT"
        and item.ConceptNameCodeSequence[0].CodeMeaning == "Algorithm Version"
    ]
    assert "clinic-v9" in versions, "the model version"


def test_a_confirmed_result_goes_to_orthanc_by_stow_rs(hospital):
    series, report = confirmed_in_orthanc(
        hospital, mrn="MRN-SR-WEB", study="74", dicomweb=f"{hospital.orthanc}/dicom-web/"
    )
    assert len(sop_classes(hospital, series)) == 4, "the CT, the map, the capture and the SR"
    assert report.PatientID == "MRN-SR-WEB"
