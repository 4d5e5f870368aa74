"""A clinic's result as a DICOM Structured Report for the PACS it came from: a TID 1500
Measurement Report (Comprehensive 3D SR, through highdicom) carrying each finding (present or
absent, and its probability in percent), whether the findings need a person, and the model
name and version, in a series that says it is an AI suggestion and not for diagnosis.

It is written in the PACS's terms, not in Tessera's de-identified ones: under the original
study, series and instance of the image the analysis read (records.origins: the way back,
read and audited), for the patient as the PACS knows them (MRN as PatientID, their name and
birth date, the encounter's date), so a radiologist finds it beside the images.
"""

import io

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes

from tessera.jobs.models import AnalysisResult
from tessera.records.kinds import subject_of, visit_of
from tessera.records.models import MediaAsset, MediaKind
from tessera.records.selectors import pacs_origin
from tessera.records.storage import content_store
from tessera.refusals import RefusalCode, Refused

SCHEME = "99TESSERA"  # our private coding scheme (PS3.16 8.2: "99" + a local designator)
SERIES_DESCRIPTION = "AI suggestion (Tessera) - not for diagnosis"
SERIES_NUMBER = 9901
NEEDS_A_PERSON = hd.sr.CodedConcept("needs-person", SCHEME, "Needs a person")


def structured_report(*, result: AnalysisResult) -> bytes:
    """The SR of `result`, as a DICOM file. Refused (in words) for a result without an image
    that came with its way back to the PACS."""
    image = _image_read(result)
    identity = pacs_origin(media=image) if image is not None else None
    if identity is None:
        raise Refused(
            "this analysis read no DICOM image that Tessera can point back to the PACS with",
            code=RefusalCode.NO_PACS_IMAGE,
        )
    with content_store().open_media(image) as stored:
        source = pydicom.dcmread(stored, stop_before_pixels=True)
    patient, encounter = subject_of(result.job), visit_of(result.job)
    # The header as the PACS has it: the original identity, the real patient and date.
    source.StudyInstanceUID = identity.study_uid
    source.SeriesInstanceUID = identity.series_uid
    source.SOPInstanceUID = identity.sop_instance_uid
    source.AccessionNumber = identity.accession_number
    source.PatientID = patient.mrn
    source.PatientName = _person_name(patient.full_name)
    source.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    source.StudyDate = encounter.occurred_at.strftime("%Y%m%d")
    source.StudyTime = encounter.occurred_at.strftime("%H%M%S")
    for emptied in ("StudyID", "ReferringPhysicianName"):  # type 2: present, maybe empty
        if emptied not in source:
            setattr(source, emptied, "")
    version = result.model_version.name
    algorithm = hd.sr.AlgorithmIdentification(name="Tessera", version=version)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=f"Tessera result {result.pk}"
        ),
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(
                name=hd.sr.CodedConcept(f"{label}-probability", SCHEME, f"P({_words(label)})"),
                value=round(100 * probability, 1),
                unit=codes.UCUM.Percent,
                algorithm_id=algorithm,
            )
            for label, probability in sorted(result.diagnosis.items())
        ],
        qualitative_evaluations=[
            *(
                hd.sr.QualitativeEvaluation(
                    name=hd.sr.CodedConcept(label, SCHEME, _words(label)),
                    value=codes.SCT.Present if label in result.findings else codes.SCT.Absent,
                )
                for label in sorted(result.diagnosis)
            ),
            hd.sr.QualitativeEvaluation(
                name=NEEDS_A_PERSON,
                value=codes.SCT.Yes if "diagnosis" in result.needs_person else codes.SCT.No,
            ),
        ],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="Tessera", manufacturer_name="Tessera", model_name=version
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=hd.sr.CodedConcept(
            "multimodal-analysis", SCHEME, "Tessera multimodal analysis"
        ),
        imaging_measurements=[group],
    )
    document = hd.sr.Comprehensive3DSR(
        evidence=[source],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Tessera",
        is_complete=True,
    )
    document.SeriesDescription = SERIES_DESCRIPTION
    out = io.BytesIO()
    document.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _image_read(result: AnalysisResult) -> MediaAsset | None:
    return result.job.media.filter(kind=MediaKind.DICOM).order_by("-created_at").first()


def _person_name(full_name: str) -> str:
    """"Eleanor Whitmore" as DICOM writes a person's name: "Whitmore^Eleanor" (the family name
    is taken to be the last word, as the record gives the name whole)."""
    given, _, family = full_name.strip().rpartition(" ")
    return f"{family}^{given}"


def _words(label: str) -> str:
    return label.replace("_", " ")
