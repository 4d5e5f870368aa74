"""Does fusion pay, and how far is it from what the data allow? On benchmark v2 of
`mlcore.synthetic` (label noise, overlapping and partly redundant cues, varying strength, a
grammar of phrasings), trains image-only, text-only, audio-only and fused models and prints, on
a test split that nothing was tuned on, each one's score (mean macro-F1 of the finding and the
affect) with a bootstrap 95% interval beside the Bayes ceiling of the same modalities: what a
perfect reader of those modalities would score, from the generator's own posterior. Then the
HAIM recipe (frozen embeddings, boosted trees), the fused model on the paraphrase split
(phrasing families never seen in training) and the site-shift split (another scanner and
microphone), the contributions' ranking where one modality carries the evidence, the pointing
game of the heatmaps, how often each task needs a person in and out of distribution, and the
calibration error of every head.

Usage: .venv/bin/python bench/fusion.py [--train 600] [--test 400] [--epochs 40] [--seed 0]
                                        [--fusion sum] [--pooling max] [--weight-decay 0.1]
                                        [--no-vary-microphones] [--probes 150]
"""

import argparse
import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import torch
from _common import timed
from pydicom.pixels import apply_modality_lut
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score

from mlcore.config import (
    FUSION_KINDS,
    AudioEncoderConfig,
    FusionConfig,
    ImageEncoderConfig,
    ModelConfig,
    TaskConfig,
    TextEncoderConfig,
)
from mlcore.data import Case, Preprocessor, collate, read_manifest
from mlcore.encoders import ImageEncoder, TextEncoder
from mlcore.engine import forward_in_batches
from mlcore.evaluate import bootstrap_interval, expected_calibration_error
from mlcore.io import mfcc, read_audio, warm_up
from mlcore.pointing import HEATMAPS_TRUSTED_FROM, pointing_game
from mlcore.synthetic import CLINIC_AFFECTS, CLINIC_FINDINGS, read_truth, write_dataset
from mlcore.train import (
    TrainingConfig,
    needs_person_rates,
    out_of_distribution,
    preprocess,
    train,
)

FINDING = CLINIC_FINDINGS[0]
ALL = ("image", "text", "audio")
REQUIRED_GAIN = 0.05
CEILING_GAP = 0.05
PARAPHRASE_AFFECT = 0.70
SHIFT_DROP = 0.10
ECE_LIMIT = 0.05
LESION_REMOVAL = 0.90
IN_DISTRIBUTION_ABSTENTION = 0.10
OUT_OF_DISTRIBUTION_ABSTENTION = 0.95
READ_BY = {"diagnosis": ("image", "text"), "emotion": ("text", "audio")}
# Weight decay of the bench's models: at 0.01 the sum of experts learnt what the voice's noise
# added to the finding on the training split (a within-class spread of 0.7-1.0 logits).
WEIGHT_DECAY = 0.1


def model_config(
    modalities: tuple[str, ...], fusion: str = "sum", pooling: str = "max"
) -> ModelConfig:
    return ModelConfig(
        name="+".join(modalities),
        modalities=list(modalities),
        image=ImageEncoderConfig(arch="detector", size=48, pooling=pooling),
        text=TextEncoderConfig(max_length=64),  # the shipped MiniLM, frozen
        audio=AudioEncoderConfig(seconds=3.0, n_mels=40, channels=(8, 16, 32)),
        # Hiding modalities often in training makes each one learnt: with the default 0.15 the
        # text, read first, left the image under-used (finding macro-F1 0.65 against 0.74).
        fusion=FusionConfig(kind=fusion, dim=64, modality_dropout=0.4),
        tasks=TaskConfig(
            diagnosis_labels=[FINDING],
            emotion_labels=list(CLINIC_AFFECTS),
            # as the generator has it: the voice says nothing about the nodule, nor the image
            # about the patient's mood
            reads={
                "diagnosis": [m for m in modalities if m in READ_BY["diagnosis"]],
                "emotion": [m for m in modalities if m in READ_BY["emotion"]],
            },
        ),
    )


