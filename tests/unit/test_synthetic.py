"""The synthetic data behind the demo, the tests and the benchmarks: labels follow the
cross-modal rules, and each modality really carries its part of the evidence."""

import numpy as np
import pytest

from mlcore.synthetic import (
    CLINIC_AFFECTS,
    SCHOOL_AFFECTS,
    chest_ct_slice,
    clinical_case,
    learner_case,
    synthetic_voice,
)


def test_a_finding_needs_both_the_lesion_and_the_symptom():
    rng = np.random.default_rng(0)
    cases = [clinical_case(rng, image_size=32, voice_seconds=0.5) for _ in range(64)]
    for case in cases:
        assert (case.findings == ["suspicious_mass"]) == (case.lesion and case.symptom_reported)
    combos = {(case.lesion, case.symptom_reported) for case in cases}
    assert combos == {(False, False), (False, True), (True, False), (True, True)}


def test_affect_needs_both_voice_and_words():
    rng = np.random.default_rng(1)
    clinic = [clinical_case(rng, image_size=32, voice_seconds=0.5) for _ in range(64)]
    assert {case.affect for case in clinic} == set(CLINIC_AFFECTS)
    # Neither the voice alone nor the words alone decide the label.
    assert {case.affect for case in clinic if case.high_arousal} == {"pain", "anxious"}
    assert {case.affect for case in clinic if case.distressed} == {"anxious", "depressed_mood"}
    school = [learner_case(rng, voice_seconds=0.5) for _ in range(64)]
    assert {case.affect for case in school} == set(SCHOOL_AFFECTS)


def test_a_lesion_is_visible_in_the_lungs():
    with_lesion = chest_ct_slice(lesion=True, rng=np.random.default_rng(2), size=128)
    without = chest_ct_slice(lesion=False, rng=np.random.default_rng(2), size=128)
    lungs = without < -500
    assert (with_lesion[lungs] > -300).sum() > 20
    assert (without[lungs] > -300).sum() == 0


@pytest.mark.parametrize("seed", range(5))
def test_arousal_is_audible_in_loudness(seed):
    rng = np.random.default_rng(seed)
    loud = synthetic_voice(high_arousal=True, rng=rng, seconds=3.0)
    quiet = synthetic_voice(high_arousal=False, rng=rng, seconds=3.0)
    assert np.sqrt(np.mean(loud**2)) > 1.5 * np.sqrt(np.mean(quiet**2))
    assert loud.dtype == np.float32
    assert np.abs(loud).max() <= 1.0


def test_the_same_seed_gives_the_same_case():
    first = clinical_case(np.random.default_rng(42), image_size=32, voice_seconds=0.5)
    again = clinical_case(np.random.default_rng(42), image_size=32, voice_seconds=0.5)
    assert first.note == again.note
    np.testing.assert_array_equal(first.hounsfield, again.hounsfield)
    np.testing.assert_array_equal(first.voice, again.voice)
