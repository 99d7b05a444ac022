"""Faults: processes killed mid-write or mid-run, a locked or restarted database, a full or read-only disk.

Each test shows what the system did and that nothing acknowledged was lost. Tests that need root
(tmpfs mounts) or a PostgreSQL server binary skip with a reason where those are missing.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CHEETAH, choice_button, make_policy
from test_trainer import setup  # noqa: F401  (fixture: the trainer tests' tiny real data set)

REPO = Path(__file__).resolve().parent.parent


def fake_clip(seed: int, length: int = 20):
    from prefine_core.rollout import Trajectory

    rng = np.random.default_rng(seed)
    return Trajectory(task_id=CHEETAH, obs=rng.normal(size=(length, 17)).astype(np.float32),
                      actions=rng.uniform(-1, 1, size=(length, 6)).astype(np.float32),
                      rewards=rng.normal(size=length).astype(np.float32), costs=np.zeros(length, np.float32),
                      terminated=False, truncated=True, seed=seed)


def small_store(ws, n_pairs: int = 6, videos: bool = False) -> list[int]:
    """``n_pairs`` pairs of fake clips; with ``videos``, each with a (fake) video file, as the Label page needs."""
    video = ws.videos_dir / "fake.mp4"
    if videos:
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with ws.store.batch() as batch:
        ids = [batch.add_trajectory(fake_clip(s), None, "fault", ws.trajectories_dir) for s in range(n_pairs + 1)]
        return [batch.add_pair(a, b, "random", 0.0, "fault test", video_path=str(video) if videos else None)
                for a, b in zip(ids, ids[1:])]


# -- writers killed mid-write -----------------------------------------------------------------------

WRITER = """
import sys, numpy as np, torch
from pathlib import Path
sys.path.insert(0, {repo!r})
from prefine_core.policy import PolicyMeta, TanhGaussianPolicy, save_policy
from prefine_core.rollout import Trajectory, save_trajectory
from prefine_core.render import write_mp4
folder = Path(sys.argv[1])
policy = TanhGaussianPolicy(PolicyMeta(task_id={task!r}, obs_dim=17, act_dim=6, hidden_sizes=(512, 512)))
rng = np.random.default_rng(0)
n = 3000
clip = Trajectory(task_id={task!r}, obs=rng.normal(size=(n, 17)).astype(np.float32),
                  actions=rng.uniform(-1, 1, size=(n, 6)).astype(np.float32), rewards=np.zeros(n, np.float32),
                  costs=np.zeros(n, np.float32), terminated=False, truncated=True)
frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(30)]
print("ready", flush=True)
i = 0
while True:
    k = i % 3
    save_policy(policy, folder / f"policy{{k}}.safetensors")
    save_trajectory(clip, folder, f"clip{{k}}")
    write_mp4(frames, folder / f"video{{k}}.mp4", fps=30)
    print("wrote a round", flush=True)
    i += 1
"""


def check_visible_files(folder: Path) -> dict:
    """Every file a reader can see (not a dot-file) loads completely; returns counts per kind."""
    import imageio_ffmpeg

    from prefine_core.policy import load_policy
    from prefine_core.rollout import load_trajectory

    seen = {"policies": 0, "clips": 0, "videos": 0, "hidden temp files": 0}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            seen["hidden temp files"] += 1
        elif path.suffix == ".safetensors":
            load_policy(path)
            seen["policies"] += 1
        elif path.suffix == ".npz":
            assert load_trajectory(path).length == 3000
            seen["clips"] += 1
        elif path.suffix == ".mp4":
            frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
            assert frames == 30, (path, frames)
            seen["videos"] += 1
    return seen


def test_writers_sigkilled_mid_write_leave_only_complete_files(tmp_path):
    """A process rewriting checkpoints, clip arrays and videos in a loop is SIGKILLed at several
    moments; every file a reader can see is always complete (temp file + fsync + rename)."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO), task=CHEETAH))
    folder = tmp_path / "out"
    folder.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    a_round_written = False
    for delay in (0.5, 1.2, 2.0):
        writer = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, env=env)
        assert writer.stdout.readline().strip() == b"ready"
        if not a_round_written:  # the last check needs a file of each kind: however slow the machine, the first
            # writer finishes a round before the delay to its kill starts (which still falls at a varying moment)
            assert writer.stdout.readline().strip() == b"wrote a round", "the writer ended before its first round"
            a_round_written = True
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        seen = check_visible_files(folder)
    assert seen["policies"] and seen["clips"] and seen["videos"], seen