@dataclass
class Predictions:
    """Per test case: the finding's probability and the affect distribution."""

    finding: np.ndarray  # (N,)
    affect: np.ndarray  # (N, classes)


@dataclass
class Labels:
    finding: np.ndarray  # (N,) 0/1
    affect: np.ndarray  # (N,) class index

    @classmethod
    def of(cls, cases: list[Case]) -> "Labels":
        return cls(
            finding=np.array([FINDING in case.diagnosis for case in cases], dtype=int),
            affect=np.array([CLINIC_AFFECTS.index(case.emotion) for case in cases]),
        )


def _score(labels: Labels, predictions: Predictions, rows: np.ndarray) -> float:
    finding = f1_score(
        labels.finding[rows], predictions.finding[rows] >= 0.5, average="macro", labels=[0, 1]
    )
    affect = f1_score(
        labels.affect[rows],
        predictions.affect[rows].argmax(axis=1),
        average="macro",
        labels=list(range(len(CLINIC_AFFECTS))),
        zero_division=0,
    )
    return (finding + affect) / 2


def _affect_f1(labels: Labels, predictions: Predictions) -> float:
    return f1_score(
        labels.affect,
        predictions.affect.argmax(axis=1),
        average="macro",
        labels=list(range(len(CLINIC_AFFECTS))),
        zero_division=0,
    )


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def score_with_interval(
    labels: Labels, predictions: Predictions, *, resamples: int, seed: int
) -> Estimate:
    """The score and its bootstrap 95% interval (percentiles over resampled test cases)."""
    count = len(labels.finding)
    low, high = bootstrap_interval(
        lambda rows: _score(labels, predictions, rows), count, resamples=resamples, seed=seed
    )
    return Estimate(_score(labels, predictions, np.arange(count)), low, high)


def heard_cues(modalities: tuple[str, ...]) -> tuple[str, ...]:
    """The cues a perfect reader of `modalities` has: the recording's sound holds its words as
    well as the voice (mlcore.synthetic.truth), as transcripts hold them apart."""
    return (*modalities, "speech_text") if "audio" in modalities else modalities


def bayes_predictions(cases: list[Case], truth: dict, modalities: tuple[str, ...]) -> Predictions:
    """What the generator's posterior given `modalities` believes, case by case."""
    name = "+".join(heard_cues(modalities))
    known = [truth[case.id]["posterior"] for case in cases]
    return Predictions(
        finding=np.array([entry[FINDING][name] for entry in known]),
        affect=np.array([[entry["affect"][name][a] for a in CLINIC_AFFECTS] for entry in known]),
    )


def spread_decisions(predictions: Predictions, *, seed: int) -> Predictions:
    """The same beliefs, decided for macro-F1 rather than accuracy: the finding for the cases
    most likely to have it, as many as the beliefs expect; the affect by the most likely class
    with ties broken at random. (Where a modality says nothing about a task, deciding by the
    most likely answer names one class for every case, and any model that spreads its answers
    beats that "ceiling".)"""
    rng = np.random.default_rng(seed)
    affect = predictions.affect + rng.uniform(0, 1e-9, predictions.affect.shape)
    positives = round(float(predictions.finding.sum()))
    order = np.argsort(-(predictions.finding + rng.uniform(0, 1e-9, len(predictions.finding))))
    finding = np.zeros(len(order))
    finding[order[:positives]] = 1.0
    return Predictions(finding=finding, affect=np.eye(affect.shape[1])[affect.argmax(axis=1)])


def bayes_decisions(
    labels: Labels, cases: list[Case], truth: dict, modalities: tuple[str, ...], *, seed: int
) -> Predictions:
    """The Bayes ceiling's decisions for `modalities`: the generator's posterior, each task
    decided by the better of the two rules (most likely answer, or spread) on these cases."""
    beliefs = bayes_predictions(cases, truth, modalities)
    spread = spread_decisions(beliefs, seed=seed)

    def finding_f1(rule: Predictions) -> float:
        return f1_score(labels.finding, rule.finding >= 0.5, average="macro", labels=[0, 1])

    return Predictions(
        finding=max((beliefs, spread), key=finding_f1).finding,
        affect=max((beliefs, spread), key=lambda rule: _affect_f1(labels, rule)).affect,
    )


