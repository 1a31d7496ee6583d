"""Fixtures of the benchmark tests: the data layer's hand-written Slakh fixture is shared here."""

from tests.csn_model.data.conftest import slakh_mini  # noqa: F401  (a fixture, used by name)
