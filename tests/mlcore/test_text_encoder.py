"""The default text encoder is the MiniLM that ships with pip, loaded with no network, and it
embeds exactly as sentence-transformers does."""

import socket

import pytest
import torch

from mlcore.config import TextEncoderConfig
from mlcore.encoders import TextEncoder, resolve_text_source
from mlcore.errors import ConfigError
from mlcore.io import Tokenizer
from tests.mlcore.conftest import TINY_BERT

SENTENCES = [
    "Reports a persistent cough for six weeks with unintended weight loss.",
    "I don't get why the fractions method works and I kept getting it wrong.",
    "Patient is calm and in good spirits.",
]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline load")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_minilm_loads_offline_and_matches_sentence_transformers(no_network):
    from sentence_transformers import SentenceTransformer

    encoder = TextEncoder(TextEncoderConfig(), dim=16).eval()
    tokenizer = Tokenizer(resolve_text_source(TextEncoderConfig().source), max_length=128)
    with torch.inference_mode():
        ours = encoder.embed(**tokenizer(SENTENCES))
    reference = SentenceTransformer(
        str(resolve_text_source(TextEncoderConfig().source)), device="cpu"
    )
    theirs = torch.from_numpy(reference.encode(SENTENCES))
    similarity = torch.nn.functional.cosine_similarity(ours, theirs)
    assert similarity.min() > 0.99
    assert ours.shape == (3, 384)


def test_a_frozen_encoder_does_not_train_but_its_projection_does():
    encoder = TextEncoder(TextEncoderConfig(trainable=False), dim=16)
    encoder.train()
    assert not encoder.backbone.training, "frozen backbone keeps dropout off"
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    assert all(p.requires_grad for p in encoder.projection.parameters())


def test_a_hub_name_is_refused_not_downloaded():
    with pytest.raises(ConfigError, match="not a local model directory"):
        TextEncoder(TextEncoderConfig(source="sentence-transformers/all-MiniLM-L6-v2"), dim=16)


def test_while_remembering_a_frozen_encoder_embeds_each_text_once():
    encoder = TextEncoder(TextEncoderConfig(), dim=16)
    tokenizer = Tokenizer(resolve_text_source(TextEncoderConfig().source), max_length=128)
    rows = []
    encoder.backbone.register_forward_hook(lambda _m, _i, output: rows.append(len(output[0])))
    batch = tokenizer(SENTENCES)
    with torch.inference_mode():
        expected = encoder.embed(**batch)
    rows.clear()
    with encoder.remembering():
        first = encoder.embed(**batch)  # under grad, as in training
        again = encoder.embed(**tokenizer(SENTENCES[::-1]))
        with torch.inference_mode():
            encoder.embed(**tokenizer(SENTENCES[:1]))
        # An embedding first made during evaluation still takes part in a training step.
        encoder.projection(encoder.embed(**batch)).sum().backward()
    assert rows == [3], "each distinct text went through the backbone once"
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, expected.flip(0), atol=1e-5, rtol=1e-5)
    assert encoder.projection.weight.grad is not None
    encoder.embed(**batch)
    assert rows == [3, 3], "outside the block nothing is remembered"


def test_a_trainable_encoder_never_remembers():
    config = TextEncoderConfig(trainable=True, random_init=TINY_BERT)
    encoder = TextEncoder(config, dim=8)
    tokenizer = Tokenizer(resolve_text_source(TextEncoderConfig().source), max_length=128)
    rows = []
    encoder.backbone.register_forward_hook(lambda _m, _i, output: rows.append(len(output[0])))
    with encoder.remembering():
        encoder.embed(**tokenizer(SENTENCES))
        encoder.embed(**tokenizer(SENTENCES))
    assert rows == [3, 3], "its embeddings change with every step"
