"""Background runs as OS processes whose state lives in the store.

The app never trains in its own thread. :func:`launch` records a run (status ``queued``) and
spawns ``python -m prefine_core.jobs run <run_id>`` in a new session; that process marks the run
``running``, beats a heartbeat every few seconds, writes its metrics to the store and its output
to ``<runs>/<id>/log.txt``, and ends it ``done``, ``failed`` (with the error) or ``cancelled``
(SIGTERM from :func:`cancel`). Because everything is in the store, a reloaded page or a restarted
app sees the same jobs and curves. :func:`reap` marks runs whose process is gone (the app or the
machine restarted, the process was killed) as failed; :func:`resume` starts them again in the same
folder, where the fine-tuner picks up its last checkpoint.

A job kind is a function ``(ws, run, report) -> dict`` in :data:`KINDS`; ``report(step, metrics)``
writes metrics. The result dict is saved as ``<runs>/<id>/result.json``.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Callable

from prefine_core.files import write_text_atomic
from prefine_core.store import RunRecord
from prefine_core.store.schema import utcnow
from prefine_core.workspace import Workspace

#: Seconds between heartbeats; a live run's heartbeat is never older than :data:`STALE_AFTER`.
HEARTBEAT_EVERY = 3.0
STALE_AFTER = timedelta(seconds=45)
#: A queued run whose process never reported within this time is considered lost.
START_TIMEOUT = timedelta(seconds=120)
ACTIVE = ("queued", "running")
#: The statuses a run is resumed from: it ended without its result (anything else, a row edited by hand, is refused).
RESUMABLE = ("failed", "cancelled")
#: This machine, as a run records it beside its ``pid`` (app instances on several machines may share one store).
HOST = socket.gethostname()
#: How long a job process goes on trying to record how it ended while the database does not answer.
RECORD_PATIENCE = timedelta(minutes=10)
REPO = Path(__file__).resolve().parent.parent
_CHILDREN: dict[int, subprocess.Popen] = {}  # spawned by this process, polled so none stays a zombie


class Cancelled(BaseException):
    """Raised in a job process on SIGTERM."""


class TakenOver(BaseException):
    """Raised in a job process whose run the store now gives to another process (resumed elsewhere while this one,
    unheard from during a database outage, was thought dead): it stops without recording anything."""


def run_dir(ws: Workspace, run_id: int) -> Path:
    return ws.runs_dir / str(run_id)


#: What a run's process writes in its folder when it ends, until the store has it (:func:`reap` reads it).
ENDED = "ended.json"


def log_path(ws: Workspace, run_id: int) -> Path:
    return run_dir(ws, run_id) / "log.txt"


def result(ws: Workspace, run_id: int) -> dict | None:
    """The result a finished run saved, or None: none saved, or not in this workspace's folder (an app instance
    sharing the store from another machine without sharing the folder), or unreadable."""
    try:
        saved = json.loads((run_dir(ws, run_id) / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def result_missing(ws: Workspace, run: RunRecord) -> str:
    """Why a finished run's result cannot be shown here."""
    return (f"Run {run.id} finished, but its result ({run_dir(ws, run.id) / 'result.json'}) is missing or unreadable "
            "in this workspace. App instances that share one database must share the workspace folder too "
            "(PREFINE_WORKSPACE on a shared file system): runs, videos and policies are files in it")


# -- the app side ------------------------------------------------------------------------------

