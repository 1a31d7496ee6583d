"""Source separation for the "individual networks on separated stems" baseline.

No pretrained separator can be downloaded here, so the project trains its own: an Open-Unmix-style
spectrogram-mask network (Stoeter et al. 2019, JOSS) that maps a mixture's magnitude spectrogram
to five soft masks, one per condition, on the training split's stems. Our choices, where Open-Unmix
differs: one network for all five sources (not one per source), masks normalised by a softmax
across sources (so the estimates sum to the mixture, as Slakh's stems do), log-compressed input,
an L1 loss on magnitudes, mono 22.05 kHz, and no Wiener post-filter. Phase is the mixture's.

Quality is reported as SDR per stem on the test split (`sdr_table`) next to two bounds computed
on the same STFT: the ideal ratio mask |S_k| / sum_j |S_j| (upper bound for a magnitude mask with
mixture phase) and the mixture itself as every estimate (lower bound). SDR here is the
signal-to-distortion ratio of the Music Demixing Challenge ("new SDR", Mitsufuji et al. 2022):
10 log10(sum s^2 / sum (s - s_hat)^2) per track and stem, with 1e-8 in both sums; silent targets
are skipped and counted.

Pretrained alternative: `DemucsSeparator` wraps a locally installed Demucs 6-source model (e.g.
htdemucs_6s) loaded from a local folder of weights (`demucs.pretrained.get_model(name, repo=...)`),
never from the network; other and vocals are summed into "others".
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from csn_model import CONDITIONS
from csn_model.separator_settings import settings_differences

MODEL_NAME = "MaskSeparator"
EPS = 1e-8
# What _batch draws from a seed, recorded in checkpoints: bump when it changes. 2 (2026-12-06): the
# stems an item keeps from its base piece share the base segment (a real mixture); 1 (unrecorded):
# every stem had its own start.
BATCHES_VERSION = 2


@dataclass(frozen=True)
class SeparatorConfig:
    """Training and model settings of the separator (names as in config files: `separator.X`)."""

    n_fft: int = 1024
    hop: int = 256
    hidden: int = 128  # width of the fully connected and LSTM layers
    lstm_layers: int = 2
    segment_seconds: float = 3.0
    batch_size: int = 8
    steps: int = 1500
    lr: float = 1e-3
    remix: float = 0.5  # chance that a condition's stem comes from another random piece and start
    seed: int = 0
    backend: str = "trained"  # trained | demucs (local weights only)
    demucs_name: str = "htdemucs_6s"
    demucs_repo: str = ""  # folder holding the Demucs weights and their yaml; never downloaded


class MaskSeparator(nn.Module):
    """Mixture waveform -> K source waveforms through soft spectrogram masks."""

    def __init__(self, n_fft: int = 1024, hop: int = 256, hidden: int = 128, lstm_layers: int = 2,
                 n_sources: int = len(CONDITIONS)):  # fmt: skip
        super().__init__()
        self.n_fft, self.hop, self.n_sources = n_fft, hop, n_sources
        bins = n_fft // 2 + 1
        self.bins = bins
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.input_shift = nn.Parameter(torch.zeros(bins))
        self.input_scale = nn.Parameter(torch.ones(bins))
        self.fc1 = nn.Linear(bins, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.lstm = nn.LSTM(hidden, hidden // 2, lstm_layers, batch_first=True, bidirectional=True)
        self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.fc3 = nn.Linear(hidden, n_sources * bins)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> complex (B, F, N)."""
        return torch.stft(wave, self.n_fft, self.hop, window=self.window, return_complex=True)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """complex (..., F, N) -> (..., T)."""
        lead = spec.shape[:-2]
        flat = spec.reshape(-1, *spec.shape[-2:])  # (B*K, F, N)
        wave = torch.istft(flat, self.n_fft, self.hop, window=self.window, length=length)
        return wave.reshape(*lead, length)  # (..., T)

    def masks(self, mag: torch.Tensor) -> torch.Tensor:
        """Magnitudes (B, F, N) -> soft masks (B, K, F, N) summing to one over K."""
        b, f, n = mag.shape
        x = torch.log1p(mag).transpose(1, 2)  # (B, N, F)
        x = (x + self.input_shift) * self.input_scale  # (B, N, F)
        h = self.fc1(x)  # (B, N, H)
        h = torch.tanh(self.bn1(h.transpose(1, 2)).transpose(1, 2))  # (B, N, H)
        r, _ = self.lstm(h)  # (B, N, H)
        h = self.fc2(torch.cat([h, r], dim=-1))  # (B, N, H)
        h = torch.relu(self.bn2(h.transpose(1, 2)).transpose(1, 2))  # (B, N, H)
        logits = self.fc3(h).reshape(b, n, self.n_sources, f)  # (B, N, K, F)
        return torch.softmax(logits, dim=2).permute(0, 2, 3, 1)  # (B, K, F, N)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) mixture -> (B, K, T) source estimates."""
        spec = self.stft(wave)  # (B, F, N)
        est = self.masks(spec.abs()) * spec.unsqueeze(1)  # (B, K, F, N)
        return self.istft(est, wave.shape[-1])  # (B, K, T)


def ideal_ratio_mask(stems: torch.Tensor, model: MaskSeparator) -> torch.Tensor:
    """Upper bound: stems (B, K, T) -> estimates (B, K, T) from |S_k| / sum_j |S_j| on the mix."""
    b, k, t = stems.shape
    specs = model.stft(stems.reshape(b * k, t)).reshape(b, k, model.bins, -1)  # (B, K, F, N)
    mags = specs.abs()  # (B, K, F, N)
    mask = mags / (mags.sum(dim=1, keepdim=True) + EPS)  # (B, K, F, N)
    mix = specs.sum(dim=1, keepdim=True)  # (B, 1, F, N)
    return model.istft(mask * mix, t)  # (B, K, T)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """MDX-challenge SDR in dB of one signal: 10 log10(sum s^2 / sum (s - s_hat)^2)."""
    num = float(np.sum(reference.astype(np.float64) ** 2)) + EPS
    den = float(np.sum((reference.astype(np.float64) - estimate) ** 2)) + EPS
    return 10.0 * math.log10(num / den)


# -- training --------------------------------------------------------------------------------
def _batch(tracks, rng: np.random.Generator, cfg: SeparatorConfig, frames: int) -> np.ndarray:
    """(B, K, T) stems of random segments. Each item is one segment of a base piece, so its stems
    are aligned and sum to a real mixture; with probability `remix` a condition's stem is replaced
    by that stem of another random piece at its own random start (Open-Unmix's random-mix
    augmentation; the other piece may be the base piece again)."""
    out = np.zeros((cfg.batch_size, len(CONDITIONS), frames), dtype=np.float32)
    for i in range(cfg.batch_size):
        base = tracks[rng.integers(len(tracks))]
        base_start = int(rng.integers(0, base.num_frames - frames + 1))
        for k, cond in enumerate(CONDITIONS):
            track, start = base, base_start
            if rng.uniform() < cfg.remix:
                track = tracks[rng.integers(len(tracks))]
                start = int(rng.integers(0, track.num_frames - frames + 1))
            out[i, k] = track.read_condition(cond, start, frames)  # (T,)
    return out


def train_separator(
    ds,
    cfg: SeparatorConfig,
    out_path: str | Path,
    log=print,
    unrecorded_ok: bool = False,
    warn=None,
) -> Path:
    """Train on `ds`'s training split and write a checkpoint to out_path (idempotent: an existing
    checkpoint is kept; an interrupted run resumes from `<out_path>.partial`, which is loaded with
    weights_only=True like every checkpoint). Both record ds's fingerprint ("dataset"), and one
    recording another is refused; the .partial also records cfg and ds's sample rate, and one
    recording others is refused too, naming what differs (the checkpoint's are checked by its
    users: csn bench's check_separator). unrecorded_ok: a file saved before it recorded its
    dataset (or a .partial its settings) is used, with a line through `warn` (default: log), by a
    caller that knows otherwise that it is ds's and cfg's (csn bench, whose run folder's
    dataset.json the user vouched for and whose config.yaml is this config); else it is refused
    too."""
    out_path = Path(out_path)
    want, warn = dataset_record(ds), warn or log
    if out_path.exists():
        state = torch.load(out_path, weights_only=True)
        check_batches(state, out_path)
        _check_dataset(state, out_path, want, unrecorded_ok, warn)
        return out_path
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tracks = [t for t in ds.tracks("train")]
    frames = int(round(cfg.segment_seconds * ds.sample_rate))
    tracks = [t for t in tracks if t.num_frames >= frames]
    if not tracks:
        raise ValueError(f"{ds.root}: no training track is {cfg.segment_seconds} s long or longer")
    args = {
        "n_fft": cfg.n_fft,
        "hop": cfg.hop,
        "hidden": cfg.hidden,
        "lstm_layers": cfg.lstm_layers,
    }
    model = MaskSeparator(**args)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    partial, step = out_path.with_suffix(".partial"), 0
    if partial.exists():
        state = _load_partial(partial)
        check_batches(state, partial)
        _check_dataset(state, partial, want, unrecorded_ok, warn)
        _check_settings(state, partial, cfg, int(ds.sample_rate), unrecorded_ok, warn)
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        step, rng.bit_generator.state = state["step"], state["rng"]
    model.train()
    t0, running = time.time(), 0.0
    while step < cfg.steps:
        stems = torch.from_numpy(_batch(tracks, rng, cfg, frames))  # (B, K, T)
        mix = stems.sum(dim=1)  # (B, T)
        spec = model.stft(mix)  # (B, F, N)
        b, k, t = stems.shape
        target = model.stft(stems.reshape(b * k, t)).abs().reshape(b, k, model.bins, -1)
        est = model.masks(spec.abs()) * spec.abs().unsqueeze(1)  # (B, K, F, N)
        loss = (est - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step > 1 else value
        if step % 100 == 0 or step == cfg.steps:
            log(f"separator step {step}/{cfg.steps} loss {running:.4f} "
                f"({(time.time() - t0) / max(step, 1):.2f} s/step)")  # fmt: skip
            _atomic_save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                          "step": step, "rng": rng.bit_generator.state, "dataset": want,
                          "config": asdict(cfg),
                          "versions": {"batches": BATCHES_VERSION,
                                       "sample_rate": int(ds.sample_rate)}},
                         partial)  # fmt: skip
    checkpoint = {
        "model_name": MODEL_NAME,
        "model_args": args,
        "state_dict": model.state_dict(),
        "config": asdict(cfg),
        "dataset": want,
        "versions": {
            "torch": str(torch.__version__),
            "sample_rate": int(ds.sample_rate),
            "batches": BATCHES_VERSION,
        },
    }
    _atomic_save(checkpoint, out_path)
    partial.unlink(missing_ok=True)
    return out_path


def check_batches(state: dict, path: Path) -> None:
    """A separator checkpoint or partial file trained on this code's batches (BATCHES_VERSION),
    else ValueError: training on or scoring with older batches would mix two codes in one run."""
    have = state.get("versions", {}).get("batches", 1)  # unrecorded: before batches were versioned
    if have != BATCHES_VERSION:
        raise ValueError(
            f"{path}: separator trained on batches version {have} (before 2026-12-06 each stem "
            f"of an item had its own start, so no batch was a real mixture); this code draws "
            f"version {BATCHES_VERSION}: delete {path} (in a csn bench run folder the whole "
            "separator/ folder, whose SDR it measured) to train the separator again"
        )


def dataset_record(ds) -> dict:
    """What a separator file records of its training data, as csn train's checkpoints do
    (csn_model.train.run_source): {"root": absolute path, "fingerprint": ds.fingerprint}."""
    return {"root": str(Path(ds.root).resolve()), "fingerprint": ds.fingerprint}


def dataset_difference(state: dict, want: dict) -> str | None:
    """How the training data a separator file `state` records differs from `want`
    (dataset_record): None if it is that data, "" if it records none (saved before 2026-12-07),
    else what differs, naming both datasets and fingerprints, without a remedy."""
    have = state.get("dataset") if isinstance(state, dict) else None
    if not isinstance(have, dict) or "fingerprint" not in have:
        return ""
    if have["fingerprint"] == want["fingerprint"]:
        return None
    return (
        f"it was trained on the dataset {have.get('root')} (fingerprint {have['fingerprint']}), "
        f"not on {want['root']} (fingerprint {want['fingerprint']}): another dataset, or that "
        "one changed since (its tracks, metadata.yaml or audio files differ)"
    )


def unrecorded_note(path: Path, want: dict) -> str:
    """What is said of a separator file that records no dataset."""
    return (
        f"{path}: records no dataset (saved before separators recorded their training data, "
        f"2026-12-07), so nothing in it tells whether it was trained on {want['root']} "
        f"(fingerprint {want['fingerprint']})"
    )


