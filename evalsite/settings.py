"""Settings for the csn-eval site: one module, every environment-dependent value read through the
typed helpers in evalsite.env. Embedded defaults (SQLite, local media, file-based broker) need no
server; production is `CSN_ENV=production` plus the variables in the README's configuration table.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.utils.translation import gettext_lazy as _

from evalsite.env import (
    EnvError,
    env_bool,
    env_choice,
    env_database,
    env_device,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_path,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Everything the demo writes (database, media, datasets, runs, broker files) lives here.
CSN_HOME = env_path("CSN_HOME", BASE_DIR / ".csn")

CSN_ENV = env_str("CSN_ENV", "development")
if CSN_ENV not in {"development", "production"}:
    raise EnvError(f"CSN_ENV={CSN_ENV!r}: expected 'development' or 'production'")
PRODUCTION = CSN_ENV == "production"

DEBUG = env_bool("DEBUG", not PRODUCTION)
_DEV_SECRET = "django-insecure-csn-eval-development-only-never-deploy-this-key-0123456789"
SECRET_KEY = env_str("SECRET_KEY", "" if PRODUCTION else _DEV_SECRET)
if PRODUCTION and len(SECRET_KEY) < 50:
    raise EnvError("SECRET_KEY: production needs a random secret of at least 50 characters")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:  # Django would answer every request 400, and only warn
    raise EnvError("ALLOWED_HOSTS: production needs the site's host names, e.g. eval.example.org")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# A form that fails the CSRF check (cookies blocked or cleared, or a page gone stale): the site's
# own page, saying how to go on, instead of Django's bare "CSRF verification failed".
CSRF_FAILURE_VIEW = "evalsite.views.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "evalsite.datasets",
    "evalsite.stimuli",
    "evalsite.studies",
    "evalsite.reports",
    "evalsite.retrieval",
    "evalsite.jobs",
    "axes",  # login lockout after repeated wrong passwords (below)
]

MIDDLEWARE = [
    "evalsite.healthz.HealthCheck",  # first: a probe's Host need not be in ALLOWED_HOSTS
    "evalsite.trusted_proxy.TrustedProxyMiddleware",  # X-Forwarded-* from proxies only
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "evalsite.site_language.ResearcherPagesInEnglish",  # after Locale, before Csrf (docstring)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a lockout into the 429 page; last, as axes asks
]

ROOT_URLCONF = "evalsite.urls"
WSGI_APPLICATION = "evalsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# SQLite under CSN_HOME by default; DATABASE_URL=postgresql://... in production and in the tests.
# Production must name it: the default would put every answer and account in a file inside the
# checkout, which a fresh clone, `git clean -xdf` or `make demo ARGS=--reset` removes.
if PRODUCTION and not env_str("DATABASE_URL", ""):
    raise EnvError(
        "DATABASE_URL: production needs the site's database, e.g. "
        "postgresql://csn:password@db:5432/csn (the default, SQLite in CSN_HOME, is the demo's)"
    )
_default_db = f"sqlite:///{CSN_HOME / 'db.sqlite3'}"
DATABASES = {
    "default": env_database("DATABASE_URL", _default_db, env_int("DB_CONN_MAX_AGE", 0, minimum=0)),
}
if DATABASES["default"]["NAME"] == str(CSN_HOME / "db.sqlite3"):
    # The default database lives in CSN_HOME: on a fresh machine SQLite cannot create its file
    # ("unable to open database file") until the folder exists. A DATABASE_URL elsewhere: no folder.
    try:
        CSN_HOME.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvError(f"CSN_HOME={CSN_HOME}: cannot create the database's folder ({exc})") from exc
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL and a busy timeout let the web process and a local worker share one SQLite file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }

# The queries every participant request runs are prepared (planned once per connection) on
# PostgreSQL (studies/participant_sql.py: hot_cursor). Turn off behind a pooler in transaction
# mode that does not keep prepared statements (PgBouncer before 1.21, or without
# max_prepared_statements).
DB_PREPARE_PARTICIPANT_QUERIES = env_bool("DB_PREPARE_PARTICIPANT_QUERIES", True)
if DB_PREPARE_PARTICIPANT_QUERIES and "postgresql" in DATABASES["default"]["ENGINE"]:
    # Django sets psycopg's threshold to None (nothing is ever prepared, even when asked); a
    # threshold no query reaches prepares only what asks for it (prepare=True). Those are
    # planned once, generically: re-planning them per run (PostgreSQL's default for the first
    # runs and whenever a custom plan looks cheaper) cost twice their execution time.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["prepare_threshold"] = 2**31 - 1
    _generic = "-c plan_cache_mode=force_generic_plan"
    _options["options"] = f"{_options.get('options', '')} {_generic}".strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
# django-axes: after CSN_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address,
# that pair is refused (429, even with the right password) until CSN_LOGIN_COOLOFF_MINUTES pass
# with no further attempt; a success resets the count. Keyed on the pair, not the username
# alone, so nobody can lock a researcher out from elsewhere by guessing. Unlock at once with
# `manage.py axes_reset_username NAME`. The address: evalsite/login_throttle.py.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before any check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("CSN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CSN_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "evalsite.login_throttle.client_ip"
AXES_VERBOSE = False  # a lockout is logged as a warning either way
LOGIN_REDIRECT_URL = "/studies/"
LOGOUT_REDIRECT_URL = "/"
# New participants one client address may start in a study within CSN_ENTRY_WINDOW_MINUTES
# (evalsite/studies/entry_limit.py, the address as for the login lockout): a script opening the
# study link with fresh ids would otherwise create participants whose trial reservations starve
# real ones. The next new one gets a 429 page; people coming back and previews never do. 0: no
# limit. A lab whose participants share one address (NAT) must raise it above the room's entries.
CSN_ENTRY_LIMIT = env_int("CSN_ENTRY_LIMIT", 30, minimum=0)
CSN_ENTRY_WINDOW_MINUTES = env_int("CSN_ENTRY_WINDOW_MINUTES", 10, minimum=1)
# An IPv6 client counts by its /64, and its /48 counts too, up to this many times CSN_ENTRY_LIMIT
# over all its /64s: whoever holds a routed /48 (a tunnel broker's, free) has 65,536 /64s. A
# campus on one /48 shares this count: raise it for a lab study over IPv6 on many subnets.
CSN_ENTRY_LIMIT_48_MULTIPLE = env_int("CSN_ENTRY_LIMIT_48_MULTIPLE", 4, minimum=1)
# Files one request may carry (Django's parser refuses more, reading no further; the Clips page
# then names the limit). Each file of an upload is a temporary file and an open handle until
# the request ends, so keep it a few hundred. Per file the Clips page takes up to 100 MB; Django
# spools every file above FILE_UPLOAD_MAX_MEMORY_SIZE to disk and counts only the form's other
# fields against DATA_UPLOAD_MAX_MEMORY_SIZE, so neither limits the total of an upload.
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("CSN_UPLOAD_MAX_FILES", 500, minimum=1)

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "evalsite" / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", CSN_HOME / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", CSN_HOME / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Model checkpoint used by the workers for embeddings and model choices.
# A relative path is read from the directory the process starts in, as for the other paths, and
# made absolute here: what the pages show and what the workers load is the same file. Symlinks
# are kept: the embedder resolves the path at each load, so repointing one needs no restart.
CSN_CHECKPOINT = str(
    env_path("CSN_CHECKPOINT", CSN_HOME / "runs" / "demo" / "final.pt", follow_links=False)
)
# The model's device, in the workers and for a query clip uploaded to /retrieval/ (web process):
# cpu, cuda or cuda:N; unset or empty: CUDA when available, else CPU.
CSN_DEVICE = env_device("CSN_DEVICE")
# Where Slakh-layout datasets made or imported by the demo live.
CSN_DATA_DIR = env_path("CSN_DATA_DIR", CSN_HOME / "data")
# More Slakh-layout dataset roots for the /datasets/ listing (comma-separated paths).
CSN_DATASETS = [Path(p).expanduser().resolve() for p in env_list("CSN_DATASETS", [])]

# Celery. Embedded default: kombu's filesystem transport under CSN_HOME, so a real worker process
# runs without any broker server. Production: CELERY_BROKER_URL=redis://host:6379/0. The transport
# ignores the host, but kombu logs "No hostname was supplied" for a URL without one (as it fills
# in localhost) each time it reads the connection's details: the default names localhost itself.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "" if PRODUCTION else "filesystem://localhost//")
if PRODUCTION and not CELERY_BROKER_URL:  # the file broker: no worker on another machine sees it
    raise EnvError(
        "CELERY_BROKER_URL: production needs the broker the web processes and workers share, "
        "e.g. redis://redis:6379/0 (the default, folders in CSN_HOME, is the demo's)"
    )
_broker_socket_timeout = env_float("CELERY_BROKER_SOCKET_TIMEOUT", 5.0, minimum=0.1)
_broker_connect_timeout = env_float("CELERY_BROKER_CONNECT_TIMEOUT", 5.0, minimum=0.1)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = CSN_HOME / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Redis: an unacknowledged message (its worker was killed) is delivered again after this
    # many seconds; it must exceed the longest task (CELERY_TASK_TIME_LIMIT).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1),
        "unacked_restore_interval": env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10, minimum=1),
        "unacked_restore_throttle": env_int("CELERY_UNACKED_RESTORE_THROTTLE", 10, minimum=1),
        # Seconds to wait for Redis to connect, and to answer a command once connected. Without
        # them a Redis that accepts and never answers (hung, or a partition after the handshake)
        # blocks the publish, and so the web request that queues work, for ever. Far above a
        # healthy reply (milliseconds); a worker's BRPOP returns every second, within them.
        "socket_connect_timeout": _broker_connect_timeout,
        "socket_timeout": _broker_socket_timeout,
    }
# A publish the broker refuses or leaves unanswered is tried once more after 0.5 s, then fails
# (the job says "could not queue: ..."): a stalled broker holds the request for about
# 2 x CELERY_BROKER_SOCKET_TIMEOUT + 0.5 s, not Celery's default 4 tries.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1, "interval_start": 0.5, "interval_step": 0, "interval_max": 0.5
}  # fmt: skip
# After a report recomputation could not be queued, requests (a participant's last answer, a
# withdrawal) skip the publish for this many seconds rather than each wait for the broker's
# timeouts again (evalsite/reports/tasks.py); 0: every request tries.
REPORT_QUEUE_BACKOFF_S = env_float("REPORT_QUEUE_BACKOFF_S", 60.0, minimum=0)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
# A Redis result backend (none by default) gets the broker's timeouts, not Celery's 120 s/none.
CELERY_REDIS_SOCKET_TIMEOUT = _broker_socket_timeout
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = _broker_connect_timeout
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Seconds. Published in each task's message by the process that queues it (the web process),
# so the web processes and the workers must be given the same values.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 840, minimum=1)
if CELERY_TASK_SOFT_TIME_LIMIT > CELERY_TASK_TIME_LIMIT:  # the soft limit would never be reached
    raise EnvError(
        f"CELERY_TASK_SOFT_TIME_LIMIT={CELERY_TASK_SOFT_TIME_LIMIT}: expected at most "
        f"CELERY_TASK_TIME_LIMIT={CELERY_TASK_TIME_LIMIT} (the hard limit kills the task first, "
        "so it never gets the soft limit's chance to end cleanly)"
    )
CELERY_TASK_DEFAULT_QUEUE = "cpu"  # queues and routes: evalsite/celery.py, docs/workers.md
# Clips that become ready are embedded by a worker after the commit (evalsite/retrieval/signals.py).
CSN_AUTO_EMBED = env_bool("CSN_AUTO_EMBED", True)
# Seconds a worker pauses between embedding batches: 0 except in the crash-recovery test.
CSN_EMBED_PAUSE_S = env_float("CSN_EMBED_PAUSE_S", 0.0, minimum=0)
# Clips per model call in the embedding task (and per task when a catalogue is ingested).
CSN_EMBED_BATCH = env_int("CSN_EMBED_BATCH", 32, minimum=1)
# Search indexes (one per checkpoint, catalogue and instrument) a web process holds at most; the
# least recently searched is dropped first and rebuilt from the database when searched again.
CSN_RETRIEVAL_INDEXES = env_int("CSN_RETRIEVAL_INDEXES", 50, minimum=1)
# Seconds between updates of a study's progress figures in the page (static/studies/progress.js).
# At least 5: each update runs the progress queries, for every open page; the browser tests set a
# fraction of a second on the Django setting itself.
CSN_PROGRESS_REFRESH_S = env_int("CSN_PROGRESS_REFRESH_S", 30, minimum=5)

# logging's own names, its aliases (WARN, FATAL) and NOTSET included
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "WARN", "FATAL", "NOTSET")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "INFO", LOG_LEVELS)},
}

# Behind a proxy that terminates TLS and sets X-Forwarded-Proto and X-Forwarded-For (production).
CSN_BEHIND_PROXY = PRODUCTION and env_bool("CSN_BEHIND_PROXY", True)
# The peers whose X-Forwarded-* headers count; every other request loses them (trusted_proxy.py).
CSN_TRUSTED_PROXIES = env_networks("CSN_TRUSTED_PROXIES", ["127.0.0.1/8", "::1"])

if PRODUCTION:
    # Requests count as HTTPS when X-Forwarded-Proto says so. Only a proxy that terminates TLS
    # and overwrites that header makes it true; served without one, any client could send it.
    if CSN_BEHIND_PROXY:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # A load balancer's or supervisor's probe of gunicorn's port speaks plain HTTP; /healthz
    # answers it (it reads and sets nothing) instead of redirecting it to HTTPS. (A probe whose
    # Host is none of ALLOWED_HOSTS is answered before this: evalsite.healthz.HealthCheck.)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True  # /i18n/setlang/ sets it: no cookie goes over plain HTTP
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    # Both on by default (check --deploy asks for them); a domain whose other hosts are not all
    # on HTTPS turns includeSubDomains off, and preload off unless it is to be on browsers' list.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
