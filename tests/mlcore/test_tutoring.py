"""The intervention library mlcore ships and reads; a model bundle saved while the network
still carried a tutoring head (before tutoring learnt per school, mlcore.learnt_ranking) still
loads."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mlcore.bundle_check import CONFIG_FILE, WEIGHTS_FILE
from mlcore.config import TaskConfig
from mlcore.data import Case
from mlcore.engine import InferenceEngine
from mlcore.errors import ConfigError
from mlcore.library import SHIPPED_LIBRARY, InterventionLibrary
from mlcore.model import build_model
from mlcore.registry import load_bundle, save_bundle
from mlcore.synthetic import SCHOOL_AFFECTS
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


def test_a_bundle_that_carried_a_tutoring_head_still_loads(tmp_path):
    config = tiny_config(modalities=["text"], tasks=TaskConfig(emotion_labels=list(SCHOOL_AFFECTS)))
    model = build_model(config)
    bundle = save_bundle(tmp_path / "old", model, metrics={})
    written = json.loads((bundle / CONFIG_FILE).read_text())
    written["tasks"] |= {"tutoring_library": "interventions.json", "subjects": SUBJECTS}
    (bundle / CONFIG_FILE).write_text(json.dumps(written))
    weights = load_file(str(bundle / WEIGHTS_FILE))
    weights["tutoring.key_projection.weight"] = torch.zeros(7, 7)
    save_file(weights, str(bundle / WEIGHTS_FILE))

    loaded = load_bundle(bundle)
    assert not hasattr(loaded.model, "tutoring")
    assert loaded.config.tasks.emotion_labels == list(SCHOOL_AFFECTS)
    (prediction,) = InferenceEngine(bundle).predict([Case(id="c", text="I am lost.")])
    assert set(prediction.emotion) == set(SCHOOL_AFFECTS)
