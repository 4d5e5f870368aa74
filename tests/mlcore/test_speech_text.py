"""What a recording says (`speech_text`, its transcript) is an input of its own: read by the
written text's language model through its own projection, saved once in a bundle, measured
apart by the contributions, and withheld from one task while another reads it."""

import numpy as np
import pytest
import torch
from safetensors import safe_open

from mlcore.config import ModelConfig
from mlcore.data import Case, Preprocessor, read_manifest
from mlcore.engine import InferenceEngine
from mlcore.model import build_model
from mlcore.registry import WEIGHTS_FILE, save_bundle
from mlcore.synthetic import truth
from tests.mlcore.conftest import tiny_config

WITH_SPEECH = ["image", "text", "audio", "speech_text"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = build_model(tiny_config(modalities=WITH_SPEECH)).eval()
    directory = tmp_path_factory.mktemp("speech-text") / "bundle"
    save_bundle(directory, model, metrics={})
    return str(directory)


def test_the_transcript_is_read_by_the_same_language_model_through_its_own_projection():
    model = build_model(tiny_config(modalities=WITH_SPEECH))
    said, written = model.encoders["speech_text"], model.encoders["text"]
    assert said.backbone is written.backbone
    assert said.projection is not written.projection


def test_a_bundle_holds_the_shared_language_model_once_and_loads_it_back(bundle, clinic_dataset):
    with safe_open(f"{bundle}/{WEIGHTS_FILE}", "pt") as weights:
        names = list(weights.keys())
    assert any(name.startswith("encoders.text.backbone.") for name in names)
    assert not any(name.startswith("encoders.speech_text.backbone.") for name in names)
    assert any(name.startswith("encoders.speech_text.projection.") for name in names)
    engine = InferenceEngine(bundle)
    config = ModelConfig.load(f"{bundle}/config.json")
    features = Preprocessor(config)(read_manifest(clinic_dataset)[0])
    assert features.modalities() == WITH_SPEECH
    [prediction] = engine.predict_features([features], explain=False)
    assert set(prediction.contributions["emotion"]) == set(WITH_SPEECH)


def test_a_manifest_names_what_each_recording_says(clinic_dataset):
    cases = read_manifest(clinic_dataset)
    spoken = {case.speech_text for case in cases}
    assert all(text and text.endswith((".", "?")) for text in spoken)
    assert len(spoken) > 5  # sentences of every cue


def test_a_withheld_transcript_leaves_that_answer_as_if_it_were_absent(bundle):
    engine = InferenceEngine(bundle)
    preprocess = engine.preprocessor
    case = Case(
        id="w",
        text="Cough for six weeks; patient feels overwhelmed.",
        speech_text="I am really frightened. The pain keeps me awake.",
    )
    features = preprocess(case)
    without = preprocess(Case(id="a", text=case.text))
    features.withheld = {"emotion": ["speech_text"]}
    [withheld], [absent], [read] = (
        engine.predict_features([f], explain=False) for f in (features, without, preprocess(case))
    )
    assert withheld.emotion == pytest.approx(absent.emotion, abs=1e-5)
    assert withheld.emotion != pytest.approx(read.emotion, abs=1e-5)
    assert withheld.diagnosis == pytest.approx(read.diagnosis, abs=1e-5)  # read there
    assert "speech_text" not in withheld.contributions["emotion"]
    assert "speech_text" in withheld.contributions["suspicious_mass"]
    assert withheld.modalities_used == ["text", "speech_text"]


def clinic_affect(*, said: str, modalities: tuple[str, ...]) -> dict[str, float]:
    """The posterior of a patient whose voice and note say nothing either way."""
    return truth.affect_posterior(
        voice=0.0,
        manner=None,
        distress_cue="mixed",
        said=said,
        modalities=modalities,
        kind="clinic",
    )


def test_what_was_said_moves_the_posterior_of_distress_only():
    calm, distressed = (
        clinic_affect(said=said, modalities=("speech_text",)) for said in ("calm", "distressed")
    )
    assert distressed["anxious"] + distressed["depressed_mood"] > 0.6
    assert calm["neutral"] + calm["pain"] > 0.6
    # the words say nothing of arousal
    assert np.isclose(calm["pain"] + calm["anxious"], 0.5, atol=0.03)
    # a reader of the written text alone does not hear them
    assert clinic_affect(said="distressed", modalities=("text",)) == clinic_affect(
        said="calm", modalities=("text",)
    )