def launch(ws: Workspace, kind: str, task_id: str, policy_id: int | None, config: dict) -> int:
    """Record a run of ``kind`` and start its process; returns the run id."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known: {sorted(KINDS)}")
    run_id = ws.store.create_run(task_id, policy_id, kind, config)
    _spawn(ws, run_id)
    return run_id


def _spawn(ws: Workspace, run_id: int) -> None:
    folder = run_dir(ws, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PREFINE_WORKSPACE=str(ws.root), PREFINE_DB_URL=ws.store.url, OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.setdefault("MUJOCO_GL", "egl")
    with open(log_path(ws, run_id), "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "prefine_core.jobs", "run", str(run_id)], cwd=REPO, env=env,
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    _CHILDREN[child.pid] = child
    ws.store.update_run(run_id, pid=child.pid, host=HOST, log_path=str(log_path(ws, run_id)))


def _poll_children() -> None:
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            del _CHILDREN[pid]


def process_alive(pid: int | None, run_id: int | None = None, ws: Workspace | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) process on this machine, and — given ``run_id`` — that job's, of the
    workspace ``ws`` when given (a copy of a workspace holds the same run ids and pids as the original)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:  # 0 and -1 would ask about a process group
        # or every process, 1 is init: not a job's pid; nor is a row's text or fraction (SQLite keeps a hand edit)
        return False
    _poll_children()
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: a pid past any the system gives
        return False
    except PermissionError:  # alive, but another user's: a job's pid reused since; /proc still says whose it is
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    if state in ("Z", "X"):
        return False
    if run_id is None:
        return True
    if b"prefine_core.jobs" not in cmdline or str(run_id).encode() not in cmdline:
        return False
    return ws is None or _in_workspace(pid, ws)


def _in_workspace(pid: int, ws: Workspace) -> bool:
    """Whether job process ``pid`` may run in ``ws``: False only when the folder its environment was started with
    (``PREFINE_WORKSPACE``, set by :func:`_spawn`) is another folder than ``ws.root`` (by any path to it) — the one a
    copy of this workspace was made from. What cannot be told is taken as this workspace's: an environment read
    while the process was still starting (empty), or naming a folder gone since (renamed); taken otherwise, a live
    run was reaped as failed the moment its process started."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return True
    named = [entry.split(b"=", 1)[1] for entry in environ if entry.startswith(b"PREFINE_WORKSPACE=")]
    if not named:
        return True
    try:
        return os.path.samefile(os.fsdecode(named[-1]), ws.root)
    except OSError:  # its folder is gone
        return True


def cancel(ws: Workspace, run_id: int) -> None:
    """Ask a run to stop (SIGTERM to its process group); a run without a live process is marked cancelled. A run
    still queued is marked cancelled here first: its process may still be starting up (importing torch) and die of
    the signal before it can say so, which read as a crash."""
    run = ws.store.get_run(run_id)
    if run.status not in ACTIVE:
        return
    if not _here(run):  # no signal reaches another machine: its process stops itself once its heartbeat reads this
        ws.store.update_run(run_id, only_if_status=run.status, status="cancelled", error="stopped by the user")
        return
    if run.status == "queued" and ws.store.update_run(run_id, only_if_status="queued", status="cancelled",
                                                      error="stopped by the user before it started"):
        if process_alive(run.pid, run_id, ws):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGTERM)
        return
    if process_alive(run.pid, run_id, ws):
        try:
            os.killpg(run.pid, signal.SIGTERM)
            return
        except ProcessLookupError:
            pass
    # no process to signal (it ended meanwhile, or died): marked, unless its status moved on since it was read (done)
    ws.store.update_run(run_id, only_if_status=run.status, status="cancelled",
                        error="cancelled before it started" if run.status == "queued" else "stopped by the user")


def resume_refusal(ws: Workspace, run: RunRecord) -> str | None:
    """Why ``run`` cannot be resumed as things stand, or None: its status, a kind of job this version does not know,
    or for a fine-tune saved settings that are not a config, or labels changed since it started (a resumed run trains
    on what it started with)."""
    if run.status not in RESUMABLE:
        return f"run {run.id} is {run.status}; only failed or cancelled runs can be resumed"
    if run.kind not in KINDS:
        return (f"run {run.id} is a {run.kind!r} job, which this version does not run (known: "
                f"{', '.join(sorted(KINDS))}); it cannot be resumed")
    if run.kind == "prefine":
        from prefine_core.prefine import PrefineConfig
        from prefine_core.trainer import check_same_labels, started_on

        try:
            PrefineConfig.from_saved(run.config)
        except (TypeError, ValueError) as exc:
            return (f"run {run.id}'s saved settings are not a PREFINE config ({exc}); it cannot be resumed, "
                    "start a new run instead")
        labels = started_on(run_dir(ws, run.id))
        try:
            if labels is not None:
                check_same_labels(labels, *_labels_now(ws, run.task_id))
        except ValueError as exc:
            return str(exc)
    return None


