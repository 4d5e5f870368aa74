"""`python -m mlcore`: synthesize, train, train-rationale, evaluate, validate, predict."""

import argparse
import json
import random
import sys
from pathlib import Path

from mlcore.config import ModelConfig
from mlcore.errors import ConfigError, InputError
from mlcore.synthetic.dataset import SPLITS


def _split(cases: list, count: int, seed: int) -> tuple[list, list]:
    """(the rest, `count` cases drawn at random by `seed`)."""
    shuffled = cases[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[count:], shuffled[:count]


def _load_config(path: Path) -> tuple[ModelConfig, dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read configuration {path}: {error}") from error
    training = data.pop("training", {})
    return ModelConfig.from_dict(data), training


def cmd_synthesize(args: argparse.Namespace) -> None:
    from mlcore.synthetic import write_dataset

    manifest = write_dataset(
        args.out,
        kind=args.kind,
        cases=args.cases,
        seed=args.seed,
        image_size=args.image_size,
        split=args.split,
    )
    print(manifest)


def cmd_train(args: argparse.Namespace) -> None:
    from mlcore.data import manifest_hash, read_manifest
    from mlcore.registry import save_bundle
    from mlcore.train import TrainingConfig, train

    config, training_values = _load_config(Path(args.config))
    overrides = {
        key: value
        for key, value in {
            "epochs": args.epochs,
            "seed": args.seed,
            "batch_size": args.batch_size,
        }.items()
        if value is not None
    }
    training = TrainingConfig(**{**training_values, **overrides, "progress": not args.quiet})
    train_cases = read_manifest(args.manifest)
    total, held_out = len(train_cases), {}
    for split in ("validation", "calibration", "test"):
        manifest, fraction = getattr(args, f"{split}_manifest"), getattr(args, f"{split}_fraction")
        if manifest:
            held_out[split] = read_manifest(manifest)
        elif fraction:
            count = max(1, int(total * fraction))
            train_cases, held_out[split] = _split(train_cases, count, training.seed)
    if "validation" not in held_out:
        raise InputError("training needs a validation split (--validation-fraction above 0)")
    config.training_data_hash = manifest_hash(args.manifest)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "training_log.jsonl").open("w") as log:
        result = train(
            config,
            train_cases,
            held_out["validation"],
            training,
            calibration_cases=held_out.get("calibration"),
            test_cases=held_out.get("test"),
            log=lambda entry: log.write(json.dumps(entry) + "\n"),
        )
    save_bundle(out, result.model, metrics=result.metrics, history=result.history)
    print(
        json.dumps(
            {
                "bundle": str(out),
                "score": result.metrics["score"],
                "split": result.metrics["split"],
                "best_epoch": result.best_epoch,
            }
        )
    )


def cmd_train_rationale(args: argparse.Namespace) -> None:
    """Teach a bundle to explain itself: train the prefix mapper for a frozen local LM on the
    manifest's `rationale` texts, from the bundle's own (frozen) case embeddings."""
    import torch

    from mlcore.data import read_manifest
    from mlcore.engine import InferenceEngine
    from mlcore.prefix import FrozenPrefixGenerator, load_language_model, train_mapper
    from mlcore.registry import save_rationale

    engine = InferenceEngine(args.bundle, device=args.device)
    cases = [case for case in read_manifest(args.manifest) if case.rationale]
    if not cases:
        raise InputError(f"{args.manifest} has no case with a 'rationale'")
    features = [engine.prepare(case) for case in cases]
    arrays = engine.forward(features)
    language_model, tokenizer = load_language_model(args.language_model)
    generator = FrozenPrefixGenerator(
        language_model.to(engine.device),
        tokenizer,
        dim=engine.config.fusion.dim,
        prefix_length=args.prefix_length,
    )
    embeddings = torch.from_numpy(arrays["embedding"]).to(engine.device)
    losses = train_mapper(
        generator, embeddings, [case.rationale for case in cases], epochs=args.epochs
    )
    save_rationale(args.bundle, generator, language_model=args.language_model)
    print(json.dumps({"bundle": args.bundle, "first_loss": losses[0], "last_loss": losses[-1]}))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from mlcore.data import read_manifest
    from mlcore.engine import InferenceEngine
    from mlcore.train import metrics_from_arrays

    engine = InferenceEngine(args.bundle, device=args.device)
    cases = read_manifest(args.manifest)
    features = [engine.prepare(case) for case in cases]
    arrays = engine.forward(features)
    metrics = metrics_from_arrays(arrays, cases, engine.config)
    text = json.dumps(metrics, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


def cmd_validate(args: argparse.Namespace) -> None:
    from mlcore.data import read_manifest
    from mlcore.engine import InferenceEngine
    from mlcore.validate import REPORT_FILE, validate

    engine = InferenceEngine(args.bundle, device=args.device)
    summary = validate(
        engine, read_manifest(args.manifest), args.out, resamples=args.resamples, seed=args.seed
    )
    print(
        json.dumps(
            {
                "report": str(Path(args.out) / REPORT_FILE),
                "cases": summary["cases"],
                "score": summary["score"],
            }
        )
    )


def cmd_predict(args: argparse.Namespace) -> None:
    from mlcore.data import read_manifest
    from mlcore.engine import InferenceEngine

    engine = InferenceEngine(args.bundle, device=args.device, batch_size=args.batch_size)
    cases = read_manifest(args.manifest)
    for case, prediction in zip(cases, engine.predict(cases), strict=True):
        print(json.dumps({"id": case.id, **prediction.to_dict()}))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m mlcore", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    synthesize = commands.add_parser("synthesize", help="write a synthetic cross-modal dataset")
    synthesize.add_argument("--out", required=True)
    synthesize.add_argument("--kind", choices=["clinic", "school"], default="clinic")
    synthesize.add_argument("--cases", type=int, default=200)
    synthesize.add_argument("--seed", type=int, default=0)
    synthesize.add_argument("--image-size", type=int, default=64)
    synthesize.add_argument(
        "--split",
        choices=list(SPLITS),
        default="standard",
        help="paraphrase: phrasings training never sees; site_shift: another scanner and mic",
    )
    synthesize.set_defaults(run=cmd_synthesize)

    train = commands.add_parser("train", help="train a model and save it as a bundle")
    train.add_argument("--manifest", required=True)
    train.add_argument(
        "--config", required=True, help="ModelConfig JSON (optional 'training' section)"
    )
    train.add_argument("--out", required=True, help="bundle directory to write")
    for split, fraction, job in (
        ("validation", 0.15, "chooses the epoch"),
        ("calibration", 0.15, "fits the probability temperatures"),
        ("test", 0.15, "gives the bundle's metrics"),
    ):
        train.add_argument(f"--{split}-manifest", help=f"the {split} split, which {job}")
        train.add_argument(
            f"--{split}-fraction",
            type=float,
            default=fraction,
            help=f"without --{split}-manifest, this share of --manifest (0: none)",
        )
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)

    rationale = commands.add_parser(
        "train-rationale", help="train rationale generation for a bundle (frozen local LM)"
    )
    rationale.add_argument("--bundle", required=True)
    rationale.add_argument("--manifest", required=True, help="cases with a 'rationale' text")
    rationale.add_argument("--language-model", required=True, help="local causal LM directory")
    rationale.add_argument("--epochs", type=int, default=50)
    rationale.add_argument("--prefix-length", type=int, default=8)
    rationale.add_argument("--device", default="auto")
    rationale.set_defaults(run=cmd_train_rationale)

    evaluate = commands.add_parser("evaluate", help="metrics of a bundle on a labelled manifest")
    evaluate.add_argument("--bundle", required=True)
    evaluate.add_argument("--manifest", required=True)
    evaluate.add_argument("--out")
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(run=cmd_evaluate)

    check = commands.add_parser(
        "validate",
        help="a bundle on your own labelled cases: metrics with intervals, reliability, "
        "abstention, subgroups (HTML report and JSON summary)",
    )
    check.add_argument("--bundle", required=True)
    check.add_argument("--manifest", required=True, help="labelled cases, optional subgroups")
    check.add_argument("--out", required=True, help="directory for the report")
    check.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--device", default="auto")
    check.set_defaults(run=cmd_validate)

    predict = commands.add_parser("predict", help="predictions for a manifest, as JSON Lines")
    predict.add_argument("--bundle", required=True)
    predict.add_argument("--manifest", required=True)
    predict.add_argument("--device", default="auto")
    predict.add_argument("--batch-size", type=int, default=16)
    predict.set_defaults(run=cmd_predict)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (InputError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
