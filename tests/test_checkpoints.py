"""A finished fine-tune's checkpoints as a trade-off, and a checkpoint chosen by hand registered as a policy."""
from __future__ import annotations

import pytest

from conftest import CHEETAH, make_policy
from prefine_core import checkpoints, jobs


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A workspace with one real 20-step fine-tune, run in this process by the job runner itself."""
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import save_policy
    from prefine_core.prefine import PrefineConfig
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("ws"), shipped=None)
    start = ws.store.add_policy("start", save_policy(make_policy(CHEETAH), ws.policies_dir / "p.safetensors"), CHEETAH,
                                "reference")
    with SafetyTask(CHEETAH) as task:
        ids = [ws.store.add_trajectory(collect(make_policy(CHEETAH, seed=s), task, seed=s, max_steps=40), start, f"src{s}",
                                       ws.trajectories_dir) for s in range(4)]
    for a, b in zip(ids, ids[1:]):
        ws.store.add_label(ws.store.add_pair(a, b, "random", 0.0, "test pair"), "tester", "left")
    config = PrefineConfig(steps=20, log_every=5, eval_every=10, eval_episodes=1, segment_length=20, batch_size=4,
                           bc_batch_size=32, select="teacher")
    run_id = ws.store.create_run(CHEETAH, start, "prefine", config.to_dict())
    assert jobs.execute(ws, run_id) == "done", jobs.log_tail(ws, run_id, 40)
    return ws, run_id, start


def test_every_validation_is_a_row_and_the_trainers_choice_is_marked(done):
    ws, run_id, _ = done
    frame = checkpoints.checkpoint_frame(ws, run_id)
    assert frame.step.tolist() == [0, 10, 20]
    assert frame.available.tolist() == [False, True, True]  # step 0 is the untouched start
    assert frame.chosen.sum() == 1 and frame[frame.chosen].step.item() == jobs.result(ws, run_id)["selected_step"]
    assert frame["return"].notna().all() and frame["cost"].notna().all() and frame["safety"].between(0, 1).all()


def test_the_trainers_rule_is_said_as_the_run_was_configured():
    from prefine_core.prefine import PrefineConfig

    said = checkpoints.choice_rule(PrefineConfig(select_tolerance=0.2).to_dict())
    assert "within 0.2 of the best, the one with the highest validation return" in said and "averaged" not in said
    assert "averaged with 1 neighbouring checkpoint on either side" in checkpoints.choice_rule(
        PrefineConfig(select_smoothing=1).to_dict())
    assert checkpoints.choice_rule(PrefineConfig(select="last", val_seed=5000).to_dict()) == (
        "Validation episodes (seeds 5000…), not the evaluation seeds: measure a choice on the Compare page. ★ is the "
        "trainer's choice: the last checkpoint.")  # the seeds as the run had them
    assert "held-out labelled pairs" in checkpoints.choice_rule(
        PrefineConfig(select="heldout", heldout_fraction=0.2).to_dict())
    # saved by another version (a field unknown here): no rule said, where the Fine-tune page showed a traceback
    assert checkpoints.choice_rule({**PrefineConfig().to_dict(), "field_of_a_newer_version": 1}) == (
        "Validation episodes, not the evaluation seeds: measure a choice on the Compare page.")


def test_a_checkpoint_chosen_by_hand_becomes_a_policy_once(done):
    from prefine_core.policy import load_policy

    ws, run_id, start = done
    run = ws.store.get_run(run_id)
    chosen = jobs.result(ws, run_id)["selected_step"]
    other = 30 - chosen  # the other of 10 and 20
    assert checkpoints.register_checkpoint(ws, run_id, chosen) == run.output_policy_id
    policy_id = checkpoints.register_checkpoint(ws, run_id, other)
    assert policy_id != run.output_policy_id
    assert checkpoints.register_checkpoint(ws, run_id, other) == policy_id  # asked again: the same policy
    policy = ws.store.get_policy(policy_id)
    assert policy.kind == "finetuned" and policy.parent_id == start and policy.provenance["step"] == other
    assert load_policy(policy.path, CHEETAH).meta.provenance["step"] == other


@pytest.mark.parametrize("step,message", [(15, r"no checkpoint at step 15; it has checkpoints at steps \[10, 20\]"),
                                          (0, "positive whole number"), (-10, "positive whole number"),
                                          (True, "positive whole number"), ("10", "positive whole number")])
def test_a_step_without_a_checkpoint_is_refused_by_name(done, step, message):
    ws, run_id, _ = done
    before = len(ws.store.list_policies(CHEETAH))
    with pytest.raises(ValueError, match=message):
        checkpoints.register_checkpoint(ws, run_id, step)
    assert len(ws.store.list_policies(CHEETAH)) == before


def test_runs_that_are_not_finished_fine_tunes_and_damaged_checkpoints_are_refused(done):
    from prefine_core.trainer import checkpoint_path

    ws, run_id, start = done
    with pytest.raises(ValueError, match="run_id 999 does not exist"):
        checkpoints.register_checkpoint(ws, 999, 10)
    running = ws.store.create_run(CHEETAH, start, "prefine", {"steps": 20})
    ws.store.update_run(running, status="running")
    with pytest.raises(ValueError, match=f"run {running} is running"):
        checkpoints.register_checkpoint(ws, running, 10)
    compare = ws.store.create_run(CHEETAH, start, "compare", {})
    ws.store.update_run(compare, status="done")
    with pytest.raises(ValueError, match="not a fine-tune"):
        checkpoints.register_checkpoint(ws, compare, 10)
    assert checkpoints.checkpoint_frame(ws, compare).empty

    damaged = ws.store.create_run(CHEETAH, start, "prefine", {"steps": 10})
    ws.store.update_run(damaged, status="done")
    path = checkpoint_path(jobs.run_dir(ws, damaged), 10)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    before = len(ws.store.list_policies(CHEETAH))
    with pytest.raises(ValueError, match="step_0000010"):
        checkpoints.register_checkpoint(ws, damaged, 10)
    assert len(ws.store.list_policies(CHEETAH)) == before


def test_the_cli_lists_the_trade_off_and_registers_a_step(done, capsys):
    import json

    from prefine_core.cli import main

    ws, run_id, _ = done
    assert main(["checkpoints", "--workspace", str(ws.root), "--run", str(run_id), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["step"] for c in listed["checkpoints"]] == [0, 10, 20] and "registered_policy_id" not in listed
    other = 30 - jobs.result(ws, run_id)["selected_step"]  # the checkpoint the trainer did not choose
    assert main(["checkpoints", "--workspace", str(ws.root), "--run", str(run_id), "--register", str(other), "--json"]) == 0
    registered = json.loads(capsys.readouterr().out)["registered_policy_id"]
    assert ws.store.get_policy(registered).provenance["step"] == other
    assert main(["checkpoints", "--workspace", str(ws.root), "--run", str(run_id), "--register", "15", "--json"]) == 2
    assert "no checkpoint at step 15" in json.loads(capsys.readouterr().out)["error"]
    assert main(["checkpoints", "--workspace", str(ws.root), "--run", "999", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == "--run: run_id 999 does not exist"
    render = ws.store.create_run(CHEETAH, None, "render", {})
    assert main(["checkpoints", "--workspace", str(ws.root), "--run", str(render), "--json"]) == 2
    assert "is a render run, not a fine-tune" in json.loads(capsys.readouterr().out)["error"]


def test_a_run_whose_policy_row_is_gone_registers_its_chosen_step_anew(done):
    """A run row naming a policy that does not exist (edited by hand) answered that missing id as the registered
    policy of its chosen step."""
    ws, run_id, _ = done
    run = ws.store.get_run(run_id)
    chosen = jobs.result(ws, run_id)["selected_step"]
    try:
        import sqlite3

        other = ws.store.add_policy("a hopper's", ws.root / "hopper.safetensors", "SafetyHopperVelocity-v1", "imported")
        for edited in (999, "'x'", other):  # gone; no id; another robot's policy, not the run's own
            db = sqlite3.connect(ws.root / "prefine.db")  # by hand, with the foreign keys the store keeps switched off
            db.execute("pragma foreign_keys = off")
            db.execute(f"update runs set output_policy_id = {edited} where id = {run_id}")
            db.commit()
            db.close()
            registered = checkpoints.register_checkpoint(ws, run_id, chosen)
            assert registered not in (999, other), edited
            assert ws.store.get_policy(registered).provenance["step"] == chosen
    finally:
        ws.store.update_run(run_id, output_policy_id=run.output_policy_id)


def test_the_cli_says_when_the_trainers_choice_cannot_be_read(done, capsys):
    """A finished run whose result.json is missing or damaged listed every checkpoint as not chosen, saying nothing."""
    import json

    from prefine_core.cli import main

    ws, run_id, start = done
    assert main(["checkpoints", "--workspace", str(ws.root), "--run", str(run_id), "--json"]) == 0
    assert "note" not in json.loads(capsys.readouterr().out)
    damaged = ws.store.create_run(CHEETAH, start, "prefine", {"steps": 10})
    ws.store.update_run(damaged, status="done")
    jobs.run_dir(ws, damaged).mkdir(parents=True)
    (jobs.run_dir(ws, damaged) / "result.json").write_text("[1, 2")
    assert main(["checkpoints", "--workspace", str(ws.root), "--run", str(damaged), "--json"]) == 0
    note = json.loads(capsys.readouterr().out)["note"]
    assert note.startswith(f"Run {damaged} finished, but its result (") and note.endswith(
        "which checkpoint the trainer chose is not known")
