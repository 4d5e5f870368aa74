"""A clinic's result as DICOM objects for the PACS it came from (highdicom):

- a Structured Report, TID 1500 Measurement Report (Comprehensive 3D SR), carrying each finding
  (present or absent, and its probability in percent), whether the findings need a person,
  and the model name and version;
- where the result has a heatmap (one the model's pointing game let it show), a Parametric Map
  of it on the image's own grid, which a viewer lays over the image in its frame of reference,
  and a Secondary Capture of it already laid over the image, for viewers that cannot show a
  Parametric Map. (A multi-frame image, or one whose frame of reference was not kept, gets the
  Secondary Capture of its middle frame alone.)

Each is in a series that says it is an AI suggestion and not for diagnosis, and is written in
the PACS's terms, not in Tessera's de-identified ones: under the original study of the image
the analysis read (records.origins: the way back, read and audited), for the patient as the
PACS knows them (MRN as PatientID, their name and birth date, the encounter's date), so a
radiologist finds it beside the images.
"""

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from tessera.jobs.models import AnalysisResult
from tessera.records.kinds import subject_of, visit_of
from tessera.records.models import MediaAsset, MediaKind
from tessera.records.selectors import pacs_origin
from tessera.records.storage import content_store
from tessera.refusals import RefusalCode, Refused
from tessera.text import family_and_given

SCHEME = "99TESSERA"  # our private coding scheme (PS3.16 8.2: "99" + a local designator)
NOT_FOR_DIAGNOSIS = " (Tessera) - not for diagnosis"
SERIES_DESCRIPTION = "AI suggestion" + NOT_FOR_DIAGNOSIS
SERIES_NUMBER = 9901
NEEDS_A_PERSON = hd.sr.CodedConcept("needs-person", SCHEME, "Needs a person")


def pacs_objects(*, result: AnalysisResult) -> list[pydicom.Dataset]:
    """The SR of `result`, and its heatmap where it has one. Refused (in words) for a result
    without an image that came with its way back to the PACS."""
    source, pixels = _as_the_pacs_has_it(result)
    objects = [structured_report(result, source)]
    if result.explanation.get("heatmap"):
        image = pixels[pixels.shape[0] // 2] if pixels.ndim == 3 else pixels  # a volume's middle
        heat = _heat_over(result, image.shape)
        if pixels.ndim == 2 and "FrameOfReferenceUID" in source:
            objects.append(heatmap_map(result, source, heat))
        objects.append(heatmap_capture(result, source, image, heat))
    return objects


def _as_the_pacs_has_it(result: AnalysisResult) -> tuple[pydicom.Dataset, np.ndarray]:
    """The header of the image the analysis read, re-identified: the original identity, the
    real patient and date; and its pixels."""
    image = _image_read(result)
    identity = pacs_origin(media=image) if image is not None else None
    if identity is None:
        raise Refused(
            "this analysis read no DICOM image that Tessera can point back to the PACS with",
            code=RefusalCode.NO_PACS_IMAGE,
        )
    with content_store().open_media(image) as stored:
        source = pydicom.dcmread(stored)
    pixels = source.pixel_array
    del source.PixelData
    patient, encounter = subject_of(result.job), visit_of(result.job)
    source.StudyInstanceUID = identity.study_uid
    source.SeriesInstanceUID = identity.series_uid
    source.SOPInstanceUID = identity.sop_instance_uid
    source.AccessionNumber = identity.accession_number
    if identity.frame_of_reference_uid:
        source.FrameOfReferenceUID = identity.frame_of_reference_uid
    elif "FrameOfReferenceUID" in source:  # a stand-in: no viewer at the PACS could place it
        del source.FrameOfReferenceUID
    source.PatientID = patient.mrn
    source.PatientName = "^".join(family_and_given(patient.full_name))  # "Whitmore^Eleanor"
    source.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    source.StudyDate = encounter.occurred_at.strftime("%Y%m%d")
    source.StudyTime = encounter.occurred_at.strftime("%H%M%S")
    for emptied in ("StudyID", "ReferringPhysicianName"):  # type 2: present, maybe empty
        if emptied not in source:
            setattr(source, emptied, "")
    return source, pixels


def structured_report(result: AnalysisResult, source: pydicom.Dataset) -> pydicom.Dataset:
    """The findings as a TID 1500 Measurement Report referencing `source`."""
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
    return document


def heatmap_map(
    result: AnalysisResult, source: pydicom.Dataset, heat: np.ndarray
) -> pydicom.Dataset:
    """The heatmap as a Parametric Map on the grid of `source` (a single-frame image with a
    frame of reference): each pixel's Grad-CAM relevance, 0 to 1."""
    finding = _words(result.explanation.get("finding", ""))
    version = result.model_version.name
    heatmap = hd.pm.ParametricMap(
        source_images=[source],
        pixel_array=heat,
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER + 2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Tessera",
        manufacturer_model_name="Tessera",
        software_versions=version,
        device_serial_number=version,
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[
            hd.pm.RealWorldValueMapping(
                lut_label="GRADCAM",
                lut_explanation=f"Grad-CAM relevance for {finding}"[:64],
                unit=codes.UCUM.NoUnits,
                value_range=(0.0, 1.0),
                slope=1,
                intercept=0,
            )
        ],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        content_label="HEATMAP",
        content_description=f"AI heatmap of {finding}"[:64],
    )
    heatmap.SeriesDescription = _series_description(f"AI heatmap of {finding}")
    return heatmap


def heatmap_capture(
    result: AnalysisResult, source: pydicom.Dataset, image: np.ndarray, heat: np.ndarray
) -> pydicom.Dataset:
    """`image` (windowed to its own range) in grey, the heatmap over it in red."""
    image = image.astype(np.float32)
    low, high = np.percentile(image, (1, 99))
    grey = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    rgb = np.stack([grey * (1 - 0.5 * heat) + 0.5 * heat, grey * (1 - 0.5 * heat), grey], -1)
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=np.round(255 * np.clip(rgb, 0, 1)).astype(np.uint8),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        # an axial slice seen from the feet, as CT is read: rows run to the patient's left,
        # columns to their back
        patient_orientation=("L", "P"),
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER + 1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Tessera",
    )
    finding = _words(result.explanation.get("finding", ""))
    capture.SeriesDescription = _series_description(f"AI heatmap of {finding} on the image")
    capture.BurnedInAnnotation = "NO"
    return capture


def _heat_over(result: AnalysisResult, shape: tuple[int, ...]) -> np.ndarray:
    """The result's heatmap cells spread over an image of `shape` (each cell a block)."""
    cells = np.asarray(result.explanation["heatmap"], dtype=np.float32)
    rows, columns = (
        np.minimum(np.arange(size) * cells.shape[axis] // size, cells.shape[axis] - 1)
        for axis, size in enumerate(shape)
    )
    return cells[np.ix_(rows, columns)]


def _image_read(result: AnalysisResult) -> MediaAsset | None:
    return result.job.media.filter(kind=MediaKind.DICOM).order_by("-created_at").first()


def _series_description(what: str) -> str:
    """`what`, shortened to fit DICOM's 64 characters, and whose suggestion it is."""
    return what[: 64 - len(NOT_FOR_DIAGNOSIS)] + NOT_FOR_DIAGNOSIS


def _words(label: str) -> str:
    return label.replace("_", " ")
