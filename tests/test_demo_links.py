"""The links `make demo` prints say whether anything serves them: with --no-serve nothing does,
and the demo says so and how to serve them (review nb, F5)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evalsite.demo import build_parser, options, print_urls
from evalsite.demo_options import DemoOptions
from evalsite.studies.models import Study
from tests.evalsite.studies.experimenter_personas import alice, fast_passwords  # noqa: F401

pytestmark = pytest.mark.django_db


def _links(home: Path, owner, capsys, **changed) -> str:
    """What the demo prints after its stages, for a study with no answers, under `home`."""
    opts: DemoOptions = replace(options(build_parser().parse_args([])), home=home, **changed)
    study = Study.objects.create(owner=owner, name="demo", instruments=["drums"])
    opts.state_dir.mkdir(parents=True)
    (opts.state_dir / "study.json").write_text(json.dumps({"study": study.pk}))
    print_urls(opts)
    return capsys.readouterr().out


def test_without_serving_it_says_nothing_serves_its_links_and_how_to_serve_them(
    tmp_path,
    alice,  # noqa: F811
    capsys,
):
    out = _links(tmp_path, alice, capsys, serve=False, port=8124)
    assert "http://127.0.0.1:8124/retrieval/" in out, out
    assert 'nothing serves these links (--no-serve): make demo ARGS="--port 8124" serves' in out
    assert "Ctrl-C" not in out, out  # no server to stop
    assert 'make demo ARGS="--port 8124 --simulate 20" adds some' in out, out


def test_when_serving_it_prints_its_links_without_the_not_served_line(
    tmp_path,
    alice,  # noqa: F811
    capsys,
):
    out = _links(tmp_path, alice, capsys)
    assert "http://127.0.0.1:8000/retrieval/" in out, out
    assert "nothing serves" not in out, out
    assert 'stop this demo with Ctrl-C, then make demo ARGS="--simulate 20" adds some' in out
