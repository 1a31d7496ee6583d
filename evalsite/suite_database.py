"""`python -m evalsite.suite_database URL`: can the test suite log in to the PostgreSQL at URL?

`make test` runs it after starting the services. `pg_isready` only says the server is up; the
suite also needs to log in over TCP as a role that may create databases (Django's test runner
makes `test_<name>` and drops it). Debian's default `pg_hba.conf` asks TCP logins for a password,
so a URL without one fails there on every database test with `fe_sendauth: no password
supplied`, which says nothing about what to do. This says it once, before the suite starts."""

import sys

import dj_database_url
import psycopg

from evalsite.env import hide_url, shown_url

ADVICE = """\
The test suite logs in to PostgreSQL over TCP as TEST_DATABASE_URL says, as a role that may
create databases (Django's test runner creates and drops test_<name>). Either:
  - give the URL a role and password that can:
      make test TEST_DATABASE_URL=postgresql://USER:PASSWORD@127.0.0.1:5432/csn_eval
    (as the postgres superuser: CREATE ROLE USER LOGIN CREATEDB PASSWORD 'PASSWORD';), or
  - on a machine only you use, let local TCP logins in without a password: in
    /etc/postgresql/<version>/main/pg_hba.conf set the method of the `host all all
    127.0.0.1/32` line to `trust`, then `pg_ctlcluster <version> main reload`."""


NOT_RUNNING = """\
No PostgreSQL answers at that host and port: start it (`make services` starts a local Debian
one) or point TEST_DATABASE_URL at one that runs."""


NOT_SETTINGS = "not connection settings libpq takes"
BAD_OPTION = """\
The URL's query string goes to libpq as connection settings (sslmode=, connect_timeout=, ...):
remove or correct the one named (the list: PostgreSQL's documentation, "Parameter Key Words")."""


def problem(url: str) -> str | None:
    """None when `url`'s role can log in to the server's `postgres` database and create
    databases; else what went wrong, in a sentence or two with the server's own words. The URL
    is read as the suite's settings read it (evalsite.env.env_database: dj_database_url)."""
    try:
        config = dj_database_url.parse(url)
    except (ValueError, KeyError) as error:
        return f"not a database URL the suite can use ({error})"
    if not str(config.get("ENGINE", "")).endswith("postgresql"):
        return "not a PostgreSQL URL (postgresql://user:password@host:5432/name)"
    params = {
        "user": config.get("USER"),
        "password": config.get("PASSWORD"),
        "host": config.get("HOST"),
        "port": config.get("PORT"),
        **config.get("OPTIONS", {}),
        # The maintenance database: the URL's own one need not exist yet.
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    try:
        with psycopg.connect(**{k: v for k, v in params.items() if v not in (None, "")}) as conn:
            row = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.OperationalError as error:
        return f"cannot log in: {str(error).strip()}"
    except psycopg.ProgrammingError as error:  # e.g. an option in the URL libpq does not know
        return f"{NOT_SETTINGS}: {str(error).strip()}"
    if not (row and row[0]):
        return f"the role {config.get('USER') or '(default)'!r} may not create databases"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m evalsite.suite_database URL", file=sys.stderr)
        return 2
    url = argv[0]
    found = problem(url)
    if found is None:
        return 0
    # The output goes to CI logs: the URL with its password as ***. Only the URL's password
    # field: the same text in the server's words is a role or database name the advice is about
    # (libpq never quotes the password it was given; dj_database_url quotes no part of the URL).
    said = f"error: PostgreSQL at TEST_DATABASE_URL ({shown_url(url)}): {hide_url(found, url)}."
    print(said, file=sys.stderr)
    unreached = "Connection refused" in found or "No such file or directory" in found
    unknown = found.startswith(NOT_SETTINGS)
    print(BAD_OPTION if unknown else NOT_RUNNING if unreached else ADVICE, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
