# csn-eval: the single entry point. The README's two commands are `make demo` and `make test`.
# Both are idempotent: finished steps (the virtualenv, system packages, data, models) are skipped.

PYTHON     ?= python3.11
VENV       ?= .venv
PY         := $(VENV)/bin/python
CSN_HOME   ?= $(CURDIR)/.csn
export CSN_HOME

# System packages: FluidSynth and a General MIDI soundfont to render stems; for the tests also
# Chromium (browser tests), PostgreSQL and Redis (integration tests against real servers).
DEMO_DEBS  := fluidsynth fluid-soundfont-gm
TEST_DEBS  := $(DEMO_DEBS) chromium fonts-ipafont-gothic postgresql redis-server

# The test suite talks to the real PostgreSQL and Redis on this machine; override to point elsewhere.
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/csn_eval
TEST_BROKER_URL   ?= redis://127.0.0.1:6379/14
# OpenMP threads (torch's) that finish a parallel region sleep instead of spinning: the suite runs
# torch in its own process beside the workers, servers and Chromium it starts (and whatever else
# shares the machine), and spinning threads took the cores those needed. Measured on the 2-core
# machine at load 5-7, tests/csn_model/bench/test_separation.py -k "trains_saves or
# resumes_training": 40.0 and 32.9 s spinning, 24.2 and 22.9 s sleeping. Results are the same.
TEST_OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test install system-deps-demo system-deps-test services lint format clean-venv screenshots

demo: install system-deps-demo  ## make data, train, design a study, serve it (see README)
	$(PY) -m evalsite.demo $(ARGS)

test: install system-deps-test services  ## the full default test suite
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  OMP_WAIT_POLICY=$(TEST_OMP_WAIT_POLICY) $(PY) -m pytest $(ARGS)

lint: install  ## ruff, then mypy on the web code ([tool.mypy] in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

install: $(VENV)/.installed

# torch first and pinned: on the reference machine pip takes the CPU 2.13.0 wheel from disk.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

system-deps-demo:
	@DEBS="$(DEMO_DEBS)" sh -c "$$SYSTEM_DEPS"

system-deps-test:
	@DEBS="$(TEST_DEBS)" sh -c "$$SYSTEM_DEPS"

# Start PostgreSQL and Redis when they are installed but not running (Debian service layout),
# then check that the suite can log in as TEST_DATABASE_URL says and create its test database.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | tail -n1) main start; }
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
	  echo "starting Redis"; \
	  mkdir -p /var/lib/redis /var/log/redis; \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
	    --dir /var/lib/redis --logfile /var/log/redis/csn.log; sleep 1; }
	@pg_isready -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping
	@$(PY) -m evalsite.suite_database "$(TEST_DATABASE_URL)"

clean-venv:
	rm -rf $(VENV)

define SYSTEM_DEPS
missing=""
if command -v dpkg >/dev/null 2>&1; then
  for deb in $$DEBS; do dpkg -s "$$deb" >/dev/null 2>&1 || missing="$$missing $$deb"; done
fi
[ -z "$$missing" ] && exit 0
echo "Installing system packages:$$missing"
if [ "$$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing
else
  echo "error: these system packages are missing and this user cannot install them:$$missing" >&2
  echo "Ask an administrator to run:  sudo apt-get install -y$$missing" >&2
  exit 1
fi
endef
export SYSTEM_DEPS

# The README's pictures come from the browser tests' screenshots (run `make test` first).
screenshots:
	cp artifacts/screens/08_trial.png docs/img/trial.png
	cp artifacts/screens/report.png docs/img/report.png
