"""Test helpers shared by the retrieval and integration tests: a tiny untrained checkpoint
written with the model-core checkpoint writer, and catalogues of generated audio clips.

Personas: `ada` (an experimenter who owns the catalogue), `bob` (another experimenter).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 22050
SMOKE = Path(__file__).resolve().parents[3] / "experiments" / "configs" / "smoke.yaml"


def write_checkpoint(path: Path, seed: int = 0) -> Path:
    """An untrained CSN of the smoke config (D = 40, 1 s segments): embeddings are a fixed random
    function of the audio, which is all the plumbing needs."""
    import torch

    from csn_model.checkpoint import make_payload, save_checkpoint
    from csn_model.config import load_config, to_dict
    from csn_model.model import build_model, model_args_from_config

    cfg = load_config(SMOKE)
    args = model_args_from_config(cfg, "csn")
    torch.manual_seed(seed)
    model = build_model("csn", args)
    return save_checkpoint(path, make_payload("csn", args, model, to_dict(cfg)))


def write_nan_checkpoint(path: Path) -> Path:
    """A checkpoint of the tiny model whose every weight is NaN, as a training run that diverged
    leaves it: it loads, and every embedding it gives is NaN."""
    import torch

    from csn_model.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(write_checkpoint(path, seed=2))
    payload["state_dict"] = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in payload["state_dict"].items()
    }
    return save_checkpoint(path, payload)


def piece_audio(piece: int, variant: int = 0, seconds: float = 1.2) -> np.ndarray:
    """A clip of a piece: a chord whose pitches and rhythm depend on the piece (T,)."""
    rng = np.random.default_rng(1000 * piece + variant)
    t = np.arange(int(seconds * SR)) / SR
    base = 110.0 * 2 ** (piece % 12 / 12)
    tone = sum(np.sin(2 * np.pi * base * h * t) / h for h in (1, 2, 3, 5))
    beat = (np.sin(2 * np.pi * (1 + piece % 4) * t) > 0.7).astype(float)
    noise = rng.standard_normal(t.size) * beat * 0.3
    return (0.2 * tone + noise * 0.5).astype(np.float32)


def make_catalogue(owner, n_pieces: int = 6, clips_per_piece: int = 1, name: str = "demo"):
    """A catalogue of ready mix clips (piece "P00", "P01", ...)."""
    from evalsite.stimuli.audio import clip_from_array
    from evalsite.stimuli.models import Catalogue

    catalogue = Catalogue.objects.create(owner=owner, name=name)
    for p in range(n_pieces):
        for v in range(clips_per_piece):
            clip_from_array(
                piece_audio(p, v), SR, catalogue, name=f"P{p:02d} take {v}", piece=f"P{p:02d}"
            )
    return catalogue


def add_attention_set(catalogue, reference, condition: str, group: str):
    """A 'same'/'different' pair of stem-built clips for an attention catch trial."""
    from evalsite.stimuli.audio import clip_from_array

    made = []
    for role, seed in (("same", 1), ("different", 2)):
        meta = {"kind": "attention", "group": group, "condition": condition, "role": role,
                "reference": reference.pk}  # fmt: skip
        made.append(
            clip_from_array(
                piece_audio(50 + seed, 0),
                SR,
                catalogue,
                name=f"{group} {role}",
                piece=reference.piece,
                meta=meta,
                parts={condition: reference.piece},
            )  # fmt: skip
        )
    return made


def corrupt_clip(catalogue, media_root: Path):
    """A pending clip whose file is not audio (the poison clip)."""
    from django.core.files.base import ContentFile

    from evalsite.stimuli.models import Clip

    clip = Clip(catalogue=catalogue, name="broken.wav", piece="BROKEN")
    clip.file.save("broken.wav", ContentFile(b"RIFF\x00\x00not really a wave file" * 10), False)
    clip.save()
    return clip
