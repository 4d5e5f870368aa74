"""Grad-CAM heatmaps of a diagnosis over the image."""

import numpy as np
import pytest
import torch

from mlcore.data import Preprocessor, collate, read_manifest
from mlcore.explain import diagnosis_heatmap, diagnosis_heatmaps, occlusion_heatmap
from mlcore.model import build_model
from tests.mlcore.conftest import tiny_config


@pytest.fixture(scope="module")
def model_and_cases(clinic_dataset):
    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(config).eval()
    preprocessor = Preprocessor(config)
    cases = [preprocessor(case) for case in read_manifest(clinic_dataset)[:2]]
    return model, cases, preprocessor.pad_id


def test_a_heatmap_covers_the_image_in_the_unit_range(model_and_cases):
    model, (case, _), pad_id = model_and_cases
    label = model.config.tasks.diagnosis_labels[0]
    heatmap = diagnosis_heatmap(model, case, label=label, pad_id=pad_id)
    assert heatmap.shape == case.image.shape[1:]
    assert heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0
    assert heatmap.max() <= 1.0
    assert heatmap.max() > heatmap.min()  # it points somewhere


def test_the_heatmap_is_high_where_the_gradient_weighted_features_are(model_and_cases):
    # Grad-CAM by hand: the feature maps weighted by their mean gradient, summed, positive part,
    # resized to the image and divided by the peak. (MONAI's default postprocessing turns the
    # map upside down: the peak becomes 0.)
    model, (case, _), pad_id = model_and_cases
    heatmap = diagnosis_heatmap(
        model, case, label=model.config.tasks.diagnosis_labels[0], pad_id=pad_id
    )
    batch = collate([case], model.config, pad_id=pad_id)
    captured = {}

    def keep(_module, _inputs, output):
        captured["maps"] = output
        return output.clone()  # the network's in-place ReLU follows

    handle = model.get_submodule("encoders.image.network.features").register_forward_hook(keep)
    try:
        logit = model(batch).diagnosis[0, 0]
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(logit, captured["maps"])
    maps = captured["maps"].detach()
    cam = torch.relu((gradient.mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=heatmap.shape, mode="bilinear")[0, 0]
    np.testing.assert_allclose(heatmap, (cam / cam.max()).numpy(), atol=1e-5)
    assert np.unravel_index(heatmap.argmax(), heatmap.shape) == np.unravel_index(
        int(cam.argmax()), heatmap.shape
    )


def test_the_heatmap_follows_the_image_and_is_repeatable(model_and_cases):
    model, (first, second), pad_id = model_and_cases
    label = model.config.tasks.diagnosis_labels[0]
    once = diagnosis_heatmap(model, first, label=label, pad_id=pad_id)
    again = diagnosis_heatmap(model, first, label=label, pad_id=pad_id)
    other = diagnosis_heatmap(model, second, label=label, pad_id=pad_id)
    np.testing.assert_array_equal(once, again)
    assert not np.allclose(once, other)


def test_a_batch_of_heatmaps_gives_each_case_its_own_findings_map(model_and_cases):
    """One backward pass for a batch: each case's map of its own finding, the same as drawn
    alone (nothing of one case, nor of another finding, reaches another's map)."""
    _, (first, second), pad_id = model_and_cases
    config = tiny_config()
    config.tasks.diagnosis_labels = ["suspicious_mass", "effusion"]
    torch.manual_seed(1)
    model = build_model(config).eval()
    pairs = [(first, "suspicious_mass"), (second, "effusion"), (first, "effusion")]
    together = diagnosis_heatmaps(
        model, [case for case, _ in pairs], labels=[label for _, label in pairs], pad_id=pad_id
    )
    for (case, label), heatmap in zip(pairs, together, strict=True):
        alone = diagnosis_heatmap(model, case, label=label, pad_id=pad_id)
        np.testing.assert_allclose(heatmap, alone, atol=1e-5)
    assert not np.allclose(together[0], together[2]), "another finding, another map"


def test_explaining_leaves_the_model_as_it_was(model_and_cases):
    model, (case, _), pad_id = model_and_cases
    before = {name: value.clone() for name, value in model.state_dict().items()}
    diagnosis_heatmap(model, case, label=model.config.tasks.diagnosis_labels[0], pad_id=pad_id)
    assert not model.training
    assert not any(module._forward_hooks or module._backward_hooks for module in model.modules())
    assert all(parameter.grad is None for parameter in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_what_cannot_be_explained_is_refused(model_and_cases):
    model, (case, _), pad_id = model_and_cases
    with pytest.raises(ValueError, match="unknown finding"):
        diagnosis_heatmap(model, case, label="broken leg", pad_id=pad_id)
    without_image = type(case)(**{**vars(case), "image": None})
    with pytest.raises(ValueError, match="no image"):
        diagnosis_heatmap(
            model, without_image, label=model.config.tasks.diagnosis_labels[0], pad_id=pad_id
        )


def test_a_heatmap_is_coarsened_to_block_means():
    from mlcore.explain import coarsen

    heatmap = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert coarsen(heatmap, cells=2) == [[2.5, 4.5], [10.5, 12.5]]
    assert np.array(coarsen(np.ones((64, 50)), cells=32)).shape == (32, 25)


def test_occlusion_marks_the_regions_whose_hiding_lowers_the_finding(model_and_cases):
    model, (case, _), pad_id = model_and_cases
    label = model.config.tasks.diagnosis_labels[0]
    heatmap = occlusion_heatmap(model, case, label=label, pad_id=pad_id, mask_size=8)
    assert heatmap.shape == case.image.shape[1:]
    assert heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() <= heatmap.max() <= 1.0
    np.testing.assert_array_equal(
        heatmap, occlusion_heatmap(model, case, label=label, pad_id=pad_id, mask_size=8)
    )
    with pytest.raises(ValueError, match="unknown finding"):
        occlusion_heatmap(model, case, label="nothing", pad_id=pad_id)
