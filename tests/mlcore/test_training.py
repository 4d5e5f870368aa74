"""Training, bundles and the inference engine on a small synthetic dataset."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mlcore.config import TextEncoderConfig
from mlcore.data import Case, read_manifest
from mlcore.engine import InferenceEngine
from mlcore.errors import InputError
from mlcore.registry import load_bundle, save_bundle
from mlcore.train import TrainingConfig, train
from tests.mlcore.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
QUICK = TrainingConfig(epochs=3, batch_size=16, learning_rate=3e-3, progress=False, seed=11)


@pytest.fixture(scope="module")
def cases(clinic_dataset):
    all_cases = read_manifest(clinic_dataset)
    return all_cases[:36], all_cases[36:]


@pytest.fixture(scope="module")
def trained(cases):
    return train(tiny_config(), *cases, QUICK)


@pytest.fixture(scope="module")
def bundle(trained, tmp_path_factory):
    return save_bundle(
        tmp_path_factory.mktemp("bundle") / "tiny", trained.model, metrics=trained.metrics
    )


def test_training_is_deterministic_on_cpu(cases, trained):
    again = train(tiny_config(), *cases, QUICK)
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    assert again.history == trained.history


def test_training_reports_metrics_and_history(trained):
    assert {"diagnosis", "emotion", "score"} <= set(trained.metrics)
    assert len(trained.history) == QUICK.epochs
    assert trained.metrics["emotion"]["confusion_matrix"]
    assert float(trained.model.emotion.temperature) != 1.0, "calibration fitted a temperature"


def test_a_bundle_has_every_part_and_reloads_bit_identically(bundle, cases):
    assert {p.name for p in bundle.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "metrics.json",
        "MODEL_CARD.md",
    }
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "Intended use" in card
    assert "suggestion" in card.lower()
    first = InferenceEngine(bundle, device="cpu").predict(cases[1])
    second = InferenceEngine(bundle, device="cpu").predict(cases[1])
    assert [p.to_dict() for p in first] == [p.to_dict() for p in second]


def test_batched_and_one_by_one_predictions_agree(bundle, cases):
    engine = InferenceEngine(bundle, device="cpu", batch_size=16)
    features = [engine.prepare(case) for case in cases[1]]
    features[0].audio = None  # mixed subsets of modalities in one batch
    features[1].image = None
    batched = engine.predict_features(features)
    for item, together in zip(features, batched, strict=True):
        (alone,) = engine.predict_features([item])
        for task in ("diagnosis", "emotion", "contributions"):
            for label, value in getattr(together, task).items():
                assert abs(value - getattr(alone, task)[label]) < 1e-4, (task, label)


def test_int8_weights_answer_like_fp32(bundle, cases):
    from torchao.quantization import Int8Tensor

    full = InferenceEngine(bundle, device="cpu")
    small = InferenceEngine(bundle, device="cpu", quantize=True)
    assert isinstance(small.model.encoders["text"].projection.weight, Int8Tensor)
    features = [full.prepare(case) for case in cases[1]]
    pairs = list(
        zip(full.predict_features(features), small.predict_features(features), strict=True)
    )
    for fp32, int8 in pairs:
        for label, probability in fp32.emotion.items():
            assert abs(probability - int8.emotion[label]) < 0.05, label
    assert sum(a.emotion_label == b.emotion_label for a, b in pairs) >= 0.9 * len(pairs)


def test_predictions_say_what_they_used(bundle, cases):
    engine = InferenceEngine(bundle, device="cpu")
    case = cases[1][0]
    text_only = Case(id="t", text=case.text)
    (full,), (partial,) = engine.predict([case]), engine.predict([text_only])
    assert full.modalities_used == ["image", "text", "audio"]
    assert partial.modalities_used == ["text"]
    assert partial.contributions == {"text": 1.0}
    assert 0.0 <= partial.uncertainty <= 1.0
    assert set(full.emotion) == {"neutral", "anxious", "depressed_mood", "pain"}
    assert sum(full.emotion.values()) == pytest.approx(1.0, abs=1e-5)


def test_abstains_below_the_bundles_confidence(bundle, cases):
    engine = InferenceEngine(bundle, device="cpu")
    engine.config.abstain_below = 1.01  # nothing is that certain
    assert all(p.abstain for p in engine.predict(cases[1][:3]))
    engine.config.abstain_below = 0.0
    assert not any(p.abstain for p in engine.predict(cases[1][:3]))


def test_a_case_with_no_usable_input_is_an_input_error(bundle):
    engine = InferenceEngine(bundle, device="cpu")
    with pytest.raises(InputError, match="none of the model's inputs"):
        engine.prepare(Case(id="empty"))
    with pytest.raises(InputError):
        engine.prepare(Case(id="bad", image=str(REPO / "README.md")))


def test_a_frozen_pretrained_text_encoder_stays_out_of_the_bundle(cases, tmp_path):
    config = tiny_config(text=TextEncoderConfig(max_length=48), modalities=["text"])
    result = train(config, *cases, TrainingConfig(epochs=1, batch_size=16, progress=False))
    directory = save_bundle(tmp_path / "minilm", result.model, metrics=result.metrics)
    stored = load_file(str(directory / "model.safetensors"))
    assert not any(name.startswith("encoders.text.backbone.") for name in stored)
    assert (directory / "model.safetensors").stat().st_size < 1_000_000
    reloaded = load_bundle(directory).model
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor.cpu(), reloaded.state_dict()[name]), name


def test_the_command_line_trains_and_evaluates(clinic_dataset, tmp_path):
    config = json.loads(tiny_config().to_json())
    config["training"] = {"epochs": 2, "batch_size": 16}
    (tmp_path / "config.json").write_text(json.dumps(config))
    bundle_dir = tmp_path / "bundle"
    run = [sys.executable, "-m", "mlcore"]
    trained = subprocess.run(
        [
            *run,
            "train",
            "--manifest",
            str(clinic_dataset),
            "--config",
            str(tmp_path / "config.json"),
            "--out",
            str(bundle_dir),
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout.splitlines()[-1])["bundle"] == str(bundle_dir)
    assert len((bundle_dir / "training_log.jsonl").read_text().splitlines()) == 2
    assert json.loads((bundle_dir / "config.json").read_text())["training_data_hash"]
    evaluated = subprocess.run(
        [*run, "evaluate", "--bundle", str(bundle_dir), "--manifest", str(clinic_dataset)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert 0.0 <= metrics["score"] <= 1.0
    assert metrics["emotion"]["n"] == 48
    broken = subprocess.run(
        [*run, "evaluate", "--bundle", str(tmp_path), "--manifest", str(clinic_dataset)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert broken.returncode == 2
    assert "is not a model bundle" in broken.stderr


def test_manifest_errors_name_the_line(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": "a", "emotion": "neutral"}\n{not json}\n')
    with pytest.raises(InputError, match="line 2"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text('{"id": "a", "colour": "red"}\n')
    with pytest.raises(InputError, match="unknown fields"):
        read_manifest(tmp_path / "m.jsonl")


def test_the_seed_changes_the_outcome(cases):
    other = train(
        tiny_config(), *cases, TrainingConfig(epochs=1, batch_size=16, progress=False, seed=12)
    )
    first = train(
        tiny_config(), *cases, TrainingConfig(epochs=1, batch_size=16, progress=False, seed=11)
    )
    assert not np.array_equal(
        other.model.state_dict()["encoders.audio.projection.weight"].numpy(),
        first.model.state_dict()["encoders.audio.projection.weight"].numpy(),
    )


def test_a_held_out_split_that_cannot_calibrate_leaves_the_temperature_finite():
    """Every held-out case negative, every logit confidently negative: a sharper temperature is
    always better, and the fit used to run off to NaN (which then stored NaN probabilities)."""
    import torch
    import torch.nn.functional as F

    from mlcore.train import _fit_temperature

    logits = torch.full((4, 1), -8.0)
    truth = torch.zeros((4, 1))
    temperature = _fit_temperature(lambda t: F.binary_cross_entropy_with_logits(logits / t, truth))
    assert 0.05 <= temperature <= 20.0
    mixed = torch.tensor([[-2.0], [3.0], [1.0], [-1.0]])
    labels = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    fitted = _fit_temperature(lambda t: F.binary_cross_entropy_with_logits(mixed / t, labels))
    assert fitted > 1.0, "overconfident logits are softened"