def test_writes_abandoned_by_a_killed_writer_are_cleaned_when_old_and_nothing_else(tmp_path):
    """A writer that dies inside ``atomic_path`` leaves its temp file; opening the workspace removes such
    files once they are an hour old, and leaves young ones (a live writer's) and every other file alone."""
    from prefine_core.workspace import Workspace

    videos = tmp_path / "ws" / "videos"
    videos.mkdir(parents=True)
    die_mid_write = ("import os, sys; sys.path.insert(0, {repo!r}); from prefine_core.files import atomic_path\n"
                     "with atomic_path({target!r}) as tmp:\n    open(tmp, 'wb').write(b'half')\n    os._exit(9)")
    for name in ("old.mp4", "young.mp4"):
        code = die_mid_write.format(repo=str(REPO), target=str(videos / name))
        assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    left = {p.name: p for p in videos.iterdir()}
    assert len(left) == 2 and not any(n in left for n in ("old.mp4", "young.mp4"))  # only temp files remain
    old = next(p for n, p in left.items() if n.startswith(".old."))
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    keep = [videos / ".gitkeep", videos / ".notes.txt", videos / "pair-1.mp4"]
    for path in keep:
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    Workspace.open(tmp_path / "ws", shipped=None).store.close()
    assert sorted(p.name for p in videos.iterdir()) == sorted([*(p.name for p in keep), next(n for n in left if n.startswith(".young."))])


def finetune_ws(tmp_path):
    """A workspace with real short rollouts and five decided pairs."""
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import save_policy
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    policy_id = ws.store.add_policy("ref", save_policy(make_policy(CHEETAH), ws.policies_dir / "ref.safetensors"),
                                    CHEETAH, "reference")
    with SafetyTask(CHEETAH) as task:
        ids = [ws.store.add_trajectory(collect(make_policy(CHEETAH, seed=s), task, seed=s, max_steps=60), policy_id,
                                       f"src{s}", ws.trajectories_dir) for s in range(6)]
    for a, b in zip(ids, ids[1:]):
        ws.store.add_label(ws.store.add_pair(a, b, "random", 0.0, "test"), "tester", "left")
    return ws, policy_id


def test_finetune_sigkilled_mid_run_is_failed_keeps_its_checkpoints_and_resumes(tmp_path):
    import json

    from prefine_core import jobs
    from prefine_core.policy import load_policy
    from prefine_core.prefine import PrefineConfig
    from test_jobs import wait_for

    ws, policy_id = finetune_ws(tmp_path)
    config = PrefineConfig(steps=100, log_every=5, eval_every=20, eval_episodes=1, segment_length=20, batch_size=4,
                           bc_batch_size=32, select="last")
    run_id = jobs.launch(ws, "prefine", CHEETAH, policy_id, config.to_dict())
    state = jobs.run_dir(ws, run_id) / "state.json"
    deadline = time.time() + 240
    while not (state.is_file() and json.loads(state.read_text())["step"] >= 40) and time.time() < deadline:
        time.sleep(0.1)
    run = ws.store.get_run(run_id)
    assert run.status == "running", (run.status, run.error)
    os.killpg(run.pid, signal.SIGKILL)  # no handler runs: the process just vanishes
    deadline = time.time() + 30
    while jobs.process_alive(run.pid, run_id) and time.time() < deadline:
        time.sleep(0.1)
    assert jobs.reap(ws) == [run_id]  # what the Fine-tune page does every 2 s
    failed = ws.store.get_run(run_id)
    assert failed.status == "failed" and "Resume" in jobs.error_text(failed)
    checkpoints = sorted((jobs.run_dir(ws, run_id) / "checkpoints").glob("step_*.safetensors"))
    assert checkpoints and all(load_policy(p, CHEETAH) for p in checkpoints)
    killed_at = json.loads(state.read_text())["step"]
    assert (jobs.run_dir(ws, run_id) / "checkpoints" / f"step_{killed_at:07d}.safetensors").is_file()

    jobs.resume(ws, run_id)
    done = wait_for(ws, run_id, ("done", "failed"), timeout=300)
    assert done.status == "done", f"{done.error}\n{jobs.log_tail(ws, run_id, 40)}"
    assert load_policy(ws.store.get_policy(done.output_policy_id).path, CHEETAH)
    metrics = ws.store.run_metrics(run_id)
    evals = metrics[metrics.name == "eval/return"].step.tolist()
    assert evals.count(20) == 1 and evals.count(100) == 1, evals  # resumed after step 20, not from scratch
    assert jobs.result(ws, run_id)["selected_step"] == 100


