"""Wall-clock budgets (`kit tune --time 3h`): a duration as people write one, and whether the next piece of work
still fits."""

from __future__ import annotations

import re

from kit.errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_SECONDS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, option: str = "--time") -> float:
    """Seconds in a duration written `90s`, `30m`, `3h`, `1h30m` or `2.5h` (a bare number: minutes); a UsageError
    naming `option` for anything else, or for no time at all."""
    written = str(text).strip().lower().replace(" ", "")
    try:
        seconds = float(written) * 60 if written and _PART.sub("", written) == written else None
    except ValueError:
        seconds = None
    if seconds is None:
        parts = _PART.findall(written)
        if not parts or _PART.sub("", written):
            raise UsageError(f"{option} {text!r}: write a duration such as 90s, 30m, 3h or 1h30m.")
        seconds = sum(float(n) * _SECONDS[unit] for n, unit in parts)
    if not seconds > 0 or seconds != seconds or seconds > 7 * 24 * 3600:
        raise UsageError(f"{option} {text!r}: must be more than nothing and at most a week.")
    return seconds


def fits(elapsed: float, expected: float | None, budget: float | None) -> bool:
    """Whether work expected to take `expected` seconds (None: not known yet) still ends inside `budget` (None: no
    budget) after `elapsed`."""
    return budget is None or elapsed + (expected or 0.0) <= budget
