"""Directory entries as the dataset readers check and show them: file names, track links.

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
        at_fault = next(p for p in (path, *path.parents) if not is_utf8(p.name))
        whose = what if at_fault == path else f"a folder above the {what}: its"
        raise DataError(
            f"{shown(path)}: {whose} name is not valid UTF-8 ({os.fsencode(at_fault.name)!r}); "
            "rename it (e.g. convmv -f latin1 -t utf8)"
        )


def broken_link(path: Path) -> str:
    """Why `path`, a symlink, leads to no folder or file ("" when it does or is no symlink): a
    dangling target (a disk not mounted, a moved copy) or a loop."""
    if not path.is_symlink():
        return ""
    try:
        path.stat()
    except FileNotFoundError:
        return f"is a symlink to {shown(os.readlink(path))}, which does not exist (dangling)"
    except OSError:  # ELOOP
        return f"is a symlink loop ({shown(path.name)} -> {shown(os.readlink(path))})"
    return ""


def check_track_entry(path: Path) -> None:
    """DataError naming a track entry the reader cannot read as a track folder: a name that is
    not valid UTF-8, or a symlink that leads nowhere (dropping it would make every tool count
    fewer tracks without a word, and a resumed run read a smaller dataset)."""
    require_utf8(path, "track folder")
    if why := broken_link(path):
        raise DataError(
            f"{shown(path)}: track entry {why}; restore its target (e.g. mount the disk it "
            "points to) or remove the link"
        )


def is_track_entry(path: Path) -> bool:
    """A split folder's entry that is a track: a visible folder, or a symlink that leads nowhere
    (check_track_entry refuses it). Hidden ones are unfinished writes (csn synth)."""
    return not path.name.startswith(".") and (path.is_dir() or bool(broken_link(path)))
