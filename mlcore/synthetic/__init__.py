"""Synthetic cross-modal data: DICOM images, notes and voice recordings whose labels need
evidence from several modalities. Used by the demo data, the tests and the benchmarks."""

from mlcore.synthetic.audio import SAMPLE_RATE, synthetic_voice, wav_bytes
from mlcore.synthetic.cases import (
    CLINIC_AFFECTS,
    CLINIC_FINDINGS,
    SCHOOL_AFFECTS,
    ClinicalCase,
    LearnerCase,
    clinical_case,
    learner_case,
)
from mlcore.synthetic.dataset import write_dataset
from mlcore.synthetic.images import Lesion, chest_ct_slice, ct_dicom_bytes, random_lesion
from mlcore.synthetic.text import radiology_report

__all__ = [
    "CLINIC_AFFECTS",
    "CLINIC_FINDINGS",
    "SAMPLE_RATE",
    "SCHOOL_AFFECTS",
    "ClinicalCase",
    "LearnerCase",
    "Lesion",
    "chest_ct_slice",
    "clinical_case",
    "ct_dicom_bytes",
    "learner_case",
    "radiology_report",
    "random_lesion",
    "synthetic_voice",
    "wav_bytes",
    "write_dataset",
]
