"""The spoken sentences behind the synthetic recordings: real speech (espeak-ng's voice,
committed in mlcore/resources/speech with its text and the cue it carries), so that a speech
recogniser hears words and the text model reads what was said.

Each sentence carries the `said` cue of `mlcore.synthetic.truth`: for a clinic, distressed,
mixed or calm; for a school, struggling, unsure or confident. Beside its text, each clip holds
what the shipped speech model heard of it when spoken at each intensity of HEARD_AT, by a few
speakers (resources/speech/hear.py): a case's transcript is one of what was heard nearest its
own intensity.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile

CLIPS = Path(__file__).resolve().parents[1] / "resources" / "speech"
HEARD_AT = (-2.5, -1.25, 0.0, 1.25, 2.5)  # arousal intensities (mlcore.synthetic.audio)
HEARD_SEEDS = (0, 1, 2)  # each said with another speaker's jitter: the recogniser slips apart


@dataclass(frozen=True)
class Clip:
    name: str
    text: str
    said: str
    samples: np.ndarray  # mono float32 at `sample_rate`
    sample_rate: int
    # intensity → what the speech model heard of it said so, once per seed of HEARD_SEEDS
    heard: dict[float, tuple[str, ...]]

    def heard_at(self, intensity: float, rng: np.random.Generator) -> str:
        """What the speech model heard of this clip said at the nearest intensity, one of the
        times it was heard (the text itself, for a clip not heard yet)."""
        if not self.heard:
            return self.text
        heard = self.heard[min(self.heard, key=lambda at: abs(at - intensity))]
        return heard[int(rng.integers(len(heard)))]


@lru_cache(maxsize=2)
def clips(kind: str) -> dict[str, tuple[Clip, ...]]:
    """The committed clips of `kind` (clinic or school) by the cue they carry."""
    found: dict[str, list[Clip]] = {}
    for name, entry in json.loads((CLIPS / "clips.json").read_text()).items():
        if not name.startswith(f"{kind}-"):
            continue
        samples, rate = soundfile.read(CLIPS / f"{name}.ogg", dtype="float32")
        samples.setflags(write=False)
        heard = {float(at): tuple(texts) for at, texts in entry.get("heard", {}).items()}
        found.setdefault(entry["said"], []).append(
            Clip(
                name=name,
                text=entry["text"],
                said=entry["said"],
                samples=samples,
                sample_rate=rate,
                heard=heard,
            )
        )
    return {said: tuple(group) for said, group in found.items()}


def draw_clip(rng: np.random.Generator, *, kind: str, said: str) -> Clip:
    group = clips(kind)[said]
    return group[int(rng.integers(len(group)))]
