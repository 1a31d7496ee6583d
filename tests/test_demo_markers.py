"""A demo stage finished earlier is reused only when it was made with the options given now
(sizes, seed, training steps); on a mismatch the demo stops and says how it was made and how to
remake it (no training, no database: the stage bookkeeping with stand-in stages). A marker
written before markers recorded their options counts as made with the defaults."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from evalsite.demo import Stages, build_parser, flags, options, rerun_flags
from evalsite.demo_options import DemoError, DemoOptions


def _opts(home: Path, **changed) -> DemoOptions:
    """The options of `make demo` with no ARGS (under `home`), but those `changed`."""
    return replace(options(build_parser().parse_args([])), home=home, **changed)


def _stage(calls: list[str]):
    def run(opts: DemoOptions) -> dict:
        calls.append(f"{opts.tracks} tracks")
        return {"summary": f"{opts.tracks} tracks"}

    return run


def test_it_reuses_a_stage_made_with_the_same_options(tmp_path):
    calls: list[str] = []
    Stages(_opts(tmp_path)).run(1, 4, "data", _stage(calls))
    # --simulate, --port and --no-serve shape no stage: they do not remake it
    Stages(_opts(tmp_path, simulate=5, port=8001)).run(1, 4, "data", _stage(calls))
    assert calls == ["40 tracks"]


def test_it_stops_when_a_finished_stage_was_made_with_other_options(tmp_path):
    calls: list[str] = []
    Stages(_opts(tmp_path)).run(1, 4, "data", _stage(calls))
    with pytest.raises(DemoError) as stopped:
        Stages(_opts(tmp_path, tracks=10, seed=7)).run(1, 4, "data", _stage(calls))
    assert calls == ["40 tracks"]  # not reused silently, not remade over the old one
    text = str(stopped.value)
    assert "made with --tracks 40 --seconds 20 --seed 1" in text, text
    assert "not with --tracks 10 --seconds 20 --seed 7" in text, text
    assert 'make demo ARGS="--tracks 40 --seconds 20 --seed 1 --train-steps 150"' in text, text
    assert 'make demo ARGS="--reset"' in text, text
    assert 'make demo ARGS="--tracks 10 --seconds 20 --seed 7 --train-steps 150"' in text, text


def test_it_stops_when_the_model_was_trained_for_other_steps(tmp_path):
    calls: list[str] = []
    Stages(_opts(tmp_path)).run(2, 4, "model", _stage(calls))
    with pytest.raises(DemoError, match="made with .*--train-steps 150"):
        Stages(_opts(tmp_path, train_steps=20)).run(2, 4, "model", _stage(calls))
    assert calls == ["40 tracks"]


def test_it_repeats_the_non_default_options_in_its_simulate_hint(tmp_path):
    assert rerun_flags(_opts(tmp_path)) == ""
    assert rerun_flags(_opts(tmp_path, tracks=10, seconds=8.0)) == "--tracks 10 --seconds 8 "


def test_its_simulate_hint_keeps_the_address_it_serves_on(tmp_path):
    """A user who chose --port (8000 was taken) is given a command that serves there again."""
    assert rerun_flags(_opts(tmp_path, port=8120)) == "--port 8120 "
    moved = _opts(tmp_path, tracks=10, host="0.0.0.0", port=8121)
    assert rerun_flags(moved) == "--tracks 10 --host 0.0.0.0 --port 8121 "


def test_its_go_on_and_remake_commands_keep_the_options_that_shape_no_stage(tmp_path):
    """The port, the simulation asked for and --no-serve are what the user typed: the commands
    it prints differ from theirs only in the stage options."""
    calls: list[str] = []
    Stages(_opts(tmp_path)).run(1, 4, "data", _stage(calls))
    given = _opts(tmp_path, tracks=10, port=8121, simulate=5, rates={"drums": 0.5}, serve=False)
    with pytest.raises(DemoError) as stopped:
        Stages(given).run(1, 4, "data", _stage(calls))
    text = str(stopped.value)
    rest = "--simulate 5 --rates drums=0.5 --port 8121 --no-serve"
    made, asked = "--tracks 40 --seconds 20 --seed 1", "--tracks 10 --seconds 20 --seed 1"
    assert f'Go on with it: make demo ARGS="{made} --train-steps 150 {rest}"' in text, text
    assert f'then make demo ARGS="{asked} --train-steps 150 {rest}"' in text, text
    go_on = re.search(r'Go on with it: make demo ARGS="([^"]*)"', text)
    args = build_parser().parse_args(shlex.split(go_on[1]))
    assert (args.port, args.simulate, args.rates, args.no_serve) == (8121, 5, {"drums": 0.5}, True)


def _marker_from_before_options_were_recorded(opts: DemoOptions, name: str) -> None:
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    (opts.state_dir / f"{name}.json").write_text(json.dumps({"summary": "40 pieces"}))


def test_it_stops_on_a_marker_written_before_options_were_recorded_when_others_are_given(
    tmp_path,
):
    _marker_from_before_options_were_recorded(_opts(tmp_path), "data")
    calls: list[str] = []
    with pytest.raises(DemoError) as stopped:
        Stages(_opts(tmp_path, tracks=10)).run(1, 4, "data", _stage(calls))
    assert calls == []  # the old data is not reused for --tracks 10
    text = str(stopped.value)
    assert "made before the demo recorded its options" in text, text
    assert "taken as made with the defaults, --tracks 40 --seconds 20 --seed 1," in text, text
    assert 'make demo ARGS="--tracks 40 --seconds 20 --seed 1 --train-steps 150"' in text, text
    assert 'make demo ARGS="--reset"' in text, text


def test_it_reuses_a_marker_written_before_options_were_recorded_with_the_defaults(tmp_path):
    # the old demo ran with the defaults unless given others: so does a rerun with them
    _marker_from_before_options_were_recorded(_opts(tmp_path), "data")
    calls: list[str] = []
    info = Stages(_opts(tmp_path, simulate=5)).run(1, 4, "data", _stage(calls))
    assert calls == [] and info["summary"] == "40 pieces"


def test_the_go_on_command_it_prints_reuses_the_stage(tmp_path):
    """The options in its "Go on with it" command are read back as the marker holds them, to the
    last digit: 12.3456789 was printed as 12.3457, which stopped again."""
    calls: list[str] = []
    Stages(_opts(tmp_path, seconds=12.3456789)).run(1, 4, "data", _stage(calls))
    with pytest.raises(DemoError) as stopped:
        Stages(_opts(tmp_path)).run(1, 4, "data", _stage(calls))
    go_on = re.search(r'Go on with it: make demo ARGS="([^"]*)"', str(stopped.value))
    assert go_on, stopped.value
    args = build_parser().parse_args(shlex.split(go_on[1]))
    Stages(replace(options(args), home=tmp_path)).run(1, 4, "data", _stage(calls))
    assert calls == ["40 tracks"]  # reused, not stopped again


def test_its_flags_read_back_as_the_values_they_print():
    values = {"tracks": 40, "seconds": 12.3456789, "seed": 1, "train_steps": 150}
    assert flags(values) == "--tracks 40 --seconds 12.3456789 --seed 1 --train-steps 150"
    assert flags({"seconds": 20.0}) == "--seconds 20"
    assert flags({"seconds": 0.1}) == "--seconds 0.1"
