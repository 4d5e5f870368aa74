"""Contrastive image-report alignment: image→text retrieval far above chance, and similar-case
search by text."""

import numpy as np
import torch

from mlcore.align import CaseIndex, ContrastiveAligner, recall_at_1, train_alignment
from mlcore.config import ImageEncoderConfig, TextEncoderConfig
from mlcore.encoders import resolve_text_source
from mlcore.io import Tokenizer, image_tensor
from mlcore.synthetic import Lesion, chest_ct_slice, radiology_report

SIZE = 48
FINDINGS = [None] + [
    Lesion(side=side, level=level, large=large)
    for side in ("left", "right")
    for level in ("upper", "lower")
    for large in (False, True)
]


def _pairs(count: int, rng: np.random.Generator):
    images, texts, groups = [], [], []
    for _ in range(count):
        group = int(rng.integers(len(FINDINGS)))
        lesion = FINDINGS[group]
        hounsfield = chest_ct_slice(lesion=lesion or False, rng=rng, size=SIZE)
        window = np.clip((hounsfield + 1350) / 1500, 0, 1).astype(np.float32)  # lung window
        images.append(image_tensor(window, size=SIZE))
        texts.append(radiology_report(lesion, rng=rng))
        groups.append(group)
    return torch.stack(images), texts, groups


def test_alignment_retrieves_the_right_report_far_above_chance():
    rng = np.random.default_rng(0)
    train_images, train_texts, _ = _pairs(270, rng)
    test_images, test_texts, test_groups = _pairs(90, rng)
    text_config = TextEncoderConfig(
        max_length=32
    )  # the shipped MiniLM, frozen; its projection learns
    tokenizer = Tokenizer(resolve_text_source(text_config.source), max_length=32)
    image_config = ImageEncoderConfig(
        arch="densenet", size=SIZE, init_features=8, growth_rate=8, block_config=(2, 2)
    )
    aligner = ContrastiveAligner(image_config, text_config, dim=64)

    result = train_alignment(
        aligner,
        train_images,
        **tokenizer(train_texts),
        epochs=25,
        batch_size=32,
        learning_rate=2e-3,
    )

    assert result.losses[-1] < 0.6 * result.losses[0]
    with torch.inference_mode():
        image_embeddings = aligner.embed_images(test_images)
        text_embeddings = aligner.embed_texts(**tokenizer(test_texts))
    recall = recall_at_1(image_embeddings, text_embeddings, test_groups, test_groups)
    counts = np.bincount(test_groups, minlength=len(FINDINGS)) / len(test_groups)
    chance = float((counts**2).sum())
    print(f"image→text recall@1 {recall:.2f} (chance {chance:.2f})")
    assert recall > 4 * chance

    index = CaseIndex(image_embeddings, [str(g) for g in test_groups])
    with torch.inference_mode():
        query = aligner.embed_texts(
            **tokenizer(["Chest CT reviewed. A large nodule in the left upper lobe."])
        )[0]
    hits = index.search(query, k=3)
    wanted = str(FINDINGS.index(Lesion(side="left", level="upper", large=True)))
    assert sum(hit == wanted for hit, _ in hits) >= 2, hits
