"""Statistics of a listening study: pure functions on the tidy answers DataFrame.

Never imports Django (tests/evalsite/reports/test_cli.py checks every module:
test_it_keeps_django_out_of_the_analysis_and_rendering), so it runs on an exported CSV:
`python -m evalsite.reports.analysis answers.csv --out DIR`.

The config and the instrument names load with the package; the computation (report, with scipy
and statsmodels) loads on first use of its names, so the site's processes start without it
(tests/test_startup_imports.py).
"""

from typing import TYPE_CHECKING

from .config import CONDITIONS, ReportConfig

if TYPE_CHECKING:
    from .inputs import ReportInputError, normalise_answers
    from .report import build_report
    from .result import Report

# Name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "Report": ".result",
    "ReportInputError": ".inputs",
    "build_report": ".report",
    "normalise_answers": ".inputs",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONDITIONS",
    "Report",
    "ReportConfig",
    "ReportInputError",
    "build_report",
    "normalise_answers",
]
