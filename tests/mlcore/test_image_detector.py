"""The lesion detector image network, and what training does for the image: mirroring, and each
modality's own answer in the loss."""

import torch

from mlcore.config import ImageEncoderConfig
from mlcore.data import Preprocessor, collate, read_manifest
from mlcore.encoders.image import ImageEncoder
from mlcore.model import build_model
from mlcore.train import _mirrored, task_loss, training_loss
from tests.mlcore.conftest import tiny_config


def _detector() -> ImageEncoder:
    torch.manual_seed(0)
    config = ImageEncoderConfig(arch="detector", size=32, channels=(8, 8, 8))
    return ImageEncoder(config, dim=16).eval()


def _with_nodule(row: int, column: int) -> torch.Tensor:
    image = torch.full((1, 1, 32, 32), -1.0)
    rows, columns = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    image[0, 0] += 1.5 * torch.exp(-((rows - row) ** 2 + (columns - column) ** 2) / 4.0)
    return image


def test_a_nodule_reads_the_same_wherever_it_lies():
    detector = _detector()
    with torch.inference_mode():
        here, there = detector(_with_nodule(10, 10)), detector(_with_nodule(20, 18))
        nothing = detector(torch.full((1, 1, 32, 32), -1.0))
    moved = (here - there).abs().max()
    assert moved < 1e-6
    assert (here - nothing).abs().max() > 100 * moved  # and the nodule is seen


def test_a_uniform_image_has_no_edges_for_the_detector():
    # Zero padding would answer to the image's border as to a bright frame.
    with torch.inference_mode():
        maps = _detector().network.features(torch.full((1, 1, 32, 32), -1.0))
    assert maps.shape == (1, 16, 16, 16)
    torch.testing.assert_close(maps, maps[..., :1, :1].expand_as(maps), atol=1e-6, rtol=0)


def test_mirroring_flips_about_half_of_the_images_left_to_right():
    images = torch.arange(64 * 2 * 3, dtype=torch.float32).reshape(64, 1, 2, 3)
    mirrored = _mirrored(images, torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(m, i.flip(-1))) for m, i in zip(mirrored, images, strict=True)]
    kept = [bool(torch.equal(m, i)) for m, i in zip(mirrored, images, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 20 <= sum(flipped) <= 44


def test_the_loss_adds_each_modalitys_own_answer(clinic_dataset):
    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(config).eval()
    preprocessor = Preprocessor(config)
    cases = read_manifest(clinic_dataset)[:8]
    batch = collate(
        [preprocessor(case) for case in cases], config, pad_id=preprocessor.pad_id, cases=cases
    )
    with torch.no_grad():
        fused_only = training_loss(model, batch, single_modality_weight=0.0)
        both = training_loss(model, batch, single_modality_weight=0.6)
        tokens, present = model.encode(batch)
        alone = []
        for column in range(3):
            only = torch.zeros_like(present)
            only[:, column] = True
            alone.append(task_loss(model.decide(tokens, only), batch.targets))
    torch.testing.assert_close(fused_only, task_loss(model(batch), batch.targets))
    torch.testing.assert_close(both, fused_only + 0.6 * sum(alone))
