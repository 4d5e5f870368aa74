"""Request bodies the API reads: DRF's parsers, with JSON that cannot exhaust the parser.

Python's JSON decoder recurses once per level of nesting, so a body of 5,000 `[` raises
RecursionError, which is no ValueError and would answer 500. No request of this API nests more
than a few levels, so a body deeper than MAX_DEPTH is refused as unparseable, with a sentence.
"""

import codecs
import json

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 32


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError(_too_deep()) from None
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError alike
            raise ParseError(f"the body is not valid JSON ({error})") from None
        if depth(data) > MAX_DEPTH:
            raise ParseError(_too_deep())
        return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _too_deep() -> str:
    return (
        f"the JSON body is nested more than {MAX_DEPTH} levels deep; no request of this API "
        "needs more than a few"
    )


def depth(value: object) -> int:
    """How deeply lists and objects nest in a parsed JSON value (a scalar is 0), without
    recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest
