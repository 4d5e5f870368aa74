"""The reliability diagram of a model's metrics, as a PNG: per head, how confident the model was
against how often it was right, bin by bin, with the diagonal that a calibrated head follows.
Drawn straight onto a matplotlib Figure (no pyplot, no display)."""

import io

from matplotlib.figure import Figure


def heads_with_curves(metrics: dict) -> dict[str, dict]:
    """Each probability head's metrics that carry a reliability curve: "emotion", and every
    diagnosis label by name."""
    heads = {}
    for label, values in metrics.get("diagnosis", {}).get("per_label", {}).items():
        heads[label] = values
    if "emotion" in metrics:
        heads["emotion"] = metrics["emotion"]
    return {name: values for name, values in heads.items() if values.get("reliability")}


def reliability_diagram(metrics: dict, *, title: str) -> bytes | None:
    """PNG bytes, or None when no head has a curve."""
    heads = heads_with_curves(metrics)
    if not heads:
        return None
    figure = Figure(figsize=(3.2 * len(heads), 3.4), dpi=100, layout="constrained")
    figure.suptitle(title, fontsize=10)
    for axes, (name, values) in zip(
        figure.subplots(1, len(heads), squeeze=False)[0], heads.items(), strict=True
    ):
        curve = values["reliability"]
        axes.plot([0, 1], [0, 1], color="#999999", linewidth=1, linestyle="--")
        axes.bar(
            [(b["lower"] + b["upper"]) / 2 for b in curve],
            [b["accuracy"] for b in curve],
            width=[b["upper"] - b["lower"] for b in curve],
            color="#4c78a8",
            edgecolor="white",
            alpha=0.8,
        )
        axes.plot(
            [b["confidence"] for b in curve], [b["accuracy"] for b in curve], "o", color="#e45756"
        )
        axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
        axes.set_title(f"{name}: ECE {values['ece']:.3f} (n={values['n']})", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
