"""Background jobs as real OS processes: done, crashed, cancelled, lost and resumed, fine-tune curves."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CHEETAH, make_policy
from prefine_core import jobs, launcher
from prefine_core.store import NotFound
from prefine_core.trainer import STAGE_PREFIX


def wait_for(ws, run_id, statuses, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = ws.store.get_run(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} stayed {run.status}; log:\n{jobs.log_tail(ws, run_id, 40)}")


@pytest.fixture
def ws(tmp_path):
    from prefine_core.policy import save_policy
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    for seed in (0, 1):
        path = save_policy(make_policy(CHEETAH, seed=seed), ws.policies_dir / f"p{seed}.safetensors")
        ws.store.add_policy(f"policy {seed}", path, CHEETAH, "reference" if seed == 0 else "imported")
    return ws


def test_compare_job_runs_in_its_own_process(ws):
    from prefine_core.comparison import comparison_config, comparison_table

    run_id = jobs.launch(ws, "compare", CHEETAH, 1, comparison_config(1, 2, episodes=1, video_steps=10))
    run = wait_for(ws, run_id, ("done", "failed"))
    assert run.status == "done", run.error
    assert run.pid != os.getpid()
    result = jobs.result(ws, run_id)
    assert os.path.getsize(result["video"]) > 0
    assert set(comparison_table(result).metric) >= {"return (mean)", "cost (mean)", "violation rate"}
    assert ws.store.run_metrics(run_id).step.max() == 4, "A and B, each with its mean and with sampled actions"
    assert [len(result[key]["returns"]) for key in ("a", "b", "a_sampled", "b_sampled")] == [1, 1, 1, 1]
    assert (result["video_seed"], result["video_episode"]) == (10000, 0), "the one episode is the median"
    assert comparison_table(result, sampled=True).B.tolist() != comparison_table(result).B.tolist(), \
        "an episode of sampled actions is another episode"


def test_a_crashing_run_is_failed_with_its_reason(ws):
    from prefine_core.prefine import PrefineConfig

    run_id = jobs.launch(ws, "prefine", CHEETAH, 1, PrefineConfig(select="last").to_dict())
    run = wait_for(ws, run_id, ("done", "failed"))
    assert run.status == "failed" and "no decided labels" in run.error
    assert "no decided labels" in jobs.log_tail(ws, run_id)


def test_a_job_that_ended_is_no_zombie_once_the_pages_reap(ws):
    """A job's process that ended with no other run active stayed a zombie under the app until another job started:
    its children were waited for only while some run was active."""
    from prefine_core.prefine import PrefineConfig

    run = wait_for(ws, jobs.launch(ws, "prefine", CHEETAH, 1, PrefineConfig(select="last").to_dict()), ("failed",))
    stat = Path(f"/proc/{run.pid}/stat")
    deadline = time.time() + 60
    while stat.exists() and stat.read_text().split(") ")[-1][0] != "Z" and time.time() < deadline:
        time.sleep(0.2)  # its process writes its status, then exits
    jobs.reap(ws, CHEETAH)
    assert not stat.exists()


def test_cancel_stops_the_process(ws):
    from prefine_core.comparison import comparison_config

    run_id = jobs.launch(ws, "compare", CHEETAH, 1, comparison_config(1, 2, episodes=100))
    run = wait_for(ws, run_id, ("running",))
    jobs.cancel(ws, run_id)
    run = wait_for(ws, run_id, ("cancelled", "failed", "done"), timeout=30)
    assert run.status == "cancelled"
    deadline = time.time() + 10
    while jobs.process_alive(run.pid, run_id) and time.time() < deadline:
        time.sleep(0.2)
    assert not jobs.process_alive(run.pid, run_id)


def test_a_run_cancelled_at_once_after_its_launch_is_cancelled_not_crashed(ws):
    """Its process is still starting (importing torch) when the signal comes; it once died of it unreported, and the
    run read as a crash ("the run's process stopped without reporting")."""
    from prefine_core.comparison import comparison_config

    run_id = jobs.launch(ws, "compare", CHEETAH, 1, comparison_config(1, 2, episodes=100))
    assert ws.store.get_run(run_id).status == "queued"
    jobs.cancel(ws, run_id)
    run = ws.store.get_run(run_id)
    assert (run.status, run.error) == ("cancelled", "stopped by the user before it started")
    deadline = time.time() + 30
    while jobs.process_alive(run.pid, run_id) and time.time() < deadline:
        time.sleep(0.2)
    assert not jobs.process_alive(run.pid, run_id)
    assert jobs.reap(ws) == [] and ws.store.get_run(run_id).status == "cancelled"


def test_a_process_never_runs_a_run_that_is_no_longer_queued(ws, monkeypatch):
    ran = []
    monkeypatch.setitem(jobs.KINDS, "probe", lambda ws, run, report: ran.append(run.id) or {})
    run_id = ws.store.create_run(CHEETAH, 1, "probe", {})
    ws.store.update_run(run_id, status="cancelled", error="stopped by the user before it started")
    assert jobs.execute(ws, run_id) == "cancelled" and ran == []
    assert ws.store.get_run(run_id).error == "stopped by the user before it started"
    assert not ws.store.update_run(run_id, only_if_status="queued", status="running")  # and says it changed nothing
    again = ws.store.create_run(CHEETAH, 1, "probe", {})
    assert jobs.execute(ws, again) == "done" and ran == [again]
    with pytest.raises(NotFound):
        ws.store.update_run(10**9, only_if_status="queued", status="running")


def test_a_cancel_swallowed_by_library_code_still_stops_the_run_at_its_next_report(ws, monkeypatch):
    import signal

    reports, swallowed = [], []

    def swallowing_job(ws, run, report):  # as code that catches BaseException around a C call would
        for step in range(200):
            try:
                if step == 5:  # the user's Cancel comes during this call; sent by the job itself, as a timer could
                    # fire before the run was claimed and had reported, on a busy machine
                    os.kill(os.getpid(), signal.SIGTERM)
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:  # in the call until the handler's Cancelled comes
                        time.sleep(0.01)
                else:
                    time.sleep(0.01)
            except BaseException:
                swallowed.append(step)
            report(step, {"x": 1.0})
            reports.append(step)
        return {}

    monkeypatch.setitem(jobs.KINDS, "swallow", swallowing_job)
    monkeypatch.setattr(jobs, "_heartbeat", lambda *args: None)
    run_id = ws.store.create_run(CHEETAH, 1, "swallow", {})
    assert jobs.execute(ws, run_id) == "cancelled"
    assert swallowed == [5] and reports == [0, 1, 2, 3, 4], (swallowed, reports)  # stopped at step 5's report
    assert ws.store.get_run(run_id).status == "cancelled"


def test_a_run_on_another_machine_is_judged_by_its_heartbeat_and_cancelled_through_the_store(ws):
    """App instances on several machines share one PostgreSQL store; each found no process of another machine's
    run on its own and marked the run failed while it ran on."""
    from datetime import timedelta

    from prefine_core.store.schema import utcnow

    absent = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid that is no process here
    absent.wait()
    run_id = ws.store.create_run(CHEETAH, 1, "compare", {})
    ws.store.update_run(run_id, status="running", pid=absent.pid, host="another-machine", heartbeat=True)
    assert jobs.reap(ws) == [] and ws.store.get_run(run_id).status == "running"
    ws.store.update_run(run_id, heartbeat=utcnow() - jobs.STALE_AFTER - timedelta(seconds=1))
    assert jobs.reap(ws) == [run_id]  # no beat for too long: gone, wherever it ran
    other = ws.store.create_run(CHEETAH, 1, "compare", {})
    ws.store.update_run(other, status="running", pid=os.getpid(), host="another-machine", heartbeat=True)
    jobs.cancel(ws, other)  # no signal to this machine's process of that pid (this test's own)
    assert (ws.store.get_run(other).status, ws.store.get_run(other).error) == ("cancelled", "stopped by the user")


def test_a_run_whose_process_lives_here_is_not_reaped_for_a_late_heartbeat(ws):
    """A database that did not answer for a minute left a live run's heartbeat stale: it was marked failed, and
    Resume would have started a second process beside the first."""
    from datetime import timedelta

    from prefine_core.store.schema import utcnow

    run_id = ws.store.create_run(CHEETAH, 1, "compare", {})
    sleeper = _job_lookalike(ws, run_id)
    try:
        ws.store.update_run(run_id, status="running", pid=sleeper.pid, host=jobs.HOST,
                            heartbeat=utcnow() - jobs.STALE_AFTER - timedelta(seconds=30))
        assert jobs.reap(ws) == [] and ws.store.get_run(run_id).status == "running"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert jobs.reap(ws) == [run_id]


def _job_lookalike(ws, run_id: int) -> subprocess.Popen:
    """A process that sleeps a minute and is to the app what a job process of ``run_id`` in ``ws`` is: its command line
    names the job and the run, its environment the workspace; in its own session, as :func:`jobs._spawn` starts one."""
    command = [sys.executable, "-c", "import time; time.sleep(60)", "prefine_core.jobs", "run", str(run_id)]
    return subprocess.Popen(command, env=dict(os.environ, PREFINE_WORKSPACE=str(ws.root)), start_new_session=True)


@pytest.mark.parametrize("environment", ["none", "a folder gone since"])
def test_a_job_whose_workspace_cannot_be_told_is_taken_as_this_ones(ws, tmp_path, environment):
    """Only a job started in another folder is another workspace's: an environment that says nothing (read while the
    process was still starting, a clean clone's CI caught it) had a live run reaped as failed the moment it began."""
    run_id = ws.store.create_run(CHEETAH, 1, "compare", {})
    env = dict(os.environ)
    env.pop("PREFINE_WORKSPACE", None)
    if environment == "a folder gone since":
        env["PREFINE_WORKSPACE"] = str(tmp_path / "renamed-since")
    command = [sys.executable, "-c", "import time; time.sleep(60)", "prefine_core.jobs", "run", str(run_id)]
    job = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        ws.store.update_run(run_id, pid=job.pid, host=jobs.HOST)
        assert jobs.process_alive(job.pid, run_id, ws)
        assert jobs.reap(ws) == [] and ws.store.get_run(run_id).status == "queued"
    finally:
        job.kill()
        job.wait()


