"""Numbers typed into the app's fields, parsed where they enter.

A browser's number field rounds or drops what it cannot hold before the server sees it (``1e30`` in a whole-number
field arrived as 1, ``2.5`` as 2, an emptied field as its previous value, ``1e400`` as nothing), so a run started
with a value nobody typed. The app's number fields are text fields instead, and this module turns what was typed
into a number or a message that names the field and what is wrong.
"""
from __future__ import annotations

import math


def parse_number(label: str, text: object, whole: bool = False) -> int | float:
    """``text`` as typed (``"4000"``, ``"1e-3"``, ``" 2 "``) -> an int (``whole``) or a finite float; a ValueError
    names ``label`` when it is empty, not a number, not finite, or (``whole``) has a fractional part. A number
    given as a number (a form's default, a dict from code) is checked the same way."""
    kind = "a whole number" if whole else "a number"
    if isinstance(text, bool):
        raise ValueError(f"{label} must be {kind}, got {text!r}")
    typed = str(text).strip() if not isinstance(text, (int, float)) else repr(text)
    if not typed:
        raise ValueError(f"{label} is empty: type {kind}")
    try:
        if not typed.isascii():  # Python reads other scripts' digits too ("٣٠٠" is 300): a number here is 0-9
            raise ValueError(typed)
        value = float(typed)
    except ValueError:
        raise ValueError(f"{label} must be {kind} in digits 0-9, got {typed!r}" if not typed.isascii() else
                         f"{label} must be {kind}, got {typed!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number, got {typed!r}")
    if not whole:
        return value
    if value != math.floor(value):
        raise ValueError(f"{label} must be {kind}, got {typed!r}")
    return int(typed) if typed.lstrip("+-").isdigit() else int(value)  # "12345678901234567890" exactly


def shown(value: int | float) -> str:
    """How a field shows a number: as short as it reads back to the same value (4000, 0.001, 1e-07)."""
    return str(value) if isinstance(value, int) else f"{value:.12g}"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """How a count reads in a sentence: ``1 video``, ``2 videos``, ``0 videos`` (``plural`` where it is not +s)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
