"""Numbers typed into the app's fields, parsed where they enter.

A browser's number field rounds or drops what it cannot hold before the server sees it (``1e30`` in a whole-number
field arrived as 1, ``2.5`` as 2, an emptied field as its previous value, ``1e400`` as nothing), so a run started
with a value nobody typed. The app's number fields are text fields instead, and this module turns what was typed
into a number or a message that names the field and what is wrong. JSON from a person's file (a config, an
export's rows) is parsed here too, with a message that names the file.
"""
from __future__ import annotations

import json
import math
import numbers
import reprlib


def parse_number(label: str, text: object, whole: bool = False) -> int | float:
    """``text`` as typed (``"4000"``, ``"1e-3"``, ``" 2 "``) -> an int (``whole``) or a finite float; a ValueError
    names ``label`` when it is empty, not a number, not finite, or (``whole``) has a fractional part. A number
    given as a number (a form's default, a dict from code) is checked the same way."""
    kind = "a whole number" if whole else "a number"
    if isinstance(text, bool):
        raise ValueError(f"{label} must be {kind}, got {quoted(text)}")
    typed = str(text).strip() if not isinstance(text, (int, float)) else repr(text)
    if not typed:
        raise ValueError(f"{label} is empty: type {kind}")
    try:
        if not typed.isascii():  # Python reads other scripts' digits too ("٣٠٠" is 300): a number here is 0-9
            raise ValueError(typed)
        if "_" in typed:  # Python reads "4_0" as 40: a slip of the keyboard, not a number anyone means
            raise ValueError(typed)
        value = float(typed)
    except ValueError:
        raise ValueError(f"{label} must be {kind} in digits 0-9, got {quoted(typed)}" if not typed.isascii() else
                         f"{label} must be {kind}, got {quoted(typed)}") from None
    if not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number, got {quoted(typed)}")
    if value == 0 and any(ch in "123456789" for ch in typed.lower().split("e")[0]):
        raise ValueError(f"{label} is too close to 0 to hold as a number, got {quoted(typed)}")  # "1e-400" read as 0.0
    if not whole:
        return value
    if value != math.floor(value):
        raise ValueError(f"{label} must be {kind}, got {quoted(typed)}")
    return int(typed) if typed.lstrip("+-").isdigit() else int(value)  # "12345678901234567890" exactly


#: How :func:`quoted` shortens a value: at most ~80 characters of text, the first few items of a list or a dict.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 6
_SHORT.maxdict = 4


def quoted(value) -> str:
    """``repr(value)`` as an error message quotes what a person or a file gave, cut to about 80 characters with
    "..." (a 100 KB ``--task`` was said whole, and a config of 2 million unknown keys made a 23 MB line)."""
    return _SHORT.repr(value)


def shown(value: int | float) -> str:
    """How a field shows a number: as short as it reads back to the same value (4000, 0.001, 1e-07)."""
    return str(value) if isinstance(value, int) else f"{value:.12g}"


#: Format characters that are part of how people write, not control: the zero-width non-joiner (Persian and Indic
#: names) and joiner (emoji sequences such as 👩‍💻). Other format characters, bidi overrides among them, stay refused.
_JOINERS = str.maketrans("", "", "\u200c\u200d")


def is_finite_number(value) -> bool:
    """Whether ``value`` (read from a file or a database column, which may hold what a hand edit put there) is a
    finite int or float, not a bool."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def is_printable(text: str) -> bool:
    """Whether ``text`` holds no control characters (:meth:`str.isprintable`, the zero-width joiners allowed)."""
    return text.translate(_JOINERS).isprintable()


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """How a count reads in a sentence: ``1 video``, ``2 videos``, ``0 videos`` (``plural`` where it is not +s)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def figure(x: float) -> str:
    """A measured figure as a person reads it: whole above 100, three significant digits below (926, 7.06; never
    1.23e+03)."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


#: The deepest nesting of lists and objects a file of ours holds (a policy's provenance is a few levels deep). What
#: json.loads still reads at 500–990 levels overflows Python's recursion later, when it is printed, copied or stored.
MAX_JSON_DEPTH = 32


class _KeyTwice(Exception):
    """A JSON object that gives one key twice (:func:`_once_each`)."""


def _once_each(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's keys and values as a dict, each key given once: json.loads kept the last of a key given twice,
    without a word, so that a file's first value of it was silently not the one used."""
    read = dict(pairs)
    if len(read) < len(pairs):
        seen: set[str] = set()
        raise _KeyTwice(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return read


def parse_json(what: str, text: str | bytes) -> object:
    """``text`` as JSON; a ValueError names ``what`` (``"config"``, ``"labels.jsonl line 3"``) when it is not valid
    JSON, gives a key of an object twice, or is nested deeper than :data:`MAX_JSON_DEPTH` (a crafted file:
    ``[[[[…]]]]``). Bytes may begin with a UTF-8 byte order mark, as files saved by some Windows editors do."""
    try:
        value = json.loads(text, object_pairs_hook=_once_each)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    except _KeyTwice as exc:
        raise ValueError(f"{what} gives the key {quoted(exc.args[0])} twice; give it once") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not text (UTF-8): {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise ValueError(f"{what} is JSON nested too deeply to read") from None
    if _nesting_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"{what} is JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _nesting_depth(value) -> int:
    """How deeply lists and dicts nest in ``value``; without recursion, as ``value`` may be nested too deeply for it."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level + 1)
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
