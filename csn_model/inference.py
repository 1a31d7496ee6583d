"""Embedding audio with a trained checkpoint, for the rest of the platform.

    emb = Embedder.from_checkpoint(path)        # load once per process; CUDA if available
    vectors = emb.embed_files(paths)            # (N, D) float32
    drums = emb.subspace(vectors, "drums")      # (N, D/K)

Long files, the rule: audio is decoded, mixed to mono and resampled (soxr) to the model's rate,
then cut into consecutive non-overlapping segments of the training segment length S
(features.segment_seconds of the checkpoint's config, 3 s by default) starting at 0; a remainder
of at least S/2 adds one last segment that ends at the end of the file (overlapping the previous
one), a shorter remainder is dropped. The file's embedding is the unweighted mean of its segment
embeddings. A file no longer than S is embedded whole, in one piece (zero-padded to one FFT
window if shorter than that). Segments of all files are batched together.

A file that cannot be decoded, holds a NaN or infinite sample, is silent (peak above 20 Hz below
-60 dBFS over every channel: the catalogue's rule, csn_model.silence) or has no samples raises
EmbedError naming it; one that cannot be opened or read raises its OSError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from csn_model.checkpoint import file_id, load_model
from csn_model.model import ConditionalSimilarityNet
from csn_model.silence import SILENCE_DBFS, SILENCE_HIGHPASS_HZ, audible_peak

DEFAULT_BATCH = 64
FILE_CHUNK = 16  # files per unit of work in embed_files


class EmbedError(ValueError):
    """Audio that cannot be embedded; the message names the file and what was expected."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.inference_mode()
def embed_batch(
    model: ConditionalSimilarityNet,
    waveforms: np.ndarray | torch.Tensor,
    condition: str | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> np.ndarray:
    """Embed equal-length waveforms (N, T) at the model's sample rate -> (N, D) float32.

    With a condition: that condition's subspace, (N, D/K) for fixed masks (an individual network's
    whole embedding, since its only condition is its own). Works for CSNs and individual networks.
    """
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(
        np.asarray(waveforms, dtype=np.float32) if not torch.is_tensor(waveforms) else waveforms,
        dtype=torch.float32,
    )  # (N, T)
    if x.ndim != 2:
        raise ValueError(f"waveforms must be (N, T), got shape {tuple(x.shape)}")
    k = None
    if condition is not None:
        if condition not in model.conditions:
            raise ValueError(f"condition {condition!r} not in model conditions {model.conditions}")
        k = model.conditions.index(condition)
    outs = []
    for chunk in x.split(batch_size):
        emb = model(chunk.to(device, non_blocking=True))  # (b, D)
        if k is not None:
            emb = model.subspace(emb, k)  # (b, D/K)
        outs.append(emb.float().cpu())
    if not outs:
        return np.zeros((0, model.embedding_dim if k is None else model.sub_dim), np.float32)
    return torch.cat(outs).numpy()  # (N, D) or (N, D/K)


def segment_starts(num_samples: int, segment: int) -> list[int]:
    """Start offsets of the segments a clip of num_samples is cut into (the rule above)."""
    if num_samples <= segment:
        return [0]  # (embedded whole, see Embedder._embed_clips)
    starts = list(range(0, num_samples - segment + 1, segment))
    remainder = num_samples - (starts[-1] + segment)
    if remainder * 2 >= segment:
        starts.append(num_samples - segment)
    return starts


def decode(path: str | Path, sample_rate: int) -> np.ndarray:
    """File -> mono float32 at sample_rate; EmbedError for undecodable, non-finite, silent or
    empty audio. A file that cannot be opened (missing, unreadable, an I/O error) raises its
    OSError instead: that says nothing about the audio and may pass (a network file system),
    so a caller can retry it."""
    with open(path, "rb") as handle:  # OSError here: the file, not its audio
        try:
            audio, sr = sf.read(handle, dtype="float32", always_2d=True)  # (T, C)
        except (sf.LibsndfileError, RuntimeError) as exc:
            reason = getattr(exc, "error_string", None) or exc
            raise EmbedError(f"{path}: cannot decode audio ({reason})") from None
    if not np.isfinite(audio).all():  # one NaN makes the whole log-mel and embedding NaN
        raise EmbedError(f"{path}: samples contain NaN or infinity; expected finite audio")
    peak = audible_peak(audio, sr) if audio.size else 1.0  # no samples: refused below
    peak_db = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_db < SILENCE_DBFS:
        raise EmbedError(
            f"{path}: silent (peak {peak_db:.1f} dBFS above {SILENCE_HIGHPASS_HZ:g} Hz); "
            f"expected a peak above {SILENCE_DBFS:g} dBFS"
        )
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]  # (T,)
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate).astype(np.float32, copy=False)
    if mono.size == 0:
        raise EmbedError(f"{path}: no audio samples (expected at least one)")
    return mono


