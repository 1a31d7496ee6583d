"""The demo: the whole loop on embedded defaults, one stage after another.

    python -m evalsite.demo [--simulate N --rates drums=0.9,bass=0.6,...] [--reset]

Stages (each prints one progress line, records a marker under CSN_HOME/demo/, and is skipped on
a rerun once finished, so an interrupted demo continues where it stopped):

  1. data     make a small Slakh-layout multitrack dataset with `csn synth`
  2. model    train a small CSN on it (CPU, a few minutes)
  3. catalog  import the test split as a stimulus catalogue and embed it with a local worker
  4. study    design a study from the model (drums, bass, piano, guitar, others)
  5. simulate (with --simulate N) N simulated participants through the real HTTP flow
  6. serve    start the site and print the participant, dashboard and retrieval URLs

Everything lives under CSN_HOME (default ./.csn); --reset removes it.
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DemoOptions:
    home: Path
    tracks: int
    seconds: float
    seed: int
    train_steps: int
    simulate: int
    rates: dict[str, float]
    host: str
    port: int
    serve: bool

    @property
    def state_dir(self) -> Path:
        return self.home / "demo"

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / "demo"

    @property
    def run_dir(self) -> Path:
        return self.home / "runs" / "demo"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class DemoError(RuntimeError):
    """A stage could not finish; the message says what to do."""


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


class Stages:
    """Runs stages in order, printing one line each, skipping those with a finished marker."""

    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.t0 = time.monotonic()
        opts.state_dir.mkdir(parents=True, exist_ok=True)

    def marker(self, name: str) -> Path:
        return self.opts.state_dir / f"{name}.json"

    def run(self, index: int, total: int, name: str, fn: Callable[[DemoOptions], dict]) -> dict:
        marker = self.marker(name)
        if marker.exists():
            info = json.loads(marker.read_text())
            print(
                f"[{index}/{total}] {name:<8} done earlier: {info.get('summary', '')}", flush=True
            )
            return info
        print(f"[{index}/{total}] {name:<8} ...", flush=True)
        start = time.monotonic()
        info = fn(self.opts)
        info["seconds"] = round(time.monotonic() - start, 1)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(marker)  # atomic: an interrupted stage leaves no marker and reruns
        print(f"[{index}/{total}] {name:<8} {info.get('summary', '')} ({info['seconds']} s)")
        return info

    def total_line(self) -> str:
        return (
            f"demo ready in {time.monotonic() - self.t0:.0f} s (everything under {self.opts.home})"
        )


# ---------------------------------------------------------------------------------------------
# Stages


def stage_data(opts: DemoOptions) -> dict:
    from csn_model.data.slakh import SlakhDataset
    from csn_model.data.synth import synthesize

    # A larger test share than Slakh's (0.3 instead of 0.15): the test split becomes the demo's
    # stimulus catalogue, and a study needs enough distinct pieces.
    summary = synthesize(
        opts.data_dir,
        opts.tracks,
        opts.seed,
        seconds=opts.seconds,
        split_fractions=(0.6, 0.1, 0.3),
        audio_format="wav",  # reads several times faster than FLAC when training (docs/data.md)
        progress=sys.stdout.isatty(),
    )
    ds = SlakhDataset(opts.data_dir)
    splits = {split: len(ds.tracks(split)) for split in ("train", "validation", "test")}
    return {"summary": f"{summary.line()} -> {opts.data_dir}", "splits": splits}


def demo_config(opts: DemoOptions):
    from csn_model.config import load_config

    return load_config(
        ROOT / "experiments" / "configs" / "demo.yaml", [f"train.steps={opts.train_steps}"]
    )


def stage_model(opts: DemoOptions) -> dict:
    from csn_model.train import train_run

    cfg = demo_config(opts)
    final = train_run(cfg, opts.data_dir, opts.run_dir, progress=sys.stdout.isatty())
    return {"summary": f"checkpoint {final}", "checkpoint": str(final)}


DEMO_USER = "demo"
DEMO_PASSWORD = "csn-demo-password"  # printed by the demo; local embedded defaults only


def setup_django(opts: DemoOptions) -> None:
    """Configure Django on the embedded defaults and bring the database schema up to date."""
    os.environ["CSN_HOME"] = str(opts.home)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    os.environ.setdefault("CSN_CHECKPOINT", str(opts.run_dir / "final.pt"))
    import django
    from django.core.management import call_command

    opts.home.mkdir(parents=True, exist_ok=True)
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def ensure_demo_user():
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    user = users.filter(username=DEMO_USER).first()
    if user is None:
        user = users.create_superuser(DEMO_USER, "demo@example.org", DEMO_PASSWORD)
    return user


class LocalWorker:
    """A real Celery worker process on the embedded broker, stopped when the demo leaves.

    The worker runs in its own process group, so its prefork child is stopped with it: SIGTERM
    (Celery's warm shutdown: the running task may finish) for up to stop_timeout_s, then SIGKILL.
    """

    def __init__(self, opts: DemoOptions, stop_timeout_s: float = 20.0) -> None:
        self.opts = opts
        self.stop_timeout_s = stop_timeout_s
        self.proc = None
        self.started_at = None
        self.log = opts.home / "logs" / "worker.log"

    def __enter__(self) -> LocalWorker:
        import subprocess

        from django.utils import timezone

        self.log.parent.mkdir(parents=True, exist_ok=True)
        celery = Path(sys.executable).with_name("celery")
        cmd = [str(celery), "-A", "evalsite", "worker", "-Q", "gpu,cpu", "--concurrency", "1"]
        cmd += ["--loglevel", "INFO", "-n", "demo@%h"]
        self.started_at = timezone.now()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped with its prefork child
            )
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise DemoError(f"the local worker exited ({self.proc.returncode}); see {self.log}")

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        stop_process_group(self.proc, self.stop_timeout_s)
        self.report_abandoned_jobs()

    def report_abandoned_jobs(self) -> None:
        """Name the jobs the stopped worker left running: on the file broker their message went
        with the worker, so nothing will finish them."""
        from django.db import DatabaseError

        from evalsite.jobs.models import Job

        running = Job.objects.filter(status=Job.Status.RUNNING, updated_at__gte=self.started_at)
        try:
            jobs = list(running.order_by("id"))
        except DatabaseError as exc:  # never hide why the demo is leaving
            print(f"      could not check the worker's jobs: {exc}", file=sys.stderr)
            return
        for job in jobs:
            how = "rerun the demo"
            if job.study_id:
                how += f", or use {self.opts.base_url}/jobs/study/{job.study_id}/"
            print(
                f"      job {job.pk} ({job.get_kind_display()}) was left running by the "
                f"stopped worker and will not finish; to queue it again, {how}",
                flush=True,
            )


def stop_process_group(proc, timeout_s: float) -> None:
    """SIGTERM the process group proc leads (start_new_session: its id is proc's pid), wait up
    to timeout_s for proc, SIGKILL what is left of the group, and reap proc."""
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):  # gone already, or still busy
        pass
    try:  # the main process after the timeout, or a child it left behind
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # nothing left in the group
        pass
    proc.wait()


def wait_for_job(job, worker: LocalWorker, label: str, timeout_s: float = 1800) -> None:
    """Poll a Job until the worker finishes it, printing done/total; raise on failure."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        job.refresh_from_db()
        state = (job.status, job.done, job.total)
        if state != last:
            print(f"      {label}: {job.status} {job.done}/{job.total}", flush=True)
            last = state
        if job.is_finished:
            break
        worker.check_alive()
        if time.monotonic() > deadline:
            raise DemoError(f"{label}: not finished after {timeout_s:.0f} s; see {worker.log}")
        time.sleep(1.0)
    if job.status == job.Status.FAILED:
        raise DemoError(f"{label} failed: {job.message or job.errors}; see {worker.log}")
    if job.errors:
        print(f"      {label}: {len(job.errors)} error(s), first: {job.errors[0]}")


def stage_catalog(opts: DemoOptions) -> dict:
    from evalsite.stimuli.models import Catalogue
    from evalsite.stimuli.slakh_import import import_slakh
    from evalsite.stimuli.tasks import queue_ingest

    user = ensure_demo_user()
    catalogue, _ = Catalogue.objects.get_or_create(owner=user, name="demo test split")
    # Always: an import interrupted part way resumes, and what it made already is reused.
    report = import_slakh(opts.data_dir, "test", catalogue, seconds=4.0, attention=True)
    for line in report.skipped:
        print(f"      skipped {line}")
    with LocalWorker(opts) as worker:
        job = queue_ingest(catalogue)
        wait_for_job(job, worker, "embed catalogue")
    clips = catalogue.clips.count()
    return {"summary": f"{clips} clips in catalogue {catalogue.pk}", "catalogue": catalogue.pk}


def stage_study(opts: DemoOptions) -> dict:
    from csn_model import CONDITIONS
    from evalsite.stimuli.models import Catalogue
    from evalsite.studies.models import Study
    from evalsite.studies.tasks import queue_design

    user = ensure_demo_user()
    catalogue = Catalogue.objects.get(owner=user, name="demo test split")
    study, _ = Study.objects.get_or_create(
        owner=user,
        name="Demo: which candidate is more similar in the named instrument?",
        defaults={
            "catalogue": catalogue,
            "instruments": list(CONDITIONS),
            # Room for many people (and --simulate runs) before trials count as full.
            "settings": {"target_answers_per_trial": 200},
        },
    )
    if not study.trials.exists():
        with LocalWorker(opts) as worker:
            job = queue_design(study, catalogue, "nearest_random", per_instrument=6, seed=opts.seed)
            wait_for_job(job, worker, "design study")
    study.status = Study.Status.OPEN
    study.save(update_fields=["status"])
    trials = study.trials.filter(is_practice=False)
    with_choice = trials.exclude(model_choice=None).count()
    return {
        "summary": f"study {study.pk}: {trials.count()} trials, {with_choice} with a model choice",
        "study": study.pk,
        "slug": study.slug,
    }


class Server:
    """The site in a child process (Django's server on embedded defaults), stopped on exit."""

    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.proc = None
        self.log = opts.home / "logs" / "web.log"

    def __enter__(self) -> Server:
        import subprocess
        import urllib.request

        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "manage.py", "runserver", f"{self.opts.host}:{self.opts.port}"]
        cmd += ["--noreload", "--skip-checks"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdout=log,
                                         stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"the web server exited ({self.proc.returncode}); see {self.log}")
            try:
                urllib.request.urlopen(f"{self.opts.base_url}/healthz", timeout=2)
                return self
            except OSError:
                time.sleep(0.5)
        raise DemoError(f"the web server did not answer on {self.opts.base_url}; see {self.log}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def study_of(opts: DemoOptions):
    from evalsite.studies.models import Study

    info = json.loads((opts.state_dir / "study.json").read_text())
    return Study.objects.get(pk=info["study"])


def stage_simulate(opts: DemoOptions) -> dict:
    from evalsite.demo_simulate import simulate
    from evalsite.reports.tasks import recompute_report

    study = study_of(opts)
    # Participant ids are sim-<seed>-<i>: a rerun resumes unfinished ones and skips finished ones.
    with Server(opts):
        outcomes = simulate(opts.base_url, study.slug, opts.simulate, opts.rates, opts.seed)
    recompute_report(study.pk)
    steps = sorted({o.step for o in outcomes})
    answers = sum(o.answers for o in outcomes)
    recovered = recovered_consent(study)
    for instrument, row in recovered.items():
        given = opts.rates.get(instrument)
        print(f"      {instrument:<7} given {given if given is not None else '-':<5} "
              f"recovered {row['estimate']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] "
              f"n={row['n']}")  # fmt: skip
    return {
        "summary": f"{len(outcomes)} participants ({', '.join(steps)}), {answers} answers",
        "recovered": recovered,
        "rates": opts.rates,
    }


def print_urls(opts: DemoOptions) -> None:
    study = study_of(opts)
    print()
    print(f"  participant link      {opts.base_url}/s/{study.slug}/")
    print(f"  experimenter pages    {opts.base_url}/studies/{study.pk}/   "
          f"(login: {DEMO_USER} / {DEMO_PASSWORD})")  # fmt: skip
    print(f"  report                {opts.base_url}/reports/{study.pk}/")
    print(f"  retrieval             {opts.base_url}/retrieval/")
    print(f"  datasets              {opts.base_url}/datasets/")
    print()


def serve(opts: DemoOptions) -> None:
    """Run the site and a local worker until interrupted."""
    with LocalWorker(opts) as worker, Server(opts) as server:
        print_urls(opts)
        print("  serving; press Ctrl-C to stop (rerunning `make demo` resumes here)", flush=True)
        try:
            while True:
                worker.check_alive()
                if server.proc.poll() is not None:
                    raise DemoError(f"the web server exited; see {server.log}")
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
        stages = Stages(opts)
        names = ["data", "model", "catalog", "study"] + (["simulate"] if opts.simulate else [])
        total = len(names)
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


def recovered_consent(study) -> dict[str, dict]:
    """Per-instrument consent from the latest computed report (tidy rows, term=instrument)."""
    from csn_model import CONDITIONS
    from evalsite.reports.models import ReportSnapshot

    snap = ReportSnapshot.objects.filter(study=study).order_by("-computed_at").first()
    if snap is None or snap.error:
        raise DemoError(f"no report for study {study.pk}: {getattr(snap, 'error', 'not computed')}")
    rows = {row["term"]: row for row in snap.tables.get("consent", [])}
    return {
        c: {k: rows[c][k] for k in ("estimate", "ci_low", "ci_high", "n")}
        for c in CONDITIONS
        if c in rows
    }


if __name__ == "__main__":
    raise SystemExit(main())
