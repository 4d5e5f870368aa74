"""What text people type may hold, and how a length of time is said to them.

Names and identifiers (a patient's name, an MRN, a class) are read on screens, in PDF reports,
in CSV exports and by other systems. A control character (BEL, an ESC sequence, a line break), a
bidirectional override or isolate (U+202E turns "Smith" into "htimS" on screen and hides what
follows) or an invisible zero-width character makes two names that look alike differ, or one
name look like another. They are refused there with a sentence naming the character and where.
The rule is one regular expression, so the API schema publishes it as the fields' `pattern`.
"""

import unicodedata
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

# C0 controls and DEL, C1 controls, soft hyphen, the Arabic letter mark, the Mongolian vowel
# separator, zero-width characters and directional marks, line and paragraph separators,
# bidirectional embeddings and overrides, word joiner, invisible operators, bidirectional
# isolates and the remaining format characters up to U+206F, and the byte-order mark.
FORBIDDEN = (
    "\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e"
    "\\u2060-\\u206f\\ufeff"
)
# Written with escapes, not the characters, so it reads the same in Python and in a JSON
# Schema (ECMA-262) `pattern`.
NAME_PATTERN = f"^[^{FORBIDDEN}]*$"

_NAMED = {
    "\x07": "a bell character (BEL)",
    "\x08": "a backspace",
    "\t": "a tab",
    "\n": "a line break",
    "\r": "a carriage return",
    "\x1b": "an escape character (ESC)",
    "\x7f": "a delete character (DEL)",
}


def describe(character: str) -> str:
    """How a person calls an invisible character: its Unicode name and code point."""
    code = f"U+{ord(character):04X}"
    if character in _NAMED:
        return f"{_NAMED[character]}, {code}"
    name = unicodedata.name(character, "")
    if name:
        return f"a {name.lower()} character, {code}"
    return f"a control character, {code}"


class PrintableName(RegexValidator):
    """No control, bidirectional or invisible characters (see the module)."""

    regex = NAME_PATTERN

    def deconstruct(self) -> tuple[str, tuple, dict]:
        """Migrations record the rule as a plain RegexValidator of the same pattern, so that
        they import no Tessera code (which may change after they ran). Only the error message
        differs, and a migration never shows it."""
        return ("django.core.validators.RegexValidator", (), {"regex": NAME_PATTERN})

    def __call__(self, value: object) -> None:
        text = str(value)
        for position, character in enumerate(text, start=1):
            if self.regex.fullmatch(character) is None:
                raise ValidationError(
                    f"This holds {describe(character)}, at character {position} of "
                    f"{len(text)}: names and identifiers may not contain control, "
                    "right-to-left override or invisible characters. Type it again without it.",
                    code="invisible_character",
                )


printable_name = PrintableName()

# A DICOM application entity title (PS3.5 VR AE): 1 to 16 characters of printable ASCII, no
# backslash, not only spaces.
ae_title = RegexValidator(
    regex=r"^(?=.*[^ ])[\x20-\x5b\x5d-\x7e]{1,16}$",
    message="an AE title is 1 to 16 printable ASCII characters, without a backslash",
)


def family_and_given(full_name: str) -> tuple[str, str]:
    """ "Eleanor Whitmore" → ("Whitmore", "Eleanor"): the family name taken to be the last word,
    as records give a name whole (what DICOM and FHIR write in parts)."""
    given, _, family = full_name.strip().rpartition(" ")
    return family, given


def duration_in_words(length: timedelta) -> str:
    """'15 minutes', '1 hour', '2 hours 30 minutes', '45 seconds': never 'PT15M'."""
    seconds = round(length.total_seconds())
    if seconds < 60:
        return _counted(seconds, "second")
    hours, minutes = divmod(round(seconds / 60), 60)
    parts = [_counted(hours, "hour")] if hours else []
    if minutes:
        parts.append(_counted(minutes, "minute"))
    return " ".join(parts)


def _counted(number: int, unit: str) -> str:
    return f"{number} {unit}{'' if number == 1 else 's'}"
