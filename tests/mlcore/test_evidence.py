"""Rationales from evidence (mlcore.evidence) and the pointing game (mlcore.pointing)."""

import numpy as np
import pytest

from mlcore.data import Case, read_manifest
from mlcore.encoders.text import resolve_text_source
from mlcore.engine import InferenceEngine, Prediction
from mlcore.evidence import heatmap_zone, rationale
from mlcore.io.text import Tokenizer, split_sentences
from mlcore.pointing import pointing_game
from mlcore.registry import save_bundle
from mlcore.synthetic import read_truth
from mlcore.train import TrainingConfig, train
from tests.mlcore.conftest import tiny_config

NOTE = (
    "Patient reports a dry cough. She feels anxious about the results!\n"
    "Plan: review in two weeks? Yes."
)


def test_sentences_and_their_tokens_line_up():
    assert split_sentences(NOTE) == [
        "Patient reports a dry cough.",
        "She feels anxious about the results!",
        "Plan: review in two weeks?",
        "Yes.",
    ]
    tokenizer = Tokenizer(resolve_text_source("builtin:all-MiniLM-L6-v2"), max_length=128)
    ids = tokenizer.ids(NOTE)
    spans = tokenizer.sentence_spans(NOTE)
    assert [sentence for sentence, _, _ in spans] == split_sentences(NOTE)
    assert spans[0][1] == 1, "after [CLS]"
    assert spans[-1][2] == len(ids) - 1, "up to [SEP]"
    for sentence, start, end in spans:  # the sentence's own tokens, nothing of its neighbours'
        assert ids[start:end] == tokenizer.ids(sentence)[1:-1]
    short = Tokenizer(resolve_text_source("builtin:all-MiniLM-L6-v2"), max_length=10)
    truncated = short.sentence_spans(NOTE)
    assert truncated[-1][2] <= 9, "only what fits before truncation"


def test_zones_are_named_as_a_radiologist_reads_the_image():
    heatmap = np.zeros((60, 60))
    heatmap[5, 5] = 1.0
    assert heatmap_zone(heatmap) == "right upper zone", "the image's left is the patient's right"
    heatmap[50, 55] = 2.0
    assert heatmap_zone(heatmap) == "left lower zone"
    heatmap[30, 20] = 3.0
    assert heatmap_zone(heatmap) == "right middle zone"


def _prediction(**values) -> Prediction:
    return Prediction(
        modalities_used=list(values.get("used", ["image", "text"])),
        contributions=values["contributions"],
        uncertainty=0.1,
        abstain=False,
        diagnosis=values.get("diagnosis", {}),
        emotion=values.get("emotion", {}),
        emotion_label=values.get("emotion_label"),
    )


def test_a_rationale_names_each_input_by_what_it_did():
    prediction = _prediction(
        diagnosis={"suspicious_mass": 0.8},
        contributions={"suspicious_mass": {"image": 0.25, "text": -0.04, "audio": 0.004}},
    )
    sentences = {"diagnosis": {"text": ("She has a cough.", 0.05)}}
    # A text that lowered the answer is not quoted as what held it up.
    assert rationale(prediction, zone="left lower zone", sentences=sentences) == {
        "diagnosis": "Suspicious mass (80%): the image raised it by 25 points, its heatmap "
        "peaking in the left lower zone; then the text lowered it by 4 points; then the "
        "recording barely moved it."
    }
    # The heatmap shows where the image raised the finding: not said of an image that lowered it.
    lowered = _prediction(
        diagnosis={"suspicious_mass": 0.3},
        contributions={"suspicious_mass": {"image": -0.2, "text": 0.01, "audio": 0.0}},
    )
    assert "heatmap" not in rationale(lowered, zone="left lower zone")["diagnosis"]
    prediction.contributions["suspicious_mass"]["text"] = 0.04
    assert rationale(prediction, sentences=sentences)["diagnosis"] == (
        "Suspicious mass (80%): the image raised it by 25 points; then the text raised it by 4 "
        'points, most of all "She has a cough."; then the recording barely moved it.'
    )
    absent = _prediction(
        diagnosis={"suspicious_mass": 0.3}, contributions={"suspicious_mass": {"text": -0.2}}
    )
    # For "no mass", what lowered the mass's probability raised the answer.
    assert rationale(absent) == {
        "diagnosis": "No suspicious mass (70%): the text raised it by 20 points."
    }
    # "Barely" is what the card's bars call it too: under half a point.
    slight = _prediction(
        diagnosis={"suspicious_mass": 0.8}, contributions={"suspicious_mass": {"audio": 0.006}}
    )
    assert rationale(slight)["diagnosis"].endswith("the recording raised it by 1 point.")
    feeble = {"emotion": {"text": ("Fine.", 0.001)}}  # a sentence that barely moved it: unquoted
    calm = _prediction(
        emotion={"neutral": 0.6, "pain": 0.4},
        emotion_label="neutral",
        contributions={"emotion": {"text": 0.3}},
    )
    assert rationale(calm, sentences=feeble) == {
        "emotion": "Neutral (60%): the text raised it by 30 points."
    }


