"""A batch with bad files: the good files are embedded and every bad one is named, from
`Embedder.try_embed_files` and from `csn embed` (exit status 3)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from csn_model.cli import main
from csn_model.embed_cli import EXIT_FILES_FAILED
from csn_model.inference import Embedder


@pytest.fixture(scope="module")
def embedder(smoke_run):
    return Embedder.from_checkpoint(smoke_run, device="cpu")


@pytest.fixture
def batch(tmp_path):
    """Files in input order: good, NaN, good, silent, undecodable, missing, good."""
    rng = np.random.default_rng(1)

    def good(name):
        path = tmp_path / name
        sf.write(path, (0.1 * rng.standard_normal(11025)).astype(np.float32), 22050)
        return path

    nan = np.full(11025, 0.1, np.float32)
    nan[7] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 22050, subtype="FLOAT")
    sf.write(tmp_path / "silent.wav", np.zeros(11025, np.float32), 22050)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + bytes(200))
    names = ["a.wav", "nan.wav", "b.wav", "silent.wav", "corrupt.wav", "gone.wav", "c.wav"]
    return [good(n) if n in ("a.wav", "b.wav", "c.wav") else tmp_path / n for n in names]


@pytest.mark.parametrize("threads", [2, 1])  # 1: the decode-ahead path that CUDA takes
def test_it_embeds_the_good_files_and_reports_every_bad_one(embedder, batch, monkeypatch, threads):
    monkeypatch.setattr(embedder, "file_chunk", 2)  # bad files in several chunks
    monkeypatch.setattr(embedder, "threads", threads)
    monkeypatch.setattr(embedder, "sample_budget", 20000)  # several groups
    result = embedder.try_embed_files(batch)
    good = [batch[0], batch[2], batch[6]]
    assert result.files == good
    # other batch neighbours than in the call below: equal to float rounding
    np.testing.assert_allclose(result.vectors, embedder.embed_files(good), rtol=1e-5, atol=1e-6)
    assert [f.path for f in result.failed] == [batch[1], batch[3], batch[4], batch[5]]
    reasons = [f.reason for f in result.failed]
    assert "NaN or infinity" in reasons[0] and reasons[1].startswith("silent")
    assert reasons[2].startswith("cannot decode") and "No such file" in reasons[3]
    assert not any(str(f.path) in f.reason for f in result.failed)  # the path is separate


def test_it_writes_the_good_files_to_json_and_names_every_bad_one(
    smoke_run, batch, tmp_path, capsys
):
    out = tmp_path / "e.json"
    argv = ["embed", *map(str, batch), "--checkpoint", str(smoke_run), "--out", str(out)]
    assert main(argv) == EXIT_FILES_FAILED != 2
    doc = json.loads(out.read_text())
    assert doc["files"] == [str(batch[i]) for i in (0, 2, 6)] and len(doc["embeddings"]) == 3
    assert [f["file"] for f in doc["failed"]] == [str(batch[i]) for i in (1, 3, 4, 5)]
    assert all(f["reason"] for f in doc["failed"])
    lines = capsys.readouterr().err.splitlines()
    for i in (1, 3, 4, 5):
        assert sum(ln.startswith(f"csn embed: error: {batch[i]}: ") for ln in lines) == 1
    assert "3 of 7 files embedded, 4 failed" in lines[-1]


def test_it_writes_the_good_files_rows_to_npy_when_some_fail(smoke_run, batch, tmp_path, capsys):
    out = tmp_path / "e.npy"
    argv = ["embed", *map(str, batch), "--checkpoint", str(smoke_run), "--out", str(out)]
    assert main(argv) == EXIT_FILES_FAILED
    assert np.load(out).shape == (3, 40)
    assert "gone.wav" in capsys.readouterr().err


def test_it_exits_zero_and_writes_no_failed_list_when_every_file_embeds(smoke_run, batch, tmp_path):
    out = tmp_path / "e.json"
    argv = ["embed", str(batch[0]), "--checkpoint", str(smoke_run), "--out", str(out)]
    assert main(argv) == 0
    assert json.loads(out.read_text())["failed"] == []


def test_it_says_stdout_could_not_be_written(smoke_run, batch, monkeypatch, capsys):
    class Full:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

    monkeypatch.setattr("sys.stdout", Full())
    assert main(["embed", str(batch[0]), "--checkpoint", str(smoke_run)]) == 2
    err = capsys.readouterr().err
    assert "cannot write the JSON to stdout: [Errno 28] No space left on device" in err
    assert "None" not in err