def test_a_copy_of_a_workspace_neither_cancels_nor_counts_on_the_originals_process(ws, tmp_path):
    """A workspace copied (cp -a) while a run ran holds the same run id and pid: `runs --cancel` in the copy stopped
    the original's process (its run ended cancelled), and the copy's reaper took that process for its own run's."""
    import shutil
    import signal

    from prefine_core.workspace import Workspace

    run_id = ws.store.create_run(CHEETAH, 1, "compare", {})
    original = _job_lookalike(ws, run_id)
    try:
        ws.store.update_run(run_id, status="running", pid=original.pid, host=jobs.HOST, heartbeat=True)
        shutil.copytree(ws.root, tmp_path / "copy", symlinks=True)
        copy = Workspace.open(tmp_path / "copy", shipped=None)
        assert jobs.reap(copy) == [run_id] and copy.store.get_run(run_id).status == "failed"  # no process here
        assert jobs.reap(ws) == [] and ws.store.get_run(run_id).status == "running"
        copy.store.update_run(run_id, status="running", error=None)
        jobs.cancel(copy, run_id)
        cancelled = copy.store.get_run(run_id)
        assert (cancelled.status, cancelled.error) == ("cancelled", "stopped by the user")
        with pytest.raises(subprocess.TimeoutExpired):
            original.wait(timeout=2)
        assert jobs.process_alive(original.pid, run_id, ws) and not jobs.process_alive(original.pid, run_id, copy)
        jobs.cancel(ws, run_id)  # in its own workspace, the cancel reaches it
        assert original.wait(timeout=10) == -signal.SIGTERM
    finally:
        original.kill()
        original.wait()