_FINGERPRINTS: dict[tuple, str] = {}  # (store, decided pairs) -> their fingerprint: a page asks on every redraw


def _labels_now(ws: Workspace, task_id: str) -> tuple[str, int]:
    """The fingerprint of the task's decided pairs as a fine-tune would train on them, and their number. The clips are
    read only when the decided pairs changed since the last call (a stored clip never changes)."""
    from prefine_core.trainer import PreferenceData

    decided = tuple(ws.store.decided_pairs(task_id))
    if not decided:
        return "", 0
    key = (str(ws.root), repr(ws.store), decided)
    if key not in _FINGERPRINTS:
        if len(_FINGERPRINTS) >= 16:
            _FINGERPRINTS.clear()
        pairs = [(ws.store.get_trajectory(w), ws.store.get_trajectory(l)) for w, l in decided]
        _FINGERPRINTS[key] = PreferenceData.from_pairs(pairs).fingerprint()
    return _FINGERPRINTS[key], len(decided)


def resume(ws: Workspace, run_id: int) -> None:
    """Start a failed or cancelled run again in its own folder (the fine-tuner continues from its checkpoint)."""
    run = ws.store.get_run(run_id)
    refusal = resume_refusal(ws, run)  # said now, not by the process after it started; the run stays as it is
    if refusal is not None:
        raise ValueError(refusal)
    # only from the status the check saw: a run its own process took back meanwhile (see _heartbeat) is not started
    # twice, and keeps its curves (what is redone is dropped only once the run is this resume's)
    if not ws.store.update_run(run_id, only_if_status=run.status, status="queued", error=None, pid=None, host=None,
                               heartbeat=None):
        raise ValueError(f"run {run_id} is {ws.store.get_run(run_id).status} now; only failed or cancelled runs resume")
    if run.kind == "prefine":
        _drop_what_is_redone(ws, run_id)
    (run_dir(ws, run_id) / ENDED).unlink(missing_ok=True)
    _spawn(ws, run_id)


def _drop_what_is_redone(ws: Workspace, run_id: int) -> None:
    """What a fine-tune reported after its last checkpoint is trained and reported again on a resume: drop it, or
    the curves and the progress bar run ahead of the run (a staged run's BC stage has its own checkpoint)."""
    from prefine_core.trainer import STAGE_DIR, STAGE_PREFIX, saved_step

    folder = run_dir(ws, run_id)
    own = saved_step(folder)
    if own is not None:
        ws.store.delete_metrics_after(run_id, own, prefix=STAGE_PREFIX, keep_prefixed=True)
        return
    ws.store.delete_metrics_after(run_id, -1, prefix=STAGE_PREFIX, keep_prefixed=True)  # it starts afresh
    stage = saved_step(folder / STAGE_DIR)
    ws.store.delete_metrics_after(run_id, -1 if stage is None else stage, prefix=STAGE_PREFIX)


def _here(run: RunRecord) -> bool:
    """Whether ``run``'s process, if it has one, is on this machine (a run recorded before hosts were: yes)."""
    return run.host is None or run.host == HOST