@pytest.fixture(scope="module")
def engine(clinic_dataset, tmp_path_factory):
    cases = read_manifest(clinic_dataset)
    result = train(
        tiny_config(),
        cases[:36],
        cases[36:48],
        TrainingConfig(epochs=2, batch_size=16, progress=False, seed=4),
    )
    trusted = {"cases": 10, "hit_rate": 0.9, "interval": [0.8, 1.0], "trusted_from": 0.8}
    directory = save_bundle(
        tmp_path_factory.mktemp("evidence") / "tiny",
        result.model,
        metrics={**result.metrics, "pointing_game": trusted},
    )
    return InferenceEngine(directory, device="cpu")


def test_rationales_mention_only_the_evidence_present(engine, clinic_dataset):
    case = read_manifest(clinic_dataset)[40]
    nouns = {"image": "the image", "text": "the text", "audio": "the recording"}
    for kept in (("image", "text", "audio"), ("image", "text"), ("text", "audio"), ("image",)):
        masked = Case(id="m", **{modality: getattr(case, modality) for modality in kept})
        (prediction,) = engine.predict([masked])
        assert set(prediction.rationales) == {"diagnosis", "emotion"}
        for task, sentence in prediction.rationales.items():
            for modality, noun in nouns.items():
                assert (noun in sentence) == (modality in kept), (kept, task, sentence)
            raised_finding = (
                task == "diagnosis"
                and round(100 * prediction.contributions["suspicious_mass"].get("image", 0)) > 0
            )
            assert ("heatmap peaking in the" in sentence) == ("image" in kept and raised_finding), (
                sentence
            )
            quoted = [s for s in split_sentences(case.text) if f'"{s}"' in sentence]
            assert len(quoted) <= (1 if "text" in kept else 0), sentence
        if "image" in kept:
            zone = prediction.explanation["zone"]
            raised = round(100 * prediction.contributions["suspicious_mass"]["image"]) > 0
            assert (zone in prediction.rationales["diagnosis"]) == raised
            assert prediction.explanation["method"] == "grad-cam"
        else:
            assert prediction.explanation == {}


def test_the_quoted_sentence_is_the_one_whose_removal_moves_the_answer_most(engine):
    sentences = [
        "Patient is calm and relaxed today.",
        "Reports severe chest pain and cannot sleep.",
        "Plan: review next week.",
    ]
    (prediction,) = engine.predict([Case(id="t", text=" ".join(sentences))])
    chosen = prediction.emotion_label
    drops = []
    for left_out in range(len(sentences)):
        rest = " ".join(s for i, s in enumerate(sentences) if i != left_out)
        (without,) = engine.predict([Case(id="w", text=rest)], explain=False)
        drops.append(prediction.emotion[chosen] - without.emotion[chosen])
    moving = sentences[int(np.argmax(drops))]
    raised = round(100 * prediction.contributions["emotion"]["text"]) > 0
    if max(drops) >= 0.01 and raised:
        assert f'most of all "{moving}"' in prediction.rationales["emotion"]
        assert prediction.quotes["emotion"] == {"text": moving}, "what a suggestion quotes"
    else:
        assert "most of all" not in prediction.rationales["emotion"]
        assert "emotion" not in prediction.quotes


