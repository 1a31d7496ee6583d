"""Embedding audio with a trained checkpoint, for the rest of the platform.

    emb = Embedder.from_checkpoint(path)        # load once per process; CUDA if available
    vectors = emb.embed_files(paths)            # (N, D) float32
    drums = emb.subspace(vectors, "drums")      # (N, D/K)

Level: by default each file is first brought to the site's default loudness target (BS.1770
integrated loudness as played, -23 LUFS, peaks kept under -1 dBFS: csn_model.loudness, the
functions the site uses, `fit_gain`), measured on the file's own channels before they are mixed
to mono (on the mono mix when it has more than the site takes, 1-2), in a streaming pass; a gain
under 0.05 dB is not applied (a clip stored at the target). The model's log-mel is not
level-invariant (the same piece 6 dB quieter lands elsewhere), so this is what makes the vectors
of the Python API match the site's for the same file, when target_lufs is the level the site's
catalogue is stored at (its search answer's `catalogue_lufs`; -23 unless imported or studied at
another loudness target). A 1-D waveform is levelled as a mono file.
`target_lufs=None` (`csn embed --no-level`) embeds audio at the level it arrives.

Long files, the rule: audio is decoded, mixed to mono and resampled (soxr) to the model's rate,
then cut into consecutive non-overlapping segments of the training segment length S
(features.segment_seconds of the checkpoint's config, 3 s by default) starting at 0; a remainder
of at least S/2 adds one last segment that ends at the end of the file (overlapping the previous
one), a shorter remainder is dropped. The file's embedding is the unweighted mean of its segment
embeddings. A file no longer than S is embedded whole, in one piece (zero-padded to one FFT
window if shorter than that). Segments of all files are batched together.

A file that cannot be decoded, holds a NaN or infinite sample, is silent (peak above 20 Hz below
-60 dBFS in the mono mix the model hears: the catalogue's threshold, csn_model.silence) or has no
samples raises EmbedError naming it; one that cannot be opened or read raises its OSError.
`embed_files` raises at the first bad file; `try_embed_files` embeds the others and returns every
failure with its reason. Waveforms are checked by the same rules (EmbedError naming the row).

Memory: files are decoded in blocks, mixed to mono and resampled block by block (when levelling,
the file is decoded twice: once to measure its loudness block by block, once to embed it); a
pipeline thread embeds the clips it holds as soon as they reach `Embedder.sample_budget` samples,
and builds at most `batch_size` segments at a time, so it holds at most the budget plus one file
(on the decode-ahead path, CUDA or one thread, about twice the budget plus one file: one group
is decoded while the one before is embedded).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from csn_model.checkpoint import file_id, load_model
from csn_model.loudness import DEFAULT_TARGET_LUFS, LevelError, LevelMeter, fit_gain
from csn_model.model import ConditionalSimilarityNet
from csn_model.silence import SILENCE_DBFS, SILENCE_HIGHPASS_HZ, HighPass

DEFAULT_BATCH = 64
FILE_CHUNK = 16  # files per unit of work (one pipeline thread's share) in embed_files
# Decoded samples (mono, model rate) a pipeline thread holds before it embeds them: 32 MiB of
# float32, 6.3 min at 22.05 kHz. Enough to batch many short files; bounds memory for long ones.
SAMPLE_BUDGET = 1 << 23
READ_BLOCK = 1 << 18  # frames decoded at a time (1 MiB of float32 per channel)


class EmbedError(ValueError):
    """Audio that cannot be embedded; the message names the file and what was expected."""


@dataclass(frozen=True)
class FileFailure:
    """A file `try_embed_files` could not embed: EmbedError (its audio) or OSError (unreadable)."""

    path: str | Path
    error: EmbedError | OSError

    @property
    def reason(self) -> str:
        """Why, without the path (one line)."""
        if isinstance(self.error, EmbedError):
            return str(self.error).removeprefix(f"{self.path}: ")
        why = self.error.strerror or type(self.error).__name__
        return f"cannot read the file ({why})"


@dataclass(frozen=True)
class FilesEmbedded:
    """What `try_embed_files` returns: the files embedded (input order), their (M, D) vectors
    (row i is files[i]) and the files that failed (input order)."""

    files: list
    vectors: np.ndarray
    failed: list[FileFailure]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: str | torch.device | None) -> torch.device:
    """The torch.device to embed on; ValueError naming the device when this process cannot use
    it (no CUDA, or a GPU index it does not see). None: CUDA when available, else CPU."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device {device!r}: expected cpu, cuda or cuda:N (or None: CUDA when available)"
        ) from None
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        why = (
            "this PyTorch was built without CUDA"
            if torch.version.cuda is None
            else "CUDA is not available to this process (no GPU visible, or no driver)"
        )
    else:
        n = torch.cuda.device_count()
        if (dev.index or 0) < n:
            return dev
        why = f"this process sees {n} GPU(s), cuda:0 to cuda:{n - 1}"
    raise ValueError(f"device {str(device)!r}: {why}; expected cpu or a GPU this process sees")


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