def lost(ws: Workspace, run: RunRecord, now=None) -> bool:
    """Whether an active run's process is gone. On this machine its pid says (the process of that run in another
    workspace, the one ``ws`` was copied from, is not this run's); a run whose process lives here is not lost for a
    late heartbeat (a database that did not answer for a while, not a dead run: marked failed, it could have been
    resumed by a second process beside the first). On another machine only the heartbeat says: no beat for
    :data:`STALE_AFTER`."""
    if run.status not in ACTIVE:
        return False
    now = now or utcnow()
    if run.pid and _here(run):
        if not process_alive(run.pid, run.id, ws):
            return True
        if run.status == "running":
            return False
    if run.status == "running":
        return run.heartbeat is None or now - run.heartbeat > STALE_AFTER
    return now - (run.updated_at or run.created_at) > START_TIMEOUT


#: What a user does about a run of each kind whose process died (only a fine-tune has checkpoints).
_AGAIN = {"prefine": "press Resume on the Fine-tune page, or run `python -m prefine_core runs --resume {id}`, to "
                     "continue from its last checkpoint",
          "render": "render the missing videos again, or Resume it: the videos done stay",
          "compare": "evaluate the pair again",
          "prepare": "prepare pairs again (Home)"}


#: The error :func:`reap` stores for a run whose process died; what to do about it is said apart (:func:`error_text`).
STOPPED = "the run's process stopped without reporting (app restart, crash or out of memory)"


def advice(run: RunRecord) -> str:
    """What a user can do about ``run`` once its process died (e.g. press Resume)."""
    return _AGAIN.get(run.kind, "start it again with `python -m prefine_core runs --resume {id}`").format(id=run.id)


def error_text(run: RunRecord, refusal: str | None = None) -> str | None:
    """``run``'s error as shown to a user: a run whose process died gets :func:`advice`, unless ``refusal`` (from
    :func:`resume_refusal`) says a resume would be refused."""
    if run.error == STOPPED and refusal is None:
        return f"{STOPPED}; {advice(run)}"
    return run.error


def reap(ws: Workspace, task_id: str | None = None) -> list[int]:
    """Mark every active run whose process is gone as failed (or as it ended, when its process wrote that down but
    could not record it: the database did not answer); returns their ids. The jobs this process started that have
    ended are waited for first (with no run active, one stayed a zombie until another job started)."""
    _poll_children()
    gone = []
    for run in ws.store.list_runs(task_id, statuses=ACTIVE):
        if not lost(ws, run):
            continue
        # each write only from the status read here: a run cancelled, or ended by its own process, since is left be
        if _record_ended(ws, run):
            gone.append(run.id)
        elif ws.store.update_run(run.id, only_if_status=run.status, status="failed", error=STOPPED):
            log = log_path(ws, run.id)  # its own, not whatever file its row names
            if log.is_file():  # the process could not write its own last line
                with open(log, "a") as handle:
                    handle.write(_closing_line(run.id, "failed", f"{STOPPED}; {advice(run)}") + "\n")
            gone.append(run.id)
        else:
            continue
        (run_dir(ws, run.id) / ENDED).unlink(missing_ok=True)
    return gone


def _record_ended(ws: Workspace, run: RunRecord) -> bool:
    """Record how a run's process said it ended (``ended.json``: status, error, output policy) where it could not
    record it itself, while the run has the status ``run`` was read with; False when it said nothing readable,
    nothing the store takes (its policy row missing), or the run's status moved on since."""
    try:
        ended = json.loads((run_dir(ws, run.id) / ENDED).read_text())
    except (OSError, ValueError):
        return False
    if (not isinstance(ended, dict) or ended.get("status") not in ("done", "failed", "cancelled")
            or not isinstance(ended.get("error"), (str, type(None)))):
        return False
    fields = {"status": ended["status"], "error": ended.get("error")}
    if isinstance(ended.get("output_policy_id"), int):
        fields["output_policy_id"] = ended["output_policy_id"]
    try:
        return ws.store.update_run(run.id, only_if_status=run.status, **fields)
    except ValueError:
        return False