def _check_dataset(state: dict, path: Path, want: dict, unrecorded_ok: bool, warn) -> None:
    differs = dataset_difference(state, want)
    if differs is None:
        return
    if differs == "" and unrecorded_ok:
        warn(f"{unrecorded_note(path, want)}; used as that data's, as the caller vouches for it")
        return
    what = unrecorded_note(path, want) if differs == "" else f"{path}: {differs}"
    raise ValueError(
        f"{what}; delete {path} (in a csn bench run folder the whole separator/ folder, whose "
        "SDR it measured) to train the separator again"
    )


def _check_settings(
    state: dict, path: Path, cfg: SeparatorConfig, rate: int, unrecorded_ok: bool, warn
) -> None:
    """A .partial continues only a training of cfg at `rate`: continued under other settings, or
    on audio at another rate, its weights, optimizer and step would be passed off as a training of
    these (other layer widths fail to load at all). One saved before .partial files recorded them
    is continued only where the caller vouches for it, as one that records no dataset is."""
    if "config" not in state:
        note = (
            f"{path}: records no settings (saved before interrupted separator trainings recorded "
            "them, 2026-12-07), so nothing in it tells whether it was trained with these "
            "separator.* settings"
        )
        if not unrecorded_ok:
            raise ValueError(f"{note}; delete {path} to train the separator from the start")
        warn(f"{note}; continued with them, as the caller vouches for it")
        return
    differ = settings_differences(state["config"], cfg)
    have = state.get("versions", {}).get("sample_rate")
    if have != rate:
        differ.append(f"sample rate {have} (run: {rate}, the dataset's)")
    if differ:
        raise ValueError(
            f"{path}: an interrupted training of another separator: {'; '.join(differ)}; delete "
            f"{path} to train the separator from the start with these settings, or resume with "
            "the settings it records"
        )


def _load_partial(path: Path) -> dict:
    """A partial file holds tensors, the step and numpy's bit-generator state (dicts, str and
    int), all loadable with weights_only=True, which never runs code from the file."""
    try:
        state = torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(
            f"{path}: not a separator training state loadable with weights_only=True ({exc}); "
            "delete it to train the separator from the start"
        ) from None
    fields = ("state_dict", "optimizer", "step", "rng")
    missing = [k for k in fields if k not in state] if isinstance(state, dict) else list(fields)
    if missing:
        raise ValueError(f"{path}: separator training state misses field(s) {', '.join(missing)}")
    return state


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# -- inference ------------------------------------------------------------------------------
class TrainedSeparator:
    """A trained MaskSeparator behind `separate(waves) -> (B, K, T)` on numpy arrays."""

    def __init__(self, path: str | Path, device: str | None = None):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("model_name") != MODEL_NAME:
            raise ValueError(
                f"{path}: model_name {ckpt.get('model_name')!r}, expected {MODEL_NAME}"
            )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = MaskSeparator(**ckpt["model_args"]).to(self.device).eval()
        self.model.load_state_dict(ckpt["state_dict"])
        self.sample_rate = int(ckpt["versions"]["sample_rate"])
        self.conditions = CONDITIONS

    @torch.no_grad()
    def separate(self, waves: np.ndarray) -> np.ndarray:
        """(B, T) mixtures -> (B, K, T) estimates in CONDITIONS order."""
        x = torch.as_tensor(np.asarray(waves, dtype=np.float32), device=self.device)
        return self.model(x).cpu().numpy()  # (B, K, T)


