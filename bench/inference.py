"""Inference throughput of mlcore's engine on CPU, measured in one run:

- one-by-one vs batched (batch 16): cases per second and their ratio;
- fp32 vs int8 (torchao dynamic quantisation): cases per second and top-1 agreement.

Usage: .venv/bin/python bench/inference.py [--cases 128] [--epochs 4]
"""

import argparse
import tempfile
from pathlib import Path

from _common import timed

from mlcore.config import (
    AudioEncoderConfig,
    FusionConfig,
    ImageEncoderConfig,
    ModelConfig,
    TaskConfig,
)
from mlcore.data import read_manifest
from mlcore.engine import InferenceEngine
from mlcore.io import warm_up
from mlcore.registry import save_bundle
from mlcore.synthetic import CLINIC_AFFECTS, CLINIC_FINDINGS, write_dataset
from mlcore.train import TrainingConfig, train


def bench_config() -> ModelConfig:
    """The demo model's shape: DenseNet on 64 px CT, the shipped MiniLM (frozen), a log-mel CNN."""
    return ModelConfig(
        name="bench-inference",
        image=ImageEncoderConfig(
            arch="densenet", size=64, init_features=16, growth_rate=12, block_config=(3, 3, 3)
        ),
        audio=AudioEncoderConfig(seconds=3.0, n_mels=48, channels=(16, 32, 64)),
        fusion=FusionConfig(kind="attention", dim=96),
        tasks=TaskConfig(
            diagnosis_labels=list(CLINIC_FINDINGS), emotion_labels=list(CLINIC_AFFECTS)
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    warm_up()
    with tempfile.TemporaryDirectory() as work:
        manifest = write_dataset(Path(work) / "data", kind="clinic", cases=args.cases + 64, seed=1)
        cases = read_manifest(manifest)
        training = TrainingConfig(epochs=args.epochs, batch_size=32, progress=False)
        result = train(bench_config(), cases[args.cases :], cases[args.cases :], training)
        bundle = save_bundle(Path(work) / "bundle", result.model, metrics=result.metrics)

        engine = InferenceEngine(bundle, device="cpu", batch_size=16)
        features = [engine.prepare(case) for case in cases[: args.cases]]
        engine.predict_features(features[:16])  # first-call allocations out of the timing

        singles, single_seconds = timed(lambda: [engine.predict_features([f])[0] for f in features])
        batched, batched_seconds = timed(engine.predict_features, features)
        worst = max(
            abs(a.emotion[label] - b.emotion[label])
            for a, b in zip(singles, batched, strict=True)
            for label in a.emotion
        )
        quantized = InferenceEngine(bundle, device="cpu", batch_size=16, quantize=True)
        quantized.predict_features(features[:16])
        int8, int8_seconds = timed(quantized.predict_features, features)
        agree = sum(
            a.emotion_label == b.emotion_label for a, b in zip(batched, int8, strict=True)
        ) / len(features)
        findings = sum(a.findings == b.findings for a, b in zip(batched, int8, strict=True)) / len(
            features
        )

    n = len(features)
    print(f"cases: {n} (image 64 px + note + 3 s speech), CPU, fp32 unless noted")
    print(f"one-by-one:      {n / single_seconds:8.1f} cases/s")
    print(f"batched (16):    {n / batched_seconds:8.1f} cases/s")
    speedup = single_seconds / batched_seconds
    print(f"batched / one-by-one: {speedup:.2f}x   (max |prob diff| {worst:.2e})")
    int8_speed = batched_seconds / int8_seconds
    print(
        f"int8 batched:    {n / int8_seconds:8.1f} cases/s   int8 / fp32 speed: {int8_speed:.2f}x"
    )
    print(f"int8 vs fp32 top-1 agreement: emotion {agree:.3f}, findings {findings:.3f}")


if __name__ == "__main__":
    main()
