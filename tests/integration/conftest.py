"""Fixtures of the integration tests: a tiny trained clinic model and the files of a visit."""

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from mlcore.data import read_manifest
from mlcore.registry import save_bundle
from mlcore.synthetic import write_dataset
from mlcore.synthetic.images import chest_ct_slice, ct_dicom_bytes
from mlcore.train import TrainingConfig, train
from tests.mlcore.conftest import tiny_config

LONG_NOTE = " ".join(["Chest pain radiating to the left arm, worse on exertion."] * 20)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline-models")
    cases = read_manifest(
        write_dataset(
            root / "data", kind="clinic", cases=16, seed=4, image_size=32, voice_seconds=2.0
        )
    )
    result = train(
        tiny_config(),
        cases[:12],
        cases[12:],
        TrainingConfig(epochs=1, batch_size=8, progress=False),
    )
    save_bundle(root / "tiny", result.model, metrics=result.metrics)
    return root


@pytest.fixture
def media_files(tmp_path, dicom_bytes, wav_audio) -> Path:
    data = tmp_path / "files"
    data.mkdir()
    (data / "ct.dcm").write_bytes(dicom_bytes)
    (data / "other-ct.dcm").write_bytes(  # stored apart from ct.dcm: its content differs
        ct_dicom_bytes(
            chest_ct_slice(lesion=False, rng=np.random.default_rng(8), size=64),
            patient_name="Other^Patient",
            patient_id="T-2",
            birth_date=None,
            sex="male",
            study_date=date(2026, 10, 2),
            uid_seed="other",
        )
    )
    (data / "note.txt").write_text("Cough for six weeks; patient feels overwhelmed.\n")
    (data / "long-note.txt").write_text(LONG_NOTE + "\n")
    (data / "speech.wav").write_bytes(wav_audio)
    return data
