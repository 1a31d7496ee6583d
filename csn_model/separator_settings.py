"""How the settings a separator file records (separator.pt, or separator.partial of an interrupted
training) differ from a run's SeparatorConfig: the comparison csn bench makes before it uses a
separator (bench_train.check_separator) and train_separator before it continues a partial one."""

from __future__ import annotations

from typing import Any

from csn_model.config import ConfigError, from_dict, to_dict


def settings_differences(recorded: Any, want: Any) -> list[str]:
    """Each field in which a separator file's recorded config differs from the SeparatorConfig
    `want`, as "separator.X HAVE (run: WANT)", the run's fields first. The record is read through
    the schema, so a field added to it since takes its default. A field one of them lacks is
    "absent" and differs from any value (None included): a field since removed from
    SeparatorConfig was a setting of another separator, as train_folder.config_differences treats
    a removed field in a system's config."""
    try:
        have = to_dict(from_dict(type(want), recorded, "separator file", "separator."))
    except (ConfigError, TypeError, AttributeError):
        have = recorded if isinstance(recorded, dict) else {}
    run = to_dict(want)
    keys = [*run, *sorted((k for k in have if k not in run), key=str)]

    def shown(config: dict, key) -> str:
        return repr(config[key]) if key in config else "absent"

    return [
        f"separator.{k} {shown(have, k)} (run: {shown(run, k)})"
        for k in keys
        if k not in have or k not in run or have[k] != run[k]
    ]
