"""The data layer's error type (re-exported by csn_model.data.slakh, where callers take it)."""


class DataError(ValueError):
    """Malformed dataset input; the message names the file, the field and what was expected."""


class DuplicateSourcesError(DataError):
    """Tracks of different splits share a source MIDI and the dataset was opened with
    duplicates="refuse": a caller with its own way to ask for "omit" (the site's import form)
    can point to it."""
