"""`python -m mlcore validate`: how a bundle does on a site's own labelled cases, before anyone
promotes it. Per task: the metrics `evaluate` gives, each with a bootstrap 95% interval; the
reliability diagram; how often each task said "needs a person", and why; and the metrics per
subgroup when the manifest's cases carry `subgroups` (for example {"sex": "F", "site": "B"}).
Writes `validation.json`, `validation.html` and `reliability.png` into the output directory.
"""

import html
import json
from collections import Counter
from pathlib import Path

import numpy as np

from mlcore.data import Case
from mlcore.engine import InferenceEngine, Prediction
from mlcore.evaluate import bootstrap_interval, classification_metrics, diagnosis_metrics
from mlcore.reliability import reliability_diagram
from mlcore.train import metrics_from_arrays

REPORT_FILE = "validation.html"
SUMMARY_FILE = "validation.json"
DIAGRAM_FILE = "reliability.png"


def validate(
    engine: InferenceEngine,
    cases: list[Case],
    out: str | Path,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Validate `engine`'s bundle on labelled `cases`; returns the summary it writes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    features = [engine.prepare(case) for case in cases]
    arrays = engine.forward(features, contributions=True)
    predictions = engine.predictions_from(arrays, features)
    config = engine.config
    metrics = metrics_from_arrays(arrays, cases, config)
    summary: dict = {
        "bundle": str(engine.bundle.directory),
        "cases": len(cases),
        "score": metrics["score"],
        "tasks": {},
    }
    tasks = config.tasks
    if "diagnosis" in metrics:
        known = [i for i, case in enumerate(cases) if case.diagnosis is not None]
        truth = np.array(
            [[label in cases[i].diagnosis for label in tasks.diagnosis_labels] for i in known],
            dtype=int,
        )
        probabilities = arrays["diagnosis"][known]

        def diagnosis_f1(rows: np.ndarray) -> float:
            return diagnosis_metrics(truth[rows], probabilities[rows], tasks.diagnosis_labels)[
                "macro_f1"
            ]

        summary["tasks"]["diagnosis"] = {
            "metrics": metrics["diagnosis"],
            "macro_f1_interval": bootstrap_interval(
                diagnosis_f1, len(known), resamples=resamples, seed=seed
            ),
            **_needs_person(predictions, "diagnosis", known),
        }
    if "emotion" in metrics:
        known = [i for i, case in enumerate(cases) if case.emotion is not None]
        truth = np.array([tasks.emotion_labels.index(cases[i].emotion) for i in known])
        probabilities = arrays["emotion"][known]

        def emotion_f1(rows: np.ndarray) -> float:
            return classification_metrics(truth[rows], probabilities[rows], tasks.emotion_labels)[
                "macro_f1"
            ]

        summary["tasks"]["emotion"] = {
            "metrics": metrics["emotion"],
            "macro_f1_interval": bootstrap_interval(
                emotion_f1, len(known), resamples=resamples, seed=seed
            ),
            **_needs_person(predictions, "emotion", known),
        }
    summary["subgroups"] = _subgroups(arrays, cases, config)
    diagram = reliability_diagram(metrics, title=f"{config.name} on {len(cases)} cases")
    if diagram is not None:
        (out / DIAGRAM_FILE).write_bytes(diagram)
        summary["reliability_diagram"] = DIAGRAM_FILE
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    (out / REPORT_FILE).write_text(_html(summary))
    return summary


def _needs_person(predictions: list[Prediction], task: str, rows: list[int]) -> dict:
    reasons = Counter(
        predictions[row].needs_person[task]["reason"]
        for row in rows
        if task in predictions[row].needs_person
    )
    return {
        "needs_person_rate": sum(reasons.values()) / len(rows) if rows else 0.0,
        "needs_person_reasons": dict(reasons),
    }


def _subgroups(arrays: dict[str, np.ndarray], cases: list[Case], config) -> dict:
    """{field: {value: {"cases": n, "score": s, task: macro-F1}}} over the cases' subgroups."""
    fields = sorted({name for case in cases for name in (case.subgroups or {})})
    result: dict = {}
    for name in fields:
        values = sorted({(case.subgroups or {}).get(name) for case in cases} - {None})
        result[name] = {}
        for value in values:
            rows = [i for i, case in enumerate(cases) if (case.subgroups or {}).get(name) == value]
            subset = {key: array[rows] for key, array in arrays.items()}
            measured = metrics_from_arrays(subset, [cases[i] for i in rows], config)
            result[name][value] = {
                "cases": len(rows),
                "score": measured["score"],
                **{
                    task: measured[task]["macro_f1"]
                    for task in ("diagnosis", "emotion")
                    if task in measured
                },
            }
    return result


def _html(summary: dict) -> str:
    rows = []
    for task, values in summary["tasks"].items():
        low, high = values["macro_f1_interval"]
        reasons = ", ".join(
            f"{reason.replace('_', ' ')} {count}"
            for reason, count in values["needs_person_reasons"].items()
        )
        needs = f"{values['needs_person_rate']:.0%}" + (f" ({reasons})" if reasons else "")
        rows.append(
            f'<tr><th scope="row">{html.escape(task)}</th>'
            f"<td>{values['metrics']['macro_f1']:.3f} [{low:.3f}, {high:.3f}]</td>"
            f"<td>{html.escape(needs)}</td></tr>"
        )
    groups = [
        f'<tr><th scope="row">{html.escape(name)} = {html.escape(str(value))}</th>'
        f"<td>{measured['cases']}</td><td>{measured['score']:.3f}</td></tr>"
        for name, by_value in summary["subgroups"].items()
        for value, measured in by_value.items()
    ]
    diagram = (
        f'<img src="{DIAGRAM_FILE}" alt="Reliability diagram of every probability head">'
        if "reliability_diagram" in summary
        else "<p>No probability head to draw.</p>"
    )
    subgroups = (
        "<table><thead><tr><th>subgroup</th><th>cases</th><th>score</th></tr></thead>"
        f"<tbody>{''.join(groups)}</tbody></table>"
        if groups
        else "<p>The manifest's cases carry no subgroups.</p>"
    )
    bundle = html.escape(summary["bundle"])
    head = "<tr><th>task</th><th>macro-F1 [95% bootstrap interval]</th><th>needs a person</th></tr>"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Validation of {bundle}</title></head><body>",
            f"<h1>Validation on {summary['cases']} labelled cases</h1>",
            f"<p>Bundle: {bundle}. Score (mean macro-F1 over tasks): {summary['score']:.3f}.</p>",
            f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>",
            "<h2>Calibration</h2>",
            diagram,
            "<h2>Subgroups</h2>",
            subgroups,
            "</body></html>",
            "",
        ]
    )
