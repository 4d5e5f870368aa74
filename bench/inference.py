"""Inference throughput of mlcore's engine, measured in one run:

- one-by-one vs batched (batch 16): cases per second and their ratio;
- on CPU, fp32 vs int8 (torchao dynamic quantisation): cases per second and top-1 agreement;
- where the time goes: seconds in each encoder and the fusion, one-by-one and batched (a
  separate pass, timed with forward hooks), which shows what batching can and cannot win.

Usage: .venv/bin/python bench/inference.py [--cases 128] [--epochs 4] [--device cpu|cuda]
    [--text-source DIR --random-text-weights]

--random-text-weights builds a text encoder of MiniLM's shape with random weights, for a machine
that has the tokenizer but not the weights: the same work, so the same speed.
"""

import argparse
import tempfile
import time
from pathlib import Path

from _common import timed

from mlcore.config import (
    AudioEncoderConfig,
    FusionConfig,
    ImageEncoderConfig,
    ModelConfig,
    TaskConfig,
    TextEncoderConfig,
)
from mlcore.data import read_manifest
from mlcore.engine import InferenceEngine
from mlcore.io import warm_up
from mlcore.registry import save_bundle
from mlcore.synthetic import CLINIC_AFFECTS, CLINIC_FINDINGS, write_dataset
from mlcore.train import TrainingConfig, train

MINILM_SHAPE = {
    "model_type": "bert",
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "vocab_size": 30522,
}


def bench_config(text: TextEncoderConfig | None = None) -> ModelConfig:
    """The demo model's shape: DenseNet on 64 px CT, the shipped MiniLM (frozen), a log-mel CNN."""
    return ModelConfig(
        name="bench-inference",
        text=text or TextEncoderConfig(),
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
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--text-source", help="local text encoder directory (default: shipped MiniLM)"
    )
    parser.add_argument("--random-text-weights", action="store_true")
    args = parser.parse_args()
    text = TextEncoderConfig()
    if args.text_source:
        text.source = args.text_source
    if args.random_text_weights:
        text.random_init = MINILM_SHAPE
    warm_up()
    with tempfile.TemporaryDirectory() as work:
        manifest = write_dataset(Path(work) / "data", kind="clinic", cases=args.cases + 64, seed=1)
        cases = read_manifest(manifest)
        training = TrainingConfig(
            epochs=args.epochs, batch_size=32, progress=False, device=args.device
        )
        result = train(bench_config(text), cases[args.cases :], cases[args.cases :], training)
        bundle = save_bundle(Path(work) / "bundle", result.model, metrics=result.metrics)

        engine = InferenceEngine(bundle, device=args.device, batch_size=16)
        features = [engine.prepare(case) for case in cases[: args.cases]]
        engine.predict_features(features[:16])  # first-call allocations out of the timing

        singles, single_seconds = timed(lambda: [engine.predict_features([f])[0] for f in features])
        batched, batched_seconds = timed(engine.predict_features, features)
        worst = max(
            abs(a.emotion[label] - b.emotion[label])
            for a, b in zip(singles, batched, strict=True)
            for label in a.emotion
        )
        parts = time_in_parts(engine, features)
        int8_line = ""
        if engine.device.type == "cpu":  # int8 dynamic quantisation is a CPU optimisation
            quantized = InferenceEngine(bundle, device="cpu", batch_size=16, quantize=True)
            quantized.predict_features(features[:16])
            int8, int8_seconds = timed(quantized.predict_features, features)
            pairs = list(zip(batched, int8, strict=True))
            agree = sum(a.emotion_label == b.emotion_label for a, b in pairs) / len(pairs)
            findings = sum(a.findings == b.findings for a, b in pairs) / len(pairs)
            int8_line = (
                f"int8 batched:    {len(pairs) / int8_seconds:8.1f} cases/s   "
                f"int8 / fp32 speed: {batched_seconds / int8_seconds:.2f}x\n"
                f"int8 vs fp32 top-1 agreement: emotion {agree:.3f}, findings {findings:.3f}"
            )

    n = len(features)
    precision = "bf16 autocast" if engine.device.type == "cuda" else "fp32 unless noted"
    weights = "random weights of MiniLM's shape" if args.random_text_weights else "MiniLM"
    print(f"cases: {n} (64 px CT + note + 3 s speech) on {engine.device.type}, {precision}")
    print(f"text encoder: {weights}")
    print(f"one-by-one:      {n / single_seconds:8.1f} cases/s")
    print(f"batched (16):    {n / batched_seconds:8.1f} cases/s")
    speedup = single_seconds / batched_seconds
    print(f"batched / one-by-one: {speedup:.2f}x   (max |prob diff| {worst:.2e})")
    if int8_line:
        print(int8_line)
    print("seconds in each part (one-by-one / batched = ratio):")
    for name, (single, batch) in parts.items():
        print(f"  {name:<8} {single:6.2f} / {batch:5.2f} = {single / batch:4.2f}x")


def time_in_parts(engine: InferenceEngine, features: list) -> dict[str, tuple[float, float]]:
    """Seconds spent in each encoder and in the fusion over `features`, one-by-one and batched."""
    model = engine.model
    parts = {**model.encoders, "fusion": model.fusion}
    spent = dict.fromkeys(parts, 0.0)
    started: dict[str, float] = {}

    def before(name):
        return lambda module, inputs: started.__setitem__(name, time.perf_counter())

    def after(name):
        def add(module, inputs, output):
            spent[name] += time.perf_counter() - started[name]

        return add

    handles = []
    for name, module in parts.items():
        handles.append(module.register_forward_pre_hook(before(name)))
        handles.append(module.register_forward_hook(after(name)))
    try:
        for feature in features:
            engine.predict_features([feature])
        single = dict(spent)
        spent.update(dict.fromkeys(parts, 0.0))
        engine.predict_features(features)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (single[name], spent[name]) for name in parts}


if __name__ == "__main__":
    main()
