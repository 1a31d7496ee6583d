"""What a process of the site loads when it starts: every manage.py command, web worker and test
subprocess pays for it. The statistics stack (scipy.stats, statsmodels, matplotlib) loads where
a report is computed or drawn (the worker's task, the CSV command), and torch/faiss where the
model runs, and pandas where a table is built; a web process starts and serves its URL conf
without them."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Loaded by computing or drawing a report, or by the model; pandas by building a table (an
# export, a report's table page): none is needed to start the site.
HEAVY = ("scipy.stats", "statsmodels", "matplotlib", "torch", "faiss", "pandas")


def _loaded_at_start(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter holds after Django's setup and `code`."""
    script = (
        "import sys, django\n"
        "django.setup()\n"
        f"{code}\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "evalsite.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split()


def test_it_starts_the_web_site_without_the_statistics_stack_or_the_model():
    # The URL conf imports every view (the report pages, the experimenter's pages, the admin),
    # as gunicorn's first request and `manage.py check` do.
    assert _loaded_at_start("import evalsite.urls, evalsite.wsgi") == []


def test_it_reads_a_reports_config_without_the_statistics_stack():
    # What the report page and the settings edit compare (the study's config), apart from the
    # computation the worker runs.
    code = (
        "from evalsite.reports.study_config import report_config_for\n"
        "from evalsite.reports.analysis import ReportConfig, CONDITIONS\n"
        "ReportConfig.from_dict({'planned_instruments': list(CONDITIONS)})"
    )
    assert _loaded_at_start(code) == []


def test_the_report_computation_still_loads_the_statistics_it_runs_on():
    # The guard above would pass vacuously if scipy.stats could not be seen loading at all.
    assert "scipy.stats" in _loaded_at_start("from evalsite.reports.analysis import build_report")
