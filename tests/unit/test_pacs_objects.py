"""A result as a DICOM SR for the PACS (tessera.interop.pacs_objects): a TID 1500 report that
highdicom reads back, under the original study of the image the analysis read, for the patient
as the PACS knows them, carrying the findings, their probabilities, whether they need a person
and the model version."""

import io
from datetime import UTC, date, datetime

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes

from tessera.accounts.models import Role
from tessera.audit.models import AuditEvent
from tessera.interop.pacs_objects import SERIES_DESCRIPTION, pacs_objects
from tessera.jobs.services import register_model_version
from tessera.records.services import create_encounter, create_patient
from tessera.refusals import Refused
from tests.unit.api import client_for
from tests.unit.test_dashboards import finished_result
from tests.unit.test_dicomweb import instance, stow

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    return register_model_version(
        name="clinic-v7", serves="clinic", bundle_path="clinic-v7", metrics={}
    )


def test_the_sr_goes_under_the_original_study_with_the_findings_and_the_model(
    clinic, make_user, version
):
    patient = create_patient(
        organization=clinic, mrn="MRN-7", full_name="Eleanor Whitmore", birth_date=date(1961, 3, 14)
    )
    sender = make_user("sr-pacs", organization=clinic, role=Role.CLINICIAN)
    assert stow(client_for(sender), instance(study="5", accession="ACC-5")).status_code == 200
    encounter = patient.encounters.get()
    result = finished_result(
        encounter,
        version,
        diagnosis={"suspicious_mass": 0.83, "effusion": 0.12},
        findings=["suspicious_mass"],
        needs_person={"diagnosis": {"reason": "uncertain", "detail": "Unsure."}},
    )
    result.job.media.set(encounter.media.all())

    [report] = pacs_objects(result=result)  # no heatmap: none shown
    report = hd.sr.srread(io.BytesIO(written(report)))
    assert report.StudyInstanceUID == "1.2.826.0.1.3680043.9.7.5", "the PACS's own study"
    assert report.AccessionNumber == "ACC-5"
    assert (report.PatientID, str(report.PatientName)) == ("MRN-7", "Whitmore^Eleanor")
    assert report.PatientBirthDate == "19610314"
    assert report.SeriesDescription == SERIES_DESCRIPTION
    assert "not for diagnosis" in report.SeriesDescription
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        "1.2.826.0.1.3680043.9.7.5.1.1"
    ), "the original image"
    [group] = report.content.get_image_measurement_groups()
    probabilities = {m.name.meaning: m.value for m in group.get_measurements()}
    assert probabilities == {"P(effusion)": 12.0, "P(suspicious mass)": 83.0}
    evaluations = {e.name.meaning: e.value for e in group.get_qualitative_evaluations()}
    assert evaluations == {
        "effusion": codes.SCT.Absent,
        "suspicious mass": codes.SCT.Present,
        "Needs a person": codes.SCT.Yes,
    }
    said = {
        (item.ConceptNameCodeSequence[0].CodeMeaning, item.TextValue)
        for item in walk(report.ContentSequence)
        if item.ValueType == "TEXT"
    }
    assert ("Algorithm Version", "clinic-v7") in said, "the model version"
    assert ("Device Observer Model Name", "clinic-v7") in said
    assert AuditEvent.objects.filter(object_type="dicom_origin", action="view").exists()


def heatmap_result(clinic, make_user, version, dicom: bytes):
    """A result whose heatmap is hot in the image's top right quarter, on the image `dicom`
    sent by STOW."""
    create_patient(organization=clinic, mrn="MRN-7", full_name="Eleanor Whitmore")
    sender = make_user("heat-pacs", organization=clinic, role=Role.CLINICIAN)
    assert stow(client_for(sender), dicom).status_code == 200
    encounter = clinic.patients.get().encounters.get()
    heatmap = [[0.0] * 4 for _ in range(4)]
    heatmap[0][3] = 1.0
    result = finished_result(
        encounter,
        version,
        diagnosis={"suspicious_mass": 0.9},
        findings=["suspicious_mass"],
        explanation={"method": "grad-cam", "finding": "suspicious_mass", "heatmap": heatmap},
    )
    result.job.media.set(encounter.media.all())
    return result


def test_a_shown_heatmap_goes_as_a_parametric_map_in_the_original_frame_of_reference(
    clinic, make_user, version
):
    result = heatmap_result(clinic, make_user, version, instance(study="6"))
    report, heatmap, _ = (
        pydicom.dcmread(io.BytesIO(written(item))) for item in pacs_objects(result=result)
    )
    assert report.Modality == "SR"
    heatmap = hd.pm.ParametricMap.from_dataset(heatmap)
    assert heatmap.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30", "Parametric Map"
    assert heatmap.StudyInstanceUID == "1.2.826.0.1.3680043.9.7.6"
    assert heatmap.FrameOfReferenceUID == original_frame_of_reference(instance(study="6")), (
        "laid on the PACS's image, not on Tessera's stand-in"
    )
    assert heatmap.PatientID == "MRN-7"
    assert heatmap.SeriesDescription.endswith("not for diagnosis")
    assert "heatmap of suspicious mass" in heatmap.SeriesDescription
    assert heatmap.SourceImageSequence[0].ReferencedSOPInstanceUID == (
        "1.2.826.0.1.3680043.9.7.6.1.1"
    ), "derived from the original image"
    values = heatmap.pixel_array
    assert values.shape == (32, 32)
    assert values[:8, 24:].min() == 1.0, "hot where the heatmap is"
    assert values[8:, :24].max() == 0.0


def test_a_shown_heatmap_goes_too_as_a_secondary_capture_over_the_image(clinic, make_user, version):
    result = heatmap_result(clinic, make_user, version, instance(study="6"))
    *_, capture = (
        pydicom.dcmread(io.BytesIO(written(item))) for item in pacs_objects(result=result)
    )
    assert capture.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7", "Secondary Capture"
    assert capture.StudyInstanceUID == "1.2.826.0.1.3680043.9.7.6"
    assert capture.PatientID == "MRN-7"
    assert "heatmap of suspicious mass" in capture.SeriesDescription
    assert capture.SeriesDescription.endswith("not for diagnosis")
    rgb = capture.pixel_array.astype(int)
    assert rgb.shape == (32, 32, 3)
    redness = rgb[..., 0] - rgb[..., 2]
    assert redness[:8, 24:].min() > 0, "red where the heatmap is hot"
    assert redness[8:, :24].max() == 0, "grey elsewhere"


def test_an_image_without_a_frame_of_reference_gets_the_secondary_capture_alone(
    clinic, make_user, version
):
    dataset = pydicom.dcmread(io.BytesIO(instance(study="6")))
    del dataset.FrameOfReferenceUID  # nothing a Parametric Map could be placed in
    result = heatmap_result(clinic, make_user, version, written(dataset))
    kinds = [item.SOPClassUID for item in pacs_objects(result=result)]
    assert kinds == ["1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.7"], "SR, SC"


def original_frame_of_reference(dicom: bytes) -> str:
    return pydicom.dcmread(io.BytesIO(dicom)).FrameOfReferenceUID


def written(dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def walk(sequence):
    for item in sequence:
        yield item
        yield from walk(item.get("ContentSequence", []))


def test_a_result_without_an_image_from_the_pacs_is_refused_in_words(clinic, version):
    patient = create_patient(organization=clinic, mrn="MRN-8", full_name="No Image")
    encounter = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
    result = finished_result(encounter, version, diagnosis={"effusion": 0.2})
    with pytest.raises(Refused, match="no DICOM image"):
        pacs_objects(result=result)
