"""Synthetic cross-modal data: DICOM images, notes and voice recordings whose labels need
evidence from several modalities, with the generator's true posterior beside every case (see
`mlcore.synthetic.truth`). Used by the demo data, the tests and the benchmarks."""

from mlcore.synthetic.audio import SAMPLE_RATE, synthetic_voice, wav_bytes
from mlcore.synthetic.cases import (
    CLINIC_AFFECTS,
    CLINIC_FINDINGS,
    SCHOOL_AFFECTS,
    ClinicalCase,
    LearnerCase,
    clinical_case,
    learner_case,
    subset_name,
)
from mlcore.synthetic.dataset import SPLITS, read_truth, write_dataset
from mlcore.synthetic.images import (
    Lesion,
    LesionSpot,
    chest_ct_slice,
    ct_dicom_bytes,
    random_lesion,
    synthetic_slice,
)
from mlcore.synthetic.text import radiology_report

__all__ = [
    "CLINIC_AFFECTS",
    "CLINIC_FINDINGS",
    "SAMPLE_RATE",
    "SCHOOL_AFFECTS",
    "SPLITS",
    "ClinicalCase",
    "LearnerCase",
    "Lesion",
    "LesionSpot",
    "chest_ct_slice",
    "clinical_case",
    "ct_dicom_bytes",
    "learner_case",
    "radiology_report",
    "random_lesion",
    "read_truth",
    "subset_name",
    "synthetic_slice",
    "synthetic_voice",
    "wav_bytes",
    "write_dataset",
]