# -- the database locked, or restarted -----------------------------------------------------------------

#: The longest a lock holder holds its lock when its test never releases it (the test failed before it could).
HOLD_AT_MOST_S = 120


def hold_sqlite_write_lock(path: Path, ready: threading.Event, release: threading.Event,
                           releasing: threading.Event | None = None) -> threading.Thread:
    """A thread that takes SQLite's write lock on ``path`` (another connection's open write transaction), sets
    ``ready``, and holds the lock until ``release`` is set: by the test, once what it checks has met the lock (a hold
    of fixed seconds could end before a write on a slow machine had even tried). ``releasing`` is set just before the
    lock is let go."""
    def hold():
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        ready.set()
        release.wait(HOLD_AT_MOST_S)
        if releasing is not None:
            releasing.set()
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def test_sqlite_write_lock_held_by_another_connection_is_waited_out(tmp_path):
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    pairs = small_store(ws)
    ready, release, releasing = threading.Event(), threading.Event(), threading.Event()
    holder = hold_sqlite_write_lock(ws.root / "prefine.db", ready, release, releasing)
    ready.wait()
    outcome = {}

    def write():
        try:
            outcome["label_id"] = ws.store.add_label(pairs[0], "ann", "left")
        except Exception as exc:
            outcome["error"] = exc
        outcome["returned after the lock went"] = releasing.is_set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        writer.join(timeout=1.0)
        assert writer.is_alive(), f"the write did not wait for the lock: {outcome}"
    finally:
        release.set()
        holder.join()
        writer.join(timeout=60)
    assert outcome.get("returned after the lock went") and "error" not in outcome, outcome
    assert [l.id for l in ws.store.label_history()] == [outcome["label_id"]]


