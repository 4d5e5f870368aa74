"""Per-task contributions are exact Shapley values of the model's own answers: checked against
every order of adding the modalities, computed by brute force from the model itself."""

from itertools import permutations

import numpy as np
import pytest
import torch

from mlcore.contributions import shapley_contributions
from mlcore.data import Preprocessor, collate, read_manifest
from mlcore.engine import InferenceEngine
from mlcore.model import build_model
from mlcore.registry import save_bundle
from mlcore.train import TrainingConfig, preprocess, train
from tests.mlcore.conftest import tiny_config


@pytest.fixture(scope="module")
def model_and_batch(clinic_dataset):
    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(config).eval()
    cases = read_manifest(clinic_dataset)[:6]
    preprocessor = Preprocessor(config)
    features = preprocess(cases, preprocessor)
    features[1].audio = None  # a case without its recording
    features[2].image = features[2].audio = None  # a case with its text alone
    return model, collate(features, config, pad_id=preprocessor.pad_id)


def _answer_probability(model, batch, present, chosen):
    tokens, _ = model.encode(batch)
    output = model.decide(tokens, present)
    return {
        "suspicious_mass": model.diagnosis.probabilities(output.diagnosis)[:, 0],
        "emotion": model.emotion.probabilities(output.emotion).gather(1, chosen[:, None])[:, 0],
    }


def test_contributions_are_the_shapley_values_of_each_answer(model_and_batch):
    model, batch = model_and_batch
    with torch.inference_mode():
        measured = shapley_contributions(model, batch)
        everything = model(batch)
        chosen = model.emotion.probabilities(everything.emotion).argmax(dim=1)
        expected = {task: torch.zeros(len(batch), 3) for task in measured}
        orders = list(permutations(range(3)))
        for order in orders:
            present = torch.zeros_like(batch.present)
            before = _answer_probability(model, batch, present & batch.present, chosen)
            for player in order:
                present = present.clone()
                present[:, player] = True
                after = _answer_probability(model, batch, present & batch.present, chosen)
                for task in expected:
                    expected[task][:, player] += (after[task] - before[task]) / len(orders)
                before = after
    assert set(measured) == {"suspicious_mass", "emotion"}
    for task, values in measured.items():
        np.testing.assert_allclose(values.numpy(), expected[task].numpy(), atol=1e-5)


def test_they_add_up_to_the_answer_and_a_missing_input_contributes_nothing(model_and_batch):
    model, batch = model_and_batch
    with torch.inference_mode():
        measured = shapley_contributions(model, batch)
        tokens, present = model.encode(batch)
        full = model.diagnosis.probabilities(model.decide(tokens, present).diagnosis)
        empty = model.diagnosis.probabilities(
            model.decide(tokens, torch.zeros_like(present)).diagnosis
        )
    total = measured["suspicious_mass"].sum(dim=1)
    np.testing.assert_allclose(total.numpy(), (full - empty)[:, 0].numpy(), atol=1e-5)
    assert measured["suspicious_mass"][1, 2] == 0.0, "no recording, no contribution"
    assert measured["emotion"][2, 0] == measured["emotion"][2, 2] == 0.0
    assert measured["emotion"][2, 1] != 0.0, "the text alone moved the answer"


def test_predictions_carry_contributions_per_answer_for_the_inputs_used(clinic_dataset, tmp_path):
    cases = read_manifest(clinic_dataset)
    result = train(
        tiny_config(),
        cases[:24],
        cases[24:36],
        TrainingConfig(epochs=1, batch_size=12, progress=False),
    )
    engine = InferenceEngine(save_bundle(tmp_path / "b", result.model, metrics=result.metrics))
    case = cases[40]
    case.audio = None
    (prediction,) = engine.predict([case])
    assert set(prediction.contributions) == {"suspicious_mass", "emotion"}
    for values in prediction.contributions.values():
        assert set(values) == {"image", "text"}


def test_an_input_a_task_does_not_read_is_not_among_its_contributions(clinic_dataset, tmp_path):
    """`TaskConfig.reads`: the finding never reads the recording, so the card never says what
    the recording did to it (a model that still read it would contribute, and one that listed
    it would say it "barely moved" an answer it cannot move); the affect still names it."""
    cases = read_manifest(clinic_dataset)
    config = tiny_config()
    config.tasks.reads = {"diagnosis": ["image", "text"]}
    result = train(
        config, cases[:24], cases[24:36], TrainingConfig(epochs=1, batch_size=12, progress=False)
    )
    engine = InferenceEngine(save_bundle(tmp_path / "b", result.model, metrics=result.metrics))
    (prediction,) = engine.predict([cases[40]])
    assert set(prediction.contributions["suspicious_mass"]) == {"image", "text"}
    assert set(prediction.contributions["emotion"]) == {"image", "text", "audio"}
    assert "recording" not in prediction.rationales["diagnosis"]
    assert "the recording" in prediction.rationales["emotion"]
    assert engine.model.reads("diagnosis") == ["image", "text"], "the bundle keeps what it reads"
