"""Fusion answers for any subset of modalities and says what it used and how much each counted."""

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from mlcore.config import FusionConfig, ModelConfig, TaskConfig
from mlcore.data import Features, collate
from mlcore.errors import ConfigError
from mlcore.model import _drop_modalities, build_model
from tests.mlcore.conftest import tiny_config

MODALITIES = ("image", "text", "audio")


def _features(modalities, rng) -> Features:
    return Features(
        image=rng.random((1, 32, 32), dtype=np.float32) if "image" in modalities else None,
        text_ids=np.array([101, 2023, 2003, 102]) if "text" in modalities else None,
        audio=rng.random((1, 32, 126), dtype=np.float32) if "audio" in modalities else None,
    )


@pytest.mark.parametrize("kind", ["concat", "attention", "late", "sum"])
def test_every_subset_of_modalities_gets_an_answer(kind):
    config = tiny_config(fusion=FusionConfig(kind=kind, dim=32))
    model = build_model(config).eval()
    rng = np.random.default_rng(0)
    subsets = [s for r in (1, 2, 3) for s in itertools.combinations(MODALITIES, r)]
    batch = collate([_features(s, rng) for s in subsets], config)
    with torch.inference_mode():
        output = model(batch)
    assert output.diagnosis.isfinite().all()
    assert output.emotion.isfinite().all()
    for row, subset in enumerate(subsets):
        weights = dict(zip(MODALITIES, output.weights[row].tolist(), strict=True))
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
        for modality in MODALITIES:
            if modality not in subset:
                assert weights[modality] == 0.0, (kind, subset)
        assert output.present[row].tolist() == [m in subset for m in MODALITIES]


def test_sum_fusion_adds_each_modality_s_own_term_to_the_logits():
    """A product of experts: hiding a modality takes away exactly what the head makes of its
    vector, whatever else is present (a bug that mixed the modalities would break it)."""
    config = tiny_config(fusion=FusionConfig(kind="sum", dim=32))
    model = build_model(config).eval()
    rng = np.random.default_rng(2)
    batch = collate([_features(MODALITIES, rng) for _ in range(4)], config)
    with torch.inference_mode():
        tokens, present = model.encode(batch)
        everything = model.decide(tokens, present)
        for column in range(len(MODALITIES)):
            hidden = present.clone()
            hidden[:, column] = False
            without = model.decide(tokens, hidden)
            own_term = tokens[:, column] @ model.emotion.linear.weight.T
            torch.testing.assert_close(everything.emotion - without.emotion, own_term)
            own_term = tokens[:, column] @ model.diagnosis.linear.weight.T
            torch.testing.assert_close(everything.diagnosis - without.diagnosis, own_term)
        nothing = model.decide(tokens, torch.zeros_like(present))
    torch.testing.assert_close(nothing.emotion, model.emotion.linear.bias.expand(4, -1))


@pytest.mark.parametrize("kind", ["concat", "attention", "late", "sum"])
def test_a_head_never_reads_a_modality_its_task_does_not_read(kind):
    """`TaskConfig.reads`: the finding reads the image and the text, so whatever the recording
    holds, or whether it is there at all, leaves the finding as it is; the affect still reads
    it (a bug that fused every modality for every head would break the first, one that hid it
    from every head the second)."""
    reads = {"diagnosis": ["image", "text"]}
    config = tiny_config(
        fusion=FusionConfig(kind=kind, dim=32), tasks=replace(tiny_config().tasks, reads=reads)
    )
    model = build_model(config).eval()
    assert model.reads("diagnosis") == ["image", "text"]
    assert model.reads("emotion") == list(MODALITIES)
    rng = np.random.default_rng(3)
    batch = collate([_features(MODALITIES, rng) for _ in range(4)], config)
    with torch.inference_mode():
        tokens, present = model.encode(batch)
        everything = model.decide(tokens, present)
        no_audio = present.clone()
        no_audio[:, 2] = False
        without = model.decide(tokens, no_audio)
        louder = tokens.index_fill(1, torch.tensor([2]), 5.0)
        other_voice = model.decide(louder, present)
    torch.testing.assert_close(everything.diagnosis, without.diagnosis)
    torch.testing.assert_close(everything.diagnosis, other_voice.diagnosis)
    assert not torch.allclose(everything.emotion, without.emotion)


def test_a_missing_modality_does_not_change_the_others_tokens():
    config = tiny_config()
    model = build_model(config).eval()
    rng = np.random.default_rng(1)
    full = _features(MODALITIES, rng)
    without_audio = Features(image=full.image, text_ids=full.text_ids)
    with torch.inference_mode():
        tokens, _ = model.encode(collate([full, without_audio], config))
    torch.testing.assert_close(tokens[0, :2], tokens[1, :2])
    assert tokens[1, 2].abs().sum() == 0


