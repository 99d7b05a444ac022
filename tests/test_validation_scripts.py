"""scripts/validate_selection.py on hand-made run folders whose checkpoint outcomes are cached (no rollouts):
the frontier, the seed-by-seed difference and the export are checked against numbers worked out by hand; and
scripts/bench_demo.py on a tiny pool."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHEETAH, make_policy

REPO = Path(__file__).resolve().parent.parent

#: (variant, seed) -> {step: (validation return, cost, fall rate)}; the trainer chose step 2 everywhere.
OUTCOMES = {
    ("prefine", 1): {1: (100.0, 3.0, 0.0), 2: (120.0, 20.0, 0.0)},
    ("bc", 1): {1: (90.0, 4.0, 0.0), 2: (130.0, 30.0, 0.0)},
    ("prefine", 2): {1: (110.0, 0.0, 0.0), 2: (150.0, 8.0, 0.5)},  # step 2 fell once: never on the frontier
    ("bc", 2): {1: (80.0, 2.0, 0.0), 2: (100.0, 9.0, 0.0)},
}


def _runs(folder: Path) -> None:
    from prefine_core.policy import save_policy

    for (variant, seed), outcomes in OUTCOMES.items():
        run = folder / f"{variant}_n4_s{seed}"
        policy = make_policy(CHEETAH, hidden_sizes=(8,), provenance={"step": 2})
        save_policy(policy, run / "policy.safetensors")
        for step in outcomes:
            save_policy(policy, run / "checkpoints" / f"step_{step:07d}.safetensors")
        history = [{"step": s, "val/safety": 1.0, "eval/return": r, "eval/length": 1000.0} for s, (r, _, _) in outcomes.items()]
        (run / "state.json").write_text(json.dumps({"step": 2, "history": history}))
        (run / "config.json").write_text(json.dumps({"steps": 2}))
        cache = {str(s): {"return": r, "cost": c, "fall_rate": f} for s, (r, c, f) in outcomes.items()}
        (run / "selection-9800.json").write_text(json.dumps(cache))
    (folder / "not_a_run_name").mkdir()
    (folder / "not_a_run_name" / "state.json").write_text("{}")


def test_frontier_paired_difference_and_export_are_what_the_outcomes_say(tmp_path):
    _runs(tmp_path / "runs")
    out = subprocess.run([sys.executable, "scripts/validate_selection.py", str(tmp_path / "runs"), "--validation-seed", "9800",
                          "--frontier", "5", "25", "--paired", "prefine", "bc", "--export", str(tmp_path / "x.jsonl")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "skip" in out.stderr and "not_a_run_name" in out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    frontier = {(r["variant"], r["frontier_cost_at_most"]): r["best_return"] for r in lines if "variant" in r and "frontier_cost_at_most" in r}
    assert frontier[("prefine", 5.0)] == 105.0 and frontier[("bc", 5.0)] == 85.0  # (100 + 110) / 2, (90 + 80) / 2
    assert frontier[("prefine", 25.0)] == 115.0  # seed 2's step 2 fell: 110, not 150
    paired = {r.get("frontier_cost_at_most", r.get("rule")): r for r in lines if "paired" in r}
    assert paired[5.0]["return"] == [20.0, 10.0] and paired[5.0]["ahead_on_return"] == 2  # diffs 10 and 30
    assert paired[25.0]["return"] == [20.0, 10.0]  # seed 1: 120 − 90 (BC's 130 costs 30); seed 2: 110 − 100
    today = paired["return_within_tolerance"]  # both pick step 2 (highest return, all equally safe)
    assert today["return"] == [20.0, 30.0] and today["cost"] == [-5.5, 4.5] and today["seeds"] == 2
    exported = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert len(exported) == 8 and sum(r["chosen"] for r in exported) == 4
    assert {(r["variant"], r["seed"], r["step"], r["validation_cost"]) for r in exported if r["chosen"]} == {
        ("prefine", 1, 2, 20.0), ("bc", 1, 2, 30.0), ("prefine", 2, 2, 8.0), ("bc", 2, 2, 9.0)}


@pytest.mark.slow
def test_bench_demo_goes_homes_path_through_the_apps_jobs(tmp_path):
    """scripts/bench_demo.py on a tiny pool: the prepare job, auto-labelling, the demo's fine-tune and one more
    setting, each compared with the reference by a compare job; one JSON object out, BENCHMARKS.md untouched."""
    benchmarks = (REPO / "BENCHMARKS.md").read_bytes()
    pool = {"seeds": [0], "max_steps": 100, "clip_length": 50, "pairs": 6}
    out = subprocess.run([sys.executable, "scripts/bench_demo.py", "--tasks", CHEETAH, "--seeds", "0", "--labels", "4",
                          "--finetune", json.dumps({"steps": 40, "eval_every": 20}), "--pool", json.dumps(pool),
                          "--also", json.dumps({"steps": 20, "eval_every": 10}), "--no-write"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    [task] = json.loads(out.stdout)["results"]
    assert task["task"] == CHEETAH and task["pool"] == pool and task["pairs"] == 6
    assert task["labelled"] == "The synthetic teacher labelled 4 pairs." and task["prepare_seconds"] > 0
    assert [run["settings"] for run in task["runs"]] == [{}, {"steps": 20, "eval_every": 10}]
    for run in task["runs"]:
        assert len(run["before"]["costs"]) == len(run["after"]["costs"]) == 5  # the Compare page's 5 episodes
        assert run["verdict"].startswith("B ") and run["finetune_seconds"] > 0
    assert task["runs"][0]["selected_step"] <= 40 and task["runs"][1]["selected_step"] <= 20
    assert (REPO / "BENCHMARKS.md").read_bytes() == benchmarks


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "--steps must be positive, got 0"),
    (["--k", "2", "nan"], "--k must be positive, got nan"),
    (["--start-log-std", "9"], "--start-log-std must be from -5 to 2, got 9.0"),
])
def test_the_rl_stage_study_refuses_bad_flags_by_name_before_it_trains(flags, message):
    out = subprocess.run([sys.executable, "scripts/validate_rl_stage.py", "--task", CHEETAH, *flags],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr and out.stdout == ""


def test_bench_reproduces_matches_rows_by_their_key_and_names_each_figure_that_differs(tmp_path, capsys):
    """scripts/bench_reproduces.py on hand-made rows: a rerun row matched to the committed one of the same method and
    seed, identical when every figure is, and each differing figure named with both values (exit 1)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_reproduces

    def row(method, seed, cost, **extra):
        return {"section": "grid", "reference": "ppo", "pool": "full", "pairs": 4, "method": method, "seed": seed,
                "return_mean": 10.0, "cost_mean": cost, "selected_step": 2, "finetune_seconds": 9.0 + seed, **extra}

    committed, rerun = tmp_path / "committed", tmp_path / "rerun"
    committed.mkdir()
    reference = {"return_mean": 12.0, "cost_mean": 50.0}
    (committed / "result.json").write_text(json.dumps({
        "task": CHEETAH, "command": "bench …", "reference": reference, "lagrangian": {"return_mean": 9.0},
        "rows": [row("prefine", 0, 5.0), row("bc", 0, 7.0), row("prefine", 1, 3.0)]}))
    rates = {"violation_rate_k20": 0.5, "catastrophic_rate_k20": 0.25, "normalized_cost_k20": 0.25}
    for name, written in {"prefine_n4_s0": row("prefine", 0, 5.0, finetune_seconds=99.0, **rates),
                          "bc_n4_s0": row("bc", 0, 7.5, **rates)}.items():
        (rerun / "runs" / name).mkdir(parents=True)
        (rerun / "runs" / name / "row.json").write_text(json.dumps(written))
    (rerun / "runs" / "prefine_n4_s1").mkdir()  # begun, not finished: no row yet
    (rerun / "result.json").write_text(json.dumps({"reference": {**reference, **rates}, "lagrangian": {"return_mean": 9.5}}))

    assert bench_reproduces.main(["--run", str(rerun), str(committed)]) == 1
    said = capsys.readouterr().out
    assert "it finished 2 of them before the rerun was stopped. **1 of the 2 rows compared are identical**" in said
    assert "- DIFFERS: bc seed 0: cost_mean 7.0 → 7.5" in said and "prefine seed 0" not in said.split("DIFFERS")[1]
    assert "- reference: identical" in said and "- lagrangian: DIFFERS in return_mean" in said
    assert "| reference | – | 0.50 | 0.25 | 0.25 |" in said and "| bc | 1 | 0.50 | 0.25 | 0.25 |" in said
    (rerun / "runs" / "bc_n4_s0" / "row.json").write_text(json.dumps(row("bc", 0, 7.0)))  # every row alike now
    assert bench_reproduces.main(["--run", str(rerun), str(committed)]) == 1, "the Lagrangian still differs"
    (rerun / "result.json").unlink()  # a rerun stopped before its first seed's end: its baselines not yet evaluated
    assert bench_reproduces.main(["--run", str(rerun), str(committed)]) == 0
    said = capsys.readouterr().out.split("**SafetyHalfCheetahVelocity-v1**")[-1]
    assert "**2 of the 2 rows compared are identical**" in said and "- reference: not evaluated yet by the rerun" in said