def decode(
    path: str | Path, sample_rate: int, target_lufs: float | None = DEFAULT_TARGET_LUFS
) -> np.ndarray:
    """File -> mono float32 at sample_rate, brought to target_lufs (None: as it is); EmbedError
    for undecodable, non-finite, silent or empty audio. A file that cannot be opened (missing,
    unreadable, an I/O error) raises its OSError instead: that says nothing about the audio and
    may pass (a network file system), so a caller can retry it. Decoded in blocks, never held
    whole at its native channels and rate (with a target, twice: `_levelled`)."""
    with open(path, "rb") as handle:  # OSError here: the file, not its audio
        try:
            with sf.SoundFile(handle) as f:
                if target_lufs is None:
                    return prepare(_mono_blocks(f), f.samplerate, sample_rate, str(path))
                return _levelled(f, sample_rate, target_lufs, str(path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            reason = getattr(exc, "error_string", None) or exc
            raise EmbedError(f"{path}: cannot decode audio ({reason})") from None


def _levelled(f: sf.SoundFile, sample_rate: int, target_lufs: float, name: str) -> np.ndarray:
    """The file's clip brought to target_lufs: its loudness measured in a first pass over its
    blocks (LevelMeter: on its own channels, as the site measures them, or on the mono mix of
    more than the site takes), the gain applied in a second. Neither pass holds the file."""
    if f.samplerate <= 2 * SILENCE_HIGHPASS_HZ:  # prepare refuses it
        return prepare(_mono_blocks(f), f.samplerate, sample_rate, name)
    meter = LevelMeter(f.samplerate, f.channels)
    while len(block := f.read(READ_BLOCK, dtype="float32", always_2d=True)):  # (t, C)
        _check_finite(block, name)
        meter.add(block)
    try:
        gain = meter.gain(target_lufs)
    except LevelError as exc:
        raise EmbedError(f"{name}: {exc}") from None
    f.seek(0)
    return prepare(_mono_blocks(f), f.samplerate, sample_rate, name, gain)


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():  # one NaN makes the whole log-mel and embedding NaN
        raise EmbedError(f"{name}: samples contain NaN or infinity; expected finite audio")


def _gain(data: np.ndarray, sr: int, target_lufs: float, name: str) -> float:
    """fit_gain; 1.0 at a rate prepare refuses."""
    if sr <= 2 * SILENCE_HIGHPASS_HZ:
        return 1.0
    try:
        return fit_gain(data, sr, target_lufs)
    except LevelError as exc:
        raise EmbedError(f"{name}: {exc}") from None


def _mono_blocks(f: sf.SoundFile) -> Iterator[np.ndarray]:
    while len(block := f.read(READ_BLOCK, dtype="float32", always_2d=True)):  # (t, C)
        yield block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]  # (t,)


def prepare(
    blocks: Iterable[np.ndarray], sr: int, sample_rate: int, name: str, gain: float = 1.0
) -> np.ndarray:
    """Consecutive mono blocks (t,) at sr -> the clip (T,) at sample_rate, times gain, resampled
    (soxr HQ) block by block. EmbedError starting with `name` for a NaN or infinite sample, no
    samples, or silence: judged on the mono signal the model embeds before the gain (a stereo
    file whose channels cancel is silent)."""
    if sr <= 2 * SILENCE_HIGHPASS_HZ:  # the silence high-pass needs it
        raise EmbedError(
            f"{name}: sample rate {sr} Hz; expected above {2 * SILENCE_HIGHPASS_HZ:g} Hz"
        )
    highpass = HighPass(sr)
    stream = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32") if sr != sample_rate else None
    peak, count, out = 0.0, 0, []
    for block in blocks:
        _check_finite(block, name)
        peak = max(peak, float(np.max(np.abs(highpass(block[:, None])), initial=0.0)))
        count += block.size
        if gain != 1.0:
            block = (block * gain).astype(np.float32)
        out.append(stream.resample_chunk(block) if stream else block)
    if stream is not None:
        out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    mono = np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)
    if count == 0 or mono.size == 0:
        raise EmbedError(f"{name}: no audio samples (expected at least one)")
    peak_db = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_db < SILENCE_DBFS:
        raise EmbedError(
            f"{name}: silent (peak {peak_db:.1f} dBFS above {SILENCE_HIGHPASS_HZ:g} Hz); "
            f"expected a peak above {SILENCE_DBFS:g} dBFS"
        )
    return mono


