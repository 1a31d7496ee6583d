"""Settings: production is configuration away, and malformed configuration fails loudly."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from evalsite.env import (
    EnvError,
    env_bool,
    env_database,
    env_device,
    env_float,
    env_int,
    env_list,
)

ROOT = Path(__file__).resolve().parent.parent


def _manage(args, **env):
    return _manage_each([(args, env)])[0]


def _manage_each(calls) -> list[subprocess.CompletedProcess]:
    """`manage.py` once per (args, env) of calls, all at once (each start imports the site, about
    a second of CPU: side by side they overlap on a machine with several cores), in a fresh
    deployment's environment: nothing the test session itself set (the browser fixture sets
    DJANGO_ALLOW_ASYNC_UNSAFE, which the deploy checks rightly refuse). env: None unsets."""
    unset = {
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
        "CSN_BEHIND_PROXY",
    }
    procs = []
    for args, env in calls:
        full = {k: v for k, v in os.environ.items() if k not in unset}
        full.update(env)
        full = {k: v for k, v in full.items() if v is not None}  # None: unset
        cmd = [sys.executable, "manage.py", *args]
        procs.append(
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=full
            )  # fmt: skip
        )
    results = []
    for proc in procs:
        out, err = proc.communicate()
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _production(tmp_path, **env):
    """A production environment with every required variable; `env` overrides or adds."""
    required = {"CSN_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(64),
                "ALLOWED_HOSTS": "eval.example.org", "CSN_HOME": str(tmp_path),
                "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/csn_unused",
                "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}  # fmt: skip
    return required | env


@pytest.mark.parametrize("proxy", [{}, {"CSN_BEHIND_PROXY": "false"}], ids=["proxy", "no-proxy"])
def test_it_passes_djangos_deploy_checks_in_production_settings(tmp_path, proxy):
    result = _manage(
        ["check", "--deploy", "--fail-level", "WARNING"], **_production(tmp_path, **proxy)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("behind_proxy", "header"),
    [(None, "('HTTP_X_FORWARDED_PROTO', 'https')"), ("true", "('HTTP_X_FORWARDED_PROTO', 'https')"),
     ("false", "None")],
)  # fmt: skip
def test_it_trusts_x_forwarded_proto_in_production_only_while_behind_a_proxy(
    tmp_path, behind_proxy, header
):
    env = _production(tmp_path)
    if behind_proxy is not None:
        env["CSN_BEHIND_PROXY"] = behind_proxy
    show = "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
    result = _manage(["shell", "-c", show], **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == header  # after shell's "objects imported" line


def test_it_marks_every_cookie_the_site_sets_secure_in_production(tmp_path):
    env = _production(tmp_path)
    names = ("SESSION", "CSRF", "LANGUAGE")  # the language cookie: set by /i18n/setlang/
    show = (
        "from django.conf import settings as s; "
        f"print([getattr(s, n + '_COOKIE_SECURE') for n in {names!r}])"
    )
    result = _manage(["shell", "-c", show], **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[True, True, True]"


def test_it_exempts_only_healthz_from_the_https_redirect_in_production(tmp_path):
    """A load balancer's probe of gunicorn's port speaks plain HTTP (test_healthz.py)."""
    show = "from django.conf import settings as s; "
    show += "print(s.SECURE_SSL_REDIRECT, s.SECURE_REDIRECT_EXEMPT)"
    result = _manage(["shell", "-c", show], **_production(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "True ['^healthz$']"


def test_it_refuses_production_without_a_secret_key(tmp_path):
    result = _manage(["check"], CSN_ENV="production", CSN_HOME=str(tmp_path))
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_it_refuses_production_without_allowed_hosts(tmp_path):
    secret = secrets.token_urlsafe(64)
    result = _manage(["check"], CSN_ENV="production", SECRET_KEY=secret, CSN_HOME=str(tmp_path))
    assert result.returncode != 0
    assert "ALLOWED_HOSTS: production needs the site's host names" in result.stderr


def test_it_names_the_variable_when_a_value_is_malformed(monkeypatch):
    monkeypatch.setenv("CSN_TEST_FLAG", "maybe")
    with pytest.raises(EnvError, match="CSN_TEST_FLAG='maybe'"):
        env_bool("CSN_TEST_FLAG", False)
    monkeypatch.setenv("CSN_TEST_INT", "12x")
    with pytest.raises(EnvError, match="CSN_TEST_INT"):
        env_int("CSN_TEST_INT", 1)


def test_it_refuses_a_number_below_the_readers_minimum(monkeypatch):
    monkeypatch.setenv("CSN_TEST_INT", "0")
    with pytest.raises(EnvError, match="CSN_TEST_INT='0': expected an integer >= 1"):
        env_int("CSN_TEST_INT", 32, minimum=1)
    monkeypatch.setenv("CSN_TEST_FLOAT", "-0.5")
    with pytest.raises(EnvError, match="CSN_TEST_FLOAT='-0.5': expected a number >= 0"):
        env_float("CSN_TEST_FLOAT", 0.0, minimum=0)
    monkeypatch.setenv("CSN_TEST_INT", "1")
    assert env_int("CSN_TEST_INT", 32, minimum=1) == 1


@pytest.mark.parametrize(
    "name",
    ["CSN_EMBED_BATCH", "CELERY_TASK_TIME_LIMIT", "CELERY_VISIBILITY_TIMEOUT",
     "CSN_ENTRY_WINDOW_MINUTES", "CSN_ENTRY_LIMIT_48_MULTIPLE", "CSN_RETRIEVAL_INDEXES"],
)  # fmt: skip
def test_it_refuses_a_batch_size_or_time_limit_below_one(name, tmp_path):
    broker = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}  # the visibility timeout: Redis
    result = _manage(["check"], CSN_HOME=str(tmp_path), **broker, **{name: "-1"})
    assert result.returncode != 0
    assert f"{name}='-1': expected an integer >= 1" in result.stderr


def test_it_refuses_a_soft_time_limit_above_the_hard_one(tmp_path):
    home = {"CSN_HOME": str(tmp_path)}
    limits = {"CELERY_TASK_TIME_LIMIT": "600", "CELERY_TASK_SOFT_TIME_LIMIT": "840"}
    equal = {"CELERY_TASK_TIME_LIMIT": "600", "CELERY_TASK_SOFT_TIME_LIMIT": "600"}
    result, same = _manage_each([(["check"], home | limits), (["check"], home | equal)])
    assert result.returncode != 0
    assert (
        "CELERY_TASK_SOFT_TIME_LIMIT=840: expected at most CELERY_TASK_TIME_LIMIT=600"
        in result.stderr
    )
    assert same.returncode == 0, same.stderr


def test_it_refuses_a_negative_limit_on_new_participants_per_address(tmp_path):
    result = _manage(["check"], CSN_HOME=str(tmp_path), CSN_ENTRY_LIMIT="-1")
    assert result.returncode != 0
    assert "CSN_ENTRY_LIMIT='-1': expected an integer >= 0" in result.stderr


def test_it_refuses_progress_updates_more_often_than_every_5_s(tmp_path):
    # Each update runs the progress queries for every open page: a typo such as 0.5 for 5 must
    # not turn them into a load test.
    home = {"CSN_HOME": str(tmp_path)}
    show = "from django.conf import settings; print(settings.CSN_PROGRESS_REFRESH_S)"
    refused, result = _manage_each([
        (["check"], home | {"CSN_PROGRESS_REFRESH_S": "4"}),
        (["shell", "-c", show], home | {"CSN_PROGRESS_REFRESH_S": "5"}),
    ])  # fmt: skip
    assert refused.returncode != 0
    assert "CSN_PROGRESS_REFRESH_S='4': expected an integer >= 5" in refused.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "5"


def test_it_reads_lists_and_defaults():
    assert env_list("CSN_TEST_UNSET_LIST", ["a"]) == ["a"]
    os.environ["CSN_TEST_LIST"] = "a.example, b.example ,"
    try:
        assert env_list("CSN_TEST_LIST", []) == ["a.example", "b.example"]
    finally:
        del os.environ["CSN_TEST_LIST"]


def test_it_names_the_variable_when_the_database_url_is_malformed(monkeypatch, tmp_path):
    monkeypatch.setenv("CSN_TEST_DB", "postgres-ql://db/csn")
    with pytest.raises(EnvError, match="CSN_TEST_DB='postgres-ql://db/csn': expected a database"):
        env_database("CSN_TEST_DB", "sqlite:///x.sqlite3")
    monkeypatch.setenv("CSN_TEST_DB", "")  # empty: the default, as for every other reader
    sqlite = env_database("CSN_TEST_DB", f"sqlite:///{tmp_path / 'db.sqlite3'}", conn_max_age=5)
    assert sqlite["ENGINE"].endswith("sqlite3") and sqlite["CONN_MAX_AGE"] == 5


def test_it_refuses_a_model_device_it_does_not_know_at_start_up(tmp_path):
    result = _manage(["check"], CSN_HOME=str(tmp_path), CSN_DEVICE="gpu")
    assert result.returncode != 0
    assert "CSN_DEVICE='gpu': expected empty (CUDA when available, else CPU), cpu, cuda" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("raw", "device"),
    [
        (None, None),
        ("", None),
        ("cpu", "cpu"),
        ("cuda", "cuda"),
        ("cuda:1", "cuda:1"),
        ("cuda:0", "cuda:0"),
        ("cuda:127", "cuda:127"),  # the highest index torch keeps (a signed byte)
        (" cpu", "cpu"),
    ],
)
def test_it_reads_the_model_device(monkeypatch, raw, device):
    monkeypatch.delenv("CSN_TEST_DEVICE", raising=False)
    if raw is not None:
        monkeypatch.setenv("CSN_TEST_DEVICE", raw)
    assert env_device("CSN_TEST_DEVICE") == device


@pytest.mark.parametrize(
    "raw",
    ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "cuda:1.5",
     # torch refuses a leading zero and an index past int64; past 127 it wraps (cuda:128 is
     # cuda:-128, cuda:255 plain cuda): the start-up check is the loader's rule
     # (tests/evalsite/retrieval/test_embedder.py)
     "cuda:01", "cuda:00", "cuda:99999999999999999999", "cuda:128", "cuda:255"],
)  # fmt: skip
def test_it_names_the_variable_when_the_model_device_is_malformed(monkeypatch, raw):
    monkeypatch.setenv("CSN_TEST_DEVICE", raw)
    with pytest.raises(EnvError, match=f"CSN_TEST_DEVICE={raw!r}: expected empty"):
        env_device("CSN_TEST_DEVICE")


def test_the_readme_lists_every_variable_the_settings_read():
    source = (ROOT / "evalsite" / "settings.py").read_text()
    read = set(re.findall(r'env_[a-z]+\(\s*"([A-Z][A-Z0-9_]*)"', source))
    readme = (ROOT / "README.md").read_text()
    assert len(read) > 20  # the pattern still finds the typed readers' calls
    assert sorted(v for v in read if f"`{v}`" not in readme) == []


def _assert_reads(tmp_path, setting: str, variable: str, cases, bad: str, refusal: str) -> None:
    """The setting reads each (variable's value or None, printed setting) case, and the variable
    set to `bad` stops `manage.py check` with `refusal` in its error."""
    show = f"from django.conf import settings; print(settings.{setting})"
    home = {"CSN_HOME": str(tmp_path)}
    calls = [(["shell", "-c", show], home | {variable: given}) for given, _ in cases]
    *results, result = _manage_each([*calls, (["check"], home | {variable: bad})])
    for (_, expected), shown in zip(cases, results, strict=True):
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[-1] == expected
    assert result.returncode != 0
    assert refusal in result.stderr


def test_it_reads_the_number_of_files_one_upload_may_carry(tmp_path):
    _assert_reads(
        tmp_path, "DATA_UPLOAD_MAX_NUMBER_FILES", "CSN_UPLOAD_MAX_FILES",
        [(None, "500"), ("150", "150")], "0", "CSN_UPLOAD_MAX_FILES='0': expected an integer >= 1",
    )  # fmt: skip


def test_it_names_the_variable_when_the_log_level_is_unknown(tmp_path):
    # logging's own error ("Unable to configure root logger") named neither variable nor choices.
    levels = ("verbose", "warning", "WARN", "notset")  # then every name logging itself accepts
    calls = [(["check"], {"CSN_HOME": str(tmp_path), "LOG_LEVEL": level}) for level in levels]
    result, *accepted = _manage_each(calls)
    assert result.returncode != 0
    assert "LOG_LEVEL='verbose': expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in (
        result.stderr
    )
    for level, run in zip(levels[1:], accepted, strict=True):
        assert run.returncode == 0, (level, run.stderr)


def test_it_creates_csn_home_for_its_default_sqlite_database(tmp_path):
    home = tmp_path / "not" / "yet"
    connect = "from django.db import connection; connection.ensure_connection(); print('ok')"
    result = _manage(["shell", "-c", connect], CSN_HOME=str(home), DATABASE_URL="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "ok" and home.is_dir()


def test_it_leaves_csn_home_alone_with_a_database_url(tmp_path):
    home = tmp_path / "not" / "yet"
    url = "postgresql://postgres@127.0.0.1:5432/csn_unused"
    result = _manage(["shell", "-c", "print('ok')"], CSN_HOME=str(home), DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert not home.exists()


def test_it_reads_a_relative_checkpoint_path_from_the_start_directory(tmp_path):
    show = "from django.conf import settings; print(settings.CSN_CHECKPOINT)"
    result = _manage(["shell", "-c", show], CSN_HOME=str(tmp_path), CSN_CHECKPOINT="runs/x.pt")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == str(ROOT / "runs" / "x.pt")


def test_it_keeps_a_checkpoint_path_through_a_symlink_as_given(tmp_path):
    # Repointing runs/current at another run must reach the workers' next load without a
    # restart (the embedder resolves the path when it loads), so the setting keeps the link.
    (tmp_path / "a").mkdir()
    (tmp_path / "current").symlink_to(tmp_path / "a")
    show = "from django.conf import settings; print(settings.CSN_CHECKPOINT)"
    given = str(tmp_path / "current" / "final.pt")
    result = _manage(["shell", "-c", show], CSN_HOME=str(tmp_path), CSN_CHECKPOINT=given)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == given


# The embedded broker's connection as the demo's worker makes it, with every kombu log record
# about it: kombu logs (not warns) "No hostname was supplied" when the URL has no host.
BROKER_CONNECTION = """
import logging
import django
django.setup()
from evalsite.celery import app
seen = []
handler = logging.Handler()
handler.emit = seen.append
logging.getLogger("kombu.connection").addHandler(handler)
connection = app.connection_for_write()
connection.info()  # the details kombu's clone() and connection pools read as a worker starts
print(connection.transport_cls, [r.getMessage() for r in seen])
"""


def test_it_connects_to_the_embedded_broker_without_kombus_no_hostname_warning(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env |= {"CSN_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "evalsite.settings"}
    result = subprocess.run([sys.executable, "-c", BROKER_CONNECTION], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "filesystem []"


@pytest.mark.parametrize(
    ("name", "example"),
    [("DATABASE_URL", "postgresql://"), ("CELERY_BROKER_URL", "redis://")],
)
def test_it_refuses_production_without_a_database_or_broker_url(tmp_path, name, example):
    # Without them production used SQLite and a broker folder inside CSN_HOME, silently.
    calls = [(["check"], _production(tmp_path, **{name: unset})) for unset in ("", None)]
    for result in _manage_each(calls):
        assert result.returncode != 0
        assert f"{name}: production needs" in result.stderr and example in result.stderr
    assert not (tmp_path / "db.sqlite3").exists() and not (tmp_path / "broker").exists()


def test_its_deploy_checks_warn_of_sqlite_the_file_broker_and_files_inside_the_checkout(
    tmp_path,
):
    env = _production(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_BROKER_URL="filesystem://localhost//",
        MEDIA_ROOT=str(ROOT / ".csn" / "media"),
        STATIC_ROOT=str(ROOT / ".csn" / "staticfiles"),
    )
    # Outside the checkout, on PostgreSQL and Redis (clean, as the deploy-check test above), run
    # alongside.
    deploy = ["check", "--deploy", "--fail-level", "WARNING"]
    result, clean = _manage_each([(deploy, env), (deploy, _production(tmp_path))])
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for check_id, names in (
        ("csn.W001", "DATABASE_URL"),
        ("csn.W002", "CELERY_BROKER_URL"),
        ("csn.W003", "MEDIA_ROOT"),
        ("csn.W003", "STATIC_ROOT"),
    ):
        assert re.search(rf"\({check_id}\) {names}", output), output
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_it_keeps_the_password_out_of_a_malformed_database_urls_error(monkeypatch):
    monkeypatch.setenv("CSN_TEST_DB", "postgresql://csn:p#ss@127.0.0.1:5432/csn")
    with pytest.raises(EnvError) as caught:
        env_database("CSN_TEST_DB", "sqlite:///x.sqlite3")
    message = str(caught.value)
    assert "p#ss" not in message
    assert "CSN_TEST_DB='postgresql://csn:***@127.0.0.1:5432/csn'" in message
    assert "percent-encoded" in message


def test_it_hides_only_the_password_of_a_database_url_not_the_same_letters_elsewhere(monkeypatch):
    """A one-letter password, or one equal to the user name, does not mask the user name or the
    reason the URL was refused (review nb, F1)."""
    monkeypatch.setenv("CSN_TEST_DB", "postgresql://e:e@127.0.0.1:5432")
    with pytest.raises(EnvError) as caught:
        env_database("CSN_TEST_DB", "sqlite:///x.sqlite3")
    message = str(caught.value)
    assert "CSN_TEST_DB='postgresql://e:***@127.0.0.1:5432'" in message, message
    assert "(it names no database after the host (nor a ?service=))" in message, message


def test_it_reads_the_trusted_proxies_and_refuses_one_that_is_no_address(tmp_path):
    cases = [(None, "['127.0.0.0/8', '::1/128']"),
             ("10.0.0.5, 10.1.0.0/16", "['10.0.0.5/32', '10.1.0.0/16']")]  # fmt: skip
    bad = "10.0.0.5,proxy.lan"
    _assert_reads(
        tmp_path, "CSN_TRUSTED_PROXIES", "CSN_TRUSTED_PROXIES", cases, bad,
        f"CSN_TRUSTED_PROXIES='{bad}': expected",
    )  # fmt: skip


def test_it_sends_hsts_with_subdomains_and_preload_unless_turned_off(tmp_path):
    show = (
        "from django.conf import settings as s; "
        "print(s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)"
    )
    result = _manage(["shell", "-c", show], **_production(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "True True"
    off = {"SECURE_HSTS_INCLUDE_SUBDOMAINS": "false", "SECURE_HSTS_PRELOAD": "false"}
    result = _manage(["shell", "-c", show], **_production(tmp_path, **off))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False False"


@pytest.mark.parametrize(
    "url",
    ["postgresql://csn:p@ss#w/rd@127.0.0.1:5432/csn",  # raw @ and #: host 'ss', the rest a fragment
     "postgresql://csn@127.0.0.1:5432",  # no database name
     "postgresql://csn@127.0.0.1:5432/csn#main"],
)  # fmt: skip
def test_it_refuses_a_database_url_that_names_no_database_or_has_a_fragment(monkeypatch, url):
    monkeypatch.setenv("CSN_TEST_DB", url)
    with pytest.raises(EnvError) as caught:
        env_database("CSN_TEST_DB", "sqlite:///x.sqlite3")
    message = str(caught.value)
    assert message.startswith("CSN_TEST_DB=") and "percent-encoded" in message
    assert "p@ss" not in message and "w/rd" not in message


def test_it_reads_a_database_url_that_names_its_database_through_a_service_file(monkeypatch):
    monkeypatch.setenv("CSN_TEST_DB", "postgresql://?service=csn")  # pg_service.conf names it
    config = env_database("CSN_TEST_DB", "sqlite:///x.sqlite3")
    assert config["OPTIONS"] == {"service": "csn"} and config["NAME"] == ""


def _gunicorn(tmp_path, **env) -> tuple[subprocess.Popen, int]:
    """gunicorn started as docs tell an operator (from the checkout, its gunicorn.conf.py read),
    in production settings; waits until it answers."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    full = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "CSN_BEHIND_PROXY"}}
    full |= _production(tmp_path, ALLOWED_HOSTS="127.0.0.1", **env)
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [gunicorn, "evalsite.wsgi", "-b", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(300):
        try:
            _status(port, "/healthz", {})  # any answer: it is up
            return server, port
        except OSError:
            if server.poll() is not None:
                raise AssertionError(f"gunicorn exited with {server.returncode}") from None
            time.sleep(0.1)
    server.kill()
    raise AssertionError("gunicorn did not answer /healthz")


def _status(port: int, path: str, headers: dict) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("env", "header"),
    [({"CSN_BEHIND_PROXY": "false"}, {"X-Forwarded-Ssl": "on"}),
     ({"CSN_BEHIND_PROXY": "false"}, {"X-Forwarded-Proto": "https"}),
     ({"CSN_TRUSTED_PROXIES": "10.0.0.5"}, {"X-Forwarded-Proto": "https"}),
     ({"CSN_TRUSTED_PROXIES": "10.0.0.5"}, {"X-Forwarded-Protocol": "ssl"})],
)  # fmt: skip
def test_a_client_gunicorn_would_believe_cannot_claim_https_the_site_does_not_trust(
    tmp_path, env, header
):
    # gunicorn itself reads these headers from loopback peers unless its config says otherwise:
    # the site, not gunicorn, decides which proxies count (CSN_BEHIND_PROXY, CSN_TRUSTED_PROXIES).
    server, port = _gunicorn(tmp_path, **env)
    try:
        assert _status(port, "/studies/", header) == 301  # to HTTPS: the claim is not believed
    finally:
        server.terminate()
        server.wait(10)


def test_a_plain_http_health_probe_of_gunicorn_gets_200_in_production(tmp_path):
    server, port = _gunicorn(tmp_path)
    try:
        assert _status(port, "/healthz", {}) == 200  # a load balancer's probe, no proxy header
        assert _status(port, "/studies/", {}) == 301  # every other page still goes to HTTPS
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("name", ["CELERY_BROKER_SOCKET_TIMEOUT", "CELERY_BROKER_CONNECT_TIMEOUT"])
def test_it_refuses_a_broker_timeout_below_a_tenth_of_a_second(name, tmp_path):
    # 0 would not mean "no timeout" to redis-py but a non-blocking socket: every read fails.
    broker = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    result = _manage(["check"], CSN_HOME=str(tmp_path), **broker, **{name: "0"})
    assert result.returncode != 0
    assert f"{name}='0': expected a number >= 0.1" in result.stderr


def test_it_reads_the_report_queue_back_off(tmp_path):
    result = _manage(["check"], CSN_HOME=str(tmp_path), REPORT_QUEUE_BACKOFF_S="-1")
    assert result.returncode != 0
    assert "REPORT_QUEUE_BACKOFF_S='-1': expected a number >= 0" in result.stderr
    show = "from django.conf import settings; print(settings.REPORT_QUEUE_BACKOFF_S)"
    result = _manage(["shell", "-c", show], CSN_HOME=str(tmp_path), REPORT_QUEUE_BACKOFF_S="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "60.0"  # the default


@pytest.mark.parametrize(
    ("url", "shown"),
    [  # review r3: a raw @ in a query value was taken for the end of a password after host:
        ("postgresql://127.0.0.1:5432/?application_name=ci@runner",
         "postgresql://127.0.0.1:5432/?application_name=ci@runner"),
        ("postgresql://u:p@ss@db.example:5432/n?application_name=ci@runner",
         "postgresql://u:***@db.example:5432/n?application_name=ci@runner"),
        ("postgresql://u:pa/ss@db.example/n", "postgresql://u:***@db.example/n"),  # a raw /
        ("postgresql://u:1234/5@db.example/n", "postgresql://u:***@db.example/n"),
        ("postgresql://u:hunter2@db.example#x", "postgresql://u:***@db.example#x"),
        # review r4: a password of digits and a raw ? was taken for host:port?query
        ("postgresql://u:2024?Secret@127.0.0.1:5432/n", "postgresql://u:***@127.0.0.1:5432/n"),
        ("postgresql://u:?secret@127.0.0.1:5432/n", "postgresql://u:***@127.0.0.1:5432/n"),
        ("postgresql://[::1]:5432/n?application_name=ci@runner",
         "postgresql://[::1]:5432/n?application_name=ci@runner"),
        ("postgresql://u:pw@[::1]:5432/n", "postgresql://u:***@[::1]:5432/n"),
        ("postgresql://127.0.0.1:5432/n#x@y", "postgresql://127.0.0.1:5432/n#x@y"),
        ("postgresql://u@h/n?sslpassword=KeyPass1&sslmode=bogus",
         "postgresql://u@h/n?sslpassword=***&sslmode=bogus"),
        ("postgresql://u@h/n?password=sec#ret", "postgresql://u@h/n?password=***"),
        ("postgresql://u:ab@cd/ef@127.0.0.1:5432/n", "postgresql://u:***@127.0.0.1:5432/n"),
    ],
)  # fmt: skip
def test_it_shows_a_urls_host_and_query_and_hides_only_its_password(url, shown):
    from evalsite.env import shown_url

    assert shown_url(url) == shown