def model_outputs(model, cases: list[Case], *, contributions: bool = False) -> dict:
    """The model's arrays for `cases` (mlcore.engine.forward_in_batches), on the CPU."""
    preprocessor = Preprocessor(model.config)
    return forward_in_batches(
        model,
        preprocess(cases, preprocessor),
        batch_size=64,
        device=torch.device("cpu"),
        pad_id=preprocessor.pad_id,
        contributions=contributions,
    )


def model_predictions(model, cases: list[Case]) -> Predictions:
    arrays = model_outputs(model, cases)
    return Predictions(finding=arrays["diagnosis"][:, 0], affect=arrays["emotion"])


def head_calibration_errors(labels: Labels, predictions: Predictions) -> dict[str, float]:
    finding_confidence = np.maximum(predictions.finding, 1 - predictions.finding)
    finding_correct = (predictions.finding >= 0.5) == labels.finding.astype(bool)
    affect_correct = predictions.affect.argmax(axis=1) == labels.affect
    return {
        FINDING: expected_calibration_error(finding_confidence, finding_correct),
        "affect": expected_calibration_error(predictions.affect.max(axis=1), affect_correct),
    }


def haim_predictions(train_cases: list[Case], test_cases: list[Case], seed: int) -> Predictions:
    """HAIM (Soenksen et al., 2022): frozen embeddings per modality, concatenated, boosted trees.
    Image: a frozen DenseNet (no pretrained medical weights exist offline, so its random
    features); text: the pretrained MiniLM sentence embedding; audio: MFCC means and deviations."""
    torch.manual_seed(seed)
    config = model_config(ALL)
    image_encoder = ImageEncoder(ImageEncoderConfig(arch="densenet121", size=48), dim=256).eval()
    text_encoder = TextEncoder(config.text, dim=8).eval()
    preprocessor = Preprocessor(config)

    def embed(cases: list[Case]) -> np.ndarray:
        features = preprocess(cases, preprocessor)
        parts = []
        with torch.inference_mode():
            for start in range(0, len(cases), 64):
                batch = collate(features[start : start + 64], config, pad_id=preprocessor.pad_id)
                image = image_encoder(batch.image).numpy()
                text = text_encoder.embed(batch.text_ids, batch.text_mask).numpy()
                parts.append(np.concatenate([image, text], axis=1))
        audio = []
        for case in cases:
            coefficients = mfcc(read_audio(case.audio))
            audio.append(np.concatenate([coefficients.mean(axis=1), coefficients.std(axis=1)]))
        return np.concatenate([np.concatenate(parts), np.stack(audio)], axis=1)

    train_x, test_x = embed(train_cases), embed(test_cases)
    labels = Labels.of(train_cases)
    finding = HistGradientBoostingClassifier(random_state=seed).fit(train_x, labels.finding)
    affect = HistGradientBoostingClassifier(random_state=seed).fit(train_x, labels.affect)
    return Predictions(
        finding=finding.predict_proba(test_x)[:, 1], affect=affect.predict_proba(test_x)
    )


# Probe cases in which one modality alone carries a task's evidence: (task, that modality, the
# cues made silent in every case, truth.SILENT).
CARRIED_ALONE = (
    (FINDING, "image", ("symptom",)),  # a mild symptom: the note barely tells
    ("emotion", "audio", ("wording", "manner")),  # the recording alone: voice and words
    ("emotion", "text", ("voice", "said")),  # a voice at 0 saying a sentence of mixed feelings
)


