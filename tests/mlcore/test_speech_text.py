"""What a recording says (`speech_text`, its transcript) is an input of its own: read by the
written text's language model through its own projection, saved once in a bundle, measured
apart by the contributions, and withheld from one task while another reads it."""

import numpy as np
import pytest
import torch
from safetensors import safe_open

from mlcore.config import ModelConfig, TaskConfig
from mlcore.data import Case, Features, Preprocessor, read_manifest
from mlcore.engine import InferenceEngine, Prediction
from mlcore.evidence import moving_sentences, quoted_sentences, rationale, sentence_variants
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


def test_what_was_said_is_quoted_only_where_the_answer_may_read_it(bundle):
    """The rationale (and a tutoring suggestion) quotes the transcript's sentence whose removal
    lowers the affect most, as it does the text's; a transcript withheld from the affect
    estimate cannot have moved it and is never quoted for it."""
    engine = InferenceEngine(bundle)
    spoken = ["I am really frightened.", "The pain keeps me awake.", "Thank you, doctor."]
    case = Case(id="s", text="Cough for six weeks.", speech_text=" ".join(spoken))
    features = engine.preprocessor(case)
    assert [sentence for sentence, _, _ in features.spoken_sentences] == spoken
    [read] = engine.predict_features([features])
    label = read.emotion_label
    drops = []
    for left_out in range(len(spoken)):
        rest = " ".join(s for i, s in enumerate(spoken) if i != left_out)
        [without] = engine.predict([Case(id="w", text=case.text, speech_text=rest)], explain=False)
        drops.append(read.emotion[label] - without.emotion[label])
    moving = spoken[int(np.argmax(drops))]
    raised = round(100 * read.contributions["emotion"]["speech_text"]) > 0
    if max(drops) >= 0.01 and raised:
        assert read.quotes["emotion"]["speech_text"] == moving
        assert f'most of all "{moving}"' in read.rationales["emotion"]
    else:  # this untrained model's transcript barely moved it: nothing is quoted
        assert "speech_text" not in read.quotes.get("emotion", {})
        assert not any(f'"{sentence}"' in read.rationales["emotion"] for sentence in spoken)
    features.withheld = {"emotion": ["speech_text"]}
    [withheld] = engine.predict_features([features])
    assert "speech_text" not in withheld.quotes.get("emotion", {})
    assert "what was said" not in withheld.rationales["emotion"]
    assert not any(f'"{sentence}"' in withheld.rationales["emotion"] for sentence in spoken)


def test_each_input_quotes_its_own_sentence_the_strongest_first():
    """The evidence functions over a text and a transcript: each sentence is left out of its
    own input only, and each input is quoted for an answer it raised, strongest first."""
    features = Features(
        text_ids=np.array([101, 7, 8, 9, 102]),
        sentences=[("A b.", 1, 3), ("C.", 3, 4)],
        speech_ids=np.array([101, 5, 6, 102]),
        spoken_sentences=[("I give up.", 1, 2), ("Fine.", 2, 3)],
    )
    variants, owners = sentence_variants([features])
    assert owners == [
        (0, "text", "A b."),
        (0, "text", "C."),
        (0, "speech_text", "I give up."),
        (0, "speech_text", "Fine."),
    ]
    assert variants[0].text_ids.tolist() == [101, 9, 102]
    assert variants[0].speech_ids is features.speech_ids
    assert variants[2].speech_ids.tolist() == [101, 6, 102]
    assert variants[2].text_ids is features.text_ids
    prediction = Prediction(
        modalities_used=["text", "speech_text"],
        contributions={"emotion": {"text": 0.05, "speech_text": 0.2}},
        uncertainty=0.1,
        abstain=False,
        emotion={"frustrated": 0.7, "engaged": 0.3},
        emotion_label="frustrated",
    )
    tasks = TaskConfig(diagnosis_labels=[], emotion_labels=["frustrated", "engaged"])
    without = np.array([[0.68, 0.32], [0.69, 0.31], [0.4, 0.6], [0.71, 0.29]])
    [moved] = moving_sentences([prediction], owners, {"emotion": without}, tasks)
    assert moved["emotion"]["speech_text"] == ("I give up.", pytest.approx(0.3))
    quotes = quoted_sentences(prediction, moved)
    assert list(quotes["emotion"].items()) == [("speech_text", "I give up."), ("text", "A b.")]
    assert rationale(prediction, sentences=moved)["emotion"] == (
        'Frustrated (70%): what was said raised it by 20 points, most of all "I give up."; '
        'then the text raised it by 5 points, most of all "A b.".'
    )
    prediction.contributions["emotion"]["speech_text"] = 0.0  # withheld: it moved nothing
    assert list(quoted_sentences(prediction, moved)["emotion"]) == ["text"]
