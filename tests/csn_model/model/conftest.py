"""Fixtures of the model tests: the smoke config and one smoke run shared by the module tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from csn_model.config import load_config

SMOKE = Path(__file__).resolve().parents[3] / "experiments" / "configs" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_cfg():
    return load_config(SMOKE)


@pytest.fixture(scope="session")
def smoke_run(smoke_cfg, tiny_dataset, tmp_path_factory) -> Path:
    """final.pt of the smoke config trained once on tiny_dataset (read-only for the tests)."""
    from csn_model.train import train_run

    return train_run(smoke_cfg, tiny_dataset, tmp_path_factory.mktemp("smoke_run"), progress=False)
