"""The CLI end to end: real subprocesses, --help everywhere, one JSON object with --json, clean errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHEETAH, make_policy
from prefine_core.cli import build_parser
from prefine_core.policy import load_policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefine_core", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_every_subcommand_has_help(capsys):
    names = _subcommands()
    assert {"pretrain", "rollout", "render", "evaluate"} <= set(names)
    for name in names:  # in-process: importing torch and MuJoCo once per command would take minutes
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([name, "--help"])
        assert exit_info.value.code == 0 and "--json" in capsys.readouterr().out, name
    top = cli("--help")
    assert top.returncode == 0 and all(name in top.stdout for name in names)


def test_tiny_pretrain_then_rollout_evaluate_render(tmp_path):
    out = tmp_path / "tiny.safetensors"
    result = cli("pretrain", "--task", "SafetyHopperVelocity-v1", "--steps", "512", "--seed", "1",
                 "--cost-penalty", "0.5", "--snapshot-every", "256", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["step"] == 2048 and summary["path"] == str(out)  # one update of 8 envs × 256 steps
    policy = load_policy(out, task_id="SafetyHopperVelocity-v1")
    assert policy.meta.provenance["cost_penalty"] == 0.5 and policy.meta.provenance["algorithm"] == "ppo"
    assert (tmp_path / "tiny_step2048.safetensors").exists(), "snapshots are written"

    roll = json.loads(cli("rollout", "--policy", out, "--episodes", "2", "--seed", "3", "--json").stdout)
    assert [e["seed"] for e in roll["episodes"]] == [3, 4]

    ev = cli("evaluate", "--policy", out, "--episodes", "2", "--cost-limit", "25", "--json")
    keys = {"return_mean", "return_std", "cost_mean", "cost_std", "length_mean", "violation_rate",
            "catastrophic_rate", "episodes"}
    assert ev.returncode == 0 and keys <= set(json.loads(ev.stdout))

    video = tmp_path / "pair.mp4"
    rendered = cli("render", "--policy", out, "--policy-b", out, "--seed", "0", "--seed-b", "1",
                   "--steps", "20", "--size", "64", "--out", video, "--json")
    assert rendered.returncode == 0, rendered.stderr
    assert video.stat().st_size > 1000 and json.loads(rendered.stdout)["out"] == str(video)


@pytest.mark.parametrize("args, message", [
    (["pretrain", "--task", "SafetyHalfCheetahVelocity-v7", "--out", "x.safetensors"], "nearest valid ids"),
    (["pretrain", "--task", "SafetyHopperVelocity-v1", "--steps", "-5", "--out", "x.safetensors"],
     "expected a whole number from 1 to 100000000, got -5"),
    (["pretrain", "--task", "SafetyHopperVelocity-v1", "--speed-cap", "0", "--out", "x.safetensors"], "finite number > 0"),
    (["pretrain", "--task", "SafetyHopperVelocity-v1", "--lagrange-lr", "fast", "--out", "x.safetensors"], "expected a number"),
    (["pretrain", "--task", "SafetyPointCircle1-v0", "--speed-cap", "0.4", "--out", "x.safetensors"], "reports no x velocity"),
    (["evaluate", "--policy", "no/such/file.safetensors"], "no file at"),
    (["evaluate", "--policy", "README.md"], "not a readable safetensors policy"),
    (["render", "--policy", "README.md", "--out", "x.gif"], "must end in .mp4"),
    (["evaluate", "--policy", "README.md", "--episodes", "٣"], "expected digits 0-9, got '٣'"),
    # said under the flag that gave the value (it was "steps must be in …"), and refused before anything runs
    (["finetune", "--policy", "README.md", "--pairs-from-teacher", "5", "--steps", "0"], "--steps: steps must be in [1,"),
    (["finetune", "--policy", "README.md", "--pairs-from-teacher", "99999999"], "expected a whole number from 1 to 2000"),
    (["finetune", "--policy", "README.md", "--pairs-from-teacher", "5", "--out", "no/such/folder/run"],
     "--out: no folder no/such/folder to make run in"),
    (["bench", "--task", "SafetyPointCircle1-v0", "--config", "README.md"], "--config README.md: "),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_refused_command_line_with_json_is_one_line_and_one_json_object(tmp_path, capsys):
    from prefine_core.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--policy", str(tmp_path / "x.safetensors"), "--episodes", "many", "--json"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    said = json.loads(out)["error"]
    assert "argument --policy: no file at" in said and said in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:  # without --json, one line too (argparse printed its usage first)
        main(["evaluate", "--policy", str(tmp_path / "x.safetensors"), "--episodes", "many"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("error: python -m prefine_core evaluate: argument --policy: no file at")


def test_render_refuses_an_out_in_a_folder_that_is_not_there(tmp_path, capsys):
    """A typo in the folder of --out is said, naming it, and no folder is made for it (it once was, silently)."""
    from prefine_core.cli import main

    out = tmp_path / "vidoes" / "clips" / "clip.mp4"
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--policy", "README.md", "--out", str(out), "--json"])
    assert exit_info.value.code == 2
    said = json.loads(capsys.readouterr().out)["error"]
    assert f"argument --out: no folder {out.parent} to write {out} in" in said
    assert list(tmp_path.iterdir()) == []


def test_finetune_refuses_a_missing_workspace_and_an_out_that_is_a_file(tmp_path, capsys):
    from prefine_core.cli import main
    from prefine_core.policy import save_policy

    policy = save_policy(make_policy("SafetyHalfCheetahVelocity-v1"), tmp_path / "p.safetensors")
    code = main(["finetune", "--policy", str(policy), "--workspace", str(tmp_path / "nowhere"), "--json"])
    assert code == 2 and "the workspace" in json.loads(capsys.readouterr().out)["error"]
    assert not (tmp_path / "nowhere").exists(), "no workspace made where the labels were looked for"
    (tmp_path / "taken").write_text("a file")
    code = main(["finetune", "--policy", str(policy), "--pairs-from-teacher", "4", "--out", str(tmp_path / "taken"),
                 "--json"])
    assert code == 2 and "is a file; give a run folder" in json.loads(capsys.readouterr().out)["error"]
    assert (tmp_path / "taken").read_text() == "a file"


def _finetune_argv(tmp_path, out, pairs: int = 3) -> list[str]:
    """A 10-step foreground fine-tune of the shipped cheetah reference on ``pairs`` decided pairs of a small workspace."""
    from test_app import small_workspace

    ws = small_workspace(tmp_path / "ws", pairs=pairs)
    for pair in ws.store.list_pairs():
        ws.store.add_label(pair.id, "ann", "left")
    reference = ws.store.list_policies("SafetyHalfCheetahVelocity-v1", kind="reference")[0]
    return ["finetune", "--policy", reference.path, "--workspace", str(ws.root), "--out", str(out), "--steps", "10",
            "--eval-every", "10", "--eval-episodes", "1", "--episodes", "1"]


def test_finetune_refuses_an_out_folder_it_did_not_write(tmp_path, capsys, monkeypatch):
    """--out DIR overwrote the files of any folder (a config.json and a policy.safetensors of the user's own)."""
    from prefine_core.cli import main

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("{}")
    (mine / "policy.safetensors").write_text("my own policy")
    code = main([*_finetune_argv(tmp_path, mine), "--json"])
    said = json.loads(capsys.readouterr().out).get("error", "")
    assert code == 2 and said.startswith(f"--out {mine} is not empty and holds no fine-tune run to resume"), said
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "policy.safetensors"]
    assert (mine / "config.json").read_text() == "{}" and (mine / "policy.safetensors").read_text() == "my own policy"


