"""The demo's models, so that `make run` analyses out of the box: one for clinics (CT, note,
a recording's sound and what it says → finding and affect) and one for schools (learner text,
a recording's sound and what it says → affect and tutoring suggestions), trained here from
mlcore's synthetic data with fixed seeds the first time they are needed, then registered and
promoted. Nothing is downloaded: the text encoder is the MiniLM that ships with pip.

They train on one CPU thread: a small model's training follows the order its sums are added
in, and that order follows the thread count, so two machines with different cores trained
different demos (measured on the clinic's: test macro-F1 0.651 with every heatmap on its lesion
on one thread, 0.550 with heatmaps withheld on two). One thread takes the core count out of
it (the same run twice gave the same model either way), and is no slower here."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from django.conf import settings

from mlcore.config import (
    AudioEncoderConfig,
    FusionConfig,
    ImageEncoderConfig,
    ModelConfig,
    TaskConfig,
)
from mlcore.data import Preprocessor, manifest_hash, read_manifest
from mlcore.pointing import pointing_game
from mlcore.registry import save_bundle
from mlcore.synthetic import (
    CLINIC_AFFECTS,
    CLINIC_FINDINGS,
    SCHOOL_AFFECTS,
    read_truth,
    write_dataset,
)
from mlcore.train import TrainingConfig, train
from tessera.accounts.policy import OrganizationKind
from tessera.jobs.models import ModelVersion
from tessera.jobs.selectors import active_model_version
from tessera.jobs.services import json_safe, promote_model_version
from tessera.storage import local_bundle, publish_bundle

# The demo's cases, for training and for the seeded people alike: a seeded case drawn at another
# size would be, rightly, unlike the training data.
DEMO_IMAGE_SIZE = 64
DEMO_VOICE_SECONDS = 3.0  # of a recording's sound the audio encoder hears
DEMO_CASES = 480  # synthetic cases each demo model learns from
DEMO_EPOCHS = 40


def _audio() -> AudioEncoderConfig:
    return AudioEncoderConfig(seconds=DEMO_VOICE_SECONDS, n_mels=48, channels=(16, 32, 64))


def _fusion() -> FusionConfig:
    # A sum of experts: each modality adds its own evidence to each answer, and hiding
    # modalities often in training makes each one learnt (bench/fusion.py).
    return FusionConfig(kind="sum", dim=96, modality_dropout=0.4)


def demo_training(*, epochs: int = DEMO_EPOCHS) -> TrainingConfig:
    """How the demo models train: as bench/fusion.py's models (the image network finds the
    nodules within its epochs), with its weight decay (the voice's noise stays out of the
    findings) and other microphones (another site's recordings read alike)."""
    return TrainingConfig(
        epochs=epochs,
        patience=10,
        batch_size=32,
        learning_rate=2e-3,
        weight_decay=0.1,
        vary_microphones=True,
        seed=7,
        progress=False,
    )


def _clinic_config(name: str) -> ModelConfig:
    return ModelConfig(
        name=name,
        modalities=["image", "text", "audio", "speech_text"],
        # a nodule is small and local: a network that reads it where it is (bench/fusion.py)
        image=ImageEncoderConfig(arch="detector", size=DEMO_IMAGE_SIZE, pooling="max"),
        audio=_audio(),
        fusion=_fusion(),
        tasks=TaskConfig(
            diagnosis_labels=list(CLINIC_FINDINGS),
            emotion_labels=list(CLINIC_AFFECTS),
            # a finding shows on the image; affect is the voice's arousal and the words'
            requires={"diagnosis": ["image"], "emotion": ["text", "audio"]},
            # the sound of a voice says nothing about a nodule, nor does how the demo patients say
            # they feel (all their recordings say); a CT says nothing about a mood
            reads={"diagnosis": ["image", "text"], "emotion": ["text", "audio", "speech_text"]},
        ),
    )


def _school_config(name: str) -> ModelConfig:
    return ModelConfig(
        name=name,
        modalities=["text", "audio", "speech_text"],
        audio=_audio(),
        fusion=_fusion(),
        tasks=TaskConfig(
            emotion_labels=list(SCHOOL_AFFECTS),
            # the writing says how the lesson went; where the law keeps the recording's sound
            # out and the policy its transcript, the affect is read from the writing alone
            requires={"emotion": ["text"]},
        ),
    )


@dataclass(frozen=True)
class DemoModel:
    """One demo model: the organizations it serves, and how it is built and checked."""

    serves: OrganizationKind
    name: str
    config: Callable[[str], ModelConfig]
    # Whether it reads images, whose heatmaps are checked against the generator's lesions.
    pointing_game: bool


DEMO = (
    DemoModel(OrganizationKind.CLINIC, "demo-clinic-v1", _clinic_config, True),
    DemoModel(OrganizationKind.SCHOOL, "demo-school-v1", _school_config, False),
)
DEMO_MODELS = {demo.serves: demo.name for demo in DEMO}
_DEMO_SERVING = {demo.serves: demo for demo in DEMO}


def demo_config(kind: str) -> ModelConfig:
    """The configuration of the demo model that serves `kind` organizations."""
    demo = _DEMO_SERVING[OrganizationKind(kind)]
    return demo.config(demo.name)


def _pointing_game(model, test: list, manifest: Path) -> dict:
    """Whether the demo's heatmaps point at the lesions the generator drew, on the test split
    (mlcore.pointing): they are shown only if they do."""
    preprocessor = Preprocessor(model.config)
    truth = read_truth(manifest)
    return pointing_game(
        model,
        [preprocessor(case) for case in test],
        [truth[case.id]["lesion"] for case in test],
        label=CLINIC_FINDINGS[0],
        pad_id=preprocessor.pad_id,
    )


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread for the block: the demo models train to the same weights on every
    machine, whatever its cores or its load (a sum split over more threads rounds otherwise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def ensure_demo_models(
    *, cases: int = DEMO_CASES, epochs: int = DEMO_EPOCHS, log: Callable[[str], None] = print
) -> list[ModelVersion]:
    """Train, register and promote whichever demo model is missing; returns the new versions.
    A kind that already has an active model keeps it."""
    created = []
    for demo in DEMO:
        kind, name = demo.serves, demo.name
        bundle = local_bundle(name)  # from the bucket, where another host trained it
        if ModelVersion.objects.filter(name=name).exists() and (bundle / "config.json").is_file():
            continue
        log(f"Training the demo {kind} model from {cases} synthetic cases (once)…")
        manifest = write_dataset(
            Path(settings.MLCORE_MODELS_DIR) / f"{name}-data",
            kind=kind,
            cases=cases,
            seed=7,
            image_size=DEMO_IMAGE_SIZE,
            voice_seconds=None,  # whole sentences, as the demo's people say them
        )
        labelled = read_manifest(manifest)
        share = max(1, len(labelled) * 15 // 100)  # validation, calibration, test: 15% each
        validation, calibration, test = (
            labelled[start : start + share] for start in (0, share, 2 * share)
        )
        config = demo.config(name)
        config.training_data_hash = manifest_hash(manifest)
        config.training_data = (
            f"{cases} synthetic cases (mlcore.synthetic, benchmark v2): a demo, with no "
            "clinical or educational validity"
        )
        with one_thread():
            result = train(
                config,
                labelled[3 * share :],
                validation,
                demo_training(epochs=epochs),
                calibration_cases=calibration,
                test_cases=test,
            )
            if demo.pointing_game:
                result.metrics["pointing_game"] = _pointing_game(result.model, test, manifest)
        save_bundle(bundle, result.model, metrics=result.metrics, history=result.history)
        publish_bundle(name)
        version, _ = ModelVersion.objects.update_or_create(
            name=name,
            defaults={
                "serves": kind,
                "bundle_path": name,
                "metrics": json_safe(result.metrics),
                "trained_on_synthetic_data": True,
            },
        )
        if active_model_version(serves=kind) is None:
            promote_model_version(version=version, promoted_by=None)
        log(f"  {name}: test macro-F1 {result.metrics['score']:.3f}")
        created.append(version)
    return created