class Embedder:
    """A loaded checkpoint that embeds files or waveforms in batches."""

    def __init__(
        self,
        model: ConditionalSimilarityNet,
        payload: dict,
        checkpoint_id: str,
        batch_size: int = DEFAULT_BATCH,
        target_lufs: float | None = DEFAULT_TARGET_LUFS,
    ):
        self.model = model.eval()
        self.target_lufs = target_lufs  # None: audio is embedded at the level it arrives
        self.fast = model.for_inference()  # BatchNorm folded: what embeds, same outputs
        self.device = next(model.parameters()).device
        self.checkpoint_id = checkpoint_id
        self.model_name = payload["model_name"]
        self.sample_rate = model.sample_rate
        self.conditions = model.conditions
        self.dim = model.embedding_dim
        seconds = payload["config"]["features"]["segment_seconds"]  # checked by load_checkpoint
        self.segment = int(round(seconds * self.sample_rate))
        self.batch_size = batch_size
        self.file_chunk = FILE_CHUNK
        self.sample_budget = SAMPLE_BUDGET
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
        target_lufs: float | None = DEFAULT_TARGET_LUFS,
    ) -> Embedder:
        model, payload = load_model(path, check_device(device))
        return cls(model, payload, file_id(path), batch_size, target_lufs)

    def embed_waveforms(self, waveforms: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """1-D waveforms (any lengths) at sample_rate -> (N, D) float32, by the segment rule,
        each levelled as a mono file to target_lufs (unless None). EmbedError ("waveform i:
        ...") for a row that is not 1-D, is empty, holds a NaN or infinite sample or is silent:
        the rules of files."""
        clips = []
        for i, w in enumerate(waveforms):
            w = np.asarray(w, dtype=np.float32)
            if w.ndim != 1 or w.size == 0:
                raise EmbedError(f"waveform {i}: expected a non-empty 1-D array, got {w.shape}")
            name = f"waveform {i}"
            gain = 1.0
            if self.target_lufs is not None:
                _check_finite(w, name)
                gain = _gain(w, sample_rate, self.target_lufs, name)
            blocks = (w[s : s + READ_BLOCK] for s in range(0, w.size, READ_BLOCK))
            clips.append(prepare(blocks, sample_rate, self.sample_rate, name, gain))
        return self._embed_clips(clips)

    def embed_files(self, paths: Iterable[str | Path]) -> np.ndarray:
        """Audio files -> (N, D); raises at the first file (input order) that cannot be embedded
        (EmbedError, or the OSError of a file that cannot be read). `try_embed_files` embeds the
        others and reports every failure.

        On CPU, chunks of files go to one thread per torch thread, each decoding and embedding
        its chunk with single-threaded torch operations (whole-pipeline parallelism beats
        splitting each small operation across cores); on CUDA one thread decodes ahead of the
        model.
        """
        return self._embed_all(list(paths), None)[1]

    def try_embed_files(self, paths: Iterable[str | Path]) -> FilesEmbedded:
        """Audio files -> the embeddings of those that can be embedded, and every one that cannot
        (EmbedError or OSError) with its reason; nothing is skipped silently."""
        paths = list(paths)
        failed: list[tuple[int, EmbedError | OSError]] = []
        done, vectors = self._embed_all(paths, failed)
        return FilesEmbedded(
            files=[paths[i] for i in done],
            vectors=vectors,
            failed=[FileFailure(paths[i], exc) for i, exc in sorted(failed, key=lambda f: f[0])],
        )

    def _embed_all(self, paths: list, failed: list | None) -> tuple[list[int], np.ndarray]:
        """(indices of the files embedded, their (M, D) vectors). failed=None: raise at the
        first bad file; else append (index, error) to it and go on."""
        items = list(enumerate(paths))
        if self.device.type != "cpu" or self.threads <= 1:
            parts = self._embed_groups_ahead(items, failed)
        else:
            chunks = [items[i : i + self.file_chunk] for i in range(0, len(items), self.file_chunk)]
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(max_workers=self.threads) as pool:
                    done = pool.map(lambda chunk: self._embed_chunk(chunk, failed), chunks)
                    parts = [part for chunk_parts in done for part in chunk_parts]
            finally:
                torch.set_num_threads(before)
        indices = [i for ids, _ in parts for i in ids]
        if not parts:
            return indices, np.zeros((0, self.dim), np.float32)
        return indices, np.concatenate([v for _, v in parts])  # (M, D)

    def _groups(self, items: list, failed: list | None) -> Iterator[tuple[list, list]]:
        """Decode (index, path) items one at a time; yield (indices, clips) whenever the clips
        held reach sample_budget samples, and the rest at the end."""
        ids: list[int] = []
        clips: list[np.ndarray] = []
        held = 0
        for i, path in items:
            try:
                clips.append(decode(path, self.sample_rate, self.target_lufs))
            except (EmbedError, OSError) as exc:
                if failed is None:
                    raise
                failed.append((i, exc))  # list.append is atomic: threads share the list
                continue
            ids.append(i)
            held += clips[-1].size
            if held >= self.sample_budget:
                yield ids, clips
                ids, clips, held = [], [], 0
        if clips:
            yield ids, clips

    def _embed_chunk(self, items: list, failed: list | None) -> list[tuple[list, np.ndarray]]:
        return [(ids, self._embed_clips(clips)) for ids, clips in self._groups(items, failed)]

    def _embed_groups_ahead(self, items: list, failed: list | None) -> list:
        out = []
        groups = self._groups(items, failed)
        with ThreadPoolExecutor(max_workers=1) as pool:  # decodes the next group meanwhile
            pending = pool.submit(next, groups, None)
            while (group := pending.result()) is not None:
                pending = pool.submit(next, groups, None)
                out.append((group[0], self._embed_clips(group[1])))
        return out

    def subspace(self, vectors: np.ndarray, condition: str) -> np.ndarray:
        """(N, D) -> condition's (N, D/K) block (masked (N, D) for learned masks)."""
        if condition not in self.subspace_slices:
            raise ValueError(f"unknown condition {condition!r}; expected one of {self.conditions}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.subspace_masks is not None:
            return vectors * self.subspace_masks[condition]  # (N, D)
        return vectors[:, self.subspace_slices[condition]]

    def _embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        seg, step = self.segment, self.batch_size
        n_fft = self.model.frontend.n_fft
        pieces = [  # (clip, start) of every segment of the clips longer than one segment
            (i, s)
            for i, w in enumerate(clips)
            if w.size >= seg
            for s in segment_starts(w.size, seg)
        ]
        out = np.zeros((len(clips), self.dim), np.float32)
        if pieces:
            sums = np.zeros_like(out)
            for b in range(0, len(pieces), step):  # at most batch_size segments stacked
                part = pieces[b : b + step]
                batch = np.stack([clips[i][s : s + seg] for i, s in part])  # (b, seg)
                emb = embed_batch(self.fast, batch, batch_size=step)  # (b, D)
                np.add.at(sums, np.asarray([i for i, _ in part]), emb)
            counts = np.bincount([i for i, _ in pieces], minlength=len(clips))[:, None]  # (N, 1)
            np.divide(sums, np.maximum(counts, 1), out=out, where=counts > 0)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(clips):  # shorter: whole clip in one piece, batched by length
            if w.size < seg:
                by_length.setdefault(max(w.size, n_fft), []).append(i)
        for length, same in by_length.items():
            for b in range(0, len(same), step):
                idx = same[b : b + step]
                batch = np.stack([np.pad(clips[i], (0, length - clips[i].size)) for i in idx])
                out[idx] = embed_batch(self.fast, batch, batch_size=step)  # (b, D)
        return out
