"""The demo's stages (evalsite.demo runs them in order): make the data, train the model, import
and embed the catalogue, design the study, simulate participants; and the Django set-up, the
demo user and the report reading that they need. Each stage takes the DemoOptions and returns
the dict its marker records."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalsite.demo_options import ROOT, DemoError, DemoOptions
from evalsite.demo_processes import LocalWorker, Server, wait_for_job


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
    from csn_model.train_folder import OtherConfigError

    cfg = demo_config(opts)
    # Minutes on a CPU: say where the progress goes, then show each step the run logs, so that a
    # newcomer can tell slow from hung (review nb F6).
    print(
        f"      training {cfg.train.steps} steps, a line every {cfg.train.log_every} and at "
        f"the end (full log: {opts.run_dir / 'train.log'})",
        flush=True,
    )
    try:
        with logged_steps_shown(opts.run_dir):
            final = train_run(cfg, opts.data_dir, opts.run_dir, progress=sys.stdout.isatty())
    except OtherConfigError as exc:
        # An unfinished training (no model marker yet) of an older demo.yaml, e.g. one from
        # before it set features.db_ref max: it cannot be resumed with this one (review r2 F1).
        raise DemoError(
            f"the demo's model stage did not finish, and {exc.path} holds a training with "
            f"another config than experiments/configs/demo.yaml gives now ({exc.changed}). "
            f"Train it again: delete {opts.run_dir} (the data stage is kept), then run the same "
            f'make demo command; or remake the whole demo: make demo ARGS="--reset" (removes '
            f"{opts.home}, the study's answers too)"
        ) from exc
    return {"summary": f"checkpoint {final}", "checkpoint": str(final)}


class _StepLines(logging.Handler):
    """Prints a training run's `step ...` and `resuming ...` lines as they are logged, clearing
    the progress bar first when there is one (a terminal)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        message = record.getMessage()
        if message.startswith(("step ", "resuming ")):
            with tqdm.external_write_mode():
                print(f"      {message}", flush=True)


@contextmanager
def logged_steps_shown(run_dir: Path) -> Iterator[None]:
    """Within it, the lines the training run in `run_dir` logs to its train.log are also
    printed. The run's own logger, made here with its train.log handler (run_logger): train_run
    then finds and keeps it (a handler added to a bare logger would stand in for train.log's)."""
    from csn_model.train_folder import run_logger

    run_dir.mkdir(parents=True, exist_ok=True)
    log, shown = run_logger(run_dir), _StepLines()
    log.addHandler(shown)
    try:
        yield
    finally:
        log.removeHandler(shown)


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


def stage_catalog(opts: DemoOptions) -> dict:
    from evalsite.stimuli.models import Catalogue
    from evalsite.stimuli.slakh_import import import_slakh
    from evalsite.stimuli.tasks import queue_ingest

    user = ensure_demo_user()
    catalogue, _ = Catalogue.objects.get_or_create(owner=user, name="demo test split")
    # Always: an import interrupted part way resumes, and what it made already is reused. No
    # automatic embedding: the job below embeds each clip once and its progress counts the work.
    report = import_slakh(
        opts.data_dir, "test", catalogue, seconds=4.0, attention=True, embed=False
    )
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
            # The header and title of the Japanese pages (Study.texts).
            "texts": {"ja": {"name": "デモ：指定された楽器がより似ている候補はどちら？"}},
            # Room for many people (and --simulate runs) before trials count as full.
            "settings": {"target_answers_per_trial": 200},
        },
    )
    if not study.trials.exists():
        with LocalWorker(opts) as worker:
            job = queue_design(
                study, catalogue, "nearest_random", per_instrument=6, seed=opts.seed, user=user
            )
            wait_for_job(job, worker, "design study")
    study.status = Study.Status.OPEN
    study.save(update_fields=["status"])
    return {
        "summary": study_summary(study),
        "study": study.pk,
        "slug": study.slug,
    }


def study_summary(study) -> str:
    """The study's trials as its page counts them: main and catch (what participants judge and the
    report reads) apart from practice, and how many of the judged ones carry the model's choice."""
    trials = study.trials.filter(is_practice=False)
    judged, catch = trials.count(), trials.filter(is_catch=True).count()
    practice = study.trials.filter(is_practice=True).count()
    with_choice = trials.exclude(model_choice=None).count()
    return (
        f"study {study.pk}: {judged} trials ({judged - catch} main, {catch} catch) and "
        f"{practice} practice, {with_choice} of the {judged} with a model choice"
    )


