"""The model card: what a model version is for, what it was measured at, and its limits, written
beside its weights as Markdown and read back as sections for the people it answers. No torch:
the web process reads cards without loading models."""

from pathlib import Path

from mlcore.config import ModelConfig
from mlcore.input_checks import span_words

CARD_FILE = "MODEL_CARD.md"


def model_card(config: ModelConfig, metrics: dict) -> str:
    tasks = config.tasks
    lines = [
        f"# Model card: {config.name}",
        "",
        "## Intended use",
        "- Suggestions for a clinician or teacher to confirm: diagnosis suggestions,",
        "  emotion/affect estimates and tutoring suggestions from a medical image, a note or",
        "  learner text, and speech.",
        "- Never an automatic decision. Not a medical device.",
        "",
        "## Inputs and outputs",
        f"- Modalities: {', '.join(config.modalities)} (any subset may be missing at inference)",
        f"- Fusion: {config.fusion.kind}",
        f"- Diagnosis labels: {', '.join(tasks.diagnosis_labels) or 'none'}",
        f"- Emotion labels: {', '.join(tasks.emotion_labels) or 'none'}",
        (
            "- Tutoring: the platform ranks a school's intervention library by the affect "
            "estimate, the subject and its teachers' verdicts (mlcore.learnt_ranking)"
            if tasks.emotion_labels
            else "- Tutoring: none (no affect estimate)"
        ),
        f"- Text encoder: {config.text.source}",
        *(
            f"- {words} read only: {', '.join(tasks.reads[task])}"
            for task, words in (("diagnosis", "Findings"), ("emotion", "Affect"))
            if task in tasks.reads
        ),
        *_needs_person_lines(config),
        "",
        "## Data",
        *([f"- Training data: {config.training_data}"] if config.training_data else []),
        f"- Training data sha256: `{config.training_data_hash or 'unknown'}`",
        f"- mlcore version: {config.mlcore_version or 'unknown'}",
        "",
        f"## Metrics: {_SPLITS.get(metrics.get('split', ''), 'held-out cases')}",
        f"- Score (mean macro-F1 over tasks): {metrics.get('score', float('nan')):.3f}",
    ]
    for task in ("diagnosis", "emotion"):
        if task in metrics:
            lines.append(f"- {task}: macro-F1 {metrics[task]['macro_f1']:.3f}")
    lines += ["", "## Calibration", *_calibration_lines(metrics)]
    lines += _abstention_lines(metrics, config)
    if "image" in config.modalities and config.tasks.diagnosis_labels:
        lines += ["", "## Explanations", _pointing_line(metrics)]
    lines += [
        "",
        "## Limits",
        "- Performance holds only for data like the training data; watch the monitoring page.",
        "- Emotion inference from voice is prohibited in EU education (AI Act Art. 5(1)(f)):",
        "  there the platform leaves recordings out of every analysis, whatever this model can do.",
        "",
    ]
    return "\n".join(lines)


def _pointing_line(metrics: dict) -> str:
    """The pointing game's score (mlcore.pointing; no torch here, so its threshold is read from
    the score's own record), and whether heatmaps are shown."""
    game = metrics.get("pointing_game")
    if game is None:
        return (
            "- Heatmaps are not shown: they have not been checked against known lesions "
            "(the pointing game)."
        )
    if not game.get("cases"):
        return (
            f"- Heatmaps are not shown: the pointing game could not be played ({game['reason']})."
        )
    low, high = game["interval"]
    enough = game["cases"] >= game.get("trusted_after", 0)
    if game["hit_rate"] < game["trusted_from"]:
        verdict = f"below {game['trusted_from']:.0%}, so heatmaps are not shown."
    elif not enough:
        verdict = (
            f"too few lesions to go by (fewer than {game['trusted_after']}), so heatmaps are "
            "not shown."
        )
    else:
        verdict = "heatmaps are shown."
    return (
        f"- Pointing game: the Grad-CAM peak fell on the lesion in {game['hit_rate']:.0%} of "
        f"{game['cases']} lesions the model found (95% interval {low:.0%} to {high:.0%}); "
        + verdict
    )


