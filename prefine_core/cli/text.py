"""A command's result as text for a person (without ``--json``): one ``key: value`` line per field, a list of records
as an aligned table, a flat mapping on one line. ``--json`` prints the same result, whole, for programs."""
from __future__ import annotations

import json
import numbers


def cell(value) -> str:
    """One value as a person reads it: None as "—", a float to 4 significant digits (whole above 1000), text whole
    (a path to copy, an error's advice) on one line (a line break as "⏎")."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " ⏎ ")
        # other control characters (a tab, a terminal escape) as escapes: they would move the cursor or the columns
        return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)
    if isinstance(value, numbers.Integral):
        return str(value)
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def table(rows: list[dict]) -> list[str]:
    """Records as lines of an aligned table, a header first; numbers right-aligned, a missing field as "—"."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    numeric = [all(isinstance(row.get(c), numbers.Real) and not isinstance(row.get(c), bool) or row.get(c) is None
                   for row in rows) for c in columns]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric)).rstrip()

    return [line(columns)] + [line(values) for values in cells]


def human_lines(result: dict) -> list[str]:
    """``result`` (already plain JSON values) as lines of text."""
    lines = []
    for key, value in result.items():
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            lines += [f"{key}:"] + ["  " + row for row in table(value)]
        elif isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            lines.append(f"{key}: " + ", ".join(f"{k} {cell(v)}" for k, v in value.items()))
        elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            lines.append(f"{key}: " + (", ".join(cell(v) for v in value) if value else "none"))
        elif isinstance(value, (dict, list)):
            lines.append(f"{key}: {json.dumps(value, default=str)}")
        else:
            lines.append(f"{key}: {value}")
    return lines