@pytest.mark.parametrize("pid", [-1, 99999999999])
def test_a_pid_that_is_no_process_id_is_no_live_run(ws, pid):
    """A run row's pid edited out of range: 99999999999 broke `runs` and the Fine-tune and Compare pages with an
    OverflowError; -1 read as alive forever (kill(-1, 0) asks about every process), its cancel failing with
    "Invalid argument"."""
    assert not jobs.process_alive(pid) and not jobs.process_alive(pid, 1, ws)
    reaped = ws.store.create_run(CHEETAH, 1, "compare", {})
    ws.store.update_run(reaped, status="running", pid=pid, host=jobs.HOST, heartbeat=True)
    assert jobs.reap(ws) == [reaped] and ws.store.get_run(reaped).error == jobs.STOPPED
    cancelled = ws.store.create_run(CHEETAH, 1, "compare", {})
    ws.store.update_run(cancelled, status="running", pid=pid, host=jobs.HOST, heartbeat=True)
    jobs.cancel(ws, cancelled)
    run = ws.store.get_run(cancelled)
    assert (run.status, run.error) == ("cancelled", "stopped by the user")


@pytest.mark.parametrize("pid", ["abc", 2.5])
def test_a_pid_edited_to_text_or_a_fraction_is_no_live_run(ws, pid):
    """SQLite keeps what a hand edit puts in the pid column: text made `runs` and the pages raise a TypeError."""
    import sqlalchemy as sa

    run_id = ws.store.create_run(CHEETAH, 1, "compare", {})
    ws.store.update_run(run_id, status="running", pid=4242, host=jobs.HOST, heartbeat=True)
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text("update runs set pid = :pid where id = :id"), {"pid": pid, "id": run_id})
    assert not jobs.process_alive(ws.store.get_run(run_id).pid, run_id, ws)
    assert jobs.reap(ws) == [run_id]


#: The report after which a probe job does what another machine does to its run: from the job itself, not on a timer,
#: which could fire before the run was claimed, or after the job ended, on a slow or busy machine.
MEANWHILE_AFTER = 5
#: The most a probe job waits for its heartbeat (every 0.1 s) to read what was done to its run.
PATIENCE_S = 60
#: What a probe job that reports until it is stopped notes when it never was.
RAN_OUT = f"reported for {PATIENCE_S} s and was never stopped"