def _abstention_lines(metrics: dict, config: ModelConfig) -> list[str]:
    """How often each task needed a person, in distribution (the metrics' split) and out of it
    (mlcore.probes), and what counts as unlike the training inputs."""
    words = {"diagnosis": "findings", "emotion": "affect"}
    rates = metrics.get("needs_person_rate", {})
    unlike = metrics.get("out_of_distribution", {})
    if not rates and not unlike:
        return []
    lines = ["", "## Needs a person"]
    lines += [
        f"- {words.get(task, task)}: {rate:.0%} of the cases of that split"
        + (
            f", {unlike['needs_person_rate'][task]:.0%} of {unlike['cases']} inputs unlike any "
            "training data (other images, languages and topics, noise, silence)"
            if task in unlike.get("needs_person_rate", {})
            else ""
        )
        for task, rate in rates.items()
    ]
    inputs = config.inputs
    if inputs.image_modalities:
        lines.append(
            f"- Images checked against the training images: {', '.join(inputs.image_modalities)}"
            + (
                f" of the {', '.join(p.lower() for p in inputs.body_parts)}"
                if inputs.body_parts
                else ""
            )
            + (f", {span_words(inputs.rows)} rows" if inputs.rows else "")
        )
    if inputs.text_languages:
        lines.append(f"- Texts checked for their language: {', '.join(inputs.text_languages)}")
    return lines


def _needs_person_lines(config: ModelConfig) -> list[str]:
    tasks = config.tasks
    lines = []
    for task, words in (("diagnosis", "Findings"), ("emotion", "Affect")):
        if task in tasks.abstain_below:
            lines.append(
                f"- {words}: below {tasks.abstain_below[task]:.0%} confidence, "
                '"needs a person" (an organization may set its own threshold)'
            )
        if tasks.requires.get(task):
            lines.append(f"- {words} need: {', '.join(tasks.requires[task])}")
    return lines


_SPLITS = {
    "test": "test split (used for nothing else)",
    "calibration": "calibration split (it fitted the temperatures: its ECE flatters)",
    "validation": "validation split (it chose the epoch: flattering)",
}


def _calibration_lines(metrics: dict) -> list[str]:
    """Per probability head: its temperature, and its expected calibration error on the
    metrics' split."""
    report = metrics.get("calibration", {})
    if not report.get("cases"):
        return [f"- Not calibrated: {report.get('reason', 'no calibration split')}."]
    lines = [f"- Temperatures fitted on {report['cases']} calibration cases."]
    heads = [
        (label, fit, metrics.get("diagnosis", {}).get("per_label", {}).get(label, {}))
        for label, fit in report.get("diagnosis", {}).items()
    ]
    if "emotion" in report:
        heads.append(("emotion", report["emotion"], metrics.get("emotion", {})))
    for name, fit, measured in heads:
        temperature = (
            f"temperature {fit['temperature']:.2f}"
            if fit["fitted"]
            else f"not calibrated ({fit['reason']})"
        )
        error = f", ECE {measured['ece']:.3f}" if "ece" in measured else ""
        lines.append(f"- {name}: {temperature}{error}")
    return lines


def card_sections(directory: str | Path) -> list[tuple[str, list[str]]]:
    """The card of the bundle in `directory` as (heading, lines) for each `## ` section, a
    list item's continuation joined to it; [] when the bundle has no card (or is not on this
    host)."""
    try:
        text = (Path(directory) / CARD_FILE).read_text()
    except OSError:
        return []
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif sections and line.strip():
            lines = sections[-1][1]
            if line.startswith("  ") and lines:
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.removeprefix("- ").strip())
    return sections
