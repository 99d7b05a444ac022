"""Atomic file writes: a reader sees the old file or the whole new one, never a partial one."""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temp path in the target's folder; on success it is fsynced and renamed onto ``path``.

    On an exception the temp file is removed and ``path`` is left as it was. ``suffix`` defaults
    to the target's (some writers pick the format from it).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Named before it is made, so that the cleanup below knows it whenever an interrupt (Ctrl-C, SIGTERM) comes: one
    # just after mkstemp had made the file, before its name was returned, left it behind (an import killed at once).
    tmp = temp_name(target, suffix)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield str(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


#: Between the target's name and the random part: no other file is named like an unfinished write.
TEMP_MARK = ".partial-"
_TEMP_NAME = re.compile(r"^\..+" + re.escape(TEMP_MARK) + r"[A-Za-z0-9_]{8}(\.[^.]+)?$")


def temp_name(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """A fresh hidden name beside ``path`` for a write to it that is not finished (not made here: the caller creates
    it exclusively, and removes it if the write fails). A file left under it by a writer that was killed is removed by
    :func:`remove_abandoned_writes` an hour later."""
    target = Path(path)
    return target.parent / f".{target.stem}{TEMP_MARK}{secrets.token_hex(4)}{suffix or target.suffix}"


def remove_abandoned_writes(folder: str | os.PathLike, older_than_s: float = 3600.0) -> int:
    """Delete the temp files of writes that never finished (their writer was killed) under ``folder``, if
    untouched for ``older_than_s`` — a live writer's file is younger. Returns how many were removed."""
    removed, cutoff = 0, time.time() - older_than_s
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            if _TEMP_NAME.match(name):
                try:
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:  # finished or removed meanwhile
                    pass
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a small text file (JSON, logs' summaries) so that a reader never sees half of it."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)
