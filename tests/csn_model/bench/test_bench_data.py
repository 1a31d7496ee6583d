"""`csn bench` and its saved triplets are tied to a dataset's content, not only its path; `--from`
refuses a "new" csn synth dataset that re-renders the training pieces (same seed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from csn_model.cli import main
from csn_model.data.fingerprint import dataset_fingerprint
from tests.csn_model.bench.conftest import TINY, _csn_only

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_cfg(tmp_path):
    from csn_model.bench_config import load_bench_config

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    return load_bench_config(config)


def test_it_refuses_a_run_folder_whose_dataset_changed_at_the_same_path(
    tiny_dataset, tmp_path, capsys
):
    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    args = [*_csn_only(tmp_path), "--data", str(data)]
    assert main(args) == 0
    before = dataset_fingerprint(data)
    record = tmp_path / "run" / "dataset.json"
    assert json.loads(record.read_text()) == {"root": str(data.resolve()), "fingerprint": before}
    test_track = sorted((data / "test").iterdir())[0] / "metadata.yaml"
    test_track.write_text(test_track.read_text() + "# regenerated\n")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    for part in (str(record), "has changed since", before, dataset_fingerprint(data), "--out"):
        assert part in err


def test_it_refuses_a_dataset_record_from_before_fingerprints_and_says_what_to_write(
    tiny_dataset, tmp_path, capsys
):
    args = [*_csn_only(tmp_path), "--data", str(tiny_dataset)]
    assert main(args) == 0
    record = tmp_path / "run" / "dataset.json"
    record.write_text(json.dumps({"root": str(tiny_dataset.resolve())}))  # as written before
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    line = {"root": str(tiny_dataset.resolve()), "fingerprint": dataset_fingerprint(tiny_dataset)}
    assert "predates dataset fingerprints" in err and json.dumps(line) in err


def test_it_refuses_saved_triplets_from_before_fingerprints(tiny_dataset, tmp_path):
    from csn_model.bench_score import eval_triplets
    from csn_model.data.slakh import SlakhDataset
    from csn_model.data.triplets import load_triplets, save_triplets

    cfg = _tiny_cfg(tmp_path)
    folder = tmp_path / "triplets"
    eval_triplets(SlakhDataset(tiny_dataset), folder, cfg)
    path = folder / "test_pseudo.json"
    triplets, meta = load_triplets(path)
    del meta["fingerprint"]
    save_triplets(path, triplets, meta)
    with pytest.raises(ValueError) as err:
        eval_triplets(SlakhDataset(tiny_dataset), folder, cfg)
    assert str(path) in str(err.value) and "predates dataset fingerprints" in str(err.value)


def test_it_refuses_triplets_whose_instrument_is_not_audible_where_they_say(tiny_dataset, tmp_path):
    from csn_model.bench_score import eval_triplets
    from csn_model.data.slakh import DataError, SlakhDataset
    from csn_model.data.triplets import load_triplets, save_triplets

    cfg = _tiny_cfg(tmp_path)
    folder = tmp_path / "triplets"
    eval_triplets(SlakhDataset(tiny_dataset), folder, cfg)
    path = folder / "test_pseudo.json"
    doc = json.loads(path.read_text())
    k = ["drums", "bass", "piano", "guitar", "others"].index(doc["triplets"][1]["condition"])
    track, start = doc["triplets"][1]["negative"][k]
    doc["triplets"][1]["negative"][k] = [track, start + 1]  # off the sampler's segment grid
    triplets, meta = load_triplets(path)
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError) as err:
        eval_triplets(SlakhDataset(tiny_dataset), folder, cfg)
    for part in (str(path), "triplets[1]", f"negative's {triplets[1].condition} part", track):
        assert part in str(err.value)
    save_triplets(path, triplets, meta)  # the file as made is accepted
    assert eval_triplets(SlakhDataset(tiny_dataset), folder, cfg)["pseudo"][0] == triplets


def test_it_refuses_to_score_on_a_dataset_that_re_renders_the_training_pieces(
    tiny_dataset, tmp_path
):
    import pretty_midi

    from csn_model.bench import _check_new_compositions, score_run
    from csn_model.data.slakh import SlakhDataset
    from csn_model.data.synth import synthesize

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(TINY)
    (run / "checkpoints.json").write_text("{}")
    (run / "dataset.json").write_text(json.dumps({"root": str(tiny_dataset.resolve())}))
    soundfont = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"  # "a new soundfont"
    same, new = tmp_path / "same_seed", tmp_path / "new_seed"
    for root, seed in ((same, 3), (new, 4)):  # tiny_dataset's seed is 3
        synthesize(
            root, 2, seed, soundfont=soundfont, seconds=1.0, workers=1,
            split_fractions=(0.0, 0.0, 1.0), progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError) as err:
        score_run(run, same)
    for part in (
        str(same / "csn_synth.json"), str(tiny_dataset / "csn_synth.json"), "same seed (3)",
        "test/Track00001", "another --seed",
    ):  # fmt: skip
        assert part in str(err.value)
    assert not (run / "eval").exists()
    _check_new_compositions(run / "dataset.json", SlakhDataset(new))  # another seed: new pieces
