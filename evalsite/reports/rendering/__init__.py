"""Rendering of a computed report: rounding, plots (matplotlib Agg), Markdown/HTML summaries and
files on disk. Separate from the statistics (which keep full precision) and free of Django, so the
CSV-only command and the site's worker produce the same files."""
