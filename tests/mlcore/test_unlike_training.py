"""Needs a person, as unlike the training data: the input checks, the novelty detector, and the
out-of-distribution probes (mlcore.probes) on demo-sized models."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mlcore.config import InputProfile
from mlcore.data import Case, read_manifest
from mlcore.engine import InferenceEngine
from mlcore.input_checks import concerns, profile, sound_level, text_language
from mlcore.probes import probes, pydicom_images, sounds
from mlcore.registry import WEIGHTS_FILE, save_bundle
from mlcore.train import TrainingConfig, train
from tests.mlcore.conftest import tiny_config

CHEST_CT = InputProfile(
    image_modalities=["CT"],
    body_parts=["CHEST"],
    rows=[64, 64],
    columns=[64, 64],
    text_languages=["en"],
)


def test_each_input_unlike_the_profile_is_named():
    like = {"image_modality": "CT", "body_part": "CHEST", "rows": 64, "columns": 64}
    assert concerns({**like, "text_language": "en", "sound_level": -20.0}, CHEST_CT) == []
    assert concerns({**like, "image_modality": "MR"}, CHEST_CT) == [
        "the image is of modality MR; the model learned from CT images"
    ]
    assert concerns({**like, "image_modality": ""}, CHEST_CT) == [
        "the image names no modality; the model learned from CT images"
    ]
    assert concerns({**like, "body_part": "HEAD"}, CHEST_CT) == [
        "the image shows the head; the model learned from chest images"
    ]
    assert concerns({**like, "rows": 512, "columns": 512}, CHEST_CT) == [
        "the image is 512 by 512 pixels; the model learned from 64 by 64"
    ]
    assert concerns({**like, "rows": 31, "columns": 64}, CHEST_CT) == [
        "the image is 31 by 64 pixels; the model learned from 64 by 64"
    ]
    # Within a factor of two of the training matrix, scanners differ: not held against it.
    assert concerns({**like, "rows": 128, "columns": 32}, CHEST_CT) == []
    assert concerns({"text_language": "fr"}, CHEST_CT) == [
        "the text seems to be in French; the model learned from English"
    ]
    assert concerns({"sound_level": -90.0}, CHEST_CT) == [
        "the recording is silent (its level is -90 dBFS)"
    ]
    # A body part the file does not name, and a text too short to tell, are not held against it.
    assert concerns({**like, "body_part": "", "text_language": ""}, CHEST_CT) == []
    assert concerns({**like, "image_modality": "MR"}, InputProfile()) == [], "nothing to check"


def test_the_profile_is_what_training_saw_widened_by_what_the_base_saw():
    facts = [
        {"image_modality": "CT", "body_part": "CHEST", "rows": 64, "columns": 60},
        {"image_modality": "CT", "body_part": "", "rows": 70, "columns": 64},
        *({"text_language": "en"} for _ in range(40)),
        {"text_language": "fr"},  # one stray text in forty is not a language of the model
    ]
    learned = profile(facts)
    assert learned == InputProfile(["CT"], ["CHEST"], [64, 70], [60, 64], ["en"])
    widened = profile(
        [{"image_modality": "MR", "body_part": "HEAD", "rows": 256, "columns": 256}], start=learned
    )
    assert widened.image_modalities == ["CT", "MR"]
    assert widened.body_parts == ["CHEST", "HEAD"]
    assert widened.rows == [64, 256]
    assert widened.text_languages == ["en"]


def test_languages_and_levels_are_measured():
    assert text_language("The patient reports chest pain since yesterday evening.") == "en"
    assert text_language("Le patient se plaint de douleurs thoraciques depuis hier.") == "fr"
    assert text_language("Der Patient klagt seit zwei Tagen über Atemnot.") == "de"
    assert text_language("Feeling tired.") == "", "too short to tell"
    assert sound_level(np.zeros(16000)) < -100
    assert -12 < sound_level(0.3 * np.ones(16000)) < -10  # 20·log10(0.3) = -10.5


def test_probes_come_alone_and_in_place_of_a_modality():
    images = pydicom_images()
    assert len(images) > 40
    assert all(path.is_file() for path in images)
    base = [Case(id="a", image="a.dcm", text="A note.", audio=b"wav")]
    found = probes(["image", "text", "audio"], base)
    kinds = {probe.kind for probe in found}
    assert kinds == {"dicom", "other_language", "unrelated_text", "noise", "silence"}
    mixed = [probe for probe in found if not probe.alone]
    assert len(mixed) == len(found) // 2
    for probe in mixed:
        kept = {"image", "text", "audio"} - {
            {"dicom": "image", "noise": "audio", "silence": "audio"}.get(probe.kind, "text")
        }
        assert all(getattr(probe.case, m) == getattr(base[0], m) for m in kept), probe.kind
    assert {p.kind for p in probes(["text", "audio"])} == {
        "other_language",
        "unrelated_text",
        "noise",
        "silence",
    }
    assert len(sounds()["silence"]) == 2


@pytest.fixture(scope="module")
def tiny_bundle(clinic_dataset, tmp_path_factory):
    cases = read_manifest(clinic_dataset)
    quick = TrainingConfig(epochs=2, batch_size=16, progress=False, seed=3)
    result = train(tiny_config(), cases[:36], cases[36:48], quick, calibration_cases=cases[48:])
    return save_bundle(
        tmp_path_factory.mktemp("novelty") / "tiny", result.model, metrics=result.metrics
    ), result


def test_training_fits_the_detector_on_its_splits_and_the_bundle_keeps_it(tiny_bundle):
    directory, result = tiny_bundle
    report = result.metrics["novelty"]
    assert report["split"] == "validation and calibration"
    assert report["flagged_share"] == 0.01
    assert report["views"] == (12 + 12) * 7, "each held-out case under each subset of its inputs"
    detector = result.model.novelty
    assert detector.fitted
    assert bool(detector.usable.all())
    assert float(detector.limit) == pytest.approx(report["limit"], abs=1e-4)
    config = json.loads((directory / "config.json").read_text())
    assert config["inputs"]["image_modalities"] == ["CT"]
    assert config["inputs"]["text_languages"] == ["en"]
    engine = InferenceEngine(directory, device="cpu")
    assert torch.equal(engine.model.novelty.limit, detector.limit)
    assert torch.equal(engine.model.novelty.precision, detector.precision)


def test_a_bundle_from_before_novelty_detection_loads_with_it_unfitted(tiny_bundle, tmp_path):
    directory, _ = tiny_bundle
    old = tmp_path / "old"
    old.mkdir()
    for item in directory.iterdir():
        if item.is_file():
            (old / item.name).write_bytes(item.read_bytes())
    weights = {
        k: v for k, v in load_file(str(old / WEIGHTS_FILE)).items() if not k.startswith("novelty.")
    }
    save_file(weights, str(old / WEIGHTS_FILE))
    engine = InferenceEngine(old, device="cpu")
    assert not engine.model.novelty.fitted
    (prediction,) = engine.predict([Case(id="noise", audio=sounds()["noise"][0])])
    assert prediction.novelty == 0.0
    assert prediction.unlike == []


def test_a_case_far_from_the_training_cases_says_which_input(tiny_bundle, clinic_dataset):
    directory, _ = tiny_bundle
    engine = InferenceEngine(directory, device="cpu")
    case = read_manifest(clinic_dataset)[40]
    noise = sounds()["noise"][0]
    (prediction,) = engine.predict([Case(id="n", image=case.image, text=case.text, audio=noise)])
    assert prediction.novelty > float(engine.model.novelty.limit)
    assert "the recording is unlike those the model learned from" in prediction.unlike
    for task in ("diagnosis", "emotion"):
        verdict = prediction.needs_person[task]
        assert verdict["reason"] == "unlike_training"
        assert verdict["detail"].startswith("This case is unlike the model's training data: ")
    engine.model.novelty.limit.fill_(float("inf"))  # the detector aside, nothing else objects
    (again,) = engine.predict([Case(id="n", image=case.image, text=case.text, audio=noise)])
    assert again.unlike == []


def test_missing_evidence_is_said_before_unlike_training(tiny_bundle):
    directory, _ = tiny_bundle
    engine = InferenceEngine(directory, device="cpu")
    engine.config.tasks.requires = {"diagnosis": ["image"]}
    (prediction,) = engine.predict(
        [Case(id="fr", text="Le patient se plaint de douleurs thoraciques depuis hier soir.")]
    )
    assert prediction.needs_person["diagnosis"]["reason"] == "evidence_missing"
    verdict = prediction.needs_person["emotion"]
    assert verdict["reason"] == "unlike_training"
    assert verdict["detail"].startswith(
        "This case is unlike the model's training data: the text seems to be in French; the "
        "model learned from English"
    )
