"""The default text encoder is the MiniLM that ships with pip, loaded with no network, and it
embeds exactly as sentence-transformers does."""

import socket

import pytest
import torch

from mlcore.config import TextEncoderConfig
from mlcore.encoders import TextEncoder, resolve_text_source
from mlcore.errors import ConfigError
from mlcore.io import Tokenizer

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