def active(ws: Workspace, task_id: str, kinds: tuple[str, ...]) -> list[RunRecord]:
    """The task's queued or running runs of ``kinds``, newest first, after :func:`reap` marked the dead ones."""
    reap(ws, task_id)
    return ws.store.list_runs(task_id, kinds=kinds, statuses=ACTIVE)


def log_tail(ws: Workspace, run_id: int, lines: int = 20) -> str:
    """The last ``lines`` of the run's own log (not whatever file its row's ``log_path`` names), or "" when none."""
    log = log_path(ws, run_id)
    if not log.is_file():
        return ""
    with open(log, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 16_000))
        text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


# -- the job side ------------------------------------------------------------------------------

def _heartbeat(ws: Workspace, run_id: int, stop: threading.Event, cancelled: threading.Event,
               taken_over: threading.Event) -> None:
    """Beat every :data:`HEARTBEAT_EVERY` s, reading what the store says of the run first:

    - cancelled from another machine, where no signal reaches: ``cancelled`` is set, the run stops at its next report;
    - marked failed for a late heartbeat by another machine's app (the database did not answer for a while) though
      this process lives: it is taken back (running again), so that no Resume starts a second process beside it;
    - given to another process meanwhile (resumed there): ``taken_over`` is set, and this one stops at its next
      report without recording anything (the run is the other process's now)."""
    while not stop.wait(HEARTBEAT_EVERY):
        try:
            run = ws.store.get_run(run_id)
            if not _ours(run):
                taken_over.set()
                return
            if run.status == "cancelled":
                cancelled.set()
            elif run.status == "failed" and run.error == STOPPED and not stop.is_set():  # not once the run ended
                if ws.store.update_run(run_id, only_if_status="failed", only_if_process=_this_process(),
                                       status="running", error=None, heartbeat=True):
                    print(f"[{time.strftime('%H:%M:%S')}] run {run_id} was marked failed while the database did not "
                          "hear from it; it is running again", flush=True)
            else:
                ws.store.update_run(run_id, only_if_process=_this_process(), heartbeat=True)
        except Exception as exc:  # a busy database must not kill the run; the next beat retries
            print(f"heartbeat failed: {exc}", flush=True)


def _this_process() -> tuple[int, str]:
    """(pid, host) of this process, as a run it runs records them."""
    return os.getpid(), HOST


