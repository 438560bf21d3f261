"""Reading flag values the way every job's options accept them."""

from __future__ import annotations

from collections.abc import Sequence


def flag_list(values: Sequence[str] | str | None) -> list[str]:
    """Repeatable, comma-separated flag values as one list (a plain string too, in case another
    pipeline in the process defined the flag without ``action="append"``)."""
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