def _probe(ws, monkeypatch, seen: list, registers: bool = False, meanwhile=None, until_stopped: bool = False) -> int:
    """A run of a job that reports 200 times, 0.02 s apart, and notes the status the store gives its run at each
    report (and with ``registers``, registers a policy as its output, as a fine-tune does); heartbeats every 0.1 s.
    After report MEANWHILE_AFTER it calls ``meanwhile()``. With ``until_stopped`` it reports on past 200 until a report
    stops it, PATIENCE_S at most (then it notes RAN_OUT in ``seen`` and ends): how many reports a heartbeat takes to
    read the store is the machine's speed."""
    def job(ws, run, report):
        step, give_up = 0, None
        while step < 200 or until_stopped:
            report(step, {"x": 1.0})
            seen.append(ws.store.get_run(run.id).status)
            if step == MEANWHILE_AFTER and meanwhile is not None:
                meanwhile()
                give_up = time.monotonic() + PATIENCE_S
            if until_stopped and give_up is not None and time.monotonic() > give_up:
                seen.append(RAN_OUT)
                break
            step += 1
            time.sleep(0.02)
        if not registers:
            return {}
        return {"output_policy_id": ws.store.add_policy("probe output", ws.store.get_policy(1).path, CHEETAH,
                                                        "finetuned")}

    monkeypatch.setitem(jobs.KINDS, "probe", job)
    monkeypatch.setattr(jobs, "HEARTBEAT_EVERY", 0.1)
    return ws.store.create_run(CHEETAH, 1, "probe", {})


def test_a_run_cancelled_from_another_machine_stops_at_its_next_report(ws, monkeypatch):
    seen = []

    def cancelled_elsewhere():  # what jobs.cancel does on another machine, where no signal reaches this process
        ws.store.update_run(run_id, status="cancelled", error="stopped by the user")

    run_id = _probe(ws, monkeypatch, seen, meanwhile=cancelled_elsewhere, until_stopped=True)
    assert jobs.execute(ws, run_id) == "cancelled"
    assert ws.store.get_run(run_id).status == "cancelled" and RAN_OUT not in seen


def test_a_live_run_marked_failed_by_another_machine_takes_itself_back(ws, monkeypatch, capsys):
    """Another machine's app marks a run failed when its heartbeat is late (the database did not answer for 45 s),
    though its process lives on: it stayed failed while it trained on, and Resume could start a second process."""
    seen = []

    def marked_failed_elsewhere():
        ws.store.update_run(run_id, status="failed", error=jobs.STOPPED)
        with contextlib.suppress(AssertionError):  # the job goes on once its heartbeat took the run back, a minute at
            wait_for(ws, run_id, ("running",), timeout=PATIENCE_S)  # most (the statuses it saw then say it never did)

    run_id = _probe(ws, monkeypatch, seen, meanwhile=marked_failed_elsewhere)
    assert jobs.execute(ws, run_id) == "done"
    assert seen[-1] == "running" and len(seen) == 200, seen
    assert f"run {run_id} was marked failed while the database did not hear from it; it is running again" in \
        capsys.readouterr().out
    assert ws.store.get_run(run_id).status == "done"


def test_a_run_resumed_by_another_process_stops_here_and_records_nothing(ws, monkeypatch):
    """A run thought dead and resumed elsewhere (another pid, another machine) while its first process lived: both
    trained in one folder and the first recorded its end over the second's run."""
    seen = []

    def resumed_elsewhere():
        ws.store.update_run(run_id, status="queued", error=None, pid=None, host=None, heartbeat=None)
        ws.store.update_run(run_id, pid=424242, host="another-machine")

    run_id = _probe(ws, monkeypatch, seen, meanwhile=resumed_elsewhere, until_stopped=True)
    assert jobs.execute(ws, run_id) == "taken over"
    run = ws.store.get_run(run_id)
    assert RAN_OUT not in seen and (run.status, run.pid, run.host) == ("queued", 424242, "another-machine")
    assert not (jobs.run_dir(ws, run_id) / jobs.ENDED).exists()


def test_a_run_resumed_elsewhere_is_not_ended_by_its_first_process(ws, monkeypatch, capsys):
    """The first process, unheard from while the database was away (its heartbeat never read the resume), recorded
    its end over the run resumed by another process: that one then never started ("no longer queued")."""
    seen = []
    elsewhere = lambda: ws.store.update_run(run_id, status="queued", pid=424242, host="another-machine")  # noqa: E731
    run_id = _probe(ws, monkeypatch, seen, registers=True, meanwhile=elsewhere)
    monkeypatch.setattr(jobs, "_heartbeat", lambda *args: None)  # as during an outage: no beat reads the store
    policies = len(ws.store.list_policies())
    assert jobs.execute(ws, run_id) == "taken over"
    assert len(ws.store.list_policies()) == policies, "the policy it registered before it knew is unregistered"
    run = ws.store.get_run(run_id)
    assert len(seen) == 200 and (run.status, run.pid, run.host) == ("queued", 424242, "another-machine")
    log = capsys.readouterr().out
    assert log.count(f"run {run_id}: ") == 1 + 1, "its first line and one closing line, not the end it would have had"
    assert f"run {run_id}: stopped — another process runs it now" in log
    assert not (jobs.run_dir(ws, run_id) / jobs.ENDED).exists()


