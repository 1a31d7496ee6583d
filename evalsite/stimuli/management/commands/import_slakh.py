"""manage.py import_slakh DATASET_ROOT --split test --catalogue NAME [--seconds S] [--attention]
[--duplicates omit]"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from csn_model import CONDITIONS
from csn_model.cli import add_duplicates_argument
from csn_model.data.slakh import DataError
from evalsite.stimuli.models import Catalogue
from evalsite.stimuli.slakh_import import argument_errors, import_slakh

FLAGS = {"seconds": "--seconds", "target_lufs": "--lufs"}  # argument_errors' names


class Command(BaseCommand):
    help = "Import a Slakh-layout dataset split as catalogue clips (mix excerpts, attention sets)."

    def add_arguments(self, parser):
        parser.add_argument("root", help="dataset root holding train/ validation/ test/")
        parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
        parser.add_argument("--catalogue", required=True, help="catalogue name (created if new)")
        parser.add_argument(
            "--seconds", type=float, default=5.0, help="excerpt length (0.5-60 s, as the web form)"
        )
        parser.add_argument(
            "--attention", action="store_true", help="also build stem clips for attention checks"
        )
        parser.add_argument(
            "--conditions", default=",".join(CONDITIONS), help="conditions for attention sets"
        )
        parser.add_argument(
            "--lufs", type=float, default=-23.0, help="loudness target (-70 to 0 LUFS)"
        )
        parser.add_argument("--owner", help="username owning the catalogue (default: a superuser)")
        add_duplicates_argument(parser, default="refuse")

    def handle(self, *args, **opts):
        owner = self._owner(opts["owner"])
        conditions = tuple(c.strip() for c in opts["conditions"].split(",") if c.strip())
        unknown = sorted(set(conditions) - set(CONDITIONS))
        if unknown:
            raise CommandError(f"--conditions: unknown {unknown}; expected some of {CONDITIONS}")
        if errors := argument_errors(opts["seconds"], opts["lufs"]):
            raise CommandError("; ".join(f"{FLAGS[name]} {why}" for name, why in errors.items()))
        name = opts["catalogue"]
        try:  # the catalogue is made once the dataset is read: a refused one leaves none behind
            report = import_slakh(
                opts["root"],
                opts["split"],
                lambda: Catalogue.objects.get_or_create(owner=owner, name=name)[0],
                seconds=opts["seconds"],
                attention=opts["attention"],
                conditions=conditions,
                target_lufs=opts["lufs"],
                duplicates=opts["duplicates"],
            )
        except DataError as exc:
            raise CommandError(str(exc)) from exc
        if report.omitted_tracks:
            self.stdout.write(report.omitted_line(opts["split"]))
            for line in report.omitted_in(opts["split"]):
                self.stdout.write(f"  {line}")
        self.stdout.write(f"skipped stems of the {opts['split']} split: {report.stem_summary}")
        for line in report.skipped_stems:
            self.stdout.write(f"skipped stem {line}")
        for line in report.skipped:
            self.stderr.write(f"skipped {line}")
        self.stdout.write(
            f"catalogue {name!r}: {len(report.mixes)} mix clips, "
            f"{len(report.attention)} attention sets, {len(report.skipped)} skipped, "
            f"{len(report.existing)} already imported"
        )
        if report.not_queued:  # the broker is down: nothing will embed the new clips
            self.stderr.write(report.not_queued)

    def _owner(self, username):
        users = get_user_model().objects
        if username:
            try:
                return users.get(username=username)
            except users.model.DoesNotExist as exc:
                raise CommandError(f"--owner {username!r}: no such user") from exc
        owner = users.filter(is_superuser=True).order_by("id").first()
        if owner is None:
            raise CommandError("--owner: no superuser exists; pass --owner USERNAME")
        return owner
