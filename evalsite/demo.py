"""The demo: the whole loop on embedded defaults, one stage after another.

    python -m evalsite.demo [--simulate N --rates drums=0.9,bass=0.6,...] [--reset]

Stages (each prints one progress line, records a marker under CSN_HOME/demo/, and is skipped on
a rerun once finished, so an interrupted demo continues where it stopped; a stage finished with
other --tracks, --seconds, --seed or --train-steps than those given stops the demo, which says
how it was made and how to remake it):

  1. data     make a small Slakh-layout multitrack dataset with `csn synth`
  2. model    train a small CSN on it (CPU, a few minutes)
  3. catalog  import the test split as a stimulus catalogue and embed it with a local worker
  4. study    design a study from the model (drums, bass, piano, guitar, others)
  5. simulate (with --simulate N) N simulated participants through the real HTTP flow
  6. serve    start the site and print the participant, dashboard and retrieval URLs

Everything lives under CSN_HOME (default ./.csn); --reset removes it.

This module holds the command line and runs the stages in order. The stages are in
evalsite.demo_stages, the worker and web server processes in evalsite.demo_processes, the options
in evalsite.demo_options and the simulated participants in evalsite.demo_simulate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from evalsite.demo_options import ROOT, DemoError, DemoOptions
from evalsite.demo_processes import LocalWorker, Server, check_port_free
from evalsite.demo_stages import (
    DEMO_PASSWORD,
    DEMO_USER,
    setup_django,
    stage_catalog,
    stage_data,
    stage_model,
    stage_simulate,
    stage_study,
    study_of,
)


def parse_rates(text: str) -> dict[str, float]:
    """'drums=0.9,bass=0.6' -> {'drums': 0.9, 'bass': 0.6}, validated."""
    from csn_model import CONDITIONS

    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in CONDITIONS:
            raise argparse.ArgumentTypeError(
                f"--rates item {item!r}: expected INSTRUMENT=RATE with INSTRUMENT in {CONDITIONS}"
            )
        try:
            rate = float(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"--rates {name}={value!r}: not a number") from exc
        if not 0.0 <= rate <= 1.0:
            raise argparse.ArgumentTypeError(f"--rates {name}={rate}: expected 0 <= rate <= 1")
        rates[name] = rate
    return rates


# ---------------------------------------------------------------------------------------------
# Stage bookkeeping


# The options that shape each stage's result, recorded in its marker: a stage made with other
# values is out of date. Each stage reads the ones before it (the model trains on the data, the
# catalogue is embedded by the model, the study is designed from both with the seed).
SHAPING = ("tracks", "seconds", "seed", "train_steps")
STAGE_OPTIONS = {
    "data": ("tracks", "seconds", "seed"),
    "model": SHAPING,
    "catalog": SHAPING,
    "study": SHAPING,
}


def flags(values: dict) -> str:
    """{'tracks': 40, 'seconds': 20.0} -> '--tracks 40 --seconds 20', as the command line takes
    them, each read back as the value it prints: the markers compare options exactly, so the
    "Go on with it" command must give them to the last digit (12.3456789, not 12.3457)."""
    return " ".join(f"--{name.replace('_', '-')} {_flag_value(v)}" for name, v in values.items())


def _flag_value(value) -> str:
    if not isinstance(value, float):
        return str(value)
    short = f"{value:g}"  # 20 rather than 20.0
    return short if float(short) == value else repr(value)  # repr: shortest exact


class Stages:
    """Runs stages in order, printing one line each, skipping those with a finished marker made
    with the options given now; one made with others stops the demo (`out_of_date`)."""

    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.t0 = time.monotonic()
        opts.state_dir.mkdir(parents=True, exist_ok=True)

    def marker(self, name: str) -> Path:
        return self.opts.state_dir / f"{name}.json"

    def options_of(self, name: str) -> dict:
        return {key: getattr(self.opts, key) for key in STAGE_OPTIONS.get(name, ())}

    def made_with(self, name: str, info: dict) -> dict:
        """The options the marker `info` of stage `name` records; the defaults for one written
        before markers recorded them (65ad170), as that demo ran with the defaults unless given
        others: a rerun with the defaults goes on, one with others stops (`out_of_date`)."""
        made = info.get("options")
        if made is None:
            parser = build_parser()
            return {key: parser.get_default(key) for key in STAGE_OPTIONS.get(name, ())}
        return made

    def run(self, index: int, total: int, name: str, fn: Callable[[DemoOptions], dict]) -> dict:
        marker = self.marker(name)
        if marker.exists():
            info = json.loads(marker.read_text())
            made = self.made_with(name, info)
            if made != self.options_of(name):
                raise self.out_of_date(name, made, recorded="options" in info)
            print(
                f"[{index}/{total}] {name:<8} done earlier: {info.get('summary', '')}", flush=True
            )
            return info
        print(f"[{index}/{total}] {name:<8} ...", flush=True)
        start = time.monotonic()
        info = fn(self.opts)
        info["seconds"] = round(time.monotonic() - start, 1)
        info["options"] = self.options_of(name)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(marker)  # atomic: an interrupted stage leaves no marker and reruns
        print(f"[{index}/{total}] {name:<8} {info.get('summary', '')} ({info['seconds']} s)")
        return info

    def out_of_date(self, name: str, made: dict, recorded: bool = True) -> DemoError:
        """The error for a finished stage made with other options than those given now. The demo
        does not remake it (and the stages after it) by itself: the catalogue and study it
        would replace live in the database with any answers given through the participant link,
        so that takes the reset the message names. `recorded`: False for a marker written before
        markers recorded their options, taken as made with the defaults (`made_with`)."""
        every = {key: getattr(self.opts, key) for key in SHAPING}
        for stage in STAGE_OPTIONS:  # what the existing demo was made with, stage by stage
            if self.marker(stage).exists():
                every |= self.made_with(stage, json.loads(self.marker(stage).read_text()))
        # What else the user gave (their port, the simulation asked for): only the stage
        # options must change for the command to go on.
        rest = "".join(f" {flag}" for flag in other_flags(self.opts, NOT_SHAPING))
        how = "was made with" if recorded else (
            "was made before the demo recorded its options, so it is taken as made with the "
            "defaults,"
        )  # fmt: skip
        return DemoError(
            f"the demo's {name} stage under {self.opts.home} {how} {flags(made)}, not "
            f"with {flags(self.options_of(name))}. Go on with it: "
            f'make demo ARGS="{flags(every)}{rest}"; or remake the demo with the new options: '
            f'make demo ARGS="--reset" (removes {self.opts.home}, the study\'s answers too), '
            f'then make demo ARGS="{flags({key: getattr(self.opts, key) for key in SHAPING})}'
            f'{rest}"'
        )

    def total_line(self) -> str:
        return (
            f"demo ready in {time.monotonic() - self.t0:.0f} s (everything under {self.opts.home})"
        )


def print_urls(opts: DemoOptions) -> None:
    study = study_of(opts)
    print()
    print(f"  participant link      {opts.base_url}/s/{study.slug}/")
    print(f"  experimenter pages    {opts.base_url}/studies/{study.pk}/   "
          f"(login: {DEMO_USER} / {DEMO_PASSWORD})")  # fmt: skip
    print(f"  report                {opts.base_url}/reports/{study.pk}/")
    if not study.participants.filter(answers__trial__is_practice=False).exists():
        stop = "stop this demo with Ctrl-C, then " if opts.serve else ""
        print(f"                        (no answers yet: {stop}"
              f'make demo ARGS="{rerun_flags(opts)}--simulate 20" adds some)')  # fmt: skip
    print(f"  retrieval             {opts.base_url}/retrieval/")
    print(f"  datasets              {opts.base_url}/datasets/")
    if not opts.serve:
        # The links look live: say that none answers until a rerun serves them (review nb F5).
        again = rerun_flags(opts).strip()
        command = f'make demo ARGS="{again}"' if again else "make demo"
        print(f"  nothing serves these links (--no-serve): {command} serves them")
    print()


def rerun_flags(opts: DemoOptions) -> str:
    """The stage-shaping options this demo was given apart from their defaults, then its rates
    and address, each followed by a space: a rerun must pass the first again to reuse its stages,
    and the address to serve where the user chose (8000 may be taken)."""
    defaults = build_parser()
    given = {k: getattr(opts, k) for k in SHAPING if getattr(opts, k) != defaults.get_default(k)}
    kept = ([flags(given)] if given else []) + other_flags(opts, ("rates", "host", "port"))
    return "".join(f"{flag} " for flag in kept)


# The options that shape no stage, as the commands the demo prints repeat them.
NOT_SHAPING = ("simulate", "rates", "host", "port", "serve")


def other_flags(opts: DemoOptions, names: tuple[str, ...]) -> list[str]:
    """The options among `names` (of NOT_SHAPING) this demo was given apart from their defaults,
    as the command line takes them: ['--port 8121', '--no-serve']."""
    defaults = build_parser()
    found = []
    for name in names:
        value = getattr(opts, name)
        if name == "serve":
            found += [] if value else ["--no-serve"]
        elif name == "rates":
            if value != parse_rates(defaults.get_default("rates")):
                items = ",".join(f"{k}={_flag_value(v)}" for k, v in value.items())
                found.append(f"--rates {items}")
        elif value != defaults.get_default(name):
            found.append(flags({name: value}))
    return found


def serve(opts: DemoOptions) -> None:
    """Run the site and a local worker until interrupted."""
    with LocalWorker(opts) as worker, Server(opts) as server:
        print_urls(opts)
        print("  serving; press Ctrl-C to stop (rerunning `make demo` resumes here)", flush=True)
        try:
            while True:
                worker.check_alive()
                server.check_alive()
                time.sleep(1.0)
        except KeyboardInterrupt:
            print("\n  stopped")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalsite.demo", description=__doc__.split("\n")[0])
    p.add_argument("--tracks", type=int, default=40, help="pieces to synthesise (default 40)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each piece (s)")
    p.add_argument("--seed", type=int, default=1, help="seed for data, model and design")
    p.add_argument("--train-steps", type=int, default=150, help="CSN training steps")
    p.add_argument("--simulate", type=int, default=0, metavar="N",
                   help="run N simulated participants through the real HTTP flow")  # fmt: skip
    p.add_argument("--rates", type=parse_rates, default="drums=0.9,bass=0.75,piano=0.6,"
                   "guitar=0.85,others=0.55", help="per-instrument agreement of simulated "
                   "participants with the model, e.g. drums=0.9,bass=0.6")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-serve", action="store_true", help="stop after the stages, serve nothing")
    p.add_argument("--reset", action="store_true", help="remove CSN_HOME and exit")
    return p


def options(args: argparse.Namespace) -> DemoOptions:
    home = Path(os.environ.get("CSN_HOME") or ROOT / ".csn").expanduser().resolve()
    return DemoOptions(home=home, tracks=args.tracks, seconds=args.seconds, seed=args.seed,
                       train_steps=args.train_steps, simulate=args.simulate, rates=args.rates,
                       host=args.host, port=args.port, serve=not args.no_serve)  # fmt: skip


def reset(opts: DemoOptions) -> None:
    if not (opts.home / "demo").exists() and opts.home.exists() and any(opts.home.iterdir()):
        # Refuse to delete a folder the demo did not make (a mistyped CSN_HOME).
        raise DemoError(f"{opts.home} has no demo/ state folder; not removing it")
    shutil.rmtree(opts.home, ignore_errors=True)
    print(f"removed {opts.home}")


def _exit_on_signal(signum, _frame) -> None:
    """SIGTERM (kill) and SIGHUP (a closed terminal) end the demo as Ctrl-C does: through the
    context managers, which stop the local worker and server instead of orphaning them."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    args = build_parser().parse_args(argv)
    opts = options(args)
    try:
        if args.reset:
            reset(opts)
            return 0
        if opts.serve or opts.simulate:
            # before the stages: a second demo would otherwise train and simulate, and only then
            # find its port taken by the first, or worse, simulate against the first's server
            check_port_free(opts.host, opts.port)
        stages = Stages(opts)
        names = ["data", "model", "catalog", "study"] + (["simulate"] if opts.simulate else [])
        total = len(names)
        # the stages by this module's names: tests/test_demo_signals.py replaces stage_data
        stages.run(1, total, "data", stage_data)
        stages.run(2, total, "model", stage_model)
        setup_django(opts)
        stages.run(3, total, "catalog", stage_catalog)
        stages.run(4, total, "study", stage_study)
        if opts.simulate:
            stages.marker("simulate").unlink(missing_ok=True)  # cheap to recheck; resumes
            stages.run(5, total, "simulate", stage_simulate)
        print(stages.total_line())
        if opts.serve:
            serve(opts)
        else:
            print_urls(opts)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; rerun to continue where it stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