def test_the_reaper_leaves_a_run_whose_status_moved_on_after_it_read_it(ws, monkeypatch):
    """A run found lost, then cancelled (or ended by its own process) before the reaper wrote: it was marked failed
    over that, and a cancel was lost (a live process took the run back)."""
    run_id = ws.store.create_run(CHEETAH, 1, "compare", {})
    ws.store.update_run(run_id, status="running", pid=424242, host="another-machine", heartbeat=True)

    def lost_then_cancelled(ws_, run, now=None):
        ws.store.update_run(run.id, status="cancelled", error="stopped by the user")  # lands just after the read
        return True

    monkeypatch.setattr(jobs, "lost", lost_then_cancelled)
    assert jobs.reap(ws) == []
    assert (ws.store.get_run(run_id).status, ws.store.get_run(run_id).error) == ("cancelled", "stopped by the user")


def test_a_resume_that_loses_to_the_runs_own_process_keeps_its_curves(ws, monkeypatch):
    """Resume dropped the metrics after the last checkpoint before it found the run taken back by its live process:
    that run lost its curves (all of them, before a first checkpoint)."""
    run_id = ws.store.create_run(CHEETAH, 1, "prefine", {})
    ws.store.update_run(run_id, status="failed", error=jobs.STOPPED)
    for step in (10, 20):
        ws.store.add_metrics(run_id, step, {"loss/total": 1.0})

    def taken_back(ws_, run):
        ws.store.update_run(run.id, status="running", error=None)  # the live process's heartbeat, just after the check
        return None

    monkeypatch.setattr(jobs, "resume_refusal", taken_back)
    with pytest.raises(ValueError, match=f"run {run_id} is running now"):
        jobs.resume(ws, run_id)
    assert sorted(ws.store.run_metrics(run_id).step.unique()) == [10, 20]


def test_a_run_whose_process_died_is_reaped_and_can_resume(ws):
    from prefine_core.comparison import comparison_config

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = ws.store.create_run(CHEETAH, 1, "compare", comparison_config(1, 2, episodes=1, video_steps=10))
    ws.store.update_run(run_id, status="running", pid=dead.pid, heartbeat=True)
    assert jobs.reap(ws) == [run_id]
    run = ws.store.get_run(run_id)
    assert run.status == "failed" and run.error == jobs.STOPPED  # the reason alone; what to do is said apart
    assert jobs.error_text(run) == f"{jobs.STOPPED}; evaluate the pair again"
    assert jobs.error_text(run, refusal="labels changed") == jobs.STOPPED
    jobs.resume(ws, run_id)
    assert wait_for(ws, run_id, ("done", "failed")).status == "done"
    with pytest.raises(ValueError, match="only failed or cancelled"):
        jobs.resume(ws, run_id)


def _label_five_pairs(ws) -> list[int]:
    from prefine_core.demo import auto_label
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect

    with SafetyTask(CHEETAH) as task:
        ids = [ws.store.add_trajectory(collect(make_policy(CHEETAH, seed=s), task, seed=s, max_steps=60), 1, f"src{s}",
                                       ws.trajectories_dir) for s in range(6)]
    pairs = [ws.store.add_pair(a, b, "random", 0.0, "test pair") for a, b in zip(ids, ids[1:])]
    assert auto_label(ws, CHEETAH, 10) == 5
    for pair_id in pairs:  # random policies rarely exceed the limit: the teacher says "equal"; decide by hand
        ws.store.add_label(pair_id, "tester", "left")
    return pairs


def _tiny_config(**kw):
    from prefine_core.prefine import PrefineConfig

    return PrefineConfig(steps=20, log_every=5, eval_every=10, eval_episodes=1, segment_length=20, batch_size=4,
                         bc_batch_size=32, select="last", **kw)


@pytest.mark.parametrize("start", ["reference", "bc"])
def test_tiny_finetune_writes_curves_and_a_policy(ws, start):
    _label_five_pairs(ws)
    config = _tiny_config(start=start)
    run_id = jobs.launch(ws, "prefine", CHEETAH, 1, config.to_dict())
    run = wait_for(ws, run_id, ("done", "failed"), timeout=180)
    assert run.status == "done", f"{run.error}\n{jobs.log_tail(ws, run_id, 40)}"
    metrics = ws.store.run_metrics(run_id)
    assert {"loss/total", "eval/return", "eval/cost"} <= set(metrics.name)
    assert ws.store.get_policy(run.output_policy_id).kind == "finetuned"
    assert sorted(metrics[metrics.name == "loss/total"].step) == [5, 10, 15, 20]
    stage_losses = sorted(metrics[metrics.name == STAGE_PREFIX + "loss/bc"].step)
    assert stage_losses == ([5, 10, 15, 20] if start == "bc" else [])  # the BC stage's curve, under its own name
    row = launcher.jobs_frame(ws, CHEETAH).set_index("id").loc[run_id]
    assert row.step == row.of == (40 if start == "bc" else 20)


