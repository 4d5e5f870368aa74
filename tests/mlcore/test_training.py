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
    """Train and validation splits."""
    all_cases = read_manifest(clinic_dataset)
    return all_cases[:36], all_cases[36:48]


@pytest.fixture(scope="module")
def calibration_cases(clinic_dataset):
    return read_manifest(clinic_dataset)[48:]


@pytest.fixture(scope="module")
def trained(cases, calibration_cases):
    return train(tiny_config(), *cases, QUICK, calibration_cases=calibration_cases)


@pytest.fixture(scope="module")
def bundle(trained, tmp_path_factory):
    return save_bundle(
        tmp_path_factory.mktemp("bundle") / "tiny", trained.model, metrics=trained.metrics
    )


def test_training_is_deterministic_on_cpu(cases, calibration_cases, trained):
    again = train(tiny_config(), *cases, QUICK, calibration_cases=calibration_cases)
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    assert again.history == trained.history


def test_training_reports_metrics_and_history(trained, calibration_cases):
    assert {"diagnosis", "emotion", "score"} <= set(trained.metrics)
    assert len(trained.history) == QUICK.epochs
    assert trained.metrics["emotion"]["confusion_matrix"]
    assert trained.metrics["split"] == "calibration", (
        "no test split: the figures say whose they are"
    )
    report = trained.metrics["calibration"]
    assert report["cases"] == len(calibration_cases)
    assert report["emotion"]["fitted"], report["emotion"]
    assert report["emotion"]["nll_after"] < report["emotion"]["nll_before"]
    assert float(trained.model.emotion.temperature) == pytest.approx(
        report["emotion"]["temperature"]
    )
    assert trained.model.diagnosis.temperature.shape == (1,), "one temperature per finding"


def test_metrics_come_from_the_test_split_when_there_is_one(cases, calibration_cases):
    train_cases, validation_cases = cases
    result = train(
        tiny_config(),
        train_cases,
        validation_cases[:6],
        TrainingConfig(epochs=1, batch_size=16, progress=False),
        calibration_cases=calibration_cases,
        test_cases=validation_cases[6:],
    )
    assert result.metrics["split"] == "test"
    assert result.metrics["emotion"]["n"] == 6
    assert sum(b["count"] for b in result.metrics["emotion"]["reliability"]) == 6


def test_without_a_calibration_split_the_heads_stay_as_trained_and_say_so(cases):
    result = train(tiny_config(), *cases, TrainingConfig(epochs=1, batch_size=16, progress=False))
    assert result.metrics["split"] == "validation"
    assert result.metrics["calibration"]["cases"] == 0
    assert float(result.model.emotion.temperature) == 1.0


def test_a_bundle_has_every_part_and_reloads_bit_identically(bundle, cases):
    assert {p.name for p in bundle.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "metrics.json",
        "MODEL_CARD.md",
        "reliability.png",
    }
    assert (bundle / "reliability.png").read_bytes().startswith(b"\x89PNG")
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "Intended use" in card
    assert "## Metrics: calibration split" in card
    rates = json.loads((bundle / "metrics.json").read_text())["needs_person_rate"]
    assert set(rates) == {"diagnosis", "emotion"}
    assert f"- affect: {rates['emotion']:.0%} of the cases of that split" in card
    assert "- emotion: temperature " in card
    assert ", ECE " in card
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
        for task in ("diagnosis", "emotion"):
            for label, value in getattr(together, task).items():
                assert abs(value - getattr(alone, task)[label]) < 1e-4, (task, label)
        for answer, values in together.contributions.items():
            for modality, value in values.items():
                assert abs(value - alone.contributions[answer][modality]) < 1e-4, answer


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
    assert {answer: set(values) for answer, values in partial.contributions.items()} == {
        "suspicious_mass": {"text"},
        "emotion": {"text"},
    }
    assert 0.0 <= partial.uncertainty <= 1.0
    assert set(full.emotion) == {"neutral", "anxious", "depressed_mood", "pain"}
    assert sum(full.emotion.values()) == pytest.approx(1.0, abs=1e-5)