@pytest.fixture
def short_lock_timeouts(monkeypatch):
    """SQLite gives up on a lock after 0.2 s and the store retries twice (instead of 30 s × 8)."""
    from sqlalchemy import event

    from prefine_core.store import api, engine as store_engine

    def make_engine(url):
        engine = store_engine.make_engine(url)
        event.listen(engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout=200"))
        return engine

    monkeypatch.setattr(store_engine, "RETRIES", 2)
    monkeypatch.setattr(api, "make_engine", make_engine)


def test_sqlite_lock_held_too_long_raises_and_writes_nothing(tmp_path, short_lock_timeouts):
    from sqlalchemy.exc import OperationalError

    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    pairs = small_store(ws)
    ready, release = threading.Event(), threading.Event()
    holder = hold_sqlite_write_lock(ws.root / "prefine.db", ready, release)
    ready.wait()
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            ws.store.add_label(pairs[0], "ann", "left")
    finally:
        release.set()  # only once the write gave up: however long its retries took
        holder.join()
    assert ws.store.label_history() == []
    ws.store.add_label(pairs[0], "ann", "left")  # the same action again, once the lock is gone
    assert len(ws.store.label_history()) == 1


def _job_in_this_process(ws, monkeypatch, job) -> int:
    """A run of ``job`` (a job kind's function) for :func:`jobs.execute` to run here, its heartbeat off."""
    from prefine_core import jobs

    monkeypatch.setitem(jobs.KINDS, "probe", job)
    monkeypatch.setattr(jobs, "_heartbeat", lambda *args: None)
    return ws.store.create_run(CHEETAH, None, "probe", {})


def test_a_job_goes_on_while_the_database_does_not_answer_and_writes_its_reports_after(tmp_path, monkeypatch,
                                                                                       short_lock_timeouts, capfd):
    """A PostgreSQL outage of a minute killed a running fine-tune at its next report (after the store's ~10 s of
    retries), and the run was then reaped as a process that "stopped without reporting"."""
    from prefine_core import jobs
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    monkeypatch.setattr(jobs._Reports, "RETRY_EVERY", 0.2)
    ready, release = threading.Event(), threading.Event()

    def job(ws, run, report):
        report(0, {"x": 0.0})
        holder = hold_sqlite_write_lock(ws.root / "prefine.db", ready, release)  # the database stops answering
        ready.wait()
        for step in range(1, 30):
            if step == 10:  # it answers again after reports 1 to 9 were made (not after fixed seconds, which the
                release.set()  # first report's own retries could outlast on a slow machine)
                holder.join()
            report(step, {"x": float(step)})
            time.sleep(0.1)
        return {}

    run_id = _job_in_this_process(ws, monkeypatch, job)
    assert jobs.execute(ws, run_id) == "done"
    metrics = ws.store.run_metrics(run_id)
    assert list(metrics.sort_values("step").value) == [float(step) for step in range(30)]  # every report, once
    assert "the database does not answer (OperationalError); the run goes on" in capfd.readouterr().out


def test_a_job_that_ends_while_the_database_does_not_answer_records_its_end_once_it_does(tmp_path, monkeypatch,
                                                                                        short_lock_timeouts):
    from prefine_core import jobs
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    ready, release = threading.Event(), threading.Event()
    unreachable = jobs._unreachable

    def answers_again_once_refused(exc):  # the database answers again once the job found that it did not
        release.set()
        return unreachable(exc)

    def job(ws, run, report):
        hold_sqlite_write_lock(ws.root / "prefine.db", ready, release)
        ready.wait()
        return {}

    run_id = _job_in_this_process(ws, monkeypatch, job)
    monkeypatch.setattr(jobs, "_unreachable", answers_again_once_refused)
    assert jobs.execute(ws, run_id) == "done"
    assert release.is_set(), "the end was recorded at the first try: the database did answer"
    assert ws.store.get_run(run_id).status == "done"
    assert not (jobs.run_dir(ws, run_id) / jobs.ENDED).exists()


def test_a_run_whose_process_could_not_record_its_end_is_reaped_as_it_ended(tmp_path):
    import json

    from prefine_core import jobs
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = ws.store.create_run(CHEETAH, None, "compare", {})
    ws.store.update_run(run_id, status="running", pid=dead.pid, host=jobs.HOST, heartbeat=True)
    folder = jobs.run_dir(ws, run_id)
    folder.mkdir(parents=True)
    (folder / jobs.ENDED).write_text(json.dumps({"status": "failed", "error": "OperationalError: connection refused"}))
    assert jobs.reap(ws) == [run_id]
    run = ws.store.get_run(run_id)
    assert (run.status, run.error) == ("failed", "OperationalError: connection refused")  # not "stopped without …"
    assert not (folder / jobs.ENDED).exists()
    other = ws.store.create_run(CHEETAH, None, "compare", {})  # what it said names a policy the store does not have
    ws.store.update_run(other, status="running", pid=dead.pid, host=jobs.HOST, heartbeat=True)
    jobs.run_dir(ws, other).mkdir(parents=True)
    (jobs.run_dir(ws, other) / jobs.ENDED).write_text(json.dumps({"status": "done", "output_policy_id": 999}))
    assert jobs.reap(ws) == [other] and ws.store.get_run(other).error == jobs.STOPPED


def test_label_page_says_when_the_database_is_locked_and_keeps_the_pair(tmp_path, monkeypatch, short_lock_timeouts):
    from streamlit.testing.v1 import AppTest

    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    ws.store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    small_store(ws, videos=True)
    monkeypatch.setenv("PREFINE_WORKSPACE", str(ws.root))
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/label.py").run()
    at.text_input(key="annotator").input("ada").run()
    shown = at.session_state["pair_id"]
    ready, release = threading.Event(), threading.Event()
    holder = hold_sqlite_write_lock(ws.root / "prefine.db", ready, release)
    ready.wait()
    try:
        choice_button(at).click().run()
    finally:
        release.set()  # only once the page has answered the click: however long that took
        holder.join()
    assert not at.exception, at.exception
    assert any("Not saved" in e.value for e in at.error), [e.value for e in at.error]
    assert at.session_state["pair_id"] == shown and ws.store.label_history() == []
    choice_button(at).click().run()  # pressing again once the lock is gone saves it
    assert not at.exception, at.exception
    assert [(l.pair_id, l.annotator, l.choice) for l in ws.store.label_history()] == [(shown, "ada", "left")]


@pytest.mark.postgres
def test_postgres_restarted_while_labelling_loses_nothing(tmp_path, private_postgres):
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", db_url=private_postgres.schema_url(f"faults_{os.getpid()}"), shipped=None)
    pairs = small_store(ws, 60)
    acknowledged, failed = [], []
    stopped = threading.Event()

    def labeller():
        for pair_id in pairs:
            if pair_id == pairs[30]:  # the rest waits for the server to have stopped: the restart comes while labels
                stopped.wait(HOLD_AT_MOST_S)  # are still to be written, however slow the machine
            try:
                ws.store.add_label(pair_id, "ann", "left")
                acknowledged.append(pair_id)
            except Exception as exc:  # a visible error is allowed; silent loss is not
                failed.append((pair_id, repr(exc)))
            time.sleep(0.05)

    thread = threading.Thread(target=labeller)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while len(acknowledged) < 10:
            assert thread.is_alive() and time.monotonic() < deadline, \
                f"{len(acknowledged)} labels acknowledged, not 10, before the restart; failed: {failed}"
            time.sleep(0.05)
        private_postgres.pg_ctl("stop", "-m", "fast")  # a restart, in two steps
    finally:
        stopped.set()
    private_postgres.start()
    restarted_at = len(acknowledged)
    thread.join(timeout=120)
    stored = ws.store.effective_labels()
    assert restarted_at < len(pairs) and not failed, failed  # the store retried through the restart
    assert sorted(stored.pair_id) == sorted(acknowledged) == sorted(pairs)
    ws.store.close()


# -- a full disk, a read-only workspace -----------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:  # unbuffered, down to the last block: no buffered remainder can fail again when the file closes
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # ffmpeg's pipe closing on ENOSPC
def test_full_disk_raises_clear_errors_and_keeps_earlier_work(small_disk):
    from prefine_core.policy import load_policy, save_policy
    from prefine_core.render import write_mp4
    from prefine_core.workspace import Workspace

    ws = Workspace.open(small_disk / "ws", shipped=None)
    pairs = small_store(ws)
    ws.store.add_label(pairs[0], "ann", "left")
    checkpoint = save_policy(make_policy(CHEETAH), ws.policies_dir / "ckpt.safetensors")
    saved = checkpoint.read_bytes()
    filler = fill(small_disk)
    clips_before = sorted(ws.trajectories_dir.iterdir())

    from safetensors import SafetensorError

    with pytest.raises((OSError, SafetensorError), match="No space left"):  # a job shows it as its error
        save_policy(make_policy(CHEETAH, seed=1, hidden_sizes=(256, 256)), checkpoint)
    assert checkpoint.read_bytes() == saved and load_policy(checkpoint)  # the old checkpoint is untouched
    with pytest.raises(OSError, match="No space left"):
        ws.store.add_trajectory(fake_clip(99, length=5000), None, "fault", ws.trajectories_dir)
    assert sorted(ws.trajectories_dir.iterdir()) == clips_before and len(ws.store.list_trajectories()) == 7
    with pytest.raises(OSError):
        write_mp4([np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)] * 60,
                  ws.videos_dir / "pair.mp4")
    assert not [p for p in ws.videos_dir.iterdir() if not p.name.startswith(".")]
    label_errors = []
    for pair_id in pairs[1:]:  # labels: either stored, or an error the caller sees
        try:
            ws.store.add_label(pair_id, "ann", "left")
        except Exception as exc:
            label_errors.append(str(exc))
    stored = set(ws.store.effective_labels().pair_id)
    assert pairs[0] in stored and len(stored) - 1 + len(label_errors) == len(pairs) - 1
    filler.unlink()
    for pair_id in pairs:
        if pair_id not in stored:
            ws.store.add_label(pair_id, "ann", "left")
    assert sorted(ws.store.effective_labels().pair_id) == sorted(pairs)