def test_a_resumed_finetune_says_where_it_resumes_and_refuses_labels_that_changed(ws):
    pairs = _label_five_pairs(ws)
    run_id = jobs.launch(ws, "prefine", CHEETAH, 1, _tiny_config().to_dict())
    assert wait_for(ws, run_id, ("done", "failed"), timeout=180).status == "done"
    ws.store.update_run(run_id, status="failed", error="test: as if it had died after its last checkpoint")
    jobs.resume(ws, run_id)
    run = wait_for(ws, run_id, ("done", "failed"), timeout=180)
    assert run.status == "done", run.error
    assert "resuming from the checkpoint of step 20 of 20" in jobs.log_tail(ws, run_id, 40)
    ws.store.add_metrics(run_id, 25, {"loss/total": 1.0})  # as if reported after its last checkpoint (step 20)
    ws.store.update_run(run_id, status="failed", error="test: died after step 25")
    jobs.resume(ws, run_id)
    assert ws.store.run_metrics(run_id).step.max() == 20  # what is trained again is reported again, not twice
    assert wait_for(ws, run_id, ("done", "failed"), timeout=180).status == "done"
    ws.store.add_label(pairs[0], "another", "right")  # the pair now has one vote each way: no longer decided
    ws.store.update_run(run_id, status="failed", error="test")
    with pytest.raises(ValueError, match=r"labels changed since this run started \(5 decided pairs then, 4 now"):
        jobs.resume(ws, run_id)  # said on the click, before a process starts
    run = ws.store.get_run(run_id)
    assert (run.status, run.error) == ("failed", "test")


