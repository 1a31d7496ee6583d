"""Statistics of a listening study: pure functions on the tidy answers DataFrame.

Never imports Django (tests/evalsite/reports/test_cli.py checks every module:
test_it_keeps_django_out_of_the_analysis_and_rendering), so it runs on an exported CSV:
`python -m evalsite.reports.analysis answers.csv --out DIR`.
"""

from .inputs import CONDITIONS, ReportInputError, normalise_answers
from .report import Report, ReportConfig, build_report

__all__ = [
    "CONDITIONS",
    "Report",
    "ReportConfig",
    "ReportInputError",
    "build_report",
    "normalise_answers",
]
