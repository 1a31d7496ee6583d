"""The model loader: the device comes from settings (CSN_DEVICE, validated at start-up)."""

from __future__ import annotations

import pytest

from csn_model.inference import Embedder
from evalsite.retrieval.embedder import get_embedder


def test_it_loads_the_model_on_the_settings_device(settings, monkeypatch):
    devices = []
    load = Embedder.from_checkpoint.__func__

    def spy(cls, path, device=None, *args, **kwargs):
        devices.append(device)
        return load(cls, path, device, *args, **kwargs)

    monkeypatch.setattr(Embedder, "from_checkpoint", classmethod(spy))
    settings.CSN_DEVICE = "cpu"
    assert str(get_embedder().device) == "cpu"
    assert devices == ["cpu"]


# Names on both sides of the start-up rule (tests/test_settings.py lists more).
DEVICE_NAMES = ["cpu", "cuda", "cuda:0", "cuda:7", "cuda:127", "cuda:01", "cuda:00", "cuda:128",
                "cuda:255", "cuda:99999999999999999999", "cpu:0", "mps", "gpu"]  # fmt: skip


@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_the_loader_refuses_as_not_a_device_name_exactly_what_start_up_refuses(monkeypatch, name):
    # One rule: a CSN_DEVICE that start-up lets through is never "not a device name" where the
    # model is loaded (a gpu worker started with it would fail every model job), and one it
    # refuses would be refused there too.
    from evalsite.env import EnvError, env_device
    from evalsite.retrieval.embedder import ModelUnavailable, check_device

    monkeypatch.setenv("CSN_TEST_DEVICE", name)
    try:
        env_device("CSN_TEST_DEVICE")
        accepted = True
    except EnvError:
        accepted = False
    try:
        check_device(name)
        why = ""
    except ModelUnavailable as exc:  # accepted names may still be GPUs this process lacks
        why = str(exc)
    assert ("not a device name" in why) == (not accepted), why
