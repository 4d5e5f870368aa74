"""Speaks the synthetic cases' recordings (run at development time, where espeak-ng is
installed): each text of clips.json that has no clip yet becomes NAME.ogg, 16 kHz mono Ogg
Vorbis, beside this file. `said` is the cue the sentence carries (mlcore.synthetic.truth).

    python mlcore/resources/speech/speak.py

The clips are committed, so that `make run` and the tests need nothing beyond Python."""

import json
import subprocess
import tempfile
from pathlib import Path

import librosa
import soundfile

HERE = Path(__file__).resolve().parent
VOICE = "en-us"
WORDS_PER_MINUTE = 150


def main() -> None:
    clips = json.loads((HERE / "clips.json").read_text())
    with tempfile.TemporaryDirectory() as folder:
        for name, clip in clips.items():
            if (HERE / f"{name}.ogg").exists():
                continue
            wav = Path(folder) / f"{name}.wav"
            speak = ["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(wav)]
            subprocess.run([*speak, clip["text"]], check=True)
            samples, rate = soundfile.read(wav, dtype="float32")
            # 16 kHz is what the speech model hears; espeak-ng speaks at 22.05 kHz
            samples = librosa.resample(samples, orig_sr=rate, target_sr=16_000)
            soundfile.write(HERE / f"{name}.ogg", samples, 16_000, format="OGG", subtype="VORBIS")


if __name__ == "__main__":
    main()
