"""Argument types and the progress bar shared by all CLI commands."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from tqdm import tqdm

from prefine_core.entry import quoted
from prefine_core.envs import MAX_SEED

#: A frame smaller than this has no room for the overlay's "COST" badge (render.annotate).
MIN_FRAME_SIZE = 48
#: The most episodes one command rolls out or evaluates (rollout, evaluate, finetune): ten times the Compare page's
#: 100, each up to 1000 MuJoCo steps; a count past any run (``finetune --episodes 100000000``) started one that never
#: ended.
MAX_EPISODES = 1000
#: MuJoCo's offscreen framebuffer rendered 8192 px here but was incomplete at 12000 (PointCircle) or 16384 (Hopper),
#: by task and GL driver; 1024 renders everywhere, and a 1000-step clip of it is already 3 GB of frames.
MAX_FRAME_SIZE = 1024


def _ascii(text: str) -> str:
    """Python reads other scripts' digits as numbers too (``int("٣")`` is 3), and digits grouped by underscores
    (``1_000``); a number on the command line is written with 0-9."""
    if not text.isascii() or "_" in text:
        raise argparse.ArgumentTypeError(f"expected digits 0-9, got {quoted(text)}")
    return text


def whole_number(text: str) -> int:
    """Any whole number, written with 0-9 (what it must lie between is the caller's, e.g. a config's own bounds)."""
    try:
        return int(_ascii(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {quoted(text)}") from None


def _whole_number(text: str, low: int, high: int | None = None) -> int:
    value = whole_number(text)
    if high is not None and not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {value}")
    if value < low:
        raise argparse.ArgumentTypeError(f"expected a {'positive' if low > 0 else 'non-negative'} number, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def whole_number_between(low: int, high: int):
    """The argument type of a whole number from ``low`` to ``high``."""
    return lambda text: _whole_number(text, low, high)


def episode_count(text: str) -> int:
    """How many episodes to roll out: 1 to :data:`MAX_EPISODES`."""
    return _whole_number(text, 1, MAX_EPISODES)


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def seed(text: str) -> int:
    """A seed an environment's reset takes: 0 to 2**32 − 1."""
    return _whole_number(text, 0, MAX_SEED)


def frame_size(text: str) -> int:
    """A video frame's width and height in pixels, from :data:`MIN_FRAME_SIZE` to :data:`MAX_FRAME_SIZE`."""
    return _whole_number(text, MIN_FRAME_SIZE, MAX_FRAME_SIZE)


