"""The model loader: the device comes from settings (CSN_DEVICE, validated at start-up)."""

from __future__ import annotations

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
