"""Speech to text (mlcore.speech) on the demo's committed recordings, measured in one run:

- the real-time factor of the speech model on the CPU (seconds of audio per wall-clock second),
  on one thread and on the default thread count, int8;
- the word error rate over the clips against the texts they were spoken from, with a bootstrap
  95% interval over clips;
- the word error rate over the same clips as the synthetic cases and the demo say them: at the
  lowest and the highest arousal (slowed, lowered and quiet; hurried, raised and loud), through
  the home microphone (mlcore.synthetic.audio.spoken_voice);
- the same clips' librosa log-mel features (what the audio encoder reads), timed the same way,
  for comparison.

The clips are espeak-ng's voice (mlcore/resources/speech): clear, synthetic speech, so the error
rate says how well the model hears such speech, not a clinic's or a classroom's.

Usage: .venv/bin/python bench/asr.py [--model DIR] [--repeats 3]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from mlcore.io.audio import log_mel, read_audio, warm_up
from mlcore.speech import (
    load_speech_model,
    recording_seconds,
    text_of,
    transcribe,
    word_errors,
)
from mlcore.speech import warm_up as warm_up_speech
from mlcore.synthetic.audio import spoken_voice, wav_bytes
from mlcore.synthetic.speech import CLIPS, clips

WER_LIMIT = 0.10  # issue 20's acceptance check


def bootstrap_rate(errors: np.ndarray, words: np.ndarray, *, draws: int = 2000) -> tuple:
    rng = np.random.default_rng(0)
    picks = rng.integers(0, errors.size, size=(draws, errors.size))
    rates = errors[picks].sum(axis=1) / words[picks].sum(axis=1)
    return tuple(np.percentile(rates, [2.5, 97.5]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a CTranslate2 Whisper directory")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    texts = {
        name: clip["text"] for name, clip in json.loads((CLIPS / "clips.json").read_text()).items()
    }
    paths = [CLIPS / f"{name}.ogg" for name in texts]
    audio_seconds = sum(recording_seconds(path) for path in paths)
    print(f"{len(paths)} clips, {audio_seconds:.1f} s of speech")

    for threads in (1, 0):
        model = load_speech_model(args.model, device="cpu", cpu_threads=threads)
        warm_up_speech(model)
        started = time.perf_counter()
        for _ in range(args.repeats):
            heard = {
                name: text_of(transcribe(model, path))
                for name, path in zip(texts, paths, strict=True)
            }
        wall = (time.perf_counter() - started) / args.repeats
        label = "1 thread" if threads == 1 else "default threads"
        print(
            f"{model.name} int8, CPU, {label}: {wall:.2f} s for {audio_seconds:.1f} s of audio, "
            f"real-time factor {audio_seconds / wall:.1f}x"
        )

    counted = [word_errors(texts[name], heard[name]) for name in texts]
    errors = np.array([errors for errors, _ in counted])
    words = np.array([words for _, words in counted])
    rate = errors.sum() / words.sum()
    low, high = bootstrap_rate(errors, words)
    print(
        f"word error rate: {rate:.1%} [{low:.1%}, {high:.1%}] over {words.sum()} words "
        f"({'holds' if rate <= WER_LIMIT else 'does not hold'}: at most {WER_LIMIT:.0%})"
    )
    for name in texts:
        wrong, total = word_errors(texts[name], heard[name])
        if wrong:
            print(f"  {name}: {wrong}/{total} — heard “{heard[name]}”")

    with tempfile.TemporaryDirectory() as folder:
        for intensity, manner in ((-2.5, "slow, low and quiet"), (2.5, "hurried, high and loud")):
            rng = np.random.default_rng(0)
            spoken = {}
            for name in texts:
                kind = name.split("-")[0]
                clip = next(c for group in clips(kind).values() for c in group if c.name == name)
                path = Path(folder) / f"{name}.wav"
                path.write_bytes(wav_bytes(spoken_voice(clip, intensity=intensity, rng=rng)))
                spoken[name] = text_of(transcribe(model, path))
            counted = [word_errors(texts[name], spoken[name]) for name in texts]
            errors = np.array([errors for errors, _ in counted])
            words = np.array([words for _, words in counted])
            low, high = bootstrap_rate(errors, words)
            print(
                f"word error rate as the demo says them ({manner}): "
                f"{errors.sum() / words.sum():.1%} [{low:.1%}, {high:.1%}]"
            )

    warm_up()
    started = time.perf_counter()
    for _ in range(args.repeats):
        for path in paths:
            log_mel(read_audio(path))
    features = (time.perf_counter() - started) / args.repeats
    print(
        f"librosa log-mel features of the same clips: {features:.2f} s, "
        f"{audio_seconds / features:.0f}x real time (transcription takes "
        f"{wall / features:.1f}x as long)"
    )


if __name__ == "__main__":
    main()