def report_contributions(model, work: Path, *, cases: int, seed: int) -> None:
    """Where one modality alone carries a task's evidence, does it rank first in that task's
    contributions? On probe cases whose other cues say nothing (`CARRIED_ALONE`); for the note,
    those whose wording is not mixed too."""
    for index, (task, modality, silent) in enumerate(CARRIED_ALONE):
        manifest = write_dataset(
            work / f"alone-{modality}",
            kind="clinic",
            cases=cases,
            seed=seed + 10 + index,
            silent=silent,
        )
        probes = read_manifest(manifest)
        arrays = model_outputs(model, probes, contributions=True)
        truth = read_truth(manifest)
        rows = [
            row
            for row, case in enumerate(probes)
            if modality != "text" or truth[case.id]["cues"]["wording"] != "mixed"
        ]
        values = np.abs(arrays[f"contribution/{task}"][rows])
        first = float(np.mean(values.argmax(axis=1) == ALL.index(modality)))
        print(
            f"contributions: {modality} ranks first for {task} where it alone carries the "
            f"evidence: {first:.0%} of {len(rows)} cases  ({verdict(first >= 0.9)}: >= 90%)"
        )


def report_pointing(model, cases: list[Case], truth: dict) -> None:
    """The pointing game on the test split's lesions (mlcore.pointing): Grad-CAM, which cards
    would show, and occlusion sensitivity to cross-check it (if both miss, the model does not
    look at the lesion; if only Grad-CAM does, Grad-CAM is at fault)."""
    preprocessor = Preprocessor(model.config)
    features = preprocess(cases, preprocessor)
    lesions = [truth[case.id]["lesion"] for case in cases]
    for method in ("grad-cam", "occlusion"):
        game = pointing_game(
            model, features, lesions, label=FINDING, pad_id=preprocessor.pad_id, method=method
        )
        if not game["cases"]:
            print(f"pointing game, {method}: {game['reason']}")
            continue
        low, high = game["interval"]
        line = (
            f"pointing game, {method}: peak on the lesion in {game['hit_rate']:.0%} of "
            f"{game['cases']} found lesions [{low:.0%}, {high:.0%}]"
        )
        if method == "grad-cam":
            holds = game["hit_rate"] >= HEATMAPS_TRUSTED_FROM
            line += f"  ({verdict(holds)}: >= {HEATMAPS_TRUSTED_FROM:.0%})"
        print(line)


def without_lesion(path: str, known: dict) -> bytes:
    """The case's DICOM with its lesion taken out in Hounsfield units, before any
    preprocessing: the generator's Gaussian blob (its contrast, and a sigma of two thirds of
    the recorded radius) subtracted from every pixel, so what remains is the slice the
    generator would have drawn without it (noise included)."""
    lesion, contrast = known["lesion"], known["cues"]["lesion_contrast"]
    dataset = pydicom.dcmread(path)
    hounsfield = apply_modality_lut(dataset.pixel_array, dataset).astype(np.float64)
    rows, columns = np.mgrid[: hounsfield.shape[0], : hounsfield.shape[1]]
    squared = (rows - lesion["row"]) ** 2 + (columns - lesion["column"]) ** 2
    sigma = lesion["radius"] / 1.5
    hounsfield -= contrast * np.exp(-squared / (2 * sigma**2))
    stored = (hounsfield - float(dataset.RescaleIntercept)) / float(dataset.RescaleSlope)
    dataset.PixelData = np.clip(np.rint(stored), 0, 4095).astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def report_lesion_removal(model, cases: list[Case], truth: dict) -> None:
    """On the lesions the model finds, does the finding go once the lesion is painted out in
    HU (`without_lesion`)? If the model read the finding from the lesion, it must."""
    found = [
        case
        for case, probability in zip(cases, model_predictions(model, cases).finding, strict=True)
        if truth[case.id]["lesion"] is not None and probability >= 0.5
    ]
    if not found:
        print("lesion removed in HU: the model found none of the lesions")
        return
    painted = [
        Case(
            id=case.id,
            image=without_lesion(case.image, truth[case.id]),
            text=case.text,
            audio=case.audio,
        )
        for case in found
    ]
    after = model_predictions(model, painted).finding
    gone = float(np.mean(after < 0.5))
    print(
        f"lesion removed in HU: the finding falls below 50% in {gone:.0%} of {len(found)} found "
        f"lesions  ({verdict(gone >= LESION_REMOVAL)}: >= {LESION_REMOVAL:.0%})"
    )


