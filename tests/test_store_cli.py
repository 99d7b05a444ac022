"""The store's CLI commands end to end on a tiny real pool: pairs, label-synthetic, agreement, export, import."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CHEETAH, HOPPER, make_policy
from prefine_core.store.engine import sqlite_url


def _run(capsys, *argv) -> tuple[int, dict]:
    from prefine_core.cli import main

    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def test_cli_pipeline(tmp_path, capsys, monkeypatch):
    from prefine_core.policy import save_policy

    save_policy(make_policy(CHEETAH), tmp_path / "shipped" / CHEETAH / "reference.safetensors")
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", str(tmp_path / "shipped"))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws, ws2 = str(tmp_path / "ws"), str(tmp_path / "ws2")

    code, out = _run(capsys, "pairs", "--workspace", ws, "--task", CHEETAH, "--collect", "--seeds", "0,1",
                     "--temperatures", "0.5,1", "--clip-length", "30", "--max-steps", "60", "--n", "3",
                     "--strategy", "diversity")
    assert code == 0 and len(out["pairs_added"]) == 3 and out["clips_added"] == 8
    assert {row["source"] for row in out["pool"]} == {"reference:reference@T0.5", "reference:reference@T1"}

    code, out = _run(capsys, "pairs", "--workspace", ws, "--render-only", "--size", "48")
    assert code == 0 and out["render"]["rendered"] == 3 and out["counts"]["videos_ready"] == 3

    code, out = _run(capsys, "label-synthetic", "--workspace", ws, "--mistake-rate", "0.2", "--seed", "1")
    assert code == 0 and out["labels_written"] == 3 and out["counts"]["labelled"] == 3

    code, out = _run(capsys, "agreement", "--workspace", ws)
    assert code == 0 and out["annotators"][0]["annotator"] == "synthetic-teacher" and out["judgements"] == 3
    from prefine_core.cli import main

    assert main(["agreement", "--workspace", ws]) == 0  # for a person: tables, not JSON lists
    lines = capsys.readouterr().out.splitlines()
    header = lines.index("annotators:") + 1
    assert lines[header].split() == ["annotator", "judgements", "agreement", "decided", "decided_agreement"]
    assert lines[header + 1].split()[:2] == ["synthetic-teacher", "3"] and "synthetic: synthetic-teacher" in lines

    code, out = _run(capsys, "export", "--workspace", ws, "--out", str(tmp_path / "bundle"))
    assert code == 0 and out["labels"] == 3 and out["trajectories"] == 8 and out["videos"] == 3
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    code, out = _run(capsys, "import", str(tmp_path / "bundle"), "--workspace", ws2)
    assert code == 0 and out == {"kind": "bundle", "policies": 1, "trajectories": 8, "pairs": 3, "labels": 3,
                                 "videos": 3, "videos_for_pairs_here": 0, "labels_already_here": 0,
                                 "pairs_deleted_here": 0, "labels_on_deleted_pairs": 0, "tasks": [CHEETAH]}
    code, out = _run(capsys, "import", str(tmp_path / "bundle"), "--workspace", ws2)  # again: a success adding nothing
    assert code == 0 and out == {"kind": "bundle", "policies": 0, "trajectories": 0, "pairs": 0, "labels": 0,
                                 "videos": 0, "videos_for_pairs_here": 0, "labels_already_here": 3,
                                 "pairs_deleted_here": 0, "labels_on_deleted_pairs": 0, "tasks": [CHEETAH]}
    from prefine_core.workspace import Workspace
    second = Workspace.open(Path(ws2), shipped=None)
    second.delete_pairs([second.store.list_pairs(CHEETAH)[0].id])  # the Data page's Delete
    code, out = _run(capsys, "import", str(tmp_path / "bundle"), "--workspace", ws2)
    assert code == 0 and (out["pairs"], out["labels_already_here"], out["pairs_deleted_here"]) == (0, 2, 1)
    code, out = _run(capsys, "import", str(tmp_path / "bundle"), "--workspace", ws2, "--restore-deleted")
    assert code == 0 and (out["pairs"], out["labels"], out["pairs_deleted_here"]) == (1, 1, 0)

    (tmp_path / "x.hdf5").write_bytes(b"not hdf5")
    code, out = _run(capsys, "import", str(tmp_path / "x.hdf5"), "--workspace", ws2)
    assert code == 2 and "--task" in out["error"]
    code, out = _run(capsys, "import", str(tmp_path / "x.hdf5"), "--workspace", ws2, "--task", CHEETAH)
    assert code == 2 and "x.hdf5" in out["error"]
    code, out = _run(capsys, "import", str(tmp_path / "x.hdf5"), "--workspace", ws2, "--task", CHEETAH, "--restore-deleted")
    assert code == 2 and out["error"] == "--restore-deleted adds back pairs of an export (a folder or .zip), not of x.hdf5"

    # more pairs asked for than the pool's 8 clips make (28, 3 taken): the rest are added, and the shortfall said
    code, out = _run(capsys, "pairs", "--workspace", ws, "--task", CHEETAH, "--n", "50")
    assert code == 0 and len(out["pairs_added"]) == 25 and out["note"].startswith("25 of the 50 pairs asked for"), out
    with pytest.raises(SystemExit) as refused:
        _run(capsys, "pairs", "--workspace", ws, "--task", CHEETAH, "--n", "10001")
    assert refused.value.code == 2 and "--n: expected a whole number from 1 to 10000" in capsys.readouterr().err


def test_cli_rejects_a_bad_task(capsys):
    from prefine_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["pairs", "--task", "SafetyCheetah-v9"])
    assert exc.value.code == 2 and "unknown task id" in capsys.readouterr().err


def test_cli_import_takes_what_the_data_page_takes(tmp_path, capsys, monkeypatch):
    """The zip the Data page downloads, a policy file, and a path that is not there, each said in words."""
    from prefine_core import transfer
    from prefine_core.policy import save_policy
    from prefine_core.rollout import collect
    from prefine_core.envs import SafetyTask
    from prefine_core.workspace import Workspace

    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    source = Workspace.open(tmp_path / "source", shipped=None)
    with SafetyTask(CHEETAH) as task:
        ids = [source.store.add_trajectory(collect(make_policy(CHEETAH), task, seed=s, max_steps=10), None, "t",
                                           source.trajectories_dir) for s in range(2)]
    source.store.add_label(source.store.add_pair(ids[0], ids[1], "random", 0.0, "r"), "ann", "left")
    (tmp_path / "export.zip").write_bytes(transfer.export_zip(source, CHEETAH))
    target = str(tmp_path / "target")
    code, out = _run(capsys, "import", str(tmp_path / "export.zip"), "--workspace", target)
    assert code == 0 and out["kind"] == "bundle" and (out["pairs"], out["labels"], out["trajectories"]) == (1, 1, 2)
    counts = Workspace.open(target, shipped=None).store.counts()
    code, out = _run(capsys, "import", str(tmp_path / "export.zip"), "--workspace", target)  # again: nothing new
    assert code == 0 and (out["pairs"], out["labels"], out["trajectories"], out["labels_already_here"]) == (0, 0, 0, 1)
    assert Workspace.open(target, shipped=None).store.counts() == counts

    policy = save_policy(make_policy(CHEETAH), tmp_path / "mine.safetensors")
    code, out = _run(capsys, "import", str(policy), "--workspace", target)
    assert code == 0 and out["kind"] == "policy" and out["added"] is True and out["task_id"] == CHEETAH
    code, again = _run(capsys, "import", str(policy), "--workspace", target)
    assert code == 0 and again["policy_id"] == out["policy_id"] and again["added"] is False

    code, out = _run(capsys, "import", str(tmp_path / "nowhere.zip"), "--workspace", target)
    assert code == 2 and "nowhere.zip does not exist" in out["error"]
    (tmp_path / "notes.txt").write_text("hello")
    code, out = _run(capsys, "import", str(tmp_path / "notes.txt"), "--workspace", target)
    assert code == 2 and "not a file PREFINE Studio can import" in out["error"]


@pytest.mark.parametrize("command", [["export"], ["agreement"], ["label-synthetic"], ["pairs", "--render-only"], ["policies"],
                                     ["pairs", "--task", CHEETAH, "--n", "2"]])
def test_a_command_that_reads_a_workspace_refuses_one_that_is_not_there(tmp_path, capsys, monkeypatch, command):
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    missing = tmp_path / "typo"
    code, out = _run(capsys, *command, "--workspace", str(missing))
    assert code == 2 and f"the workspace {missing} does not exist" in out["error"]
    assert not missing.exists(), "no empty workspace made where one was looked for"


def test_cli_runs_lists_every_kind_and_cancels_one(tmp_path, capsys, monkeypatch):
    from prefine_core import jobs
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    monkeypatch.setattr(jobs, "_spawn", lambda ws, run_id: None)  # queued, as a run is while its process starts
    render = jobs.launch(ws, "render", CHEETAH, None, {})
    tune = ws.store.create_run(CHEETAH, None, "prefine", {"steps": 10})
    ws.store.add_metrics(tune, 7, {"loss/total": 1.0})
    ws.store.update_run(tune, status="failed", error="boom")
    code, out = _run(capsys, "runs", "--workspace", str(ws.root))
    assert code == 0 and [(r["id"], r["kind"], r["status"], r["step"]) for r in out["runs"]] == [
        (tune, "prefine", "failed", 7), (render, "render", "queued", None)]
    code, out = _run(capsys, "runs", "--workspace", str(ws.root), "--cancel", str(render))
    assert code == 0 and out["cancelled"] == render and ws.store.get_run(render).status == "cancelled"
    code, out = _run(capsys, "runs", "--workspace", str(ws.root), "--cancel", "999")
    assert code == 2 and out["error"] == "--cancel: run_id 999 does not exist"
    code, out = _run(capsys, "runs", "--workspace", str(ws.root), "--resume", "999")
    assert code == 2 and out["error"] == "--resume: run_id 999 does not exist"
    code, out = _run(capsys, "runs", "--workspace", str(ws.root), "--cancel", str(tune))  # over already: not a success
    assert code == 2 and out["error"] == f"run {tune} is failed; only queued or running runs can be cancelled"


def test_runs_refuses_cancel_and_resume_together_before_either_acts(tmp_path, capsys, monkeypatch):
    """`runs --cancel 1 --resume 1` cancelled the run, then refused the resume (or resumed it: a queued run), and said
    only that."""
    from prefine_core.cli import main
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    run = ws.store.create_run(CHEETAH, None, "prefine", {"steps": 10})
    with pytest.raises(SystemExit) as refused:
        main(["runs", "--workspace", str(ws.root), "--cancel", str(run), "--resume", str(run), "--json"])
    said = json.loads(capsys.readouterr().out)["error"]
    assert refused.value.code == 2 and said.endswith("argument --resume: not allowed with argument --cancel"), said
    assert ws.store.get_run(run).status == "queued"


def test_agreement_sets_people_per_pair_as_the_data_page_does(tmp_path, capsys, monkeypatch):
    from prefine_core.cli import main
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    root = str(ws.root)
    code, out = _run(capsys, "agreement", "--workspace", root, "--task", CHEETAH, "--people-per-pair", " 3 ")
    assert code == 0 and out["people_per_pair"] == 3 and ws.store.task_overlap(CHEETAH) == 3
    assert out["set"] == f"each pair of {CHEETAH} now goes to 3 people; judged pairs are offered to more people until that many judged them"
    said = {}
    for typed in ("0", "11", "2.5", "2.0", "two", "", "٣"):  # refused as every whole-number flag: "2.0" was taken as 2
        with pytest.raises(SystemExit) as refused:
            main(["agreement", "--workspace", root, "--task", CHEETAH, "--people-per-pair", typed, "--json"])
        said[typed] = json.loads(capsys.readouterr().out)["error"]
        assert refused.value.code == 2 and "argument --people-per-pair: expected " in said[typed], typed
    assert said["11"].endswith("argument --people-per-pair: expected a whole number from 1 to 10, got 11")
    assert ws.store.task_overlap(CHEETAH) == 3
    code, out = _run(capsys, "agreement", "--workspace", root, "--people-per-pair", "2")
    assert code == 2 and out["error"] == "--people-per-pair needs --task (each task has its own)"
    code, out = _run(capsys, "agreement", "--workspace", root, "--task", CHEETAH)
    assert code == 0 and out["people_per_pair"] == 3 and "set" not in out


def test_cli_policies_lists_and_deletes_as_the_data_page_does(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    from prefine_core import transfer
    from prefine_core.policy import save_policy
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws")  # the shipped policies
    root = str(ws.root)
    data = save_policy(make_policy(CHEETAH), tmp_path / "wrong.safetensors").read_bytes()
    wrong, _ = transfer.register_policy(ws, "wrong.safetensors", data)
    shipped = ws.store.list_policies(CHEETAH, kind="reference")[0]
    code, out = _run(capsys, "policies", "--workspace", root, "--task", CHEETAH)
    assert code == 0 and [p["id"] for p in out["policies"]] == [p.id for p in ws.store.list_policies(CHEETAH)]
    assert {p["task_id"] for p in out["policies"]} == {CHEETAH} and wrong.id in [p["id"] for p in out["policies"]]
    everything = len(ws.store.list_policies())
    code, out = _run(capsys, "policies", "--workspace", root, "--delete", str(shipped.id))
    assert code == 2 and "is shipped with PREFINE Studio" in out["error"]
    for typo in ("abc", "0", "-3", "2.5"):  # refused by the parser, before the workspace is read
        with pytest.raises(SystemExit) as refused:
            _run(capsys, "policies", "--workspace", root, "--delete", typo)
        said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert refused.value.code == 2 and "argument --delete" in said["error"] and said["error"].endswith((typo, repr(typo))), typo
    code, out = _run(capsys, "policies", "--workspace", root, "--delete", "424242")
    assert code == 2 and out["error"] == "--delete: policy_id 424242 does not exist"
    code, out = _run(capsys, "policies", "--workspace", root, "--delete", "9" * 30)  # past any SQL integer
    assert code == 2 and out["error"].startswith(f"--delete: policy_id {'9' * 30} does not exist")
    code, out = _run(capsys, "policies", "--workspace", root, "--delete", str(wrong.id), "--task", HOPPER)
    assert code == 2 and out["error"] == f"policy {wrong.id} is a policy for {CHEETAH}, not {HOPPER}; nothing was deleted"
    assert len(ws.store.list_policies()) == everything, "nothing deleted by a refusal"
    code, out = _run(capsys, "policies", "--workspace", root, "--delete", str(wrong.id))
    assert code == 0 and out["deleted"] == {"id": wrong.id, "name": wrong.name, "task_id": CHEETAH}
    assert wrong.id not in [p["id"] for p in out["policies"]] and not Path(wrong.path).exists()


def test_a_policy_id_that_is_not_an_integer_is_named_so(tmp_path, monkeypatch):
    """Workspace.delete_policy looked the id up before checking it, so "abc" read "does not exist"."""
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    for typo in ("abc", 2.0, True, None):
        with pytest.raises(ValueError, match=f"policy_id must be a positive integer id, got {typo!r}"):
            ws.delete_policy(typo)
        with pytest.raises(ValueError, match="policy_id must be a positive integer id"):
            ws.store.get_policy(typo)


def test_export_refuses_an_out_in_a_folder_that_is_not_there(tmp_path, capsys, monkeypatch):
    """export --out made every missing folder of a mistyped path without a word (render and pretrain refuse it)."""
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    out = tmp_path / "exprots" / "today"
    with pytest.raises(SystemExit) as refused:
        _run(capsys, "export", "--workspace", str(ws.root), "--out", str(out))
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]
    assert refused.value.code == 2 and f"argument --out: no folder {out.parent} to write {out} in" in said
    assert not out.parent.exists()
    code, done = _run(capsys, "export", "--workspace", str(ws.root), "--out", str(tmp_path / "today"))  # a new folder
    assert code == 0 and done["folder"] == str(tmp_path / "today") and (tmp_path / "today" / "manifest.json").is_file()


def test_a_reading_command_makes_no_workspace_where_there_is_none(tmp_path, capsys, monkeypatch):
    """`agreement --workspace` on a folder holding something else filled it with a workspace's folders and reported
    zeros; a mistyped $PREFINE_WORKSPACE made its whole path. Both are refused now, and nothing is created."""
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    other = tmp_path / "rollouts"
    other.mkdir()
    (other / "episode.npz").write_bytes(b"not ours")
    code, out = _run(capsys, "agreement", "--workspace", str(other))
    assert code == 2 and out["error"].startswith(f"the workspace {other} holds no PREFINE store")
    assert sorted(p.name for p in other.iterdir()) == ["episode.npz"]
    typo = tmp_path / "wrokspace" / "a" / "b"
    monkeypatch.setenv("PREFINE_WORKSPACE", str(typo))
    code, out = _run(capsys, "runs")
    assert code == 2 and out["error"].startswith(f"the workspace {typo} does not exist")
    assert not (tmp_path / "wrokspace").exists()
    # with a shared store (PREFINE_DB_URL) the workspace's files are still in its folder: a typo was made, and every
    # clip it could not find there was passed over ("clip 30 cannot be read"), exit 0
    monkeypatch.setenv("PREFINE_DB_URL", sqlite_url(tmp_path / "shared.db"))
    code, out = _run(capsys, "label-synthetic", "--workspace", str(typo), "--task", CHEETAH)
    assert code == 2 and out["error"].startswith(f"the workspace {typo} does not exist")
    assert not (tmp_path / "wrokspace").exists()
