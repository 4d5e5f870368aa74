"""The synthetic data behind the demo, the tests and the benchmarks (v2): labels need several
modalities, cues overlap, labels are noisy, and the posterior each case carries is the truth of
the generator (a bug in either would show as a posterior that does not match the labels)."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from mlcore.synthetic import (
    CLINIC_AFFECTS,
    SCHOOL_AFFECTS,
    chest_ct_slice,
    clinical_case,
    learner_case,
    read_truth,
    synthetic_voice,
    write_dataset,
)
from mlcore.synthetic.audio import OTHER_MICROPHONE
from mlcore.synthetic.text import CLINICAL_CONCEPTS, LEARNER_CONCEPTS, phrasings


@pytest.fixture(scope="module")
def clinic():
    rng = np.random.default_rng(0)
    return [clinical_case(rng, image_size=16, voice_seconds=0.05) for _ in range(4000)]


@pytest.fixture(scope="module")
def school():
    rng = np.random.default_rng(1)
    return [learner_case(rng, voice_seconds=0.05) for _ in range(3000)]


def _finding_score(cases, subset: str) -> float:
    truth = [bool(case.findings) for case in cases]
    believed = [case.posterior["suspicious_mass"][subset] >= 0.5 for case in cases]
    return f1_score(truth, believed, average="macro")


def _affect_score(cases, subset: str, labels) -> float:
    believed = [max(c.posterior["affect"][subset].items(), key=lambda kv: kv[1])[0] for c in cases]
    return f1_score([case.affect for case in cases], believed, average="macro", labels=list(labels))


def test_the_posterior_is_what_the_labels_do(clinic):
    """Cases the generator believes p about carry the label in about p of them."""
    believed = np.array([case.posterior["suspicious_mass"]["image+text+audio"] for case in clinic])
    labelled = np.array([bool(case.findings) for case in clinic])
    for low, high in ((0.0, 0.2), (0.2, 0.8), (0.8, 1.0)):
        members = (believed >= low) & (believed < high)
        assert members.sum() > 200, (low, high)
        assert abs(labelled[members].mean() - believed[members].mean()) < 0.05, (low, high)
    affect = np.array(
        [case.posterior["affect"]["image+text+audio"][case.affect] for case in clinic]
    )
    assert 0.35 < affect.mean() < 0.8, "the labelled affect is likely, never certain"


def test_some_labels_are_wrong_and_no_posterior_is_certain(clinic):
    believed = np.array([case.posterior["suspicious_mass"]["image+text+audio"] for case in clinic])
    assert believed.min() >= 0.06
    assert believed.max() <= 0.94, "7% label noise caps every posterior"
    contradicted = [
        case
        for case in clinic
        if bool(case.findings) != (case.posterior["suspicious_mass"]["image+text+audio"] >= 0.5)
    ]
    assert 0.05 < len(contradicted) / len(clinic) < 0.25


def test_fusion_pays_and_no_single_modality_reaches_the_ceiling(clinic, school):
    single = {
        subset: (_finding_score(clinic, subset) + _affect_score(clinic, subset, CLINIC_AFFECTS)) / 2
        for subset in ("image", "text", "audio", "image+text+audio")
    }
    fused = single.pop("image+text+audio")
    assert fused >= max(single.values()) + 0.1, single
    assert _finding_score(clinic, "image+text+audio") > _finding_score(clinic, "image") + 0.01
    school_fused = _affect_score(school, "text+audio", SCHOOL_AFFECTS)
    assert school_fused > _affect_score(school, "text", SCHOOL_AFFECTS) + 0.15
    assert school_fused > _affect_score(school, "audio", SCHOOL_AFFECTS) + 0.15


def test_cues_overlap_and_are_partly_redundant(clinic):
    """Benign lesions exist; a dense lesion decides alone; the note sometimes tells arousal."""
    no_disease_lesions = [
        c for c in clinic if c.lesion and c.posterior["suspicious_mass"]["image"] < 0.5
    ]
    assert no_disease_lesions, "some lesions look benign"
    dense = [c for c in clinic if c.lesion_contrast and c.lesion_contrast > 650]
    assert all(c.posterior["suspicious_mass"]["image"] > 0.9 for c in dense)
    assert {c.manner for c in clinic} == {"agitated", "slowed", None}
    without_lesion = [c for c in clinic if c.lesion is None]
    assert max(c.posterior["suspicious_mass"]["image+text+audio"] for c in without_lesion) < 0.5


def test_every_concept_has_30_phrasings_and_unseen_families_are_new(clinic):
    for name, concept in {**CLINICAL_CONCEPTS, **LEARNER_CONCEPTS}.items():
        assert len(phrasings(concept)) >= 30, name
        assert not set(concept.seen_words) & set(concept.unseen_words), name
        assert not set(concept.seen_frames) & set(concept.unseen_frames), name
    rng = np.random.default_rng(3)
    unseen = [
        clinical_case(rng, image_size=16, voice_seconds=0.05, phrasing="unseen") for _ in range(50)
    ]
    seen_sentences = {s for case in clinic[:500] for s in case.note.split(". ")}
    for case in unseen:
        first = case.note.split(". ")[0]
        assert first not in seen_sentences, first


def test_another_site_renders_the_same_anatomy_differently():
    home = clinical_case(np.random.default_rng(4), image_size=64, voice_seconds=1.0)
    other = clinical_case(np.random.default_rng(4), image_size=64, voice_seconds=1.0, site="other")
    assert home.note == other.note, "the same case"
    air = (slice(0, 4), slice(0, 4))
    assert other.hounsfield[air].std() > home.hounsfield[air].std()
    spectrum = np.abs(
        np.fft.rfft(
            synthetic_voice(
                intensity=1.0,
                rng=np.random.default_rng(5),
                seconds=2.0,
                microphone=OTHER_MICROPHONE,
            )
        )
    )
    frequencies = np.fft.rfftfreq(32000, 1 / 16000)
    assert (
        spectrum[(frequencies > 100) & (frequencies < 200)].mean()
        < spectrum[(frequencies > 500) & (frequencies < 1500)].mean() / 5
    )


def test_a_lesion_is_where_the_case_says(clinic):
    rng = np.random.default_rng(6)
    case = next(
        c
        for c in (clinical_case(rng, image_size=64, voice_seconds=0.05) for _ in range(50))
        if c.lesion
    )
    spot = case.lesion
    row, column = round(spot.row), round(spot.column)
    assert case.hounsfield[row, column] > -850 + 0.8 * case.lesion_contrast - 100
    # three radii up, down, left and right: lung in one direction at least (the others may
    # reach the chest wall or the mediastinum)
    away = round(3 * spot.radius)
    far = min(
        case.hounsfield[min(63, max(0, row + down)), min(63, max(0, column + right))]
        for down, right in ((-away, 0), (away, 0), (0, -away), (0, away))
    )
    assert far < case.hounsfield[row, column] - 200


def test_a_lesion_is_visible_in_the_lungs():
    with_lesion = chest_ct_slice(lesion=True, rng=np.random.default_rng(2), size=128)
    without = chest_ct_slice(lesion=False, rng=np.random.default_rng(2), size=128)
    lungs = without < -500
    assert (with_lesion[lungs] > -300).sum() > 20
    assert (without[lungs] > -300).sum() == 0


@pytest.mark.parametrize("seed", range(5))
def test_arousal_is_audible_in_loudness(seed):
    rng = np.random.default_rng(seed)
    loud = synthetic_voice(intensity=2.0, rng=rng, seconds=3.0)
    quiet = synthetic_voice(intensity=-2.0, rng=rng, seconds=3.0)
    between = synthetic_voice(intensity=0.0, rng=rng, seconds=3.0)
    peaks = [float(np.percentile(np.abs(v), 99)) for v in (quiet, between, loud)]
    assert peaks[0] < peaks[1] < peaks[2]
    assert np.sqrt(np.mean(loud**2)) > 1.5 * np.sqrt(np.mean(quiet**2))
    assert loud.dtype == np.float32
    assert np.abs(loud).max() <= 1.0


def test_the_same_seed_gives_the_same_case():
    first = clinical_case(np.random.default_rng(42), image_size=32, voice_seconds=0.5)
    again = clinical_case(np.random.default_rng(42), image_size=32, voice_seconds=0.5)
    assert first.note == again.note
    np.testing.assert_array_equal(first.hounsfield, again.hounsfield)
    np.testing.assert_array_equal(first.voice, again.voice)
    assert first.posterior == again.posterior


def test_a_dataset_keeps_its_truth_beside_the_manifest(tmp_path):
    manifest = write_dataset(
        tmp_path,
        kind="clinic",
        cases=6,
        seed=1,
        image_size=32,
        voice_seconds=0.5,
        split="site_shift",
    )
    truth = read_truth(manifest)
    assert len(truth) == 6
    entry = next(iter(truth.values()))
    assert entry["split"] == "site_shift"
    assert set(entry["posterior"]) == {"suspicious_mass", "affect"}
    lesions = [e["lesion"] for e in truth.values() if e["lesion"]]
    assert all(0 <= lesion["row"] < 32 and lesion["size"] == 32 for lesion in lesions)
    with pytest.raises(ValueError, match="split must be one of"):
        write_dataset(tmp_path, split="holiday")


def test_silent_cues_say_nothing_and_leave_the_others_to_carry_the_evidence():
    """Probe cases (`silent`): the note says nothing of the patient's mood, so the posterior
    from the note alone is the prior's for distress, while the recording still tells; and the
    cues left alone still follow the hidden state (a silenced cue that kept its drawn value, or
    one that silenced the others too, would break these)."""
    rng = np.random.default_rng(5)
    cases = [
        clinical_case(rng, image_size=16, voice_seconds=0.05, silent=("wording", "manner"))
        for _ in range(400)
    ]
    assert {case.wording for case in cases} == {"mixed"}
    assert {case.manner for case in cases} == {None}
    text_alone = np.array([list(c.posterior["affect"]["text"].values()) for c in cases])
    np.testing.assert_allclose(text_alone, text_alone[0:1].repeat(len(cases), axis=0))
    heard = np.array([max(c.posterior["affect"]["audio+speech_text"].values()) for c in cases])
    assert heard.mean() > 0.4, "the recording carries the evidence"
    assert {case.said for case in cases} == {"distressed", "mixed", "calm"}
    with pytest.raises(ValueError, match="silent cues"):
        clinical_case(rng, silent=("lesion",))
