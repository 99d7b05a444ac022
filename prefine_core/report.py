"""BENCHMARKS.md: each benchmark owns one marked section and rewrites only that section."""
from __future__ import annotations

import datetime
import fcntl
import os
import platform
import re
from pathlib import Path
from typing import Callable

from prefine_core.files import atomic_path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
_HEADER = "# Benchmarks\n\nEvery figure below was written by the command named in its section, on the machine it names.\n"


def machine_line() -> str:
    """Where and when a figure was measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{now} · {cpu} · {os.cpu_count()} cores (load average {load} at start) · Python {platform.python_version()}"


def _section_pattern(name: str) -> re.Pattern:
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"section name must be lowercase letters, digits and '-', got {name!r}")
    return re.compile(re.escape(f"<!-- {name}:start -->") + "(.*?)" + re.escape(f"<!-- {name}:end -->"), re.S)


def read_section(name: str, path: Path = BENCHMARKS) -> str:
    """The markdown between a section's markers ("" when the file or the section is not there)."""
    match = _section_pattern(name).search(path.read_text()) if path.exists() else None
    return match.group(1).strip() if match else ""


def write_section(name: str, markdown: str, path: Path = BENCHMARKS,
                  check: Callable[[str], None] | None = None) -> Path:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``. ``check`` is given
    the section as it stands, under the same lock as the write, and refuses it by raising (nothing is written): a
    check made before the lock could read a section another writer is about to replace."""
    pattern = _section_pattern(name)
    block = f"<!-- {name}:start -->\n{markdown.strip()}\n<!-- {name}:end -->"
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benchmarks finishing together must not drop a section
        text = path.read_text() if path.exists() else _HEADER
        if check is not None:
            match = pattern.search(text)
            check(match.group(1).strip() if match else "")
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
    return path


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A GitHub-flavoured table; floats to 3 significant digits where they are not integers."""
    if not rows:
        return "_(no rows)_"
    columns = columns or list(rows[0])

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
