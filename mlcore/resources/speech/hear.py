"""Writes down what the shipped speech model hears of each clip as the synthetic cases say it
(run at development time, after speak.py): for each arousal intensity in HEARD_AT and each seed
of HEARD_SEEDS, the clip spoken that way (mlcore.synthetic.audio.spoken_voice) and transcribed
by Whisper tiny.en, into clips.json's `heard`.

    python mlcore/resources/speech/hear.py

A synthetic case's transcript is what was heard at the intensity nearest its own, so that a
model learns from the transcripts it will be given (with the recogniser's slips), not from
texts no recogniser writes."""

import json
import tempfile
from pathlib import Path

import numpy as np

from mlcore.speech import load_speech_model, text_of, transcribe
from mlcore.synthetic.audio import spoken_voice, wav_bytes
from mlcore.synthetic.speech import CLIPS, HEARD_AT, HEARD_SEEDS, clips


def hear(model, clip, intensity: float, seed: int, path: Path) -> str:
    samples = spoken_voice(clip, intensity=intensity, rng=np.random.default_rng(seed))
    path.write_bytes(wav_bytes(samples))
    return text_of(transcribe(model, path))


def main() -> None:
    entries = json.loads((CLIPS / "clips.json").read_text())
    model = load_speech_model()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        for kind in ("clinic", "school"):
            for group in clips(kind).values():
                for clip in group:
                    entries[clip.name]["heard"] = {
                        str(intensity): [
                            hear(model, clip, intensity, seed, path) for seed in HEARD_SEEDS
                        ]
                        for intensity in HEARD_AT
                    }
    (CLIPS / "clips.json").write_text(json.dumps(entries, indent=2) + "\n")


if __name__ == "__main__":
    main()