def _ours(run: RunRecord) -> bool:
    """Whether the store gives ``run`` to this process (not resumed by another since)."""
    return (run.pid, run.host) == _this_process()


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is the store's database not answering (locked, down, connection dropped) after the store's
    own retries: a run goes on, and says so in its log."""
    from sqlalchemy.exc import DBAPIError

    from prefine_core.store.engine import transient

    return isinstance(exc, DBAPIError) and transient(exc)


def _record_end(ws: Workspace, run_id: int, status: str, fields: dict) -> bool:
    """Record how the run ended, trying again for :data:`RECORD_PATIENCE` while the database does not answer. What
    it records is first written to ``ended.json`` in the run's folder: should the database stay away, :func:`reap`
    records that instead of a process that "stopped without reporting". False: the run is another process's now
    (resumed while this one was thought dead), and nothing was recorded."""
    write_text_atomic(run_dir(ws, run_id) / ENDED, json.dumps({"status": status, **fields}))
    deadline, wait = time.monotonic() + RECORD_PATIENCE.total_seconds(), 2.0
    while True:
        try:
            recorded = ws.store.update_run(run_id, only_if_process=_this_process(), status=status, heartbeat=True,
                                           **fields)
            break
        except Exception as exc:
            if not _unreachable(exc) or time.monotonic() + wait > deadline:
                raise
            print(f"[{time.strftime('%H:%M:%S')}] the database does not answer ({type(exc).__name__}); "
                  f"recording the run's end again in {wait:.0f} s", flush=True)
            time.sleep(wait)
            wait = min(2 * wait, 30.0)
    (run_dir(ws, run_id) / ENDED).unlink(missing_ok=True)
    return recorded


class _Reports:
    """A job's ``report(step, metrics)``: each report is written to the store. While the database does not answer,
    reports wait and the run goes on; they are written, oldest first, once it answers again (tried every
    :attr:`RETRY_EVERY` s, not at every step, since each try waits out the store's own retries)."""

    RETRY_EVERY = 15.0

    def __init__(self, ws: Workspace, run_id: int, cancelled: threading.Event, taken_over: threading.Event):
        self.ws, self.run_id, self.cancelled, self.taken_over = ws, run_id, cancelled, taken_over
        self.waiting: list[tuple[int, dict]] = []
        self.retry_at = 0.0  # 0: the database answered last time

    def __call__(self, step: int, metrics: dict) -> None:
        if self.taken_over.is_set():  # another process holds the run now (the heartbeat read it)
            raise TakenOver()
        if self.cancelled.is_set():  # the handler's Cancelled was swallowed somewhere (library code), or a cancel
            raise Cancelled()        # came from another machine (the heartbeat read it): stop here
        self.waiting.append((int(step), {k: float(v) for k, v in metrics.items() if k != "step"}))
        self.write_waiting()

    def write_waiting(self, now: bool = False) -> None:
        if not now and time.monotonic() < self.retry_at:
            return
        try:
            if self.retry_at and not _ours(self.ws.store.get_run(self.run_id)):  # the database answers again: is the
                self.taken_over.set()                                           # run still this process's?
                self.waiting.clear()
                return
            while self.waiting:
                self.ws.store.add_metrics(self.run_id, *self.waiting[0])
                self.waiting.pop(0)
        except Exception as exc:
            if not _unreachable(exc):
                raise
            if not self.retry_at:  # said once per outage
                print(f"[{time.strftime('%H:%M:%S')}] the database does not answer ({type(exc).__name__}); the run "
                      "goes on and writes its reports once it answers again", flush=True)
            self.retry_at = time.monotonic() + self.RETRY_EVERY
            if now:
                print(f"{len(self.waiting)} reports could not be written: the database did not answer", flush=True)
        else:
            self.retry_at = 0.0


def execute(ws: Workspace, run_id: int) -> str:
    """Run job ``run_id`` in this process; returns its final status. A run that is no longer queued when this
    process claims it (cancelled while it started) is not run."""
    cancelled = threading.Event()

    def on_term(signum, frame):
        cancelled.set()
        raise Cancelled()

    signal.signal(signal.SIGTERM, on_term)  # before the claim: from then on a cancel ends the run as cancelled
    try:
        claimed = ws.store.update_run(run_id, only_if_status="queued", status="running", pid=os.getpid(),
                                      host=HOST, heartbeat=True, error=None)
    except Cancelled:  # a cancel during the claim itself: whichever way the claim went, the run ends cancelled
        for was in ("running", "queued"):
            ws.store.update_run(run_id, only_if_status=was, status="cancelled", error="stopped by the user")
        claimed = False
    if not claimed:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        status = ws.store.get_run(run_id).status
        print(_closing_line(run_id, status, "not started: it was no longer queued"), flush=True)
        return status
    run = ws.store.get_run(run_id)
    stop, taken_over = threading.Event(), threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(ws, run_id, stop, cancelled, taken_over), daemon=True)

    report = _Reports(ws, run_id, cancelled, taken_over)
    status, fields, outcome = "done", {}, {}
    try:
        import torch

        torch.set_num_threads(1)
        beat.start()
        print(f"[{time.strftime('%H:%M:%S')}] run {run_id}: {run.kind} on {run.task_id}", flush=True)
        outcome = KINDS[run.kind](ws, run, report)
        report.write_waiting(now=True)  # the last metrics, before the run is said to be done
        if taken_over.is_set():
            raise TakenOver()
        path = run_dir(ws, run_id) / "result.json"
        write_text_atomic(path, json.dumps(outcome, indent=1, default=str))
        fields["output_policy_id"] = outcome.get("output_policy_id")
    except TakenOver:
        pass  # said below
    except Cancelled:
        status, fields["error"] = "cancelled", "stopped by the user"
    except Exception as exc:  # Cancelled raised inside a C call may arrive wrapped (ctypes.ArgumentError)
        traceback.print_exc()
        if cancelled.is_set():
            status, fields["error"] = "cancelled", "stopped by the user"
        else:
            # a ValueError is what the user can fix, in words already; anything else is named for the report
            status, fields["error"] = "failed", str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    finally:
        stop.set()
        if beat.is_alive():  # a beat under way could take the run back (running) after its end is recorded below
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second Cancel meanwhile must not cut the record short
            beat.join(timeout=60)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not taken_over.is_set():
        try:
            recorded = _record_end(ws, run_id, status, fields)
        except BaseException:  # the database away past patience: the log still says how the run ended
            print(_closing_line(run_id, status, fields.get("error")), flush=True)
            raise
        if recorded:
            print(_closing_line(run_id, status, fields.get("error")), flush=True)
            return status
    # at a report, at the end of a job that reports little, or only when its end was to be recorded: not ours to end
    # (one closing line, this one: the end it would have recorded is not said as well)
    print(_closing_line(run_id, "stopped", "another process runs it now (it was resumed while this one was thought "
                                           "dead); nothing is recorded from here"), flush=True)
    _drop_output(ws, outcome)
    return "taken over"