def test_finetune_here_needs_the_labels_a_background_run_needs(tmp_path, capsys, monkeypatch):
    """The foreground fine-tune trained on 1 decided pair, where --background and the app's Launch ask for 2. Without
    --workspace it reads the default workspace, as every command of the store does (it once required the flag)."""
    from prefine_core.cli import main

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    argv = _finetune_argv(tmp_path, tmp_path / "run", pairs=1)
    at = argv.index("--workspace")
    monkeypatch.setenv("PREFINE_WORKSPACE", argv.pop(at + 1))
    argv.pop(at)
    code = main([*argv, "--json"])
    said = json.loads(capsys.readouterr().out).get("error", "")
    assert code == 2 and said.startswith("1 pair of SafetyHalfCheetahVelocity-v1 has a winner") and "at least 2 need one before fine-tuning" in said
    assert not (tmp_path / "run").exists()


def test_finetune_shows_its_final_evaluation_and_resumes_in_its_own_folder(tmp_path, capsys, monkeypatch):
    """The final evaluation (the fine-tuned policy's and the reference's episodes) ran with no progress shown; a run
    folder this command wrote is taken again as --out (it resumes), though not empty."""
    from prefine_core.cli import main

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    argv = _finetune_argv(tmp_path, tmp_path / "run")
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "evaluate: 100%" in err and "| 4/4 " in err, err
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["path"] == str(tmp_path / "run" / "policy.safetensors")
    # deterministic and stochastic actions, both (DESIGN §5), for the new policy and the reference
    assert [result[k]["deterministic"] for k in ("evaluation", "reference", "evaluation_stochastic",
                                                 "reference_stochastic")] == [True, True, False, False]
    assert "cost_reduction_pct" in result["comparison_stochastic"]
    assert main([*argv, "--json", "--deterministic-only"]) == 0  # half the episodes, no stochastic keys
    result = json.loads(capsys.readouterr().out)
    assert [k for k in result if "stochastic" in k] == [] and result["evaluation"]["deterministic"]
    assert "cost_reduction_pct" in result["comparison"]