def test_the_resume_check_reads_the_clips_again_only_when_the_labels_changed(ws, monkeypatch):
    """The Fine-tune page asks on every redraw of a failed run whether it can be resumed; that read every decided
    pair's clips each time."""
    import json

    from prefine_core.trainer import PreferenceData

    pairs = _label_five_pairs(ws)
    run_id = ws.store.create_run(CHEETAH, 1, "prefine", _tiny_config().to_dict())
    ws.store.update_run(run_id, status="failed", error="test")
    folder = jobs.run_dir(ws, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    fingerprint = PreferenceData.from_pairs(ws.store.preference_pairs(CHEETAH)).fingerprint()
    (folder / "state.json").write_text(json.dumps({"step": 10, "data": {"fingerprint": fingerprint, "pairs": 5}}))
    reads, get_trajectory = [], ws.store.get_trajectory
    monkeypatch.setattr(ws.store, "get_trajectory", lambda i: reads.append(i) or get_trajectory(i))
    run = ws.store.get_run(run_id)
    assert jobs.resume_refusal(ws, run) is None and len(reads) == 10  # both clips of five pairs
    assert jobs.resume_refusal(ws, run) is None and len(reads) == 10  # not again
    ws.store.add_label(pairs[0], "another", "right")  # one vote each way: no longer decided
    assert "5 decided pairs then, 4 now" in jobs.resume_refusal(ws, run) and len(reads) == 18
    for pair_id in pairs:
        ws.store.add_label(pair_id, "tester", "equal")
        ws.store.add_label(pair_id, "another", "equal")
    assert "5 decided pairs then, 0 now" in jobs.resume_refusal(ws, run)  # refused here, not by the process


def test_the_jobs_table_counts_a_staged_runs_bc_stage_in_its_progress(ws):
    from prefine_core.prefine import PrefineConfig

    staged = ws.store.create_run(CHEETAH, 1, "prefine", PrefineConfig(steps=100, start="bc").to_dict())
    plain = ws.store.create_run(CHEETAH, 1, "prefine", PrefineConfig(steps=100).to_dict())
    progress = lambda run_id: tuple(launcher.jobs_frame(ws, CHEETAH).set_index("id").loc[run_id, ["step", "of"]])  # noqa: E731
    assert progress(staged) == (0, 200) and progress(plain) == (0, 100)
    ws.store.add_metrics(staged, 60, {STAGE_PREFIX + "loss/bc": 1.0})
    assert progress(staged) == (60, 200)
    assert launcher.progress_bar(ws.store.get_run(staged), ws.store.run_metrics(staged)) == (0.3, "step 60 of 200 (BC stage)")
    ws.store.add_metrics(staged, 100, {STAGE_PREFIX + "eval/return": 1.0})
    ws.store.add_metrics(staged, 0, {"eval/return": 1.0})  # the stage is done; the run's own step 0
    assert progress(staged) == (100, 200)
    ws.store.add_metrics(staged, 30, {"loss/total": 1.0})
    ws.store.add_metrics(plain, 30, {"loss/total": 1.0})
    assert progress(staged) == (130, 200) and progress(plain) == (30, 100)
    assert launcher.progress_bar(ws.store.get_run(staged), ws.store.run_metrics(staged)) == (0.65, "step 130 of 200")


def test_prepare_job_makes_pairs_with_videos(ws):
    run_id = jobs.launch(ws, "prepare", CHEETAH, None, {"seeds": [0], "max_steps": 30, "clip_length": 30, "pairs": 2})
    run = wait_for(ws, run_id, ("done", "failed"))
    assert run.status == "done", f"{run.error}\n{jobs.log_tail(ws, run_id, 40)}"
    pairs = ws.store.list_pairs(CHEETAH)
    assert len(pairs) == 2 and all(p.video_ready for p in pairs)


def test_a_second_launch_of_the_same_settings_while_the_first_runs_is_refused(ws):
    _label_five_pairs(ws)
    values = _tiny_config().to_dict()
    first = launcher.launch_finetune(ws, CHEETAH, 1, values)  # a double click on Launch
    try:
        with pytest.raises(ValueError, match=f"run {first} with these settings from this policy is already"):
            launcher.launch_finetune(ws, CHEETAH, 1, values)
        other = launcher.launch_finetune(ws, CHEETAH, 1, {**values, "seed": 1})  # another seed is another run
        jobs.cancel(ws, other)
    finally:
        jobs.cancel(ws, first)
    assert [r.id for r in ws.store.list_runs(CHEETAH) if r.kind == "prefine"] == [other, first]


def test_a_resume_drops_what_the_run_will_report_again_stage_by_stage(ws):
    from prefine_core.prefine import PrefineConfig

    run_id = ws.store.create_run(CHEETAH, 1, "prefine", PrefineConfig(steps=100, start="bc").to_dict())
    for step in (40, 60, 80):
        ws.store.add_metrics(run_id, step, {STAGE_PREFIX + "loss/bc": 1.0})
    folder = jobs.run_dir(ws, run_id)
    (folder / "bc_stage").mkdir(parents=True)
    (folder / "bc_stage" / "state.json").write_text('{"step": 50}')  # stopped in its BC stage after step 80
    jobs._drop_what_is_redone(ws, run_id)
    assert sorted(ws.store.run_metrics(run_id).step) == [40]
    for step in (60, 80, 100):
        ws.store.add_metrics(run_id, step, {STAGE_PREFIX + "loss/bc": 1.0})
    (folder / "bc_stage" / "state.json").write_text('{"step": 100}')  # the stage finished
    ws.store.add_metrics(run_id, 0, {"eval/return": 1.0})
    ws.store.add_metrics(run_id, 30, {"loss/total": 1.0})  # then stopped in stage 2 before its first checkpoint
    jobs._drop_what_is_redone(ws, run_id)
    metrics = ws.store.run_metrics(run_id)
    assert not (~metrics.name.str.startswith(STAGE_PREFIX)).any() and metrics.step.max() == 100  # the stage is whole


def test_a_dead_fine_tune_says_how_to_resume_it_in_the_app_and_from_the_cli(ws):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = ws.store.create_run(CHEETAH, 1, "prefine", {})
    ws.store.update_run(run_id, status="running", pid=dead.pid, heartbeat=True)
    assert jobs.reap(ws) == [run_id]
    error = jobs.error_text(ws.store.get_run(run_id))
    assert f"press Resume on the Fine-tune page, or run `python -m prefine_core runs --resume {run_id}`" in error


def test_a_resumed_render_goes_on_counting_the_videos_its_earlier_attempts_made(ws):
    """A render resumed after a cancel counted from 1 again: `runs` said "step 2" for a run that had made 3 videos."""
    from prefine_core import pool

    pool.collect_pool(ws, pool.PoolConfig(CHEETAH, seeds=(0,), reference_temperatures=(1.0,), clip_length=20,
                                          max_steps=40))
    pool.generate_pairs(ws.store, CHEETAH, 2, "random")
    pending = len(ws.store.list_pairs(CHEETAH, without_video=True))
    run_id = ws.store.create_run(CHEETAH, None, "render", {"size": 64})
    ws.store.add_metrics(run_id, 3, {"render/videos": 3})  # its first attempt's 3 videos, before a cancel
    assert jobs.execute(ws, run_id) == "done"
    videos = ws.store.run_metrics(run_id).query("name == 'render/videos'")
    assert pending >= 1 and videos.step.tolist() == list(range(3, 4 + pending)) and videos.value.max() == 3 + pending


def test_a_dead_render_job_is_not_told_to_continue_from_a_checkpoint(ws):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = ws.store.create_run(CHEETAH, None, "render", {})
    log = jobs.log_path(ws, run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("[12:00:00] run started\n")
    ws.store.update_run(run_id, status="running", pid=dead.pid, heartbeat=True, log_path=str(log))
    assert jobs.reap(ws) == [run_id]
    error = jobs.error_text(ws.store.get_run(run_id))
    assert "the videos done stay" in error and "checkpoint" not in error
    assert log.read_text().splitlines()[-1].endswith(f"run {run_id}: failed — {error}"), "the log says how it ended"


def test_the_reaper_and_the_log_view_touch_only_the_runs_own_log(ws):
    """A run row's log_path edited to name the run's policy file: the reaper appended its "failed" line to the policy,
    destroying it, and the log view showed whatever file the row named."""
    from sqlalchemy import text

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = ws.store.create_run(CHEETAH, 1, "prefine", {})
    policy = jobs.run_dir(ws, run_id) / "policy.safetensors"
    policy.parent.mkdir(parents=True)
    policy.write_bytes(b"weights")
    jobs.log_path(ws, run_id).write_text("[12:00:00] run started\n")
    ws.store.update_run(run_id, status="running", pid=dead.pid, heartbeat=True)
    with ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET log_path = :p WHERE id = :i"), {"p": f"runs/{run_id}/policy.safetensors",
                                                                         "i": run_id})
    assert ws.store.get_run(run_id).log_path == str(policy)
    assert jobs.reap(ws) == [run_id]
    assert policy.read_bytes() == b"weights"
    tail = jobs.log_tail(ws, run_id).splitlines()
    error = jobs.error_text(ws.store.get_run(run_id))
    assert tail[0] == "[12:00:00] run started" and tail[-1].endswith(f"run {run_id}: failed — {error}")


