"""Bad input refused where it enters, before any work: policy files whose metadata or weights no rollout can use, and
command-line values the libraries underneath would fail on late (torch, MuJoCo, Gymnasium's seeding) or not at all.
Each is exit status 2 and one line that names the file or the flag; with --json, one JSON object on stdout."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import CHEETAH, make_policy
from prefine_core.cli import main
from test_faults import short_lock_timeouts  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent


def _checkpoint(path, tensors: dict | None = None, metadata: str | None = None):
    """A cheetah policy file, with some of its tensors or its metadata replaced."""
    from safetensors.torch import save_file

    policy = make_policy(CHEETAH)
    saved = {k: v.contiguous().clone() for k, v in policy.state_dict().items()}
    saved.update(tensors or {})
    save_file(saved, str(path), metadata={"prefine": metadata or policy.meta.to_json()})
    return path


def _refused(capsys, argv: list[str], after_a_bar: bool = False) -> str:
    """Run the CLI with ``--json``; assert it refused with status 2 and one line (after a progress bar where the work
    had begun: ``after_a_bar``); return the error said."""
    try:
        code = main([*argv, "--json"])
    except SystemExit as exit_info:  # argparse's refusal of a flag
        code = exit_info.code
    out, err = capsys.readouterr()
    said = json.loads(out)["error"]
    assert code == 2 and "Traceback" not in err, err
    assert f"error: {said}" in err.split("\n") if after_a_bar else err.strip() == f"error: {said}", err
    return said


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_provenance() -> str:
    """Metadata that json.loads reads, but that overflows the recursion when it is copied or written."""
    meta = json.loads(make_policy(CHEETAH).meta.to_json())
    meta["provenance"] = {"a": "NESTED"}
    return json.dumps(meta).replace('"NESTED"', _nested(600))


@pytest.mark.parametrize("metadata", [lambda: _nested(100_000), _deep_provenance], ids=["json.loads", "provenance"])
def test_deeply_nested_metadata_is_an_invalid_policy_file(metadata, tmp_path, capsys):
    from prefine_core.policy import CheckpointError, load_policy, read_meta

    path = _checkpoint(tmp_path / "deep.safetensors", metadata=metadata())
    for read in (read_meta, load_policy):
        with pytest.raises(CheckpointError, match="deep.safetensors has invalid metadata: metadata is (JSON )?nested"):
            read(path)
    assert "deep.safetensors has invalid metadata" in _refused(capsys, ["info", "--policy", str(path)])


@pytest.mark.parametrize("name, tensor, problem", [
    ("obs_var", -torch.ones(17), "holds a negative observation variance in obs_var"),
    ("log_std", torch.zeros(6, dtype=torch.int32), "holds tensors that are not floating point in ['log_std']"),
])
def test_weights_no_rollout_can_use_are_refused(name, tensor, problem, tmp_path, capsys):
    from prefine_core.policy import CheckpointError, load_policy

    path = _checkpoint(tmp_path / "bad.safetensors", tensors={name: tensor})
    with pytest.raises(CheckpointError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        load_policy(path)
    assert _refused(capsys, ["rollout", "--policy", str(path)]) == f"bad.safetensors {problem}"


def test_double_precision_weights_still_load(tmp_path):
    from prefine_core.policy import load_policy

    path = _checkpoint(tmp_path / "f64.safetensors", tensors={"log_std": torch.full((6,), -0.5, dtype=torch.float64)})
    assert load_policy(path).log_std.dtype == torch.float32


@pytest.mark.parametrize("value", ["1e308", "-1e308", "nan", "inf", "2.5", "-5.5"])
def test_init_log_std_is_refused_outside_the_policys_log_std_bounds(value, tmp_path, capsys):
    said = _refused(capsys, ["pretrain", "--task", CHEETAH, "--steps", "8", f"--init-log-std={value}",
                             "--out", str(tmp_path / "p.safetensors")])
    assert f"argument --init-log-std: expected a number from -5 to 2, got {value}" in said
    assert list(tmp_path.iterdir()) == []


def test_ppo_config_refuses_an_init_log_std_outside_the_bounds():
    from prefine_core.pretrain import PPOConfig

    with pytest.raises(ValueError, match="init_log_std must be from -5 to 2, got 1e"):
        PPOConfig(task_id=CHEETAH, init_log_std=1e308)


def test_ppo_config_refuses_a_seed_its_environments_cannot_be_reset_with():
    from prefine_core.pretrain import PPOConfig

    PPOConfig(task_id=CHEETAH, seed=4_294_967)  # its 8 environments' reset seeds end at 2**32 − 1 − 288
    with pytest.raises(ValueError, match="seed must be from 0 to 4294967 .*got 4294968"):
        PPOConfig(task_id=CHEETAH, seed=4_294_968)


@pytest.mark.parametrize("size", ["17000", "1025", "47", "1"])
def test_render_size_is_refused_outside_what_renders(size, policy_file, tmp_path, capsys):
    said = _refused(capsys, ["render", "--policy", str(policy_file), "--size", size,
                             "--out", str(tmp_path / "clip.mp4")])
    assert f"argument --size: expected a whole number from 48 to 1024, got {size}" in said


def test_the_size_bounds_render(cheetah_policy):
    from prefine_core.cli.args import MAX_FRAME_SIZE, MIN_FRAME_SIZE
    from prefine_core.render import annotate, record

    for size in (MIN_FRAME_SIZE, MAX_FRAME_SIZE):
        trajectory, frames = record(cheetah_policy, seed=0, max_steps=1, size=size)
        costly = [1.0] * len(frames)  # the "COST" badge fits in the smallest frame
        assert annotate(frames, costly)[0].shape[1] == size


@pytest.mark.parametrize("command", ["rollout", "evaluate"])
def test_seeds_past_the_largest_are_refused_before_any_episode(command, policy_file, capsys):
    said = _refused(capsys, [command, "--policy", str(policy_file), "--episodes", "2", "--seed", "4294967295"])
    assert said == "--seed 4294967295 with --episodes 2 goes up to seed 4294967296; the largest is 4294967295"


@pytest.mark.parametrize("flag", ["--seed", "--seed-b"])
def test_render_seed_past_the_largest_is_refused(flag, policy_file, tmp_path, capsys):
    said = _refused(capsys, ["render", "--policy", str(policy_file), flag, "4294967296",
                             "--out", str(tmp_path / "clip.mp4")])
    assert f"argument {flag}: expected a whole number from 0 to 4294967295, got 4294967296" in said


@pytest.mark.parametrize("argv", [
    ["render", "--policy", "{policy}", "--steps", "3", "--size", "48", "--out", "{out}"],
    ["pretrain", "--task", CHEETAH, "--steps", "8", "--out", "{out}"],
], ids=["render", "pretrain"])
def test_an_out_that_is_a_folder_is_refused_up_front(argv, policy_file, tmp_path, capsys):
    folder = tmp_path / ("taken.mp4" if argv[0] == "render" else "taken.safetensors")
    folder.mkdir()
    said = _refused(capsys, [arg.format(policy=policy_file, out=folder) for arg in argv])
    assert f"argument --out: {folder} is a folder; give the path of a file to write" in said
    assert list(folder.iterdir()) == []


def test_an_error_during_a_progress_bar_starts_a_line_of_its_own(policy_file, tmp_path, capsys):
    (tmp_path / "clips" / "policy_seed1.npz").mkdir(parents=True)  # the second episode's file cannot be written
    said = _refused(capsys, ["rollout", "--policy", str(policy_file), "--episodes", "2", "--out-dir",
                             str(tmp_path / "clips")], after_a_bar=True)
    assert "Is a directory" in said  # _refused found "error: …" at the start of a line, not after the bar


def test_an_abbreviated_flag_is_refused_not_guessed(capsys):
    """argparse took `--js` for --json, while refusals looked for the whole --json to answer in JSON."""
    from prefine_core.cli import main

    with pytest.raises(SystemExit) as refused:
        main(["runs", "--js"])
    assert refused.value.code == 2 and "unrecognized arguments: --js" in capsys.readouterr().err


def test_a_command_stopped_by_sigterm_undoes_what_it_began_to_write(tmp_path):
    """`kill` ended an HDF5 import at once: its transaction rolled back, but the array files it had written stayed,
    named by no row. SIGTERM now stops a command as Ctrl-C does: rows and files undone, and --json says so."""
    import h5py
    import numpy as np

    n = 40_000
    with h5py.File(tmp_path / "big.hdf5", "w") as f:
        f["observations"] = np.zeros((n, 17), np.float32)
        f["actions"] = np.zeros((n, 6), np.float32)
        f["rewards"] = f["costs"] = np.zeros(n, np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = np.arange(n) % 1000 == 999
    workspace = tmp_path / "ws"
    child = subprocess.Popen([sys.executable, "-m", "prefine_core", "import", str(tmp_path / "big.hdf5"), "--task",
                              "SafetyHalfCheetahVelocity-v1", "--clip-length", "10", "--workspace", str(workspace),
                              "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             env={**os.environ, "MUJOCO_GL": "egl", "PREFINE_SHIPPED_POLICIES": ""})
    deadline = time.time() + 120
    while time.time() < deadline and not list((workspace / "trajectories").glob("*.npz")):
        time.sleep(0.05)
    assert list((workspace / "trajectories").glob("*.npz")), "the import never began to write"
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 130 and json.loads(out)["error"].startswith("interrupted")
    assert not workspace.exists(), "no row and no file of it: the workspace it made goes with it"


@pytest.mark.parametrize("flag, value, message", [
    ("--seeds", "1,,2", "expected comma-separated seeds such as 0,1,2, got '1,,2'"),  # was taken as 1,2
    ("--seeds", "0,99999999999", "expected a whole number from 0 to 4294967295"),  # as --seed refuses it
    ("--seeds", "0,٣", "expected digits 0-9"),
    ("--fps", "100000", "expected a whole number from 1 to 120"),
    # refused by the store after the clips before it were written:
    ("--temperatures", "2,101", "expected a number from 0 to 100, got 101"),
    ("--temperatures", "", "expected comma-separated temperatures such as 0.5,1, got ''"),  # dropped the reference
    ("--temperatures", "1,,2", "expected comma-separated temperatures such as 0.5,1, got '1,,2'"),
])
def test_pairs_flags_out_of_range_are_refused_by_the_flags_name(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as refused:
        main(["pairs", "--workspace", str(tmp_path / "ws"), "--task", CHEETAH, "--collect", flag, value])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: python -m prefine_core pairs: argument {flag}: {message}")
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("edit", ["sizes", "task", "nan"])
def test_info_refuses_a_policy_file_that_evaluate_would_refuse(tmp_path, capsys, edit):
    """`info` read only the header: sizes edited by hand, an unknown task or NaN weights passed it."""
    from safetensors.torch import load_file, save_file

    from prefine_core.policy import read_meta, save_policy

    good = save_policy(make_policy(CHEETAH), tmp_path / "good.safetensors")
    tensors, meta = load_file(str(good)), json.loads(read_meta(good).to_json())
    if edit == "sizes":
        meta["hidden_sizes"] = [32, 32]
    elif edit == "task":
        meta["task_id"] = "SafetyHalfCheetahVelocity-v9"
    else:
        tensors = {k: torch.full_like(v, float("nan")) for k, v in tensors.items()}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={"prefine": json.dumps(meta)})
    assert main(["info", "--policy", str(tmp_path / "good.safetensors")]) == 0
    capsys.readouterr()
    assert main(["info", "--policy", str(tmp_path / "bad.safetensors")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_an_interrupted_command_says_what_it_kept(tmp_path):
    """Every interrupted command said "nothing it had begun to write was kept", where the labels, clips or
    checkpoints it had finished before stayed (rightly: the same command goes on from them)."""
    import re

    from test_faults import small_store

    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    small_store(ws, n_pairs=3000)
    child = subprocess.Popen([sys.executable, "-m", "prefine_core", "label-synthetic", "--workspace", str(ws.root),
                              "--name", "synthetic-t", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             env={**os.environ, "PREFINE_SHIPPED_POLICIES": ""})
    deadline = time.time() + 120
    while time.time() < deadline and ws.store.counts()["labels"] < 5:
        time.sleep(0.1)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=120)
    said = json.loads(out)["error"]
    stored = ws.store.counts()["labels"]
    assert child.returncode == 130 and 5 <= stored < 3000, (child.returncode, stored)
    assert re.fullmatch(r"interrupted; what it was writing at that moment was undone; (\d+) labels by synthetic-t are stored; "
                        r"the same command labels the rest", said) and int(said.split("; ")[2].split()[0]) == stored


@pytest.mark.parametrize("flag, value, expected", [
    ("--myopic-discount", "0", "a number above 0 and at most 1, got 0"),  # was refused later, as myopic_discount
    ("--myopic-discount", "1.5", "a number above 0 and at most 1, got 1.5"),
    ("--mistake-rate", "nan", "a number from 0 to 1, got nan"),
    ("--skip-rate", "2", "a number from 0 to 1, got 2"),
    # a count validated as an id: "overlap 99999999999999999999 does not exist (ids stop at …)"
    ("--overlap", "99999999999999999999", "a whole number from 1 to 1000000, got 99999999999999999999"),
])
def test_teacher_flags_out_of_range_are_refused_by_the_flags_name(flag, value, expected, tmp_path, capsys):
    said = _refused(capsys, ["label-synthetic", "--workspace", str(tmp_path / "ws"), "--task", CHEETAH, flag, value])
    assert said.endswith(f"label-synthetic: argument {flag}: expected {expected}"), said


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_penalty_floor_that_is_not_finite_is_refused_by_the_flags_name(value, tmp_path, capsys):
    """--penalty-floor nan was taken by float() and failed only after training, in a 66-line tensor error."""
    said = _refused(capsys, ["pretrain", "--task", CHEETAH, "--steps", "8", f"--penalty-floor={value}",
                             "--out", str(tmp_path / "p.safetensors")])
    assert said.endswith(f"argument --penalty-floor: expected a finite number, got {value}"), said
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field, value, expected", [
    ("penalty_floor", float("nan"), "penalty_floor must be a finite reward per step"),
    ("penalty_floor", float("-inf"), "penalty_floor must be a finite reward per step"),
    ("cost_penalty", float("nan"), "cost_penalty must be a finite number ≥ 0"),
    ("cost_limit", float("inf"), "cost_limit must be a finite episode cost ≥ 0"),
    ("lagrange_lr", float("nan"), "lagrange_lr must be positive and finite"),
    ("learning_rate", float("inf"), "learning_rate must be positive and finite"),
    ("gamma", 0.0, "gamma must be above 0 and at most 1"),
    ("gae_lambda", float("nan"), "gae_lambda must be from 0 to 1"),
    ("clip", 0.0, "clip must be positive and finite"),
    ("vf_coef", -1.0, "vf_coef must be a finite number ≥ 0"),
    ("max_grad_norm", float("inf"), "max_grad_norm must be positive and finite"),
])
def test_ppo_config_refuses_float_fields_that_are_not_finite_or_out_of_range(field, value, expected):
    from prefine_core.pretrain import PPOConfig

    with pytest.raises(ValueError, match=expected):
        PPOConfig(task_id=CHEETAH, **{field: value})
    PPOConfig(task_id=CHEETAH, penalty_floor=-3.0)  # a floor below 0 only bounds the penalty: allowed


@pytest.mark.parametrize("argv, expected", [
    (["import", "{tmp}/no-such-export.zip"], "no-such-export.zip does not exist"),
    (["import", "{tmp}/junk.zip"], "junk.zip: the file is not a readable zip archive"),
    (["import", "{tmp}/junk.txt"], "junk.txt is not a file PREFINE Studio can import"),
    (["import", "{tmp}/junk.hdf5"], "--task is required to import an HDF5 dataset"),
    # it was refused only once the progress bar had drawn "0it"
    (["import", "{tmp}/junk.hdf5", "--task", CHEETAH, "--source", "reference:ref@T1"], "names a policy's rollouts"),
    (["import", "{tmp}/junk.hdf5", "--task", CHEETAH], "junk.hdf5 is not an HDF5 file (its first bytes are wrong)"),
    (["pairs", "--collect"], "--task is required"),
    # it said the workspace "is made by pairs --collect", to a command that had --collect
    (["pairs", "--collect", "--render-only", "--task", CHEETAH], "--render-only renders the videos of the pairs "
     "there already, so it does not go with --collect"),
], ids=["missing", "junk-zip", "unknown-kind", "hdf5-without-task", "hdf5-policy-source", "junk-hdf5",
        "collect-without-task", "collect-render-only"])
def test_a_refused_command_leaves_no_workspace_behind(argv, expected, tmp_path, capsys, monkeypatch):
    """A refused import or `pairs --collect` made a whole workspace (prefine.db, runs/, videos/…) first, even in
    folders that were not there."""
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    for junk in ("junk.zip", "junk.txt", "junk.hdf5"):
        (tmp_path / junk).write_bytes(b"not what its name says")
    workspace, empty = tmp_path / "new" / "nested" / "ws", tmp_path / "empty"
    empty.mkdir()
    for folder in (workspace, empty):
        said = _refused(capsys, [*(arg.format(tmp=tmp_path) for arg in argv), "--workspace", str(folder)])
        assert expected in said
    assert not (tmp_path / "new").exists() and list(empty.iterdir()) == []


def test_an_export_without_out_takes_the_next_free_name(tmp_path, capsys, monkeypatch):
    """export-<entries + 1> was export-2 again after export-1 had been deleted: "export-2 is not empty"."""
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws")
    (ws.exports_dir / "export-2").mkdir()
    (ws.exports_dir / "export-2" / "manifest.json").write_text("{}")
    assert main(["export", "--workspace", str(ws.root), "--no-policies", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["folder"] == str(ws.exports_dir / "export-3")
    (tmp_path / "a-file").write_text("mine")
    said = _refused(capsys, ["export", "--workspace", str(ws.root), "--out", str(tmp_path / "a-file")])
    assert said.endswith(f"argument --out: {tmp_path / 'a-file'} is a file; give a folder to write in"), said
    assert (tmp_path / "a-file").read_text() == "mine"


def test_evaluate_refuses_a_cost_limit_of_0_by_the_flags_name(policy_file, capsys):
    """The flag took 0 (≥ 0) and the command then said "--cost-limit must be positive"."""
    said = _refused(capsys, ["evaluate", "--policy", str(policy_file), "--cost-limit", "0"])
    assert said.endswith("argument --cost-limit: expected a finite number > 0, got 0"), said


def test_render_refuses_a_seed_b_without_a_policy_b(policy_file, tmp_path, capsys):
    """--seed-b without --policy-b rendered one clip and ignored it without a word."""
    out = tmp_path / "clip.mp4"
    said = _refused(capsys, ["render", "--policy", str(policy_file), "--seed-b", "5", "--steps", "3", "--size", "48",
                             "--out", str(out)])
    assert said.startswith("--seed-b is the seed of --policy-b's clip: give --policy-b too"), said
    assert not out.exists()


def test_rollout_refuses_an_out_dir_it_cannot_write_in_before_any_episode(policy_file, tmp_path, capsys):
    """An --out-dir that was a file failed only after the episodes ("[Errno 17] File exists"); a missing folder is made
    only in a folder that exists, as render's --out."""
    (tmp_path / "a-file").write_text("mine")
    said = _refused(capsys, ["rollout", "--policy", str(policy_file), "--out-dir", str(tmp_path / "a-file")])
    assert said.endswith(f"argument --out-dir: {tmp_path / 'a-file'} is a file; give a folder to write in"), said
    said = _refused(capsys, ["rollout", "--policy", str(policy_file), "--out-dir", str(tmp_path / "typo" / "clips")])
    assert f"argument --out-dir: no folder {tmp_path / 'typo'} to write" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "policy.safetensors"]


