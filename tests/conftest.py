"""Fixtures shared by the whole suite. App-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"  # screenshots and other files a person can look at after a run

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hasher():
    """MD5 instead of PBKDF2 for every test: a PBKDF2 hash or login costs about 0.35 s on a
    2-core machine (151 of them in the retrieval and login-throttle tests alone), and no test
    checks the strength of a hash. The live server runs in this process, so it hashes the same
    way; the demo and the load test run their own settings in their own processes."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CSN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"Chromium not found at {path}: run `make test` (installs Debian's chromium)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One headless Chromium for the session (Playwright, Debian's binary, no download)."""
    # Playwright's sync API refuses to run inside a running asyncio loop; Django's async-unsafe
    # guard would then trip on ORM calls made from tests, so allow them explicitly.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small Slakh-layout dataset rendered by `csn synth` (12 tracks of 8 s at 22050 Hz).

    Splits: 6 train, 2 validation, 4 test tracks; most tracks have all five conditions. Renders
    in a few seconds, once per test session. Treat it as read-only: other tests share it.
    """
    from csn_model.data.synth import synthesize

    root = tmp_path_factory.mktemp("tiny_dataset")
    synthesize(
        root, 12, 3, seconds=8.0, workers=2, split_fractions=(0.5, 0.17, 0.33), progress=False
    )
    return root


@pytest.fixture
def damaged_dataset(tiny_dataset, tmp_path) -> Callable[..., Path]:
    """`damaged_dataset(track, root=None)`: `root` (by default a new copy of `tiny_dataset`) with
    the first stem (S00) of its test-split `track` cut in half: the header still reads, so the
    dataset loads, and decoding the stem fails (a DataError once the track is analysed, in the
    middle of an import)."""

    def damage(track: str, root: Path | None = None) -> Path:
        if root is None:
            root = Path(shutil.copytree(tiny_dataset, tmp_path / f"damaged-{track}"))
        stem = root / "test" / track / "stems" / "S00.flac"
        stem.write_bytes(stem.read_bytes()[: stem.stat().st_size // 2])
        return root

    return damage


BROKER_DOWN = "redis://127.0.0.1:1/0"  # port 1: connection refused at once


@pytest.fixture
def broker_down(monkeypatch):
    """Real publishing (not eager) to a Redis URL nothing listens on, for tests of what a page
    or task says when the broker is down."""
    from evalsite.celery import app

    def reset_pools() -> None:  # the next publish connects to broker_url, not a pooled one
        app._pool = None
        app.amqp._producer_pool = None

    # Celery prefers the CELERY_BROKER_URL environment variable over app.conf.broker_url.
    monkeypatch.setenv("CELERY_BROKER_URL", BROKER_DOWN)
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.broker_transport_options = BROKER_DOWN, {}
    app.conf.task_always_eager = False
    reset_pools()
    yield
    reset_pools()
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved
