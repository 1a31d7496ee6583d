"""Project-wide rules: layering, lint, migrations in sync."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_it_keeps_django_out_of_csn_model():
    # Import every csn_model module in a fresh interpreter and check Django never got loaded.
    code = (
        "import importlib, pkgutil, sys, csn_model\n"
        "for m in pkgutil.walk_packages(csn_model.__path__, 'csn_model.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k == 'django' or k.startswith('django.'))\n"
        "print(bad[:5]); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_passes_ruff():
    ruff = Path(sys.executable).with_name("ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([str(ruff), *args], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # mypy from a clean cache, 1-2 min; `make lint` runs it too
def test_it_passes_mypy():
    # [tool.mypy] in pyproject.toml: evalsite and the csn_model it imports. The cache in
    # .mypy_cache/ (git-ignored, shared with `make lint`) makes a rerun take seconds.
    mypy = Path(sys.executable).with_name("mypy")
    result = subprocess.run([str(mypy)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_has_no_missing_migrations():
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_page_names_an_icon_the_site_serves(client):
    # Without one, browsers ask for /favicon.ico on every page and log a 404 in the console.
    from django.contrib.staticfiles import finders

    page = client.get("/accounts/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    assert finders.find("favicon.svg")


def test_the_method_the_docs_cite_is_in_the_repository_as_specified():
    # docs/method.md is the copy a clone carries; the developers' shared spec, where this
    # checkout has it, is the source: the two must not drift apart.
    copy = ROOT / "docs" / "method.md"
    assert copy.read_text().startswith("# The method this project implements")
    shared = ROOT.parent / "shared" / "METHOD.md"
    if shared.is_file():
        assert copy.read_text() == shared.read_text(), "update docs/method.md from shared/METHOD.md"


# Hashes the docs name with a note that they are not in the repository (a branch's commits
# before it was rebased onto main), each next to the commit that holds that code.
_HASHES_NOTED_ABSENT = {"29ebcf8", "323d56b", "29e9e00"}
_HASH = r"(?<![0-9A-Za-z_./-])([0-9a-f]{7,12})(?![0-9A-Za-z_])"


def test_every_commit_the_docs_name_is_in_the_repository():
    # A figure is labelled with the commit that measured it, so that anyone can check it out and
    # rerun it; a hash from a branch before its rebase names nothing. Needs the history: a
    # shallow clone cannot answer.
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True
    )
    if shallow.returncode != 0 or shallow.stdout.strip() != "false":
        pytest.skip("not a full git clone: the docs' commits cannot be looked up")
    docs = [ROOT / "README.md", ROOT / "experiments" / "README.md", *(ROOT / "docs").glob("*.md")]
    missing = []
    for doc in docs:
        for line_no, line in enumerate(doc.read_text().splitlines(), 1):
            for token in re.findall(_HASH, line):
                if not (re.search("[a-f]", token) and re.search("[0-9]", token)):
                    continue  # a word or a number, not a hash
                if token in _HASHES_NOTED_ABSENT or "fingerprint" in line:
                    continue
                found = subprocess.run(
                    ["git", "cat-file", "-e", f"{token}^{{commit}}"], cwd=ROOT, capture_output=True
                )
                if found.returncode != 0:
                    missing.append(f"{doc.relative_to(ROOT)}:{line_no}: {token}")
    assert not missing, "commits named in the docs but not in the repository:\n" + "\n".join(
        missing
    )
