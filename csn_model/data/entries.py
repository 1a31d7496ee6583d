"""Directory entries as the dataset readers check and show them: file names.

A name that is not valid UTF-8 (common in archives made on Windows or macOS in Latin-1 or CP1252)
reaches Python as a str with surrogate escapes: it cannot be printed, encoded for libsndfile or
stored in the database. The readers refuse such a name only where they use it (a track folder:
its name is the track's name everywhere), naming it with its bytes escaped; a file they do not use
(a stray notes_café.txt) is hashed by its bytes and otherwise ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

from csn_model.data.errors import DataError


def shown(path: str | Path) -> str:
    """The path as text that can always be printed and stored: the bytes of a name that is not
    valid UTF-8 escaped (b'caf\\xe9' -> 'caf\\xe9'), any other name as it is."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8(path: str | Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_utf8(path: Path, what: str) -> None:
    """DataError naming `path` when its name (or a folder above it) is not valid UTF-8."""
    if not is_utf8(path):
        raise DataError(
            f"{shown(path)}: {what} name is not valid UTF-8 ({os.fsencode(path.name)!r}); "
            "rename it (e.g. convmv -f latin1 -t utf8)"
        )