def _drop_output(ws: Workspace, outcome: dict) -> None:
    """Unregister the policy a run taken over had registered before it knew (the other process registers its own;
    the file stays, in the run's folder, which the other process writes)."""
    if isinstance(outcome, dict) and isinstance(outcome.get("output_policy_id"), int):
        try:
            ws.store.delete_policy(outcome["output_policy_id"])
        except Exception as exc:  # in use already, or the database away: said, left
            print(f"the policy this process registered ({outcome['output_policy_id']}) was left: {exc}", flush=True)


def _closing_line(run_id: int, status: str, error: str | None) -> str:
    """The last line of a run's log: how it ended, and why when not done."""
    return f"[{time.strftime('%H:%M:%S')}] run {run_id}: {status}" + (f" — {error}" if error else "")


def _finetune(ws: Workspace, run: RunRecord, report) -> dict:
    from prefine_core.launcher import run_finetune

    return run_finetune(ws, run, report)


def _compare(ws: Workspace, run: RunRecord, report) -> dict:
    from prefine_core.comparison import run_comparison

    return run_comparison(ws, run.config, run_dir(ws, run.id), report)


def _prepare(ws: Workspace, run: RunRecord, report) -> dict:
    from prefine_core.demo import prepare_pairs

    return prepare_pairs(ws, run.task_id, run.config, report)


def _render(ws: Workspace, run: RunRecord, report) -> dict:
    """Render the task's missing videos; a resumed run goes on counting from the videos its earlier attempts made (it
    said "step 2" after 3 videos, its second attempt counting from 1 again)."""
    from prefine_core.pair_videos import render_pending

    reported = ws.store.run_metrics(run.id)
    before = int(reported.step.max()) if not reported.empty else 0
    outcome = render_pending(ws, run.task_id, size=int(run.config.get("size", 256)),
                             on_progress=lambda done, total: report(before + done, {"render/videos": before + done}))
    for said in outcome.get("damaged", []):  # in the log the app shows: why those pairs still have no video
        print(f"no video: {said}", flush=True)
    return outcome


KINDS: dict[str, Callable] = {"prefine": _finetune, "compare": _compare, "prepare": _prepare, "render": _render}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "run" or not argv[1].isdigit():
        print("usage: python -m prefine_core.jobs run RUN_ID", file=sys.stderr)
        return 2
    status = execute(Workspace.open(), int(argv[1]))
    return 0 if status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
