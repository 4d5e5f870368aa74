from datetime import timedelta

from django import template

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
