"""Typed readers for environment variables that fail loudly on malformed values.

Every setting the site reads from the environment goes through one of these, so a typo in a
deployment gives an error naming the variable and what was expected instead of a silent default.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

if TYPE_CHECKING:
    from dj_database_url import DBConfig


class EnvError(ValueError):
    """An environment variable is present but malformed."""


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of choices, matched without regard to case (returned as spelled in choices)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    by_folded = {c.casefold(): c for c in choices}
    if raw.strip().casefold() not in by_folded:
        raise EnvError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return by_folded[raw.strip().casefold()]


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise EnvError(f"{name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    expected = "an integer" if minimum is None else f"an integer >= {minimum}"
    try:
        value = int(raw)
    except ValueError as exc:
        raise EnvError(f"{name}={raw!r}: expected {expected}") from exc
    if minimum is not None and value < minimum:
        raise EnvError(f"{name}={raw!r}: expected {expected}")
    return value


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    expected = "a number" if minimum is None else f"a number >= {minimum:g}"
    try:
        value = float(raw)
    except ValueError as exc:
        raise EnvError(f"{name}={raw!r}: expected {expected}") from exc
    if minimum is not None and not value >= minimum:  # not >=: NaN is refused too
        raise EnvError(f"{name}={raw!r}: expected {expected}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str, default: list[str]) -> list[str]:
    """Comma-separated IP addresses or networks (`10.0.0.5`, `10.0.0.0/24`, `::1`), each
    returned as a network (`10.0.0.5/32`); host bits are allowed (`127.0.0.1/8`)."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise EnvError(
                f"{name}={os.environ.get(name)!r}: expected comma-separated IP addresses or "
                f"networks such as 10.0.0.5 or 10.0.0.0/24 ({item!r} is neither)"
            ) from exc
    return networks


def env_path(name: str, default: Path, follow_links: bool = True) -> Path:
    """An absolute path; follow_links=False keeps symlinks as given (made absolute only)."""
    raw = os.environ.get(name)
    if not raw:
        return default
    path = Path(raw).expanduser()
    return path.resolve() if follow_links else path.absolute()


# torch keeps a device's index in a signed byte: it reads "cuda:128" as cuda:-128 and
# "cuda:255" as plain cuda, and refuses a leading zero ("cuda:01").
MAX_CUDA_INDEX = 127


def is_device_name(value: str) -> bool:
    """Whether `value` names a device the model can be put on: `cpu`, `cuda` or `cuda:N` (N from
    0 to MAX_CUDA_INDEX, without a leading zero). The one rule for CSN_DEVICE, at start-up
    (env_device) and where the model is loaded (retrieval.embedder.check_device), which then
    asks torch whether this process can use it."""
    match = re.fullmatch(r"cpu|cuda(?::(0|[1-9][0-9]{0,2}))?", value)
    return match is not None and int(match.group(1) or 0) <= MAX_CUDA_INDEX


def env_device(name: str) -> str | None:
    """A torch device for the model: `cpu`, `cuda` or `cuda:N` (is_device_name); unset or empty:
    None, which the model loader reads as CUDA when available, else CPU. Only the spelling is
    checked here: asking torch whether CUDA exists would initialise it before the worker forks."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if not is_device_name(value):
        raise EnvError(
            f"{name}={raw!r}: expected empty (CUDA when available, else CPU), cpu, cuda or "
            f"cuda:N (N the GPU's index, 0 to {MAX_CUDA_INDEX}, no leading zero)"
        )
    return value


def env_database(name: str, default: str, conn_max_age: int = 0) -> DBConfig:
    """Django's DATABASES entry from a URL (`postgresql://user:pass@host:5432/db`,
    `sqlite:///path`); unset or empty: `default`."""
    import dj_database_url  # only settings read databases

    raw = os.environ.get(name) or default
    try:
        config = dj_database_url.parse(raw, conn_max_age=conn_max_age)
        # A raw # starts a fragment, which no database URL has: the rest of a password with an
        # unencoded @ and # would be dropped silently (host and name read from its pieces).
        if "#" in raw:
            raise ValueError("a '#' outside percent-encoding cuts the URL short")
        # No name: a PostgreSQL service file may still name the database (?service=...).
        named = config.get("NAME") or config.get("OPTIONS", {}).get("service")
        if not named and not str(config.get("ENGINE", "")).endswith("sqlite3"):
            raise ValueError("it names no database after the host (nor a ?service=)")
        return config
    except (ValueError, KeyError) as exc:  # unknown scheme, unparsable URL
        # The message goes to logs (journald, CI): never the password. The reasons (ours and
        # dj_database_url's) do not quote the URL; should one, it is shown as above.
        raise EnvError(
            f"{name}={shown_url(raw)!r}: expected a database URL such as "
            f"postgresql://user:password@host:5432/name or sqlite:///path/db.sqlite3, with "
            f"characters such as # / ? @ in the password percent-encoded "
            f"({hide_url(str(exc), raw)})"
        ) from exc


def without_password(url: str) -> tuple[str, str]:
    """`url` with the password of its `scheme://user:password@` part as ***, and that password
    ("" if none). The password ends at the last @ that a host (and port) and a path follow, else
    at the first @ a host follows: a password with a raw @ / ? or # in it is hidden whole. Not a
    password: `host:port/` and a path, query or fragment with an @ after which no `host/` follows
    (`?application_name=ci@runner`). Where in doubt it hides more, never less."""
    head = re.match(r"[^:/]*://(?:\[[^\]/]*\]|[^:/@?#\[]*):", url)  # scheme://user: or [v6]:
    if not head:
        return url, ""
    after_host = re.compile(r"[^@/?#]*(?:[/?]|$)")  # a host (and port), then / ? or the end
    ats = [m.start() for m in re.finditer("@", url) if m.start() > head.end()]
    hosts = [at for at in ats if after_host.match(url[at + 1 :])]
    with_path = [at for at in hosts if re.match(r"[^@/?#]*/", url[at + 1 :])]
    if hosts:  # the last @ a host and a path follow (`u:ab@cd/ef@h/db`), else the first
        at = with_path[-1] if with_path else hosts[0]
        password = url[head.end() : at]
        if not password:
            return url, ""
        if re.match(r"\d*/", password) and not with_path:
            return url, ""  # host:port/ then an @ in the path, query or fragment
        return f"{url[: head.end()]}***{url[at:]}", password
    at = url.rfind("@")  # no host after any @ (`user:pw@host#x`): up to the last one
    if at > head.end() and not re.match(r"\d*/", url[head.end() : at]):
        return f"{url[: head.end()]}***{url[at:]}", url[head.end() : at]
    return url, ""


# Query parameters whose values are secrets (libpq's password and client-key passphrase).
SECRET_PARAMS = ("password", "sslpassword")


def shown_url(url: str) -> str:
    """`url` as logs may show it: the password before the host and the value of every
    `password=` or `sslpassword=` parameter as *** (to the next &: a raw # is part of it, as
    libpq reads it); the rest (user, host, database name) as written."""

    def masked(param: re.Match[str]) -> str:
        key, value = param.group(2), param.group(3)
        secret = unquote_plus(key) in SECRET_PARAMS
        return f"{param.group(1)}{key}={'***' if secret else value}"

    return re.sub(r"([?&])([^=&#]*)=([^&]*)", masked, without_password(url)[0])


def hide_url(text: str, url: str) -> str:
    """`text` with `url`, wherever it is quoted whole, as `shown_url` shows it. Only there: the
    same letters elsewhere (a user name equal to the password, a one-letter password) stay."""
    return text.replace(url, shown_url(url))