def test_a_background_render_with_no_video_missing_starts_no_run(tmp_path, capsys):
    """`pairs --render-only --background` for a task without pairs started a render run that had nothing to do."""
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    assert main(["pairs", "--workspace", str(ws.root), "--task", CHEETAH, "--render-only", "--background", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["render_runs"] == [] and said["note"] == "no pair video is missing: nothing to render"
    assert ws.store.list_runs() == []


@pytest.mark.parametrize("argv, said", [
    # a file: "[Errno 17] File exists", naming no flag; a mistyped folder was made with all its parents
    (["bench", "--task", CHEETAH, "--quick", "--out", "{tmp}/a-file"], "argument --out: {tmp}/a-file is a file"),
    (["bench", "--task", CHEETAH, "--quick", "--out", "{tmp}/no-such/folder"], "argument --out: "),
    # read by Python's int(): other scripts' digits and underscores, which every other flag refuses
    (["finetune", "--policy", "{tmp}/a-file", "--pairs-from-teacher", "4", "--steps", "٣"],
     "argument --steps: expected digits 0-9, got '٣'"),
    (["finetune", "--policy", "{tmp}/a-file", "--pairs-from-teacher", "4", "--beta", "0_1"],
     "argument --beta: expected digits 0-9, got '0_1'"),
    (["rollout", "--policy", "{tmp}/a-file", "--episodes", "1_0"], "argument --episodes: expected digits 0-9"),
], ids=["bench-out-file", "bench-out-no-parent", "steps-arabic-indic", "beta-underscore", "episodes-underscore"])
def test_flags_read_past_their_checks_are_refused_by_name(argv, said, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "junk.zip").write_text("checked after the workspace")
    refusal = _refused(capsys, [arg.format(tmp=tmp_path) for arg in argv])
    assert said.format(tmp=tmp_path) in refusal, refusal
    assert not (tmp_path / "no-such").exists()


@pytest.mark.parametrize("command", [["runs"], ["import", "{tmp}/junk.zip"], ["pairs", "--task", CHEETAH, "--collect"]])
@pytest.mark.parametrize("workspace, said", [
    ("", "--workspace is empty: give a folder, or leave the flag out"),  # was the default workspace, unsaid
    ("{tmp}/a-file", "the workspace {tmp}/a-file is a file ({tmp}/a-file); a workspace is a folder"),
    ("{tmp}/a-file/ws", "the workspace {tmp}/a-file/ws lies in a file ({tmp}/a-file); a workspace is a folder"),
], ids=["empty", "a-file", "in-a-file"])
def test_a_workspace_flag_that_names_no_folder_is_refused_by_name(command, workspace, said, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    monkeypatch.setenv("PREFINE_WORKSPACE", str(tmp_path / "default"))
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "junk.zip").write_text("checked after the workspace")
    refusal = _refused(capsys, [*(a.format(tmp=tmp_path) for a in command), "--workspace", workspace.format(tmp=tmp_path)])
    assert refusal == said.format(tmp=tmp_path) or refusal.startswith(said.format(tmp=tmp_path)), refusal
    assert not (tmp_path / "default").exists() and (tmp_path / "a-file").read_text() == "not a folder"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_a_kill_after_a_command_has_said_its_result_does_not_turn_it_into_a_failure(signum, tmp_path):
    """A SIGTERM that came once `pairs --collect` had finished and printed its whole result ended the process with
    143 and no word (it came during the interpreter's teardown, 0.7 s with torch loaded), so a script took a finished
    command for a failed one; a Ctrl-C then ended it with 130 and no word, or with a KeyboardInterrupt traceback. Both
    are ignored from the moment the result is being said."""
    child = subprocess.Popen([sys.executable, "-m", "prefine_core", "pairs", "--collect", "--task", CHEETAH,
                              "--seeds", "0", "--max-steps", "30", "--n", "2", "--workspace", str(tmp_path / "ws")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "MUJOCO_GL": "egl"})  # the shipped reference rolls out
    said = []
    for line in child.stdout:  # the result's last line, and at once the kill
        said.append(line)
        if line.startswith("counts:"):
            child.send_signal(signum)
            break
    rest, err = child.communicate(timeout=120)
    said += rest.splitlines(keepends=True)
    assert child.returncode == 0 and "Traceback" not in err, err
    assert said[0].startswith("workspace:") and said[-1].startswith("counts:")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_a_stop_while_the_parser_imports_torch_is_one_line_and_exit_130(signum, tmp_path):
    """A Ctrl-C in a command's first 2.5 s, while its parser imports torch, printed a KeyboardInterrupt traceback; a
    kill then ended it unsaid (SIGTERM's handler was set only once the command line was read)."""
    child = subprocess.Popen([sys.executable, "-m", "prefine_core", "runs", "--workspace", str(tmp_path), "--json"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and "libtorch" not in Path(f"/proc/{child.pid}/maps").read_text():
        time.sleep(0.01)  # torch's libraries are mapped: the parser is being built
    child.send_signal(signum)
    out, err = child.communicate(timeout=120)
    said = "interrupted before the command began; nothing was done"
    assert (child.returncode, err, json.loads(out)) == (130, f"error: {said}\n", {"error": said})


@pytest.mark.parametrize("url, said", [
    ("postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/db", "the database is unreachable (connection failed: connection to "
     'server at "127.0.0.1", port 1 failed: Connection refused); what it was writing at that moment was undone: check '
     "that its server is running and that PREFINE_DB_URL names it (host, port, database, user), then run the command "
     "again"),
    ("postgresql+psycopg2://u:s3cret-pw@127.0.0.1:1/db", "the database URL postgresql+psycopg2://u:***@127.0.0.1:1/db "
     "asks for the driver postgresql+psycopg2, which is not installed here: give "
     "postgresql+psycopg://USER@HOST/DATABASE (the driver requirements.txt installs) or sqlite:///PATH"),
    ("postgresql+psycopg://u:s3cret-pw@[::1/db", "the database URL (PREFINE_DB_URL) has a host and port that cannot be "
     "read: write HOST:PORT with a port of digits, an IPv6 address in brackets ([::1]:5432)"),
], ids=["unreachable", "driver-not-installed", "host-unreadable"])
def test_a_database_that_cannot_be_reached_is_said_in_one_line_without_its_password(url, said, tmp_path, capsys,
                                                                                    monkeypatch):
    """Each was a traceback and exit 1 (the host as "invalid literal for int() with base 10", exit 2)."""
    monkeypatch.setenv("PREFINE_DB_URL", url)
    assert _refused(capsys, ["runs", "--workspace", str(tmp_path)]) == said


@pytest.mark.postgres
@pytest.mark.parametrize("part, said", [("database", 'database "no_such_db" does not exist'),
                                        ("username", 'role "no_such_db" does not exist')])
def test_a_postgres_database_or_role_that_is_not_there_is_said_in_one_line(part, said, tmp_path, capsys, monkeypatch):
    from sqlalchemy.engine import make_url
    from store_backends import _pg_base_url

    url = make_url(_pg_base_url()).set(**{part: "no_such_db", "password": "s3cret-pw"})
    monkeypatch.setenv("PREFINE_DB_URL", url.render_as_string(hide_password=False))
    refusal = _refused(capsys, ["runs", "--workspace", str(tmp_path)])
    assert refusal.startswith("the database is unreachable (connection failed: ") and said in refusal, refusal
    assert "s3cret-pw" not in refusal


def test_a_store_locked_past_the_retries_is_said_in_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch,
                                                                                    short_lock_timeouts):
    """Another connection holding SQLite's write lock past the store's retries gave an OperationalError traceback."""
    from test_faults import hold_sqlite_write_lock, small_store

    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    small_store(ws)
    ready, release = threading.Event(), threading.Event()
    holder = hold_sqlite_write_lock(ws.root / "prefine.db", ready, release)
    ready.wait()
    try:
        said = _refused(capsys, ["label-synthetic", "--workspace", str(ws.root)])
    finally:
        release.set()
        holder.join()
    assert said == ("the database is busy (database is locked); what it was writing at that moment was undone: another "
                    "program holds its write lock (the app, another command, a backup): run the command again once it "
                    "has finished")
    assert ws.store.label_history() == []


def _config(path: Path, text: str | bytes) -> str:
    """A ``--config`` file holding ``text``; its path, for the command line."""
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


@pytest.mark.parametrize("argv, said", [
    (["pairs", "--task", "T" * 100_000], "argument --task: unknown task id 'TTTT"),
    (["finetune", "--policy", "{policy}", "--select", "s" * 100_000], "argument --select: invalid choice: 'ssss"),
    (["info", "--policy", "{tmp}/" + "p" * 100_000], "File name too long"),  # was an OSError traceback
    (["runs", "--workspace", "{tmp}/" + "w" * 100_000], "File name too long"),
    (["finetune", "--policy", "{policy}", "--config", "{unknown_keys}"], "unknown config fields ['k0', 'k1', "),
    (["finetune", "--policy", "{policy}", "--config", "{steps_list}"], "steps must be a whole number, got [1, 1, "),
], ids=["task", "choice", "file-name", "workspace-name", "config-keys", "config-value"])
def test_a_refusal_quotes_a_short_part_of_a_long_value(argv, said, policy_file, tmp_path, capsys):
    """A 100 KB --task was said whole; a config of 2 million unknown keys made a 22.9 MB line, one holding a list of
    3 million steps 9 MB. A refusal now quotes about 80 characters of a value, with "..."."""
    files = {"policy": policy_file, "tmp": tmp_path,
             "unknown_keys": _config(tmp_path / "keys.json", json.dumps({f"k{i}": 1 for i in range(50_000)})),
             "steps_list": _config(tmp_path / "steps.json", json.dumps({"steps": [1] * 100_000}))}
    refusal = _refused(capsys, [arg.format(**files) for arg in argv])
    assert said in refusal and "..." in refusal and len(refusal) < 400, refusal


def test_a_config_file_over_1_mb_is_refused_by_name_before_it_is_read_whole(policy_file, tmp_path, capsys):
    config = _config(tmp_path / "big.json", json.dumps({"steps": [1] * 400_000}))
    said = _refused(capsys, ["finetune", "--policy", str(policy_file), "--pairs-from-teacher", "4", "--config", config])
    assert said == f"--config {config}: the file is larger than 1 MB; a PREFINE config is about 1 KB of JSON"


def test_a_config_file_with_a_byte_order_mark_is_read_and_one_giving_a_key_twice_is_refused(policy_file, tmp_path,
                                                                                             capsys):
    """A config saved with a UTF-8 byte order mark (a Windows editor's) was refused as not JSON; one giving "steps"
    twice was taken with its last value, unsaid."""
    from prefine_core.cli import build_parser
    from prefine_core.cli.finetune import bench_config

    marked = _config(tmp_path / "marked.json", b"\xef\xbb\xbf" + json.dumps({"steps": 7}).encode())
    assert bench_config(build_parser().parse_args(["bench", "--task", CHEETAH, "--config", marked])).finetune.steps == 7
    twice = _config(tmp_path / "twice.json", '{"steps": 10, "beta": 0.1, "steps": 20}')
    said = _refused(capsys, ["finetune", "--policy", str(policy_file), "--pairs-from-teacher", "4", "--config", twice])
    assert said == f"--config {twice}: config gives the key 'steps' twice; give it once"


@pytest.mark.parametrize("argv", [["finetune", "--policy", "{policy}", "--pairs-from-teacher", "4", "--out", ""],
                                  ["export", "--workspace", "{tmp}/ws", "--out", ""]], ids=["finetune", "export"])
def test_an_empty_out_is_refused_not_taken_for_the_current_folder(argv, policy_file, tmp_path, capsys, monkeypatch):
    """`finetune --out ''` wrote its run in the current folder, or resumed one there; `export --out ''` exported into it."""
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    Workspace.open(tmp_path / "ws", shipped=None)
    monkeypatch.chdir(tmp_path)
    said = _refused(capsys, [arg.format(policy=policy_file, tmp=tmp_path) for arg in argv])
    assert said.endswith("argument --out: is empty, which would be the current folder: give a path"), said


@pytest.mark.parametrize("flags, said", [
    (["--task", CHEETAH], "--task: only an HDF5 dataset (.hdf5, .h5) takes this flag, not policy.safetensors; drop it"),
    (["--clip-length", "200", "--max-episodes", "3", "--source", "mine"], "--clip-length, --max-episodes, --source: "
     "only an HDF5 dataset (.hdf5, .h5) takes these flags, not policy.safetensors; drop them"),
], ids=["task", "clip-flags"])
def test_an_import_refuses_the_flags_of_an_hdf5_dataset_for_another_kind_of_file(flags, said, policy_file, tmp_path,
                                                                                 capsys, monkeypatch):
    """A policy or an export imported with --task, --clip-length, --max-episodes or --source ignored them unsaid."""
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    assert _refused(capsys, ["import", str(policy_file), "--workspace", str(tmp_path / "ws"), *flags]) == said
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("argv, bound", [
    (["bench", "--task", CHEETAH, "--budgets", "99999999999"], 2000),
    (["bench", "--task", CHEETAH, "--pairs", "2001"], 2000),
    (["bench", "--task", CHEETAH, "--seeds", "101"], 100),
    (["bench", "--task", CHEETAH, "--lagrangian-steps", "100000001"], 100_000_000),
    (["pretrain", "--task", CHEETAH, "--out", "{tmp}/p.safetensors", "--steps", "99999999999999999999999"], 100_000_000),
    (["finetune", "--policy", "{policy}", "--pairs-from-teacher", "4", "--episodes", "100000000"], 1000),
    (["evaluate", "--policy", "{policy}", "--episodes", "1001"], 1000),
    (["rollout", "--policy", "{policy}", "--episodes", "1001"], 1000),
], ids=lambda x: x[-2] if isinstance(x, list) else None)
def test_a_count_no_run_could_finish_is_refused_with_the_bound_its_help_states(argv, bound, policy_file, tmp_path,
                                                                               capsys):
    """Counts were only positive: `bench --budgets 99999999999` drew pairs for ever, `pretrain --steps 10**22` and
    `finetune --episodes 100000000` began runs that could never end."""
    import argparse

    from prefine_core.cli import build_parser

    command, flag, typed = argv[0], argv[-2], argv[-1]
    said = _refused(capsys, [arg.format(policy=policy_file, tmp=tmp_path) for arg in argv])
    assert said.endswith(f"argument {flag}: expected a whole number from 1 to {bound}, got {typed}"), said
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    assert f"1 to {bound}" in next(a for a in sub._actions if flag in a.option_strings).help


def test_the_configs_behind_the_flags_bound_their_counts_too():
    """The benchmark's and PPO's configs refuse the same counts, for a caller that is not the command line."""
    from prefine_core.bench import BenchConfig
    from prefine_core.pretrain import PPOConfig

    with pytest.raises(ValueError, match=r"total_steps must be from 1 to 100000000, got 100000001"):
        PPOConfig(task_id=CHEETAH, total_steps=100_000_001)
    for fields, said in [(dict(budgets=(25, 2001)), r"budgets must be from 1 to 2000 labelled pairs each, got \(25, 2001\)"),
                         (dict(seeds=101), "seeds must be from 1 to 100, got 101"),
                         (dict(lagrangian_steps=10**9), "lagrangian_steps must be from 1 to 100000000, got 1000000000")]:
        with pytest.raises(ValueError, match=said):
            BenchConfig(task_id=CHEETAH, **fields)
