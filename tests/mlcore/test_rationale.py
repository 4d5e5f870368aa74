"""A bundle learns to explain itself: `train-rationale` trains the prefix mapper for a frozen local
language model, the bundle keeps only the mapper, and predictions carry a rationale."""

import hashlib
import json

import pytest
import torch
from transformers import AutoTokenizer

from mlcore.cli import main
from mlcore.config import TextEncoderConfig
from mlcore.data import read_manifest
from mlcore.encoders import resolve_text_source
from mlcore.engine import InferenceEngine
from mlcore.registry import MAPPER_FILE, save_bundle
from mlcore.train import TrainingConfig, train
from tests.mlcore.conftest import tiny_config, tiny_language_model


@pytest.fixture
def language_model_dir(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_text_source(TextEncoderConfig().source)))
    directory = tmp_path / "tiny-lm"
    tiny_language_model(tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _digest(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture
def bundle(clinic_dataset, tmp_path):
    cases = read_manifest(clinic_dataset)
    result = train(
        tiny_config(),
        cases[:36],
        cases[36:],
        TrainingConfig(epochs=3, batch_size=16, progress=False),
    )
    return save_bundle(tmp_path / "bundle", result.model, metrics=result.metrics)


def test_a_bundle_learns_to_write_rationales_with_a_frozen_language_model(
    clinic_dataset, bundle, language_model_dir, capsys
):
    cases = read_manifest(clinic_dataset)
    assert all(case.rationale for case in cases)
    before = _digest(language_model_dir)

    code = main(
        [
            "train-rationale",
            "--bundle",
            str(bundle),
            "--manifest",
            str(clinic_dataset),
            "--language-model",
            str(language_model_dir),
            "--epochs",
            "40",
            "--device",
            "cpu",
        ]
    )

    assert code == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["last_loss"] < 0.7 * report["first_loss"]
    assert _digest(language_model_dir) == before, "the language model's files never change"
    assert (bundle / MAPPER_FILE).is_file()
    config = json.loads((bundle / "config.json").read_text())
    assert config["prefix"]["language_model"] == str(language_model_dir.resolve())

    engine = InferenceEngine(bundle, device="cpu")
    assert all(prediction.rationale for prediction in engine.predict(cases[:8]))
    # What a tiny random language model writes is not words; what must hold is that the
    # mapper conditions it on the case: each case's own rationale is likelier after its prefix
    # than another case's (a random mapper would not tell them apart).
    arrays = engine.forward([engine.prepare(case) for case in cases])
    embeddings = torch.from_numpy(arrays["embedding"])
    own = [case.rationale for case in cases]
    other = own[len(own) // 2 :] + own[: len(own) // 2]
    differ = [row for row in range(len(own)) if own[row] != other[row]]
    assert len(differ) > len(own) // 4
    rows = embeddings[differ]
    with torch.inference_mode():
        matched = engine.bundle.rationale.loss(rows, [own[row] for row in differ])
        mismatched = engine.bundle.rationale.loss(rows, [other[row] for row in differ])
    assert matched < mismatched


def test_without_rationales_in_the_manifest_it_refuses_clearly(
    clinic_dataset, bundle, language_model_dir, tmp_path, capsys
):
    manifest = tmp_path / "plain.jsonl"
    entries = [json.loads(line) for line in clinic_dataset.read_text().splitlines()]
    manifest.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": e["id"],
                    "emotion": e["emotion"],
                    "text": str(clinic_dataset.parent / e["text"]),
                }
            )
            for e in entries
        )
    )
    code = main(
        [
            "train-rationale",
            "--bundle",
            str(bundle),
            "--manifest",
            str(manifest),
            "--language-model",
            str(language_model_dir),
        ]
    )
    assert code == 2
    assert "has no case with a 'rationale'" in capsys.readouterr().err