class Embedder:
    """A loaded checkpoint that embeds files or waveforms in batches."""

    def __init__(
        self,
        model: ConditionalSimilarityNet,
        payload: dict,
        checkpoint_id: str,
        batch_size: int = DEFAULT_BATCH,
    ):
        self.model = model.eval()
        self.fast = model.for_inference()  # BatchNorm folded: what embeds, same outputs
        self.device = next(model.parameters()).device
        self.checkpoint_id = checkpoint_id
        self.model_name = payload["model_name"]
        self.sample_rate = model.sample_rate
        self.conditions = model.conditions
        self.dim = model.embedding_dim
        seconds = payload.get("config", {}).get("features", {}).get("segment_seconds", 3.0)
        self.segment = int(round(seconds * self.sample_rate))
        self.batch_size = batch_size
        self.file_chunk = FILE_CHUNK
        self.threads = torch.get_num_threads()  # CPU: pipeline threads of embed_files
        # Learned masks: a subspace is the full vector times the condition's mask (D,), so
        # subspace_masks holds the masks and each slice is the full range; fixed masks: blocks.
        self.subspace_masks: dict[str, np.ndarray] | None = None
        if model.learned_masks:
            masks = model.masks().detach().cpu().numpy()  # (K, D)
            self.subspace_masks = {c: masks[i] for i, c in enumerate(self.conditions)}
            self.subspace_slices = {c: slice(0, self.dim) for c in self.conditions}
        else:
            s = model.sub_dim
            self.subspace_slices = {
                c: slice(i * s, (i + 1) * s) for i, c in enumerate(self.conditions)
            }

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> Embedder:
        device = torch.device(device) if device is not None else default_device()
        model, payload = load_model(path, device)
        return cls(model, payload, file_id(path), batch_size)

    def embed_waveforms(self, waveforms: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """1-D waveforms (any lengths) at sample_rate -> (N, D) float32, by the segment rule."""
        clips = []
        for i, w in enumerate(waveforms):
            w = np.asarray(w, dtype=np.float32)
            if w.ndim != 1 or w.size == 0:
                raise EmbedError(f"waveform {i}: expected a non-empty 1-D array, got {w.shape}")
            if sample_rate != self.sample_rate:
                w = soxr.resample(w, sample_rate, self.sample_rate).astype(np.float32, copy=False)
            clips.append(w)
        return self._embed_clips(clips)

    def embed_files(self, paths: Iterable[str | Path]) -> np.ndarray:
        """Audio files -> (N, D).

        On CPU, chunks of files go to one thread per torch thread, each decoding and embedding
        its chunk with single-threaded torch operations (whole-pipeline parallelism beats
        splitting each small operation across cores); on CUDA one thread decodes ahead of the
        model.
        """
        paths = list(paths)
        if not paths:
            return np.zeros((0, self.dim), np.float32)
        chunks = [paths[i : i + self.file_chunk] for i in range(0, len(paths), self.file_chunk)]
        if self.device.type != "cpu" or self.threads <= 1:
            return self._embed_chunks_ahead(chunks)
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max_workers=self.threads) as pool:
                out = list(pool.map(self._embed_paths, chunks))
        finally:
            torch.set_num_threads(before)
        return np.concatenate(out)

    def _embed_paths(self, paths: list) -> np.ndarray:
        return self._embed_clips([decode(p, self.sample_rate) for p in paths])

    def _embed_chunks_ahead(self, chunks: list[list]) -> np.ndarray:
        out = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(lambda c: [decode(p, self.sample_rate) for p in c], chunks[0])
            for j in range(len(chunks)):
                clips = pending.result()
                if j + 1 < len(chunks):
                    pending = pool.submit(
                        lambda c: [decode(p, self.sample_rate) for p in c], chunks[j + 1]
                    )
                out.append(self._embed_clips(clips))
        return np.concatenate(out)

    def subspace(self, vectors: np.ndarray, condition: str) -> np.ndarray:
        """(N, D) -> condition's (N, D/K) block (masked (N, D) for learned masks)."""
        if condition not in self.subspace_slices:
            raise ValueError(f"unknown condition {condition!r}; expected one of {self.conditions}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.subspace_masks is not None:
            return vectors * self.subspace_masks[condition]  # (N, D)
        return vectors[:, self.subspace_slices[condition]]

    def _embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        seg = self.segment
        n_fft = self.model.frontend.n_fft
        pieces, owner, short = [], [], []
        for i, w in enumerate(clips):
            if w.size < seg:
                short.append(i)
                continue
            for s in segment_starts(w.size, seg):
                pieces.append(w[s : s + seg])
                owner.append(i)
        out = np.zeros((len(clips), self.dim), np.float32)
        if pieces:
            emb = embed_batch(self.fast, np.stack(pieces), batch_size=self.batch_size)  # (S, D)
            sums = np.zeros_like(out)
            np.add.at(sums, np.asarray(owner), emb)
            counts = np.bincount(owner, minlength=len(clips))[:, None]  # (N, 1)
            np.divide(sums, np.maximum(counts, 1), out=out, where=counts > 0)
        by_length: dict[int, list[int]] = {}
        for i in short:  # whole clip in one piece, batched with clips of the same length
            by_length.setdefault(max(clips[i].size, n_fft), []).append(i)
        for length, idx in by_length.items():
            batch = np.stack([np.pad(clips[i], (0, length - clips[i].size)) for i in idx])
            out[idx] = embed_batch(self.fast, batch, batch_size=self.batch_size)
        return out
