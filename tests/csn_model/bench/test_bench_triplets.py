"""`csn bench`'s saved test triplets: refused when made for other data or settings, or empty."""

from __future__ import annotations

import pytest

from csn_model.data.triplets import SAMPLER_VERSION
from tests.csn_model.bench.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("field", "saved"),
    [
        ("dataset", "/data/another_dataset"),
        ("fingerprint", "0123456789abcdef"),
        ("split", "validation"),
        ("kind", "natural"),
        ("per_condition", 999),
        ("seed", 1),
        ("segment_frames", 11025),
        ("sample_rate", 44100),
        ("sampler", 1),  # made by the sampler before the D = B fix (2026-12-06)
    ],
)
def test_it_refuses_saved_triplets_made_for_other_data_or_settings(
    tiny_dataset, tmp_path, field, saved
):
    from csn_model.bench_config import load_bench_config
    from csn_model.bench_score import eval_triplets
    from csn_model.data.slakh import SlakhDataset
    from csn_model.data.triplets import save_triplets

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    cfg = load_bench_config(config)
    meta = _pseudo_meta(tiny_dataset, cfg, 22050)
    path = tmp_path / "triplets" / "test_pseudo.json"
    save_triplets(path, [], {**meta, field: saved})
    with pytest.raises(ValueError) as err:
        eval_triplets(SlakhDataset(tiny_dataset), path.parent, cfg)
    for name in (str(path), f"meta.{field}", repr(saved), repr(meta[field])):
        assert name in str(err.value)
    # The same dataset named by another path (here a symbolic link) is the same dataset.
    path.unlink()
    made = eval_triplets(SlakhDataset(tiny_dataset), path.parent, cfg)["pseudo"][0]
    (tmp_path / "link").symlink_to(tiny_dataset)
    assert eval_triplets(SlakhDataset(tmp_path / "link"), path.parent, cfg)["pseudo"][0] == made


def test_it_refuses_an_empty_triplet_set_and_saves_nothing(tmp_path):
    from csn_model.bench_config import load_bench_config
    from csn_model.bench_score import eval_triplets
    from csn_model.data.slakh import DataError, SlakhDataset
    from csn_model.data.synth import synthesize

    short = tmp_path / "short"  # 1.5-s tracks: too short for two 1-s segments
    synthesize(short, 4, 5, seconds=1.5, workers=1, split_fractions=(0, 0, 1), progress=False)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    folder = tmp_path / "triplets"
    cfg = load_bench_config(config)
    with (
        pytest.warns(UserWarning, match="no pseudo triplets possible"),
        pytest.raises(DataError) as err,
    ):
        eval_triplets(SlakhDataset(short), folder, cfg)
    for part in ("no pseudo triplets", "4 test tracks", str(short), "1-s segments"):
        assert part in str(err.value)
    assert not folder.exists() or not any(folder.iterdir())


def test_it_refuses_an_empty_triplet_file_that_earlier_versions_saved(tiny_dataset, tmp_path):
    from csn_model.bench_config import load_bench_config
    from csn_model.bench_score import eval_triplets
    from csn_model.data.slakh import DataError, SlakhDataset
    from csn_model.data.triplets import save_triplets

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    cfg = load_bench_config(config)
    ds = SlakhDataset(tiny_dataset)
    path = tmp_path / "triplets" / "test_pseudo.json"
    meta = _pseudo_meta(tiny_dataset, cfg, ds.sample_rate)
    save_triplets(path, [], meta)
    with pytest.raises(DataError) as err:
        eval_triplets(ds, path.parent, cfg)
    assert str(path) in str(err.value) and "delete it" in str(err.value)


def _pseudo_meta(dataset, cfg, sample_rate: int) -> dict:
    """The meta a saved test-split pseudo triplet file carries for this dataset and config."""
    from csn_model.data.fingerprint import dataset_fingerprint

    return {
        "dataset": str(dataset.resolve()),
        "fingerprint": dataset_fingerprint(dataset),
        "split": "test",
        "kind": "pseudo",
        "per_condition": cfg.bench.per_condition,
        "seed": cfg.bench.eval_seed,
        "segment_frames": cfg.features.segment_frames,
        "sample_rate": sample_rate,
        "sampler": SAMPLER_VERSION,
    }
