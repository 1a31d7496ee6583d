"""Loading checkpoints: every file that is not a usable csn checkpoint is refused with one line
(CheckpointError) naming the file and what it is or what is wrong, and `csn embed` prints that
line and exits 2."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from csn_model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    make_payload,
    save_checkpoint,
)
from csn_model.cli import main
from csn_model.config import to_dict
from csn_model.model import build_model, model_args_from_config


@pytest.fixture(scope="module")
def payload(smoke_cfg) -> dict:
    """What `csn train` writes for the smoke config (untrained weights: loading is what counts)."""
    args = model_args_from_config(smoke_cfg, "csn")
    return make_payload("csn", args, build_model("csn", args), to_dict(smoke_cfg), step=0)


@pytest.fixture()
def good(payload, tmp_path):
    return save_checkpoint(tmp_path / "final.pt", payload)


def _refusal(path) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message, message
    assert "weights_only" not in message, message  # never advise the unsafe load
    return message


def _changed(payload, tmp_path, change) -> object:
    p = copy.deepcopy(payload)
    change(p)
    return save_checkpoint(tmp_path / "changed.pt", p)


# --- files that are no csn checkpoint ----------------------------------------------------------


def test_it_loads_what_save_checkpoint_wrote(good):
    model, loaded = load_model(good)
    assert loaded["model_name"] == "csn" and model.embedding_dim == 40


def test_it_calls_a_text_file_not_a_csn_checkpoint(tmp_path):
    path = tmp_path / "text.pt"
    path.write_text("not a checkpoint\n")
    message = _refusal(path)
    assert "not a csn checkpoint" in message and "text" in message, message


def test_it_calls_a_numpy_file_not_a_csn_checkpoint(tmp_path):
    path = tmp_path / "arr.npy"
    np.save(path, np.zeros(3))
    message = _refusal(path)
    assert "not a csn checkpoint" in message and "NumPy" in message, message


def test_it_calls_a_plain_pickle_not_a_csn_checkpoint(tmp_path):
    path = tmp_path / "pickle.pt"
    path.write_bytes(pickle.dumps({"a": object}))
    message = _refusal(path)
    assert "not a csn checkpoint" in message and "pickle" in message, message


def test_it_calls_a_torch_file_of_other_objects_not_a_csn_checkpoint(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)
    message = _refusal(path)
    assert "not a csn checkpoint" in message and "torch.nn.modules.linear.Linear" in message


def test_it_calls_a_torch_file_of_a_list_not_a_csn_checkpoint(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    message = _refusal(path)
    assert "not a csn checkpoint" in message and "list" in message, message


def test_it_says_an_empty_file_is_empty(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    message = _refusal(path)
    assert "empty file" in message and "()" not in message, message


def test_it_says_a_truncated_checkpoint_is_truncated(good, tmp_path):
    path = tmp_path / "trunc.pt"
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or damaged" in _refusal(path)


def test_it_names_a_bare_state_dict_and_how_to_make_a_checkpoint(payload, tmp_path):
    path = tmp_path / "state_dict.pt"
    torch.save(payload["state_dict"], path)
    message = _refusal(path)
    assert "a bare state_dict, not a csn checkpoint (save with csn train)" in message, message
    assert "misses" not in message, message


def test_it_names_the_first_tensor_of_another_architecture_and_how_many_differ(payload, tmp_path):
    def wider(p):
        p["model_args"]["channels"] = [8, 16]  # the smoke config's are [4, 8]

    message = _refusal(_changed(payload, tmp_path, wider))
    assert "made for another architecture" in message, message
    assert "encoder.blocks.0.weight" in message and "size mismatch" not in message, message
    assert "[4, 1, 3, 3]" in message and "[8, 1, 3, 3]" in message, message
    assert "11 of 22 tensors differ" in message, message


def test_it_names_a_tensor_the_state_dict_lacks(payload, tmp_path):
    message = _refusal(_changed(payload, tmp_path, lambda p: p["state_dict"].pop("fixed_masks")))
    assert "made for another architecture" in message and "fixed_masks" in message, message


# --- malformed contents ------------------------------------------------------------------------


def _set(section: str, field: str, value):
    def change(p):
        if section == "config.features":
            p["config"]["features"][field] = value
        else:
            p["model_args"]["features"][field] = value

    return change


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (lambda p: p.update(config=None), ["config", "mapping"]),
        (lambda p: p["config"].update(features=3), ["config.features", "mapping"]),
        (_set("config.features", "segment_seconds", "3"), ["config.features.segment_seconds"]),
        (_set("config.features", "segment_seconds", -1.0), ["config.features.segment_seconds"]),
        (lambda p: p["config"]["features"].pop("segment_seconds"), ["segment_seconds"]),
        (_set("model_args", "sample_rate", 0), ["model_args.features.sample_rate", "got 0"]),
        (_set("model_args", "n_fft", 2.5), ["model_args.features.n_fft"]),
        (lambda p: p.update(model_args="nonsense"), ["model_args", "mapping"]),
        (lambda p: p["model_args"].pop("hidden"), ["model_args", "hidden"]),
        (lambda p: p["model_args"].update(new_arg=1), ["model_args.new_arg"]),
        (lambda p: p["model_args"].update(embedding_dim=42), ["model_args.embedding_dim"]),
        (lambda p: p["model_args"].update(channels=[8, 0]), ["model_args.channels"]),
        (lambda p: p["model_args"].update(conditions=[]), ["model_args.conditions"]),
        (lambda p: p.update(model_name="csn_v0"), ["model_name", "csn_v0"]),
        (lambda p: p.update(state_dict=[1, 2]), ["state_dict", "mapping"]),
    ],
)
def test_it_refuses_malformed_contents_naming_the_field(payload, tmp_path, change, names):
    message = _refusal(_changed(payload, tmp_path, change))
    for name in names:
        assert name in message, message


def test_load_checkpoint_checks_the_contents_too(payload, tmp_path):
    path = _changed(payload, tmp_path, lambda p: p.update(config=None))
    with pytest.raises(CheckpointError, match="config"):
        load_checkpoint(path)


def test_it_loads_a_checkpoint_whose_config_lacks_later_fields(payload, tmp_path):
    # csn_model 0.1.0's configs had no train.absent_peak, train.pretrain_zero_others or data
    def older(p):
        for field in ("absent_peak", "pretrain_zero_others"):
            p["config"]["train"].pop(field)
        p["config"].pop("data")
        p["versions"]["csn_model"] = "0.1.0"

    load_model(_changed(payload, tmp_path, older))


def test_csn_embed_prints_one_line_and_exits_2(payload, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(22050, np.float32) + 0.1, 22050)
    path = _changed(
        payload, tmp_path, lambda p: p["config"]["features"].update(segment_seconds="3")
    )
    assert (
        main(["embed", str(wav), "--checkpoint", str(path), "--out", str(tmp_path / "o.npy")]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"csn embed: error: {path}: "), err
    assert "config.features.segment_seconds" in err, err