def study_of(opts: DemoOptions):
    from evalsite.studies.models import Study

    info = json.loads((opts.state_dir / "study.json").read_text())
    return Study.objects.get(pk=info["study"])


def stage_simulate(opts: DemoOptions) -> dict:
    from evalsite.demo_simulate import simulate, simulated_prefix, simulation_summary
    from evalsite.reports.tasks import recompute_report

    study = study_of(opts)
    # Participant ids are sim-<seed>-<rates' hash>-<i>: a rerun with the same seed and rates
    # resumes unfinished ones and skips finished ones; other rates simulate new participants.
    # All enter from 127.0.0.1 one after another, more than the limit on new participants per
    # address lets in (entry_limit.py): it is off for this server.
    with Server(opts, env={"CSN_ENTRY_LIMIT": "0"}):
        outcomes = simulate(opts.base_url, study.slug, opts.simulate, opts.rates, opts.seed)
    recompute_report(study.pk)
    prefix = simulated_prefix(opts.seed, opts.rates)
    recovered = recovered_consent(study, prefix)
    print(f"      recovered from this run's simulated participants ({prefix}*) only "
          "(the report counts all):")  # fmt: skip
    for line in recovered_lines(recovered, opts.rates):
        print(line)
    return {"summary": simulation_summary(outcomes), "recovered": recovered, "rates": opts.rates}


def recovered_consent(study, prefix: str) -> dict[str, dict]:
    """Per-instrument agreement of one run's simulated participants alone (pids starting with
    `prefix`, demo_simulate.simulated_prefix: the seed and rates they were simulated with;
    other runs' and anyone who took part through the printed link count in the study's report
    but not here), computed by the report's own analysis (exclusions included) on their
    answers; see recovered_rows."""
    from evalsite.reports.services import compute

    report = compute(study, simulated_answers_csv(study, prefix))
    if not report.ok:
        errors = "; ".join(m["text"] for m in report.messages if m["level"] == "error")
        raise DemoError(f"no agreement recovered from study {study.pk}'s simulation: {errors}")
    return recovered_rows(report.to_dict()["tables"])


def recovered_rows(tables: dict[str, list[dict]]) -> dict[str, dict]:
    """Per instrument, from a report's tables (tidy rows, term=instrument): estimate and n, with
    ci_low/ci_high from the crossed table (participants and trials crossed, the interval
    docs/statistics.md recommends; None where the analysis left it empty), and the answer-level
    Wilson interval of the consent table, which the report calls descriptive (too narrow), as
    answer_ci_low/answer_ci_high."""
    from csn_model import CONDITIONS

    answers = {row["term"]: row for row in tables.get("consent", [])}
    crossed = {row["term"]: row for row in tables.get("crossed", [])}
    return {
        c: {
            "estimate": answers[c]["estimate"],
            "ci_low": crossed.get(c, {}).get("ci_low"),
            "ci_high": crossed.get(c, {}).get("ci_high"),
            "n": answers[c]["n"],
            "answer_ci_low": answers[c]["ci_low"],
            "answer_ci_high": answers[c]["ci_high"],
        }
        for c in CONDITIONS
        if c in answers
    }


def simulated_answers_csv(study, prefix: str) -> bytes:
    """The study's answers export (what its report reads), of the simulated participants whose
    pids start with `prefix` only."""
    from evalsite.studies.export import to_csv
    from evalsite.studies.export_answers import answers_dataframe

    simulated = study.participants.filter(external_pid__startswith=prefix)
    answers = answers_dataframe(study)
    return to_csv(answers[answers["participant"].isin(set(simulated.values_list("pk", flat=True)))])


def recovered_lines(recovered: dict[str, dict], rates: dict[str, float]) -> list[str]:
    """One printed line per instrument: the given rate, the recovered one with its crossed
    interval, and the answer-level interval labelled as descriptive."""
    lines = []
    for instrument, row in recovered.items():
        given = rates.get(instrument)
        if row["ci_low"] is None or row["ci_high"] is None:
            crossed = "crossed interval left empty (see the report)"
        else:
            crossed = f"crossed interval [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        lines.append(
            f"      {instrument:<7} given {given if given is not None else '-':<5} "
            f"recovered {row['estimate']:.3f}, {crossed} "
            f"(answer-level, descriptive [{row['answer_ci_low']:.3f}, "
            f"{row['answer_ci_high']:.3f}]) n={row['n']}"
        )
    return lines
