"""The data layer's one error type (re-exported by csn_model.data.slakh, where callers take it)."""


class DataError(ValueError):
    """Malformed dataset input; the message names the file, the field and what was expected."""
