"""Tutoring suggestions: a curated, versioned library; learned from accept/dismiss feedback; an
intervention the school adds later is scored without retraining."""

import json

import numpy as np
import pytest

from mlcore.config import TaskConfig
from mlcore.data import read_manifest
from mlcore.engine import InferenceEngine
from mlcore.errors import ConfigError
from mlcore.heads.tutoring import library_keys
from mlcore.library import SHIPPED_LIBRARY, InterventionLibrary
from mlcore.registry import save_bundle
from mlcore.synthetic import SCHOOL_AFFECTS, write_dataset
from mlcore.train import TrainingConfig, train
from tests.mlcore.conftest import tiny_config

LIBRARY = SHIPPED_LIBRARY
SUBJECTS = ["Mathematics", "English", "Science"]


def test_the_shipped_library_is_versioned_and_valid():
    library = InterventionLibrary.load(LIBRARY)
    assert library.version
    assert {affect for item in library.interventions for affect in item.affects} <= set(
        SCHOOL_AFFECTS
    )


def test_a_broken_library_is_refused(tmp_path):
    (tmp_path / "lib.json").write_text(json.dumps({"version": "1", "interventions": [{"id": "x"}]}))
    with pytest.raises(ConfigError, match="not usable"):
        InterventionLibrary.load(tmp_path / "lib.json")
    duplicate = {"id": "a", "title": "A"}
    (tmp_path / "lib.json").write_text(
        json.dumps({"version": "1", "interventions": [duplicate, duplicate]})
    )
    with pytest.raises(ConfigError, match="repeats an id"):
        InterventionLibrary.load(tmp_path / "lib.json")


def test_feedback_teaches_which_intervention_helps(tmp_path):
    manifest = write_dataset(
        tmp_path / "school", kind="school", cases=200, seed=3, voice_seconds=2.0
    )
    cases = read_manifest(manifest)
    library = InterventionLibrary.load(LIBRARY)
    # Teachers accepted a worked example for confused learners and dismissed it for the others.
    for case in cases:
        case.tutoring = {"worked-example": case.emotion == "confused"}
    config = tiny_config(
        modalities=["text", "audio"],
        tasks=TaskConfig(
            emotion_labels=list(SCHOOL_AFFECTS), tutoring_library=str(LIBRARY), subjects=SUBJECTS
        ),
    )
    training = TrainingConfig(epochs=20, batch_size=16, learning_rate=3e-3, progress=False)
    result = train(config, cases[:150], cases[150:], training, library=library)
    bundle = save_bundle(tmp_path / "bundle", result.model, metrics=result.metrics)
    assert json.loads((bundle / "interventions.json").read_text())["version"] == library.version

    engine = InferenceEngine(bundle, device="cpu")
    held_out = cases[150:]
    features = [engine.prepare(case) for case in held_out]
    scores = engine.forward(features)["tutoring"]
    column = [item.id for item in library.interventions].index("worked-example")
    confused = [scores[i, column] for i, case in enumerate(held_out) if case.emotion == "confused"]
    others = [scores[i, column] for i, case in enumerate(held_out) if case.emotion != "confused"]
    assert confused
    assert others
    assert np.mean(confused) > np.mean(others) + 1.0
    assert all(len(p.tutoring) == 3 for p in engine.predict_features(features))


def test_a_new_intervention_is_scored_without_retraining(tmp_path):
    library = json.loads(LIBRARY.read_text())
    library["version"] = "2026.12.1"
    library["interventions"].append(
        {
            "id": "number-line",
            "title": "Use a number line",
            "affects": ["confused"],
            "subjects": ["Mathematics"],
        }
    )
    (tmp_path / "lib.json").write_text(json.dumps(library))
    extended = InterventionLibrary.load(tmp_path / "lib.json")
    keys = library_keys(extended, list(SCHOOL_AFFECTS), SUBJECTS)
    assert keys.shape[0] == len(library["interventions"])
    assert keys[-1].tolist() == [0, 1, 0, 0, 1, 0, 0]  # confused, Mathematics
