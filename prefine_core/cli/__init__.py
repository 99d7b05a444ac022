"""``python -m prefine_core <command>``: the same library the pages call, headless.

Every command validates its arguments where they enter, shows a progress bar on stderr for long
work, and with ``--json`` prints exactly one JSON object on stdout (standard JSON: a figure that has no value,
such as the mean return of no finished episode, is ``null``, never ``NaN``). A bad argument or input exits
with status 2 and a message that names the problem.

Commands live in one module per area (``foundation``, ``store``, ``finetune``); each exposes
``register(command)`` which adds sub-parsers whose ``handler(args) -> dict`` does the work.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import numbers
import os
import signal
import sys
import threading

from prefine_core.cli.text import human_lines
from prefine_core.entry import quoted

_AREAS = ("foundation", "store", "finetune")


class _HelpWithDefaults(argparse.HelpFormatter):
    """Help that shows each flag's default where its text does not say it already (``--seed`` of ``pairs`` was
    shown without one), so that no flag's default has to be looked up in the code."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or action.nargs == 0 or default in (None, argparse.SUPPRESS)
                or "default" in text):
            return text
        items = default if isinstance(default, (list, tuple)) else [default]
        shown = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in items)  # 25, not 25.0
        return f"{text} (default {shown.replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    """argparse, whose refusals of a command line with ``--json`` are one line on stderr and one JSON object on
    stdout, as every other refusal (the sub-commands' parsers are of this class too)."""
    json_errors = False

    def __init__(self, *args, **kwargs):
        # no abbreviated flags: `--js` read as --json by argparse was not --json where refusals are said as JSON, and
        # a flag added later would silently change what an abbreviation in someone's script means
        super().__init__(*args, **{"allow_abbrev": False, "formatter_class": _HelpWithDefaults, **kwargs})

    def _check_value(self, action: argparse.Action, value) -> None:
        """argparse's refusal of a value that is not one of a flag's choices, quoting at most ~80 characters of it
        (argparse quoted all of it)."""
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            raise argparse.ArgumentError(action, f"invalid choice: {quoted(value)} (choose from {choices})")

    def error(self, message: str):
        """One line on stderr (argparse's own printed the whole usage first: 36 lines for ``finetune``), and with
        ``--json`` the same as one JSON object on stdout; exit 2."""
        sys.exit(_refused(f"{self.prog}: {message}", 2, _Parser.json_errors))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m prefine_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    for area in _AREAS:
        try:
            module = importlib.import_module(f"prefine_core.cli.{area}")
        except ModuleNotFoundError as exc:
            if exc.name != f"prefine_core.cli.{area}":
                raise
            continue
        module.register(command)
    return parser


def strict_json(value):
    """``value`` with every float that is not finite (NaN, ±inf) as None: ``json.dumps`` would write ``NaN``, which
    is not JSON (jq, JavaScript and most parsers refuse it). numpy scalars are made plain numbers on the way."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # a numpy array or scalar
        return strict_json(value.tolist())
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return value


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # signal handlers can only be set there


def _catch_kills() -> dict | None:
    """Make `kill` (SIGTERM) stop a command as Ctrl-C (SIGINT) does, so that what it half-wrote is undone: it used to
    end the process at once, leaving an interrupted import's array files behind with no row naming them. Set before
    the parser is built (it imports torch: 2.5 s), where a kill ended the process unsaid. Returns the handlers it
    found, for an in-process caller to get back; None off the main thread, where none can be set."""
    if not _main_thread():
        return None
    return {signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt)}


def _ignore_kills(found: dict | None) -> None:
    """A command done, or stopped: a Ctrl-C or a kill from here on comes too late to undo anything, and would only
    turn a command that finished and said so into a failure (130 or 143, with no word), or cut short what it says."""
    if found is not None:
        for signum in found:
            signal.signal(signum, signal.SIG_IGN)


def _refused(message: str, status: int, as_json: bool) -> int:
    """Say why a command stopped: one line on stderr and, with --json, one JSON object on stdout."""
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message}))
    return status


#: What an interrupted command says when it did not say what it kept: true of every command, since each write is
#: one transaction.
UNDONE = "what it was writing at that moment was undone"


def _kept(args: argparse.Namespace) -> str:
    """What an interrupted command kept: its handler may set ``args.kept`` to a function that says so (the labels,
    clips or checkpoints it finished before the interrupt), and a command run again goes on from there."""
    said = getattr(args, "kept", None)
    try:
        return f"{UNDONE}; {said()}" if said else UNDONE
    except Exception:  # saying it must not turn an interrupt into a traceback (the database gone, say)
        return UNDONE


def _database_outage(exc: Exception) -> tuple[str, str] | None:
    """A database that stayed locked or unreachable through the store's retries, or that refused to be opened (no
    such database or role, a wrong port): what it said and what to do, as a refusal; None for any other error.
    Each was a SQLAlchemy traceback, exit 1."""
    from sqlalchemy.exc import OperationalError

    from prefine_core.store.engine import outage_reason

    if not isinstance(exc, OperationalError):
        return None
    reason = outage_reason(exc)
    if type(exc.orig).__module__ != "sqlite3":
        return (f"the database is unreachable ({reason})", "check that its server is running and that PREFINE_DB_URL "
                "names it (host, port, database, user), then run the command again")
    if any(word in reason for word in ("locked", "busy")):
        return (f"the database is busy ({reason})", "another program holds its write lock (the app, another command, "
                "a backup): run the command again once it has finished")
    return (f"the store cannot be opened or written ({reason})", "check that the workspace folder and its prefine.db "
            "can be written, then run the command again")


def _said(exc: Exception) -> str:
    """``exc``'s message, a file name the system quotes in it cut short: a 100 KB ``--workspace`` was said whole
    ("[Errno 36] File name too long: '…'")."""
    if not isinstance(exc, OSError) or exc.errno is None or exc.filename is None:
        return str(exc)
    names = " -> ".join(quoted(name) for name in (exc.filename, exc.filename2) if name is not None)
    return f"[Errno {exc.errno}] {exc.strerror}: {names}"


def _why_stopped(args: argparse.Namespace, exc: BaseException) -> tuple[str, int] | None:
    """What a command that raised ``exc`` says and its exit status: an interrupt (130), bad input or a file that
    cannot be read or written (2), a database that does not answer (2); None for any other error, a bug whose
    traceback is wanted."""
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted; {_kept(args)}", 130
    if isinstance(exc, (ValueError, OSError)):
        return _said(exc), 2
    outage = _database_outage(exc)
    if outage is not None:
        problem, advice = outage
        return f"{problem}; {_kept(args)}: {advice}", 2
    return None


def main(argv: list[str] | None = None, *, exiting: bool = False) -> int:
    """Run one command. ``exiting``: the process ends once this returns (``python -m prefine_core``), so a kill or a
    Ctrl-C that comes after the command's result is said is ignored, not only while it is said: the interpreter's own
    teardown takes 0.7 s with torch loaded, and a kill then ended a command that had finished and said so with 143
    (a Ctrl-C with 130)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _Parser.json_errors = "--json" in argv
    found = _catch_kills()
    try:
        return _run(argv, found)
    finally:
        if found is not None and not exiting:
            for signum, handler in found.items():
                signal.signal(signum, handler)


def _run(argv: list[str], found: dict | None) -> int:
    """Parse the command line, run its command and say its result, or why it stopped."""
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # a Ctrl-C while the parser imports torch gave a KeyboardInterrupt traceback
        _ignore_kills(found)
        return _refused("interrupted before the command began; nothing was done", 130, _Parser.json_errors)
    try:
        result = args.handler(args)
    except (Exception, KeyboardInterrupt) as exc:
        _ignore_kills(found)  # before what it kept is read, which a second kill would cut short
        why = _why_stopped(args, exc)
        if why is None:
            raise
        return _refused(*why, args.json)
    _ignore_kills(found)
    return _say(args, result)


def _say(args: argparse.Namespace, result) -> int:
    """Print a command's result: one JSON object with --json, else lines a person reads."""
    try:
        if args.json:
            print(json.dumps(strict_json(result), default=str, allow_nan=False))
        else:
            print("\n".join(human_lines(strict_json(result))))
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`| head`): nothing to say, and no traceback at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
