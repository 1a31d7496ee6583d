"""Text from outside the site made storable: PostgreSQL refuses a NUL character in `text` and
`jsonb` (psycopg raises DataError: a 500), and `jsonb` a lone UTF-16 surrogate, which a JSON
`"\\ud800"` escape decodes to in Python. Form fields and query parameters cannot carry a
surrogate (Django decodes invalid UTF-8 with replacement characters), but they can carry NUL
(`%00`). Every participant input passes through `storable` (one value) or `storable_json` (a
decoded JSON document) before it is written or looked up; what cannot be stored is treated as
unknown, or refused where it is an id (docs/site.md, "Participant flow").
"""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In JSON text: the escapes that decode to an unstorable character (a raw NUL is not valid JSON:
# json.loads refuses control characters in strings). A match only means the document is walked.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def storable(text: str) -> bool:
    """Whether PostgreSQL stores this string as it is (no NUL, no lone surrogate)."""
    return _UNSTORABLE.search(text) is None


def storable_or_empty(text: str) -> str:
    """The string, or "" (unknown) when it cannot be stored."""
    return text if storable(text) else ""


def may_hold_unstorable(json_text: str) -> bool:
    """Whether JSON text may decode to a string that cannot be stored: a cheap test of the text,
    so that a document without such an escape (every browser's log) is not walked."""
    return _UNSTORABLE_ESCAPE.search(json_text) is not None


def storable_json(value):
    """A decoded JSON value with every string that cannot be stored replaced by None (unknown,
    as a value of the wrong type is) and every object member whose key cannot be stored
    dropped."""
    if isinstance(value, str):
        return value if storable(value) else None
    if isinstance(value, list):
        return [storable_json(v) for v in value]
    if isinstance(value, dict):
        return {k: storable_json(v) for k, v in value.items() if storable(k)}
    return value