def test_finetune_in_the_background_is_the_apps_run(tmp_path, capsys, monkeypatch):
    """``--background`` records the run in the workspace and starts it as the app's Launch does: `runs` lists it,
    it registers its policy, and the policy file given is the workspace's own policy when its bytes are."""
    import time

    from conftest import make_policy
    from prefine_core.cli import main
    from prefine_core.policy import save_policy
    from test_app import small_workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = small_workspace(tmp_path / "ws", pairs=3)
    for pair in ws.store.list_pairs():
        ws.store.add_label(pair.id, "ann", "left")
    reference = ws.store.list_policies("SafetyHalfCheetahVelocity-v1", kind="reference")[0]
    flags = ["--steps", "20", "--eval-every", "10", "--eval-episodes", "1", "--json"]
    code = main(["finetune", "--policy", reference.path, "--background", "--pairs-from-teacher", "4", *flags])
    assert code == 2 and "drop --pairs-from-teacher" in json.loads(capsys.readouterr().out)["error"]
    code = main(["finetune", "--policy", reference.path, "--workspace", str(ws.root), "--background", "--out",
                 str(tmp_path / "out"), *flags])
    assert code == 2 and "drop --out" in json.loads(capsys.readouterr().out)["error"]
    code = main(["finetune", "--policy", reference.path, "--workspace", str(ws.root), "--background",
                 "--deterministic-only", *flags])
    assert code == 2 and "which a --background run does not make" in json.loads(capsys.readouterr().out)["error"]
    # a new policy of a task without labels here: refused, and the policy registered for it goes again (it stayed)
    hopper = save_policy(make_policy("SafetyHopperVelocity-v1"), tmp_path / "hopper-new.safetensors")
    registered = len(ws.store.list_policies())
    code = main(["finetune", "--policy", str(hopper), "--workspace", str(ws.root), "--background", *flags])
    assert code == 2 and "at least 2 need one before fine-tuning" in json.loads(capsys.readouterr().out)["error"]
    assert len(ws.store.list_policies()) == registered and not list((ws.policies_dir / "imported").glob("*"))
    code = main(["finetune", "--policy", reference.path, "--workspace", str(ws.root), "--background", *flags])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["start_policy_id"] == reference.id and out["status"] in ("queued", "running"), out
    deadline = time.time() + 240
    while ws.store.get_run(out["run_id"]).status in ("queued", "running") and time.time() < deadline:
        time.sleep(1)
    run = ws.store.get_run(out["run_id"])
    assert run.status == "done", (run.status, run.error)
    assert ws.store.get_policy(run.output_policy_id).parent_id == reference.id
    assert main(["runs", "--workspace", str(ws.root), "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["runs"]] == [run.id]


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`cli runs --json | head -c 250` printed a BrokenPipeError traceback."""
    policy = os.path.join(ROOT, "data", "policies", "SafetyHalfCheetahVelocity-v1", "reference.safetensors")
    child = subprocess.Popen([sys.executable, "-m", "prefine_core", "info", "--policy", policy, "--json"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    child.stdout.close()  # gone before the command prints
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 1 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_json_output_is_standard_json_without_nan(tmp_path, capsys):
    """pretrain --json printed `"return_mean": NaN` when no episode had finished (a short run): not JSON, which jq
    and every strict parser refuse. A figure with no value is null."""
    import numpy as np

    from prefine_core.cli import main, strict_json

    assert strict_json({"a": float("nan"), "b": [np.float32(1.5), float("inf"), np.int64(3)], "c": np.array([1.0, np.nan]),
                        "d": True, "e": "x", "f": None}) == {"a": None, "b": [1.5, None, 3], "c": [1.0, None],
                                                            "d": True, "e": "x", "f": None}
    out = tmp_path / "short.safetensors"
    assert main(["pretrain", "--task", "SafetyPointCircle1-v0", "--steps", "1", "--out", str(out), "--json"]) == 0
    said = capsys.readouterr().out
    summary = json.loads(said, parse_constant=lambda name: pytest.fail(f"{name} in the JSON output: {said}"))
    assert summary["episodes"] == 0 and summary["return_mean"] is None and out.is_file()


def test_pretrain_refuses_an_out_in_a_folder_that_is_not_there_before_training(tmp_path, capsys):
    """pretrain made a mistyped --out folder without a word (after training for as long as asked)."""
    from prefine_core.cli import main

    out = tmp_path / "polcies" / "slow.safetensors"
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--task", "SafetyPointCircle1-v0", "--steps", "1", "--out", str(out), "--json"])
    assert exit_info.value.code == 2
    assert f"argument --out: no folder {out.parent} to write {out} in" in json.loads(capsys.readouterr().out)["error"]
    assert list(tmp_path.iterdir()) == []


def test_pretrain_refuses_an_out_that_exists_unless_told_to_overwrite_it(tmp_path, capsys):
    """It replaced any file at --out without a word, a shipped reference too, which every workspace's clips name."""
    from prefine_core.cli import main

    out = tmp_path / "reference.safetensors"
    out.write_bytes(b"kept")
    assert main(["pretrain", "--task", "SafetyPointCircle1-v0", "--steps", "1", "--out", str(out), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == (f"--out {out} exists; give a new path, or add --overwrite "
                                                            "to replace that file")
    assert out.read_bytes() == b"kept"
    assert main(["pretrain", "--task", "SafetyPointCircle1-v0", "--steps", "1", "--out", str(out), "--overwrite",
                 "--json"]) == 0
    assert load_policy(out).meta.task_id == "SafetyPointCircle1-v0"


def test_every_flag_with_a_default_says_it_in_help_and_says_the_one_it_has():
    """Help showed no default for flags such as ``pairs --seed`` or ``pretrain --snapshot-every``; and a default
    written by hand into a help text can go stale when the code's default changes. Every flag with a default shows
    it, and the value shown is the parser's own (``label-synthetic --overlap``'s 1 000 000 is said in words)."""
    import argparse
    import re

    in_words = {("label-synthetic", "--overlap"): "label every pair"}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for name, command in sub.choices.items():
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
                continue
            text = formatter._get_help_string(action) % {}
            said = re.search(r"\(default:? ([^);]+)", text)
            assert said, f"{name} {action.option_strings[0]}: no default in its help: {text!r}"
            value = action.default
            items = value if isinstance(value, (list, tuple)) else [value]
            forms = {",".join(map(str, items)), " ".join(map(str, items)),
                     ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in items),
                     in_words.get((name, action.option_strings[0]), "\0")}
            assert any(said[1].startswith(form) for form in forms), \
                f"{name} {action.option_strings[0]}: help says default {said[1]!r}, the parser's is {value!r}"
            checked += 1
    assert checked > 30


def test_every_command_line_in_the_readme_names_a_command_and_flags_that_exist():
    """The README's examples are what people copy: each ``./studio cli`` line names a command and only flags it
    has (a flag renamed in the code and not in the README failed only in someone's hands)."""
    import argparse
    import shlex
    from pathlib import Path

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    lines = [line.split("./studio cli", 1)[1] for line in (Path(ROOT) / "README.md").read_text().splitlines()
             if line.lstrip().startswith("./studio cli ")]
    assert len(lines) > 20
    for line in lines:
        words = shlex.split(line, comments=True)
        command = sub.choices.get(words[0])
        assert command is not None, f"README: no command {words[0]!r}: {line}"
        flags = {flag for action in command._actions for flag in action.option_strings}
        unknown = [word.split("=")[0] for word in words[1:] if word.startswith("--") and word.split("=")[0] not in flags]
        assert not unknown, f"README: {words[0]} has no {unknown}: {line}"


def test_a_result_reads_as_text_with_tables_for_records():
    """Without --json, lists of records (agreement's annotators, policies, the pool) were printed as JSON lists."""
    from prefine_core.cli.text import human_lines

    path = "/a/long/folder/" + "x" * 80 + "/reference.safetensors"
    lines = human_lines({"rows": [{"name": "alice", "kappa": 0.123456, "n": 12, "path": path},
                                  {"name": "bob", "kappa": None, "n": 3, "return": 2670.4, "error": "Boom:\nat line 2"}],
                         "counts": {"pairs": 6, "labels": 0}, "ids": [7, 8], "none": [], "said": "ok", "alpha": None})
    assert lines[0] == "rows:"
    assert lines[1].split() == ["name", "kappa", "n", "path", "return", "error"]
    alice, bob = lines[2].split(), lines[3].split()
    assert alice == ["alice", "0.1235", "12", path, "—", "—"], "a path whole, to copy"
    assert bob == ["bob", "—", "3", "—", "2670", "Boom:", "⏎", "at", "line", "2"], "an error on its row's one line"
    from prefine_core.cli.text import cell

    assert cell("a\r\nb\tc\x1b[31m") == "a ⏎ b\\tc\\x1b[31m", "no carriage return, tab or escape reaches the terminal"
    n_ends = lines[1].index("n  path") + 1
    assert lines[2][:n_ends].endswith(" 12") and lines[3][:n_ends].endswith("  3"), "numbers are right-aligned"
    assert lines[4:] == ["counts: pairs 6, labels 0", "ids: 7, 8", "none: none", "said: ok", "alpha: None"]


def test_finetune_names_a_saved_state_cut_short_in_its_out_folder(tmp_path, capsys, monkeypatch):
    """A state.json cut short was said to be no state.json at all ("holds no fine-tune run to resume")."""
    from prefine_core.cli import main

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    argv = _finetune_argv(tmp_path, tmp_path / "run")
    assert main(argv) == 0
    state = tmp_path / "run" / "state.json"
    state.write_text(state.read_text()[:40])
    capsys.readouterr()
    assert main([*argv, "--json"]) == 2
    said = json.loads(capsys.readouterr().out)["error"]
    assert said.startswith(f"{state} is not a readable trainer state") and "move it away" in said, said


def test_studio_cli_reads_relative_paths_from_where_it_is_typed(tmp_path):
    """``./studio`` works from its checkout, and ``cli`` ran there too: from another folder, ``--policy p.safetensors``
    was "no file", and a relative ``--out`` or ``PREFINE_WORKSPACE`` landed inside the checkout."""
    import shutil

    shutil.copyfile(next((Path(ROOT) / "data" / "policies" / CHEETAH).glob("*.safetensors")), tmp_path / "p.safetensors")
    env = dict(os.environ, PREFINE_WORKSPACE="here", PREFINE_SHIPPED_POLICIES="")
    env.pop("PREFINE_DB_URL", None)
    said = subprocess.run([str(Path(ROOT) / "studio"), "cli", "info", "--policy", "p.safetensors"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert said.returncode == 0 and f"task_id: {CHEETAH}" in said.stdout, said.stderr
    made = subprocess.run([str(Path(ROOT) / "studio"), "cli", "policies", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 2 and f"the workspace {tmp_path / 'here'} does not exist" in made.stdout, made.stdout
    assert not (Path(ROOT) / "here").exists()