def number(text: str) -> float:
    """Any number Python's ``float`` reads, written with 0-9 (NaN and infinities too: what it must lie between is the
    caller's)."""
    try:
        return float(_ascii(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {quoted(text)}") from None


def _finite_number(text: str, positive: bool) -> float:
    value = number(text)
    if not (value > 0 if positive else value >= 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number {'> 0' if positive else '≥ 0'}, got {text}")
    return value


def non_negative_float(text: str) -> float:
    return _finite_number(text, positive=False)


def positive_float(text: str) -> float:
    return _finite_number(text, positive=True)


def finite_float(text: str) -> float:
    """Any number but NaN and ±inf, which Python's ``float`` takes and the training underneath fails on late."""
    value = number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def number_between(low: float, high: float, above_low: bool = False):
    """The argument type of a number from ``low`` (with ``above_low``, above it) to ``high``; NaN is refused too."""
    def parse(text: str) -> float:
        value = number(text)
        if not (low < value if above_low else low <= value) or not value <= high:
            raise argparse.ArgumentTypeError(f"expected a number {'above' if above_low else 'from'} {low:g} "
                                             f"{'and at most' if above_low else 'to'} {high:g}, got {text}")
        return value

    return parse


def synthetic_name(text: str) -> str:
    """An annotator name for the simulated labeller: it must say so (:data:`teachers.SYNTHETIC_PREFIX`)."""
    from prefine_core.teachers import SYNTHETIC_PREFIX, is_synthetic

    if not is_synthetic(text):
        raise argparse.ArgumentTypeError(f"{quoted(text)} does not start with '{SYNTHETIC_PREFIX}', as the simulated "
                                         "labeller's names do, so that Agreement tells it from people (e.g. "
                                         f"{SYNTHETIC_PREFIX}-noisy)")
    return text.strip()


def given_path(text: str) -> Path:
    """``text`` as a path the system can look up. An empty one is refused: it named the current folder, unsaid
    (``finetune --out ''`` resumed a run there, or wrote one); and a name longer than the system takes raised "File name
    too long" out of the parser, a traceback."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty, which would be the current folder: give a path")
    path = Path(text)
    try:
        path.exists()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{quoted(text)}: {exc.strerror}") from None
    return path


def existing_file(text: str) -> Path:
    path = given_path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no file at {text}")
    return path


def file_to_write(text: str) -> Path:
    """A file to be written in a folder that exists: a mistyped folder is refused, never made."""
    path = given_path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no folder {path.parent} to write {text} in (make it first, or check the path)")
    return path


def output_file(text: str) -> Path:
    """:func:`file_to_write` that is not a folder already (found out only after the work, when the written temp file
    could not be renamed onto it)."""
    path = file_to_write(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the path of a file to write")
    return path


def folder_to_write(text: str) -> Path:
    """A folder to write in, new (made in a folder that exists, as :func:`file_to_write`) or there already; a file of
    that name is refused (found out only when the first write failed, as "[Errno 20] Not a directory")."""
    path = file_to_write(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder to write in")
    return path


class Progress:
    """A tqdm bar on stderr that the library feeds through a callback."""

    def __init__(self, total: int, desc: str, quiet: bool = False):
        self.bar = tqdm(total=total, desc=desc, file=sys.stderr, disable=quiet, dynamic_ncols=True)
        self.done = 0  # what the work said it had done (a quiet bar's own count stays 0)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()  # before the command's error is said, so the error starts a line of its own

    def update_to(self, done: int, total: int | None = None, **postfix) -> None:
        """Move the bar to ``done`` (of ``total``, when the work learns its size only once it has begun)."""
        if total is not None:
            self.bar.total = total
        self.done = done
        self.bar.update(max(0, done - self.bar.n))
        if postfix:
            self.bar.set_postfix({k: (round(v, 2) if isinstance(v, float) else v) for k, v in postfix.items()}, refresh=False)

    def close(self) -> None:
        self.bar.close()


def open_workspace(folder: str | None, existing: bool = True):
    """The workspace in ``folder`` (default: ``$PREFINE_WORKSPACE`` or data/workspace). A command that reads from it
    (``existing``) refuses a folder that is not there instead of making an empty workspace in a mistyped place and
    reporting nothing in it."""
    from prefine_core.workspace import Workspace

    if folder is not None and not folder.strip():  # read as "no flag": the default workspace, unsaid
        raise ValueError("--workspace is empty: give a folder, or leave the flag out for $PREFINE_WORKSPACE or "
                         "data/workspace")
    root = Workspace.folder(folder)  # --workspace, or $PREFINE_WORKSPACE, or the default: each is checked alike
    there = next(path for path in (root, *root.parents) if path.exists())  # said "holds no PREFINE store", or
    if not there.is_dir():                                                  # "[Errno 20] Not a directory"
        raise ValueError(f"the workspace {folder or root} {'is' if there == root else 'lies in'} a file "
                         f"({there}); a workspace is a folder")
    shared_store = bool(os.environ.get("PREFINE_DB_URL"))  # the store is elsewhere, the workspace's files here
    if existing and (not root.exists() or not shared_store and not (root / "prefine.db").is_file()):
        said = ("does not exist" if not root.exists() else
                "holds a folder named prefine.db where its store should be" if (root / "prefine.db").is_dir() else
                "holds no PREFINE store (no prefine.db in it)")
        raise ValueError(f"the workspace {folder or root} {said} (a new one is made by `pairs --collect` or `import`)")
    return Workspace.open(folder)