def test_read_only_workspace_is_refused_with_a_clear_error(small_disk):
    from prefine_core.workspace import Workspace

    ws = Workspace.open(small_disk / "ws", shipped=None)
    pairs = small_store(ws)
    ws.store.add_label(pairs[0], "ann", "left")
    ws.store.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        with pytest.raises(Exception, match="read-only|readonly|unable to open"):
            ws = Workspace.open(small_disk / "ws", shipped=None)
            ws.store.add_label(pairs[1], "ann", "left")
        with pytest.raises(OSError, match="Read-only"):
            Workspace.open(small_disk / "fresh", shipped=None)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    ws = Workspace.open(small_disk / "ws", shipped=None)
    assert list(ws.store.effective_labels().pair_id) == [pairs[0]]


def test_app_on_a_read_only_workspace_says_so(small_disk, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from prefine_core.workspace import Workspace

    Workspace.open(small_disk / "ws", shipped=None).store.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    monkeypatch.setenv("PREFINE_WORKSPACE", str(small_disk / "ws"))
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert not at.exception, at.exception
    assert any("The workspace cannot be opened" in e.value and "writable" in e.value for e in at.error)


def test_app_with_a_database_url_that_is_no_url_says_so(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PREFINE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("PREFINE_DB_URL", "not a url at all")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "The workspace cannot be opened: the database URL (PREFINE_DB_URL) is not a URL: give sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST/DATABASE. Set PREFINE_WORKSPACE to a writable folder (or PREFINE_DB_URL to a "
        "reachable database) and restart the app."]


def test_trainer_killed_between_its_state_files_resumes_exactly(setup, tmp_path, monkeypatch):
    """A kill after the optimizer tensors are written but before state.json names the new step must not
    pair the old step's weights with the new step's optimizer and RNG state (the resumed run must
    match an unbroken one)."""
    import json

    import torch

    from prefine_core import trainer as trainer_module
    from prefine_core.policy import load_policy
    from test_trainer import _config

    reference, data, _ = setup
    config = _config(select="last")
    whole = trainer_module.PrefineTrainer(reference, data, config, tmp_path / "whole").run()

    real_atomic = trainer_module.atomic_path
    calls = {"state.json": 0}

    def dying_atomic(path, *args, **kwargs):
        if Path(path).name == "state.json":
            calls["state.json"] += 1
            if calls["state.json"] == 2:  # the second save (step 20), after its tensors were written
                raise KeyboardInterrupt("killed")
        return real_atomic(path, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "atomic_path", dying_atomic)
    with pytest.raises(KeyboardInterrupt):
        trainer_module.PrefineTrainer(reference, data, config, tmp_path / "broken").run()
    monkeypatch.setattr(trainer_module, "atomic_path", real_atomic)
    assert json.loads((tmp_path / "broken" / "state.json").read_text())["step"] == 10
    resumed = trainer_module.PrefineTrainer(reference, data, config, tmp_path / "broken").run()
    a, b = load_policy(whole["path"]).state_dict(), load_policy(resumed["path"]).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
