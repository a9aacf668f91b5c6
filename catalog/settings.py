"""Numbers healcat takes from the people who run it: command-line options and ``HEALCAT_*``
environment variables, checked alike (a number of the right kind, finite, at least a minimum)."""

from __future__ import annotations

import math
import os

from catalog.errors import ConfigurationError


def number_at_least(text: str, minimum: float, kind: type = float) -> int | float:
    """``text`` as a finite ``kind`` (int or float) no smaller than ``minimum``, else a ValueError
    saying what is wrong with it (``inf`` would pass a comparison and overflow a wait later)."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise ValueError(f"not {'a whole number' if kind is int else 'a number'}: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be finite, got {text}")
    if value < minimum:
        raise ValueError(f"must be at least {minimum:g}, got {text}")
    return value


def from_env(name: str, minimum: float, kind: type, what: str) -> int | float | None:
    """The environment variable ``name`` as :func:`number_at_least` reads it (None when unset), or a
    ConfigurationError naming the variable and its value."""
    given = os.environ.get(name)
    if given is None:
        return None
    try:
        return number_at_least(given, minimum, kind)
    except ValueError:
        raise ConfigurationError(f"{name}={given!r}: give a {'whole ' if kind is int else ''}number of {what}, "
                                 f"at least {minimum:g}") from None
