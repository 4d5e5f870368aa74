"""The demo models `make run` trains once: registered, promoted, and not trained again."""

import pytest
import torch

from mlcore.train import train
from tessera.jobs.demo_models import DEMO_MODELS, ensure_demo_models
from tessera.jobs.models import ModelVersion
from tessera.jobs.selectors import active_model_version, model_labels

pytestmark = pytest.mark.django_db


def test_the_demo_models_are_trained_once_and_serve_clinics_and_schools(
    settings, tmp_path, monkeypatch
):
    settings.MLCORE_MODELS_DIR = tmp_path
    messages = []
    threads_while_training = []

    def counting_threads(*args, **kwargs):
        threads_while_training.append(torch.get_num_threads())
        return train(*args, **kwargs)

    monkeypatch.setattr("tessera.jobs.demo_models.train", counting_threads)
    torch.set_num_threads(2)
    created = ensure_demo_models(cases=12, epochs=1, log=messages.append)
    assert threads_while_training == [1, 1], "the same demo whatever the cores"
    assert torch.get_num_threads() == 2, "and the process's threads back afterwards"
    assert {version.name for version in created} == set(DEMO_MODELS.values())
    for kind, name in DEMO_MODELS.items():
        version = active_model_version(serves=kind)
        assert version.name == name
        assert (tmp_path / name / "model.safetensors").is_file()
        assert "score" in version.metrics
    findings, affects = model_labels(version=active_model_version(serves="clinic"))
    assert (findings, affects[0]) == (["suspicious_mass"], "neutral")
    assert any("test macro-F1" in message for message in messages)
    assert active_model_version(serves="clinic").metrics["split"] == "test"
    card = (tmp_path / DEMO_MODELS["clinic"] / "MODEL_CARD.md").read_text()
    assert "synthetic cases (mlcore.synthetic, benchmark v2): a demo, with no clinical" in card
    game = active_model_version(serves="clinic").metrics["pointing_game"]
    assert "## Explanations" in card
    if game["cases"]:
        assert f"in {game['hit_rate']:.0%} of {game['cases']} lesions the model found" in card
    else:
        assert "Heatmaps are not shown: the pointing game could not be played" in card
    assert "inputs unlike any training data" in card
    assert "Texts checked for their language: en" in card
    assert "- Findings read only: image, text" in card
    assert "- Affect read only: text, audio, speech_text" in card

    assert ensure_demo_models(cases=12, epochs=1, log=messages.append) == []
    assert ModelVersion.objects.count() == 2


def test_a_kind_with_an_active_model_keeps_it(settings, tmp_path, clinic_model):
    settings.MLCORE_MODELS_DIR = tmp_path
    ensure_demo_models(cases=12, epochs=1, log=lambda message: None)
    assert active_model_version(serves="clinic") == clinic_model
    assert active_model_version(serves="school").name == DEMO_MODELS["school"]
