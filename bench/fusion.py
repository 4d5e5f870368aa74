"""Does fusion pay? Trains image-only, text-only, audio-only and fused models on the synthetic
clinic set (labels need several modalities: a finding needs the image's lesion and the note's
symptom; affect needs the voice's arousal and the note's wording) and prints held-out macro-F1
(mean over the diagnosis and emotion tasks). Then the fused model with one modality removed at
test time, and the HAIM recipe as a baseline: frozen per-modality embeddings, concatenated,
gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier).

Usage: .venv/bin/python bench/fusion.py [--train 480] [--test 300] [--epochs 25] [--seed 0]
"""

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import timed
from sklearn.ensemble import HistGradientBoostingClassifier

from mlcore.config import (
    AudioEncoderConfig,
    FusionConfig,
    ImageEncoderConfig,
    ModelConfig,
    TaskConfig,
    TextEncoderConfig,
)
from mlcore.data import Preprocessor, read_manifest
from mlcore.encoders import ImageEncoder, TextEncoder
from mlcore.evaluate import classification_metrics, diagnosis_metrics
from mlcore.io import mfcc, read_audio, warm_up
from mlcore.synthetic import CLINIC_AFFECTS, CLINIC_FINDINGS, write_dataset
from mlcore.train import TrainingConfig, evaluate_model, preprocess, train

REQUIRED_GAIN = 0.10


def model_config(modalities: list[str]) -> ModelConfig:
    return ModelConfig(
        name="+".join(modalities),
        modalities=modalities,
        image=ImageEncoderConfig(
            arch="densenet", size=48, init_features=8, growth_rate=8, block_config=(2, 2)
        ),
        text=TextEncoderConfig(max_length=64),  # the shipped MiniLM, frozen
        audio=AudioEncoderConfig(seconds=3.0, n_mels=40, channels=(8, 16, 32)),
        fusion=FusionConfig(kind="attention", dim=64),
        tasks=TaskConfig(
            diagnosis_labels=list(CLINIC_FINDINGS), emotion_labels=list(CLINIC_AFFECTS)
        ),
    )


def haim_baseline(train_cases, test_cases, seed: int) -> float:
    """HAIM (Soenksen et al., 2022): frozen embeddings per modality, concatenated, boosted trees.
    Image: a frozen DenseNet (no pretrained medical weights exist offline, so its random
    features); text: the pretrained MiniLM sentence embedding; audio: MFCC means and deviations."""
    torch.manual_seed(seed)
    config = model_config(["image", "text", "audio"])
    image_encoder = ImageEncoder(ImageEncoderConfig(arch="densenet121", size=48), dim=256).eval()
    text_encoder = TextEncoder(config.text, dim=8).eval()
    preprocessor = Preprocessor(config)

    def embed(cases) -> np.ndarray:
        features = preprocess(cases, preprocessor)
        rows = []
        with torch.inference_mode():
            for case, item in zip(cases, features, strict=True):
                image = image_encoder(torch.from_numpy(item.image)[None])[0].numpy()
                ids = torch.from_numpy(item.text_ids)[None]
                text = text_encoder.embed(ids, torch.ones_like(ids))[0].numpy()
                coefficients = mfcc(read_audio(case.audio))
                audio = np.concatenate([coefficients.mean(axis=1), coefficients.std(axis=1)])
                rows.append(np.concatenate([image, text, audio]))
        return np.stack(rows)

    train_x, test_x = embed(train_cases), embed(test_cases)
    diagnosis_truth = np.array(
        [[f in c.diagnosis for f in CLINIC_FINDINGS] for c in test_cases], dtype=int
    )
    diagnosis_probabilities = np.stack(
        [
            HistGradientBoostingClassifier(random_state=seed)
            .fit(train_x, [f in c.diagnosis for f in [label] for c in train_cases])
            .predict_proba(test_x)[:, 1]
            for label in CLINIC_FINDINGS
        ],
        axis=1,
    )
    emotion = HistGradientBoostingClassifier(random_state=seed).fit(
        train_x, [CLINIC_AFFECTS.index(c.emotion) for c in train_cases]
    )
    emotion_truth = np.array([CLINIC_AFFECTS.index(c.emotion) for c in test_cases])
    diagnosis = diagnosis_metrics(diagnosis_truth, diagnosis_probabilities, list(CLINIC_FINDINGS))
    emotion_metrics = classification_metrics(
        emotion_truth, emotion.predict_proba(test_x), list(CLINIC_AFFECTS)
    )
    return (diagnosis["macro_f1"] + emotion_metrics["macro_f1"]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=480)
    parser.add_argument("--validation", type=int, default=120)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    warm_up()
    training = TrainingConfig(
        epochs=args.epochs, batch_size=32, learning_rate=2e-3, seed=args.seed, progress=False
    )
    with tempfile.TemporaryDirectory() as work:
        total = args.train + args.validation + args.test
        cases = read_manifest(write_dataset(Path(work), kind="clinic", cases=total, seed=args.seed))
        train_cases = cases[: args.train]
        validation_cases = cases[args.train : args.train + args.validation]
        test_cases = cases[args.train + args.validation :]

        scores, fused = {}, None
        for modalities in (["image"], ["text"], ["audio"], ["image", "text", "audio"]):
            config = model_config(modalities)
            result, seconds = timed(train, config, train_cases, validation_cases, training)
            preprocessor = Preprocessor(config)
            test_features = preprocess(test_cases, preprocessor)
            metrics = evaluate_model(
                result.model,
                test_features,
                test_cases,
                pad_id=preprocessor.pad_id,
                device=torch.device("cpu"),
            )
            scores[config.name] = metrics["score"]
            print(
                f"{config.name:<18} held-out macro-F1 {metrics['score']:.3f}   ({seconds:5.1f} s)"
            )
            fused = (result.model, test_features, preprocessor)

        model, test_features, preprocessor = fused
        best_single = max(scores["image"], scores["text"], scores["audio"])
        gain = scores["image+text+audio"] - best_single
        verdict = "meets" if gain >= REQUIRED_GAIN else "MISSES"
        print(f"fused - best single modality: {gain:+.3f}  ({verdict} +{REQUIRED_GAIN:.2f})")
        for missing in ("image", "text", "audio"):
            reduced = [copy.copy(item) for item in test_features]
            for item in reduced:
                setattr(item, "text_ids" if missing == "text" else missing, None)
            metrics = evaluate_model(
                model, reduced, test_cases, pad_id=preprocessor.pad_id, device=torch.device("cpu")
            )
            print(f"fused, {missing} missing at test time: macro-F1 {metrics['score']:.3f}")
        haim, seconds = timed(haim_baseline, train_cases + validation_cases, test_cases, args.seed)
        print(f"HAIM baseline (frozen embeddings + boosted trees): {haim:.3f}   ({seconds:.1f} s)")
        print(f"ours (fused, attention) vs HAIM: {scores['image+text+audio']:.3f} vs {haim:.3f}")
    elapsed = time.perf_counter() - started
    sizes = f"train {args.train}, validation {args.validation}, test {args.test}"
    print(f"cases: {sizes}; CPU; total {elapsed:.0f} s")


if __name__ == "__main__":
    main()
