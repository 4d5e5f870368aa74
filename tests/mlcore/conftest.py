"""mlcore fixtures: tiny configurations and small synthetic datasets made by the tests."""

import pytest

from mlcore.config import (
    AudioEncoderConfig,
    FusionConfig,
    ImageEncoderConfig,
    ModelConfig,
    TaskConfig,
    TextEncoderConfig,
)
from mlcore.synthetic import CLINIC_AFFECTS, CLINIC_FINDINGS, write_dataset

TINY_BERT = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 30522,
}


def tiny_config(**overrides) -> ModelConfig:
    values = {
        "name": "tiny",
        "image": ImageEncoderConfig(
            arch="densenet", size=32, init_features=8, growth_rate=8, block_config=(2, 2)
        ),
        "text": TextEncoderConfig(max_length=48, random_init=TINY_BERT, trainable=True),
        "audio": AudioEncoderConfig(seconds=2.0, n_mels=32, channels=(8, 16)),
        "fusion": FusionConfig(kind="attention", dim=32),
        "tasks": TaskConfig(
            diagnosis_labels=list(CLINIC_FINDINGS), emotion_labels=list(CLINIC_AFFECTS)
        ),
    }
    values.update(overrides)
    return ModelConfig(**values)


def tiny_language_model(tokenizer):
    """A random causal LM (GPT-2 shape) over `tokenizer`'s vocabulary, with an initialisation
    wide enough that its outputs can follow a prefix (the default 0.02 leaves a random model's
    next-token distribution almost uniform)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_positions=64,
        n_embd=64,
        n_layer=2,
        n_head=2,
        initializer_range=0.2,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    return GPT2LMHeadModel(config)


@pytest.fixture(scope="session", autouse=True)
def librosa_warm():
    """librosa compiles numba kernels on its first call: once per test session."""
    from mlcore.io import warm_up

    warm_up()


@pytest.fixture(scope="session")
def clinic_dataset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clinic")
    return write_dataset(
        directory, kind="clinic", cases=60, seed=5, image_size=32, voice_seconds=2.0
    )
