"""The store's CLI commands end to end on a tiny real pool: pairs, label-synthetic, agreement, export, import."""
from __future__ import annotations

import json

import pytest

from conftest import CHEETAH, make_policy


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

    code, out = _run(capsys, "export", "--workspace", ws, "--out", str(tmp_path / "bundle"))
    assert code == 0 and out["labels"] == 3 and out["trajectories"] == 8
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    code, out = _run(capsys, "import", str(tmp_path / "bundle"), "--workspace", ws2)
    assert code == 0 and out == {"kind": "bundle", "policies": 1, "trajectories": 8, "pairs": 3, "labels": 3,
                                 "labels_already_here": 0}
    code, out = _run(capsys, "import", str(tmp_path / "bundle"), "--workspace", ws2)
    assert code == 2 and "already in the workspace" in out["error"]

    (tmp_path / "x.hdf5").write_bytes(b"not hdf5")
    code, out = _run(capsys, "import", str(tmp_path / "x.hdf5"), "--workspace", ws2)
    assert code == 2 and "--task" in out["error"]
    code, out = _run(capsys, "import", str(tmp_path / "x.hdf5"), "--workspace", ws2, "--task", CHEETAH)
    assert code == 2 and "x.hdf5" in out["error"]


def test_cli_rejects_a_bad_task(capsys):
    from prefine_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["pairs", "--task", "SafetyCheetah-v9"])
    assert exc.value.code == 2 and "unknown task id" in capsys.readouterr().err
