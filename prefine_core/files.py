"""Atomic file writes: a reader sees the old file or the whole new one, never a partial one."""
from __future__ import annotations

import contextlib
import os
import tempfile
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
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=suffix or target.suffix)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a small text file (JSON, logs' summaries) so that a reader never sees half of it."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)
