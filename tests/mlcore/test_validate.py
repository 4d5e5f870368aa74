"""`python -m mlcore validate`: a site checks a bundle on its own labelled cases. Its figures are
`evaluate`'s, with intervals, abstention and subgroups beside them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcore.data import read_manifest
from mlcore.registry import save_bundle
from mlcore.synthetic import write_dataset
from mlcore.train import TrainingConfig, train
from tests.mlcore.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(clinic_dataset, tmp_path_factory):
    cases = read_manifest(clinic_dataset)
    result = train(
        tiny_config(),
        cases[:36],
        cases[36:48],
        TrainingConfig(epochs=2, batch_size=12, progress=False),
        calibration_cases=cases[48:],
    )
    return save_bundle(
        tmp_path_factory.mktemp("bundle") / "b", result.model, metrics=result.metrics
    )


@pytest.fixture(scope="module")
def site_manifest(tmp_path_factory):
    """A v2 test set from another site, with a subgroup field on every case."""
    manifest = write_dataset(
        tmp_path_factory.mktemp("site"),
        kind="clinic",
        cases=24,
        seed=9,
        image_size=32,
        voice_seconds=2.0,
        split="site_shift",
    )
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    for number, entry in enumerate(lines):
        entry["subgroups"] = {"sex": "F" if number % 2 else "M"}
    manifest.write_text("".join(json.dumps(entry) + "\n" for entry in lines))
    return manifest


def _mlcore(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlcore", *map(str, arguments)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_validate_writes_its_report_and_agrees_with_evaluate(bundle, site_manifest, tmp_path):
    validated = _mlcore(
        "validate",
        "--bundle",
        bundle,
        "--manifest",
        site_manifest,
        "--out",
        tmp_path,
        "--resamples",
        200,
    )
    assert validated.returncode == 0, validated.stderr
    evaluated = _mlcore("evaluate", "--bundle", bundle, "--manifest", site_manifest)
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    summary = json.loads((tmp_path / "validation.json").read_text())
    assert summary["cases"] == 24
    assert summary["score"] == pytest.approx(figures["score"])
    for task in ("diagnosis", "emotion"):
        measured = summary["tasks"][task]
        assert measured["metrics"]["macro_f1"] == pytest.approx(figures[task]["macro_f1"])
        low, high = measured["macro_f1_interval"]
        assert low <= measured["metrics"]["macro_f1"] <= high
        assert 0.0 <= measured["needs_person_rate"] <= 1.0
        assert sum(measured["needs_person_reasons"].values()) == round(
            measured["needs_person_rate"] * 24
        )
    by_sex = summary["subgroups"]["sex"]
    assert {value: group["cases"] for value, group in by_sex.items()} == {"F": 12, "M": 12}
    assert (tmp_path / "reliability.png").read_bytes().startswith(b"\x89PNG")
    report = (tmp_path / "validation.html").read_text()
    assert "Validation on 24 labelled cases" in report
    assert "sex = F" in report
    assert 'src="reliability.png"' in report


def test_a_subgroup_that_is_not_words_is_refused(bundle, site_manifest, tmp_path):
    broken = site_manifest.parent / "broken.jsonl"
    first = json.loads(site_manifest.read_text().splitlines()[0])
    first["subgroups"] = {"sex": ["F"]}
    broken.write_text(json.dumps(first) + "\n")
    validated = _mlcore("validate", "--bundle", bundle, "--manifest", broken, "--out", tmp_path)
    assert validated.returncode == 2
    assert "subgroups" in validated.stderr
