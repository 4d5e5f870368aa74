"""mlcore.speech: the shipped Whisper tiny.en on the demo's committed clips (no espeak-ng
needed), span boundaries in quiet places, and the word error rate's arithmetic."""

import json

import numpy as np
import pytest

from mlcore.speech import (
    SAMPLE_RATE,
    Segment,
    load_speech_model,
    normalised_words,
    quietest_cut,
    read_span,
    recording_seconds,
    text_of,
    transcribe_span,
    understood,
    word_errors,
)
from mlcore.synthetic.speech import CLIPS


def test_word_errors_count_substitutions_deletions_and_insertions():
    assert word_errors("the cat sat", "the cat sat") == (0, 3)
    assert word_errors("the cat sat", "the bat sat") == (1, 3)
    assert word_errors("the cat sat", "the sat") == (1, 3)
    assert word_errors("the cat sat", "the cat sat down") == (1, 3)
    assert word_errors("", "noise") == (1, 0)


def test_words_compare_without_case_punctuation_or_spelled_numbers():
    assert normalised_words("Three weeks, Follow-up.") == ["3", "weeks", "follow", "up"]
    assert word_errors("I tried three times.", "i tried 3 times") == (0, 4)


def test_a_span_ends_in_the_quietest_moment_near_its_end():
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.3, SAMPLE_RATE * 10).astype(np.float32)
    quiet_at = 8 * SAMPLE_RATE
    samples[quiet_at : quiet_at + SAMPLE_RATE // 5] = 0.0
    cut = quietest_cut(samples)
    assert quiet_at <= cut < quiet_at + SAMPLE_RATE // 5


def test_understood_weighs_segments_by_their_length():
    sure = Segment(start=0.0, end=9.0, text="clear", log_probability=-0.3)
    guess = Segment(start=9.0, end=10.0, text="mumble", log_probability=-2.0)
    assert understood([sure, guess])
    assert not understood([Segment(start=0.0, end=5.0, text="?", log_probability=-1.2)])
    assert not understood([])


@pytest.mark.parametrize("name", ["clinic-03", "clinic-08", "school-03"])
def test_the_shipped_model_hears_the_demo_clips(name):
    text = json.loads((CLIPS / "clips.json").read_text())[name]["text"]
    path = CLIPS / f"{name}.ogg"
    duration = recording_seconds(path)
    span = transcribe_span(load_speech_model(), path, start=0.0, duration=duration)
    assert span.end == duration
    assert span.language == "en"
    assert understood(span.segments)
    errors, words = word_errors(text, text_of(span.segments))
    assert errors / words <= 0.2, text_of(span.segments)


def test_a_span_reads_only_its_stretch_of_the_file():
    path = CLIPS / "school-01.ogg"
    whole = read_span(path, start=0.0, seconds=60.0)
    assert whole.size == pytest.approx(recording_seconds(path) * SAMPLE_RATE, abs=2)
    middle = read_span(path, start=1.0, seconds=0.5)
    assert middle.size == SAMPLE_RATE // 2
    assert np.allclose(middle, whole[SAMPLE_RATE : SAMPLE_RATE + SAMPLE_RATE // 2], atol=1e-3)


def test_a_looping_decoder_is_not_understood_however_sure_it_was():
    loop = "the next time we're going to " * 20
    assert not understood(
        [Segment(start=0.0, end=6.0, text=loop, log_probability=-0.16, compression_ratio=19.7)]
    )
    again = [
        Segment(start=0.0, end=2.0, text="we will have a night", log_probability=-0.8),
        Segment(
            start=2.0,
            end=4.0,
            text="we will have a night",
            log_probability=-0.8,
            repeats_previous=True,
        ),
    ]
    assert not understood(again)
    assert understood(again[:1])
