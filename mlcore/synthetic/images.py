"""Synthetic chest CT slices written as well-formed DICOM: CT Image Storage, 16-bit pixels with
rescale slope/intercept to Hounsfield units, pixel spacing, and an optional round lesion."""

import io
from dataclasses import dataclass
from datetime import date

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

HU_OFFSET = 1024  # stored value = HU + 1024, the usual CT rescale intercept of -1024


@dataclass(frozen=True)
class Lesion:
    side: str  # "left" or "right" (the patient's, as radiologists say: image right is patient left)
    level: str  # "upper" or "lower"
    large: bool


def random_lesion(rng: np.random.Generator) -> Lesion:
    return Lesion(
        side=("left", "right")[int(rng.integers(2))],
        level=("upper", "lower")[int(rng.integers(2))],
        large=bool(rng.integers(2)),
    )


@dataclass(frozen=True)
class Scanner:
    """How a site's scanner renders the same anatomy: noise, a calibration offset and blur."""

    noise_hu: float = 20.0
    offset_hu: float = 0.0
    blur_pixels: float = 0.0


HOME_SCANNER = Scanner()
OTHER_SCANNER = Scanner(noise_hu=45.0, offset_hu=30.0, blur_pixels=0.8)


@dataclass(frozen=True)
class LesionSpot:
    """Where a lesion is in the generated slice, in pixels: what a heatmap should point at."""

    row: float
    column: float
    radius: float


def chest_ct_slice(
    *, lesion: bool | Lesion, rng: np.random.Generator, size: int = 128
) -> np.ndarray:
    """A 2D slice in Hounsfield units: body, lungs, a spine and, if asked, a lesion in a lung
    (`True` places one at random; a `Lesion` places it as described)."""
    return synthetic_slice(lesion=lesion, rng=rng, size=size)[0]


def synthetic_slice(
    *,
    lesion: bool | Lesion,
    rng: np.random.Generator,
    size: int = 128,
    contrast: tuple[float, float] = (750.0, 900.0),
    scanner: Scanner = HOME_SCANNER,
) -> tuple[np.ndarray, LesionSpot | None]:
    """The slice (HU) and where its lesion is. The lesion's contrast over the lung is drawn
    from `contrast` (HU), so some lesions are faint; `scanner` renders the slice."""
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    hu = np.full((size, size), -1000.0)  # air
    hu[(x / 0.46) ** 2 + (y / 0.36) ** 2 <= 1] = 40.0  # soft tissue
    for cx in (-0.19, 0.19):
        hu[((x - cx) / 0.15) ** 2 + (y / 0.26) ** 2 <= 1] = -850.0
    hu[(x / 0.05) ** 2 + ((y - 0.27) / 0.05) ** 2 <= 1] = 700.0  # vertebra
    spot = None
    if lesion:
        where = lesion if isinstance(lesion, Lesion) else random_lesion(rng)
        cx = (0.19 if where.side == "left" else -0.19) + rng.uniform(-0.05, 0.05)
        cy = (-0.12 if where.level == "upper" else 0.12) + rng.uniform(-0.04, 0.04)
        sigma = rng.uniform(0.06, 0.08) if where.large else rng.uniform(0.025, 0.035)
        blob = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2)))
        hu += blob * rng.uniform(*contrast)
        # Out to 1.5 sigma the lesion stands well clear of the lung around it.
        spot = LesionSpot(
            row=(cy + 0.5) * size, column=(cx + 0.5) * size, radius=1.5 * sigma * size
        )
    if scanner.blur_pixels:
        from scipy.ndimage import gaussian_filter

        hu = gaussian_filter(hu, scanner.blur_pixels)
    hu += scanner.offset_hu + rng.normal(0.0, scanner.noise_hu, size=hu.shape)
    return np.clip(hu, -1024, 3071), spot


def ct_dicom_bytes(
    hounsfield: np.ndarray,
    *,
    patient_name: str,
    patient_id: str,
    birth_date: date | None,
    sex: str,
    study_date: date,
    uid_seed: str,
) -> bytes:
    """Encode a slice in HU as a DICOM Part 10 file (explicit VR little endian)."""
    sop_instance_uid = generate_uid(entropy_srcs=[uid_seed, "instance"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[uid_seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid_seed, "series"])
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[uid_seed, "frame of reference"])
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date.strftime("%Y%m%d") if birth_date else ""
    ds.PatientSex = {"female": "F", "male": "M", "other": "O"}.get(sex, "")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date.strftime("%Y%m%d")
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "Tessera synthetic"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [-45.0, -45.0, 0.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 2.5
    ds.PixelSpacing = [0.7, 0.7]
    ds.Rows, ds.Columns = hounsfield.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -HU_OFFSET
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = -600
    ds.WindowWidth = 1500
    stored = np.clip(np.rint(hounsfield) + HU_OFFSET, 0, 4095).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