def report_abstention(model, cases: list[Case]) -> None:
    """How often each task needs a person on the test split and on inputs unlike any training
    data (mlcore.probes)."""
    preprocessor = Preprocessor(model.config)
    cpu = torch.device("cpu")
    inside = needs_person_rates(
        model, preprocess(cases, preprocessor), pad_id=preprocessor.pad_id, device=cpu
    )
    outside = out_of_distribution(model, preprocessor, cases, device=cpu)
    for task, rate in inside.items():
        unlike = outside["needs_person_rate"][task]
        print(
            f"needs a person, {task}: {rate:.0%} of the test split "
            f"({verdict(rate <= IN_DISTRIBUTION_ABSTENTION)}: <= "
            f"{IN_DISTRIBUTION_ABSTENTION:.0%}); {unlike:.0%} of {outside['cases']} probes unlike "
            f"any training data ({verdict(unlike >= OUT_OF_DISTRIBUTION_ABSTENTION)}: >= "
            f"{OUT_OF_DISTRIBUTION_ABSTENTION:.0%})"
        )


def verdict(holds: bool) -> str:
    return "holds" if holds else "FAILS"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--validation", type=int, default=150)
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--paraphrase", type=int, default=300)
    parser.add_argument("--shift", type=int, default=300)
    parser.add_argument("--probes", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fusion", choices=FUSION_KINDS, default="sum")
    parser.add_argument("--pooling", choices=("mean", "max"), default="max")
    parser.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    parser.add_argument(
        "--vary-microphones",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hear each training recording as other microphones might have taken it",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    warm_up()
    training = TrainingConfig(
        epochs=args.epochs,
        patience=10,
        batch_size=32,
        learning_rate=2e-3,
        weight_decay=args.weight_decay,
        vary_microphones=args.vary_microphones,
        seed=args.seed,
        progress=False,
    )
    interval = {"resamples": args.resamples, "seed": args.seed}
    with tempfile.TemporaryDirectory() as work:
        sets = {}
        # Each split has its own seed: the same seed with other phrasings would repeat the cases.
        for offset, (split, count) in enumerate(
            (
                ("standard", args.train + args.validation + args.calibration + args.test),
                ("paraphrase", args.paraphrase),
                ("site_shift", args.shift),
            )
        ):
            manifest = write_dataset(
                Path(work) / split, kind="clinic", cases=count, seed=args.seed + offset, split=split
            )
            sets[split] = (read_manifest(manifest), read_truth(manifest))
        standard, truth = sets["standard"]
        cut = np.cumsum([args.train, args.validation, args.calibration])
        train_cases, validation_cases, calibration_cases, test_cases = np.split(
            np.array(standard, dtype=object), cut
        )
        train_cases, validation_cases, calibration_cases, test_cases = (
            list(part) for part in (train_cases, validation_cases, calibration_cases, test_cases)
        )
        labels = Labels.of(test_cases)

        print(f"test split, {len(test_cases)} cases: score = mean macro-F1 of finding and affect")
        print(f"{'modalities':<18} {'model [95% CI]':<24} {'Bayes ceiling [95% CI]':<24}")
        scores, ceilings, models = {}, {}, {}
        for modalities in (("image",), ("text",), ("audio",), ALL):
            config = model_config(modalities, args.fusion, args.pooling)
            result, seconds = timed(
                train,
                config,
                train_cases,
                validation_cases,
                training,
                calibration_cases=calibration_cases,
            )
            models[modalities] = result.model
            scores[modalities] = score_with_interval(
                labels, model_predictions(result.model, test_cases), **interval
            )
            ceilings[modalities] = score_with_interval(
                labels,
                bayes_decisions(labels, test_cases, truth, modalities, seed=args.seed),
                **interval,
            )
            print(
                f"{config.name:<18} {scores[modalities]!s:<24} {ceilings[modalities]!s:<24}"
                f" ({seconds:.0f} s)"
            )

        haim, seconds = timed(
            haim_predictions, train_cases + validation_cases + calibration_cases, test_cases, 0
        )
        haim_score = score_with_interval(labels, haim, **interval)
        print(f"HAIM (frozen embeddings + boosted trees): {haim_score}   ({seconds:.0f} s)")

        fused_test = model_predictions(models[ALL], test_cases)
        finding_f1 = f1_score(labels.finding, fused_test.finding >= 0.5, average="macro")
        print(
            f"fused on test: finding macro-F1 {finding_f1:.3f}, "
            f"affect macro-F1 {_affect_f1(labels, fused_test):.3f}"
        )
        fused, best_name = (
            scores[ALL],
            max((m for m in scores if m != ALL), key=lambda m: scores[m].value),
        )
        best = scores[best_name]
        print()
        gain = fused.value - best.value
        print(
            f"fused - best single ({'+'.join(best_name)}): {gain:+.3f}, intervals "
            f"{'apart' if fused.low > best.high else 'OVERLAP'}  "
            f"({verdict(gain >= REQUIRED_GAIN and fused.low > best.high)}: "
            f">= +{REQUIRED_GAIN:.2f}, intervals apart)"
        )
        gap = ceilings[ALL].value - fused.value
        print(
            f"all-modality ceiling - fused: {gap:+.3f}  ({verdict(gap <= CEILING_GAP)}: "
            f"<= {CEILING_GAP:.2f})"
        )

        paraphrase_cases, paraphrase_truth = sets["paraphrase"]
        paraphrase_labels = Labels.of(paraphrase_cases)
        for modalities in (("text",), ALL):
            affect = _affect_f1(
                paraphrase_labels, model_predictions(models[modalities], paraphrase_cases)
            )
            ceiling = _affect_f1(
                paraphrase_labels,
                bayes_decisions(
                    paraphrase_labels,
                    paraphrase_cases,
                    paraphrase_truth,
                    modalities,
                    seed=args.seed,
                ),
            )
            line = f"paraphrase split, {'+'.join(modalities)} model: affect macro-F1 {affect:.3f}"
            line += f" (its ceiling {ceiling:.3f})"
            if modalities == ALL:
                line += f"  ({verdict(affect >= PARAPHRASE_AFFECT)}: >= {PARAPHRASE_AFFECT:.2f})"
            print(line)

        shift_cases, shift_truth = sets["site_shift"]
        shift_labels = Labels.of(shift_cases)
        shifted = score_with_interval(
            shift_labels, model_predictions(models[ALL], shift_cases), **interval
        )
        shift_ceiling = score_with_interval(
            shift_labels,
            bayes_decisions(shift_labels, shift_cases, shift_truth, ALL, seed=args.seed),
            **interval,
        )
        drop = fused.value - shifted.value
        print(
            f"site-shift split, fused: {shifted} (ceiling {shift_ceiling}); drop {drop:+.3f}  "
            f"({verdict(drop <= SHIFT_DROP)}: <= {SHIFT_DROP:.2f})"
        )

        report_contributions(models[ALL], Path(work), cases=args.probes, seed=args.seed)
        report_pointing(models[ALL], test_cases, truth)
        report_lesion_removal(models[ALL], test_cases, truth)
        report_abstention(models[ALL], test_cases)

        errors = head_calibration_errors(labels, fused_test)
        # The generator's own posterior is calibrated by construction: its ECE on these cases
        # is what a finite test split shows of a perfect model (binning and sampling alone).
        floor = head_calibration_errors(labels, bayes_predictions(test_cases, truth, ALL))
        for head, error in errors.items():
            print(
                f"fused, {head} head: ECE {error:.3f} on the test split, the true posterior's "
                f"{floor[head]:.3f}  ({verdict(error <= ECE_LIMIT)}: <= {ECE_LIMIT:.2f})"
            )
    elapsed = time.perf_counter() - started
    sizes = (
        f"train {args.train}, validation {args.validation}, calibration {args.calibration}, "
        f"test {args.test}, paraphrase {args.paraphrase}, site shift {args.shift}"
    )
    print(f"cases: {sizes}; {args.resamples} bootstrap resamples; CPU; total {elapsed:.0f} s")


if __name__ == "__main__":
    main()