def test_modality_dropout_hides_everything_only_for_some_cases():
    torch.manual_seed(0)
    present = torch.tensor([[True, False, True], [False, True, False], [True, True, True]]).repeat(
        200, 1
    )
    kept = _drop_modalities(present, probability=0.9)
    empty = ~kept.any(dim=1)
    all_dropped = 0.9**2 + 0.9 + 0.9**3  # per row kind, the chance that nothing survives
    assert 0.3 * all_dropped / 3 < empty.float().mean() < 0.7 * all_dropped / 3
    assert not (kept & ~present).any(), "never invents a modality the case lacks"


def test_config_round_trips_through_json():
    config = tiny_config()
    assert ModelConfig.from_json(config.to_json()) == config


def test_a_bundle_saved_before_fixed_intensities_is_served_as_it_was_trained():
    from mlcore.data import Case, Preprocessor
    from mlcore.synthetic import chest_ct_slice
    from tests.conftest import ct_bytes

    saved = json.loads(tiny_config().to_json())
    del saved["image"]["intensity"], saved["image"]["ct_window"]  # as configs were then
    legacy = ModelConfig.from_dict(saved)
    assert legacy.image.intensity == "standardise"
    assert tiny_config().image.intensity == "fixed"
    assert ModelConfig.from_json(legacy.to_json()) == legacy
    image = ct_bytes(
        chest_ct_slice(lesion=False, rng=np.random.default_rng(0), size=32), uid_seed="legacy"
    )
    old = Preprocessor(legacy)(Case(image=image)).image
    new = Preprocessor(tiny_config())(Case(image=image)).image
    assert abs(float(old.mean())) < 1e-4, "z-scored"
    assert abs(float(old.std()) - 1.0) < 1e-3
    assert new.min() >= -2.0
    assert new.max() <= 2.0
    # one fixed scale: air (-1000 HU) in the lung window is 4 * (350 / 1500) - 2 in every image
    assert abs(float(new[0, 0, 0]) - (4 * 350 / 1500 - 2)) < 0.1


def test_bad_configs_are_refused_clearly():
    with pytest.raises(ConfigError, match="modalities"):
        tiny_config(modalities=["image", "smell"])
    with pytest.raises(ConfigError, match=r"fusion\.kind"):
        tiny_config(fusion=FusionConfig(kind="magic"))
    with pytest.raises(ConfigError, match="invalid model configuration"):
        ModelConfig.from_dict({"fusion": {"width": 3}})
    with pytest.raises(ConfigError, match=r"image\.intensity"):
        ModelConfig.from_dict({**tiny_config().to_dict(), "image": {"intensity": "auto"}})
    with pytest.raises(ConfigError, match=r"image\.ct_window"):
        ModelConfig.from_dict({**tiny_config().to_dict(), "image": {"ct_window": [-600, 0]}})
    with pytest.raises(ConfigError, match=r"tasks\.requires"):
        tiny_config(
            modalities=["text"],
            tasks=TaskConfig(emotion_labels=["a"], requires={"emotion": ["audio"]}),
        )
    with pytest.raises(ConfigError, match=r"tasks\.requires"):
        tiny_config(tasks=TaskConfig(emotion_labels=["a"], requires={"mood": ["text"]}))
    with pytest.raises(ConfigError, match=r"tasks\.reads: 'emotion' must read every modality"):
        tiny_config(
            tasks=TaskConfig(
                emotion_labels=["a"], requires={"emotion": ["audio"]}, reads={"emotion": ["text"]}
            )
        )
    with pytest.raises(ConfigError, match=r"tasks\.reads"):
        tiny_config(tasks=TaskConfig(emotion_labels=["a"], reads={"emotion": ["smell"]}))
    with pytest.raises(ConfigError, match=r"image\.pooling"):
        ModelConfig.from_dict({**tiny_config().to_dict(), "image": {"pooling": "median"}})


def test_a_config_saved_with_one_abstention_threshold_gives_it_to_every_task():
    saved = tiny_config().to_dict()
    tasks = {k: v for k, v in saved["tasks"].items() if k not in ("abstain_below", "requires")}
    legacy = {**saved, "tasks": tasks, "abstain_below": 0.5}
    assert ModelConfig.from_dict(legacy).tasks.abstain_below == {"diagnosis": 0.5, "emotion": 0.5}