@pytest.mark.parametrize("stored", ["not json", '{"steps": "abc", "bogus": 1}'])
def test_a_run_row_whose_settings_are_not_a_config_is_listed_and_refused_on_resume(ws, stored):
    """A run's config edited into something else (not JSON at all, or not a config) broke every listing of the runs
    with a bare "Expecting value: line 1 column 1", or was resumed, only for its process to fail."""
    from sqlalchemy import text

    run_id = ws.store.create_run(CHEETAH, ws.store.list_policies(CHEETAH)[0].id, "prefine", {"steps": 10})
    ws.store.update_run(run_id, status="failed")
    with ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET config = :c WHERE id = :i"), {"c": stored, "i": run_id})
    assert [run.id for run in ws.store.list_runs(CHEETAH)] == [run_id]
    with pytest.raises(ValueError, match=f"run {run_id}'s saved settings are not a PREFINE config"):
        jobs.resume(ws, run_id)
    assert ws.store.get_run(run_id).status == "failed"


@pytest.mark.parametrize(("status", "kind", "refusal"), [
    ("paused", "compare", "is paused; only failed or cancelled runs can be resumed"),
    ("failed", "mystery", "is a 'mystery' job, which this version does not run"),
])
def test_a_run_of_a_status_or_kind_the_app_does_not_write_is_refused_on_resume(ws, status, kind, refusal):
    """A run row edited to a status the app never writes ('paused') was resumed, and one of a kind it does not know
    ('mystery') was started, only for its process to fail with KeyError."""
    from sqlalchemy import text

    run_id = ws.store.create_run(CHEETAH, 1, kind, {})
    with ws.store.engine.begin() as conn:  # by hand: the store itself takes none but the statuses the app writes
        conn.execute(text("UPDATE runs SET status = :s WHERE id = :i"), {"s": status, "i": run_id})
    with pytest.raises(ValueError, match=f"run {run_id} {refusal}"):
        jobs.resume(ws, run_id)
    run = ws.store.get_run(run_id)
    assert (run.status, run.pid) == (status, None)


def test_another_users_process_on_a_runs_pid_is_no_live_run(ws, monkeypatch):
    """A run's pid reused by another user's process: kill(pid, 0) is refused with EPERM there (root, which runs
    these tests, is never refused, so the refusal is simulated; the process and its /proc are real). It read as
    the run alive, so the run was never reaped and its cancel had no effect."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        real_kill = os.kill

        def kill_as_another_user(pid, sig):
            if pid == other.pid:
                raise PermissionError(1, "Operation not permitted")
            return real_kill(pid, sig)

        monkeypatch.setattr(jobs.os, "kill", kill_as_another_user)
        assert jobs.process_alive(other.pid)  # alive, whoever's it is
        run_id = ws.store.create_run(CHEETAH, 1, "compare", {})
        ws.store.update_run(run_id, status="running", pid=other.pid, host=jobs.HOST, heartbeat=True)
        assert not jobs.process_alive(other.pid, run_id, ws)
        assert jobs.reap(ws) == [run_id] and ws.store.get_run(run_id).error == jobs.STOPPED
    finally:
        monkeypatch.undo()
        other.kill()
        other.wait()
