"""Frozen-style generation: only the mapper learns; the language model stays bit-identical."""

import torch
from transformers import AutoTokenizer

from mlcore.config import TextEncoderConfig
from mlcore.encoders import resolve_text_source
from mlcore.prefix import FrozenPrefixGenerator, train_mapper
from tests.mlcore.conftest import tiny_language_model

RATIONALES = [
    "nodule on imaging and cough reported",
    "clear lungs and no symptoms",
    "distressed wording and tense voice",
    "calm wording and relaxed voice",
]


def test_the_mapper_learns_and_the_language_model_does_not_change():
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_text_source(TextEncoderConfig().source)))
    language_model = tiny_language_model(tokenizer)
    before = {name: tensor.clone() for name, tensor in language_model.state_dict().items()}
    generator = FrozenPrefixGenerator(language_model, tokenizer, dim=16, prefix_length=8)

    torch.manual_seed(1)
    prototypes = torch.randn(len(RATIONALES), 16)
    labels = torch.arange(len(RATIONALES)).repeat(8)
    embeddings = prototypes[labels] + 0.05 * torch.randn(len(labels), 16)
    texts = [RATIONALES[i] for i in labels.tolist()]

    losses = train_mapper(
        generator, embeddings, texts, epochs=60, batch_size=16, learning_rate=3e-3
    )

    assert losses[-1] < 0.3 * losses[0], losses
    for name, tensor in language_model.state_dict().items():
        assert torch.equal(tensor, before[name]), f"{name} changed"
    assert not any(p.requires_grad for p in language_model.parameters())
    generated = generator.generate(prototypes, max_new_tokens=12)
    assert (
        sum(text == expected for text, expected in zip(generated, RATIONALES, strict=True)) >= 3
    ), generated