def test_each_task_needs_a_person_below_its_threshold_and_says_why(bundle, cases):
    engine = InferenceEngine(bundle, device="cpu")
    proposed = engine.config.tasks.abstain_below
    assert set(proposed) == {"diagnosis", "emotion"}, "training proposed one per task"
    engine.config.tasks.abstain_below = {"diagnosis": 0.0, "emotion": 1.01}  # none that sure
    engine.model.novelty.limit.fill_(float("inf"))  # a tiny model's detector aside
    for prediction in engine.predict(cases[1][:3]):
        assert set(prediction.needs_person) == {"emotion"}
        assert prediction.needs_person["emotion"]["reason"] == "low_confidence"
        assert "below the 101% asked for" in prediction.needs_person["emotion"]["detail"]
        assert prediction.abstain
    (prediction,) = engine.predict(cases[1][:1])
    engine.review(prediction, abstain_below=0.0)  # an organization's own threshold
    assert prediction.needs_person == {}
    assert not prediction.abstain


def test_a_task_without_the_evidence_it_needs_goes_to_a_person(bundle, cases):
    engine = InferenceEngine(bundle, device="cpu")
    engine.config.tasks.abstain_below = {"diagnosis": 0.0, "emotion": 0.0}
    engine.model.novelty.limit.fill_(float("inf"))  # a tiny model's detector aside
    engine.config.tasks.requires = {"diagnosis": ["image"]}
    case = cases[1][0]
    (with_image,) = engine.predict([case])
    (without,) = engine.predict([Case(id="note only", text=case.text, audio=case.audio)])
    assert with_image.needs_person == {}
    assert without.needs_person == {
        "diagnosis": {
            "reason": "evidence_missing",
            "detail": "The model reads the findings from an image, which this case does not have.",
        }
    }


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
    summary = json.loads(trained.stdout.splitlines()[-1])
    assert summary["bundle"] == str(bundle_dir)
    assert summary["split"] == "test", "by default 15% of the cases are kept for the figures"
    saved = json.loads((bundle_dir / "metrics.json").read_text())
    assert saved["emotion"]["n"] == 9
    assert saved["calibration"]["cases"] == 9
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
    assert metrics["emotion"]["n"] == 60
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


def test_a_calibration_split_that_is_perfectly_separated_leaves_the_head_as_trained():
    """Every case on the right side of the decision: a sharper temperature is always better and
    the likelihood has no minimum (the fit used to run into its clamp, or off to NaN)."""
    from mlcore.calibration import fit_binary_temperature, fit_multiclass_temperature

    separated = fit_binary_temperature(torch.tensor([-8.0, -3.0, 2.0]), torch.tensor([0, 0, 1.0]))
    assert (separated.temperature, separated.fitted) == (1.0, False)
    assert "separates every calibration case" in separated.reason
    one_class = fit_binary_temperature(torch.tensor([-8.0, 3.0]), torch.tensor([0.0, 0.0]))
    assert not one_class.fitted
    assert "one class" in one_class.reason
    all_right = fit_multiclass_temperature(torch.eye(3) * 5, torch.tensor([0, 1, 2]))
    assert not all_right.fitted


def test_each_finding_gets_its_own_temperature_and_no_bound_holds_it():
    from mlcore.calibration import fit_binary_temperature

    truth = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    sign = 2 * truth - 1
    sign[:2] *= -1  # two of eight wrong
    overconfident = fit_binary_temperature(sign * 60.0, truth)  # says 100% and is wrong 25%
    timid = fit_binary_temperature(sign * 0.05, truth)  # says 51% and is right 75%
    assert overconfident.fitted
    assert timid.fitted
    assert overconfident.temperature > 20.0, "beyond the old clamp of 20"
    assert timid.temperature < 0.05, "below the old clamp of 0.05"
    for fit in (overconfident, timid):
        assert fit.nll_after < fit.nll_before
    calibrated = torch.sigmoid(torch.tensor(60.0 / overconfident.temperature))
    assert float(calibrated) == pytest.approx(0.75, abs=0.01), "as sure as it is right"


def test_a_bundle_saved_with_one_diagnosis_temperature_still_loads(bundle, tmp_path):
    import shutil

    from safetensors.torch import save_file

    legacy = shutil.copytree(bundle, tmp_path / "legacy")
    weights = load_file(str(legacy / "model.safetensors"))
    weights["diagnosis.temperature"] = torch.tensor(1.7)
    save_file(weights, str(legacy / "model.safetensors"))
    assert load_bundle(legacy).model.diagnosis.temperature.tolist() == pytest.approx([1.7])