def test_heatmaps_not_checked_against_lesions_are_not_shown(engine, clinic_dataset):
    case = read_manifest(clinic_dataset)[40]
    engine.bundle.metrics = {**engine.bundle.metrics, "pointing_game": {"cases": 0}}
    try:
        (prediction,) = engine.predict([case])
    finally:
        engine.bundle.metrics["pointing_game"] = {"cases": 10, "hit_rate": 0.9}
    assert prediction.explanation == {}
    assert "heatmap" not in prediction.rationales["diagnosis"]
    assert "the image" in prediction.rationales["diagnosis"]


def test_heatmaps_need_a_pass_on_enough_lesions():
    from mlcore.card import _pointing_line
    from mlcore.pointing import HEATMAPS_TRUSTED_AFTER, heatmaps_trusted

    def game(cases: int, hit_rate: float) -> dict:
        return {
            "cases": cases,
            "hit_rate": hit_rate,
            "interval": [hit_rate, hit_rate],
            "trusted_from": 0.8,
            "trusted_after": HEATMAPS_TRUSTED_AFTER,
        }

    enough, few = HEATMAPS_TRUSTED_AFTER, HEATMAPS_TRUSTED_AFTER - 1
    assert heatmaps_trusted({"pointing_game": game(enough, 0.8)})
    assert not heatmaps_trusted({"pointing_game": game(few, 1.0)})
    assert not heatmaps_trusted({"pointing_game": game(enough * 10, 0.79)})
    assert _pointing_line({"pointing_game": game(enough, 0.9)}).endswith("heatmaps are shown.")
    assert "too few lesions to go by" in _pointing_line({"pointing_game": game(few, 1.0)})
    assert "below 80%" in _pointing_line({"pointing_game": game(enough, 0.5)})


def test_the_pointing_game_scores_peaks_against_the_generators_lesions(engine, clinic_dataset):
    cases = read_manifest(clinic_dataset)
    truth = read_truth(clinic_dataset)
    features = [engine.prepare(case) for case in cases]
    lesions = [truth[case.id]["lesion"] for case in cases]
    game = pointing_game(
        engine.model, features, lesions, label="suspicious_mass", pad_id=engine.preprocessor.pad_id
    )
    found = [
        lesion is not None and prediction.diagnosis["suspicious_mass"] >= 0.5
        for lesion, prediction in zip(
            lesions, engine.predict_features(features, explain=False), strict=True
        )
    ]
    assert game["cases"] == sum(found)
    if game["cases"]:
        assert 0.0 <= game["interval"][0] <= game["hit_rate"] <= game["interval"][1] <= 1.0


def test_the_pointing_game_reads_peaks_in_the_lesions_coordinates(
    engine, clinic_dataset, monkeypatch
):
    cases = read_manifest(clinic_dataset)
    truth = read_truth(clinic_dataset)
    features = [engine.prepare(case) for case in cases]
    lesions = [truth[case.id]["lesion"] for case in cases]
    # Heatmaps at the model's input size, peaking where each lesion is (then in a far corner),
    # looked up by case: the game draws only the lesions the model finds.
    side = engine.config.image.size
    targets: dict[int, tuple[int, int]] = {}

    def peaking(model, item, *, label, device, pad_id):
        row, column = targets[id(item)]
        heatmap = np.zeros((side, side), dtype=np.float32)
        heatmap[row, column] = 1.0
        return heatmap

    monkeypatch.setattr("mlcore.pointing.diagnosis_heatmap", peaking)
    present = [(item, lesion) for item, lesion in zip(features, lesions, strict=True) if lesion]
    scale = side / present[0][1]["size"]
    targets = {
        id(item): (int(lesion["row"] * scale), int(lesion["column"] * scale))
        for item, lesion in present
    }
    hit = pointing_game(engine.model, features, lesions, label="suspicious_mass", pad_id=0)
    targets = {
        id(item): (0, side - 1) if lesion["column"] < lesion["size"] / 2 else (side - 1, 0)
        for item, lesion in present
    }
    miss = pointing_game(engine.model, features, lesions, label="suspicious_mass", pad_id=0)
    if hit["cases"]:
        assert hit["hit_rate"] == 1.0
        assert miss["hit_rate"] == 0.0
