"""`csn bench-speed` on a tiny corpus: both paths run and compute the same embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from csn_model.cli import main
from csn_model.inference import Embedder
from csn_model.speed import _features, embed_naive, make_corpus, run_speed


def test_it_gets_the_same_embeddings_on_the_fast_and_naive_paths(smoke_run, tmp_path):
    emb = Embedder.from_checkpoint(smoke_run, device="cpu", target_lufs=None)  # naive: no level
    paths = make_corpus(tmp_path, 3, 2.5, 44100, "flac")  # resampled, 2 segments + remainder
    fast = emb.embed_files(paths)
    naive = embed_naive(emb.model, paths, emb.segment, _features(emb))
    np.testing.assert_allclose(fast, naive, rtol=1e-3, atol=1e-3)


def test_it_reports_throughput_flops_and_peak(smoke_run):
    r = run_speed(smoke_run, files=2, seconds=1.0, naive_files=1, repeats=1)
    for key in ("fast_x_real_time", "naive_x_real_time", "matmul_peak_gflops"):
        assert np.isfinite(r[key]) and r[key] > 0
    assert r["ratio_fast_to_naive"] == r["fast_x_real_time"] / r["naive_x_real_time"]
    stages = r["mflop_by_stage_per_audio_second"]
    assert stages["total"] == sum(v for k, v in stages.items() if k != "total")


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--checkpoint", "nope.pt"], ["nope.pt", "no such checkpoint"]),
        (["--files", "2", "--naive-files", "3"], ["--naive-files 3", "at most --files (2)"]),
        (["--seconds", "0.00001"], ["--seconds 1e-05", "one sample"]),
    ],
)
def test_it_names_what_bench_speed_cannot_measure(tmp_path, monkeypatch, capsys, argv, names):
    monkeypatch.chdir(tmp_path)
    assert main(["bench-speed", "--files", "1", "--naive-files", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("csn bench-speed: error: ") and "Traceback" not in err
    for name in names:
        assert name in err, err
