from datetime import timedelta

from django import template

from mlcore.speech import Segment
from tessera.records.models import Transcript
from tessera.records.selectors import readable_segments
from tessera.text import duration_in_words

register = template.Library()


@register.filter
def in_words(length: timedelta) -> str:
    """A length of time as a person says it: '15 minutes'."""
    return duration_in_words(length)


@register.filter
def percent(value) -> int:
    """A probability or weight in [0, 1] as a whole percentage."""
    try:
        return round(float(value) * 100)
    except (TypeError, ValueError):
        return 0


@register.filter
def label(value: str) -> str:
    """A model label as words: 'suspicious_mass' → 'suspicious mass'."""
    return str(value).replace("_", " ")


@register.filter
def said(transcript: Transcript) -> list[Segment]:
    """A transcript's segments (an empty list where they cannot be read)."""
    return readable_segments(transcript)


@register.filter
def timecode(seconds: float) -> str:
    """Seconds into a recording as m:ss (h:mm:ss past an hour)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