class DemucsSeparator:
    """A locally installed Demucs 6-source model (drums, bass, other, vocals, guitar, piano).

    Loaded from `repo`, a folder with the model's weights, through Demucs's LocalRepo: nothing is
    downloaded. Audio is resampled to the model's rate and back; other + vocals -> "others".
    """

    def __init__(self, name: str, repo: str | Path, sample_rate: int, device: str | None = None):
        if not repo or not Path(repo).is_dir():
            raise ValueError(f"separator.demucs_repo: {repo!r} is not a folder of Demucs weights")
        try:
            from demucs.apply import apply_model
            from demucs.pretrained import get_model
        except ImportError as exc:
            raise ValueError(
                "separator.backend 'demucs' needs the demucs package installed"
            ) from exc
        self._apply = apply_model
        self.model = get_model(name, repo=Path(repo)).eval()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.sample_rate = sample_rate
        sources = list(self.model.sources)
        missing = {"drums", "bass", "piano", "guitar", "other"} - set(sources)
        if missing:
            raise ValueError(
                f"Demucs model {name}: needs piano and guitar outputs; lacks {missing}"
            )
        self._index = {c: [sources.index("other" if c == "others" else c)] for c in CONDITIONS}
        if "vocals" in sources:
            self._index["others"].append(sources.index("vocals"))

    @torch.no_grad()
    def separate(self, waves: np.ndarray) -> np.ndarray:
        import soxr

        sr = self.model.samplerate
        t = waves.shape[-1]
        up = np.stack([soxr.resample(w, self.sample_rate, sr) for w in waves])  # (B, T')
        x = torch.as_tensor(up, dtype=torch.float32)[:, None].repeat(1, 2, 1)  # (B, 2, T')
        out = self._apply(self.model, x, device=self.device).mean(dim=2).numpy()  # (B, S, T')
        est = np.zeros((len(waves), len(CONDITIONS), t), dtype=np.float32)
        for k, cond in enumerate(CONDITIONS):
            for s in self._index[cond]:
                for b in range(len(waves)):
                    est[b, k] += soxr.resample(out[b, s], sr, self.sample_rate)[:t]  # (T,)
        return est


def load_separator(cfg: SeparatorConfig, checkpoint: Path | None, sample_rate: int):
    if cfg.backend == "demucs":
        return DemucsSeparator(cfg.demucs_name, cfg.demucs_repo, sample_rate)
    return TrainedSeparator(checkpoint)


# -- evaluation -----------------------------------------------------------------------------
def sdr_table(ds, separator: TrainedSeparator, split: str = "test", chunk_seconds: float = 10.0):
    """SDR per (track, condition, method) on a split; methods separator, ideal_ratio_mask, mixture.

    Each track is processed in chunks of chunk_seconds (the last one shorter) and scored over
    its whole length. Conditions absent from a track are skipped. Returns a tidy DataFrame
    track, condition, method, sdr.
    """
    import pandas as pd

    # The ideal mask needs only an STFT: the separator's own for a trained one (a fresh CPU
    # module, so the separator's model stays on its device), else the default.
    ref_model = MaskSeparator(n_fft=1024, hop=256)
    if isinstance(separator, TrainedSeparator):
        ref_model = MaskSeparator(n_fft=separator.model.n_fft, hop=separator.model.hop)
    rows = []
    chunk = int(chunk_seconds * ds.sample_rate)
    for track in ds.tracks(split):
        present = [CONDITIONS.index(c) for c in track.conditions]
        refs, outs = [], {"separator": [], "ideal_ratio_mask": [], "mixture": []}
        for start in range(0, track.num_frames, chunk):
            n = min(chunk, track.num_frames - start)
            if n < ref_model.n_fft:
                break
            stems = np.stack([track.read_condition(c, start, n) for c in CONDITIONS])  # (K, T)
            mix = stems.sum(axis=0)  # (T,)
            refs.append(stems)
            outs["separator"].append(separator.separate(mix[None])[0])  # (K, T)
            with torch.no_grad():
                irm = ideal_ratio_mask(torch.from_numpy(stems)[None], ref_model)[0].numpy()
            outs["ideal_ratio_mask"].append(irm)  # (K, T)
            outs["mixture"].append(np.repeat(mix[None], len(CONDITIONS), axis=0))  # (K, T)
        ref = np.concatenate(refs, axis=1)  # (K, T)
        for method, parts in outs.items():
            est = np.concatenate(parts, axis=1)  # (K, T)
            for k in present:
                rows.append({"track": track.name, "condition": CONDITIONS[k], "method": method,
                             "sdr": sdr(ref[k], est[k])})  # fmt: skip
    return pd.DataFrame(rows, columns=["track", "condition", "method", "sdr"])


def summarise_sdr(table) -> list[dict]:
    """Mean and median SDR per (method, condition) with the number of tracks."""
    out = []
    for (method, cond), part in table.groupby(["method", "condition"], sort=False):
        out.append({"method": method, "condition": cond, "mean": float(part["sdr"].mean()),
                    "median": float(part["sdr"].median()), "n": int(len(part))})  # fmt: skip
    return out


def write_sdr(table, path: Path) -> None:
    table.to_csv(path.with_suffix(".csv"), index=False)
    path.with_suffix(".json").write_text(json.dumps(summarise_sdr(table), indent=2))
