"""The benchmark and the finetune CLI, end to end with tiny budgets."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from prefine_core.bench import BenchConfig, Clip, label_pairs, paper_split, summary_markdown, task_markdown
from prefine_core.policy import load_policy
from prefine_core.prefine import PrefineConfig
from prefine_core.rollout import Trajectory

REPO = Path(__file__).resolve().parent.parent
TASK = "SafetyHalfCheetahVelocity-v1"
ROW_KEYS = {"task", "method", "pairs", "seed", "return_mean", "cost_mean", "length_mean", "violation_rate",
            "catastrophic_rate", "finetune_seconds"}


def _clip(cost: float, ret: float, seed: int) -> Clip:
    import numpy as np

    costs = np.zeros(10, np.float32)
    costs[: int(cost)] = 1.0
    return Clip("src", Trajectory(TASK, np.zeros((10, 3), np.float32), np.zeros((10, 2), np.float32),
                                  np.full(10, ret / 10, np.float32), costs, False, True, seed=seed))


def test_labels_are_nested_across_budgets_and_winners_are_safer():
    pool = [_clip(c, r, s) for s, (c, r) in enumerate([(0, 1), (2, 5), (5, 9), (9, 9), (1, 3), (0, 2)])]
    small, large = label_pairs(pool, 4, seed=0), label_pairs(pool, 8, seed=0)
    assert large[: len(small)] == small
    for winner, loser in large:
        assert (winner.total_cost, -winner.total_return) < (loser.total_cost, -loser.total_return)


def test_a_labeller_who_errs_swaps_that_share_of_the_same_pairs():
    pool = [_clip(c, r, s) for s, (c, r) in enumerate([(c % 10, c) for c in range(40)])]
    clean, noisy = label_pairs(pool, 300, seed=3), label_pairs(pool, 300, seed=3, mistake_rate=0.2)
    assert [frozenset(map(id, p)) for p in clean] == [frozenset(map(id, p)) for p in noisy], "the same pairs"
    swapped = sum(a[0] is not b[0] for a, b in zip(clean, noisy)) / len(clean)
    assert 0.13 < swapped < 0.27, swapped


def test_paper_split_uses_the_threshold_scaled_to_the_clip():
    pool = [_clip(c, 1, s) for s, c in enumerate([0, 0, 1, 3, 5, 8])]
    data = paper_split(pool, kappa=20.0, sizes=(10, 10), seed=0, episode_steps=100, window=10)  # threshold 2 per clip
    assert sorted(t.total_cost for t in data.winners) == [0, 0, 1] and not data.paired
    assert sorted(t.total_cost for t in data.losers) == [3, 5, 8]


@pytest.fixture(scope="module")
def quick_bench_root(tmp_path_factory) -> Path:
    """One folder for this module's quick benchmarks: the second finds the first's reference, PPO-Lagrangian, pool
    and the runs they share in the benchmark's own cache (a rerun of a benchmark goes on from it alike)."""
    return tmp_path_factory.mktemp("quick-bench")


@pytest.mark.slow
def test_quick_bench_cli_prints_the_documented_json(tmp_path, quick_bench_root):
    out = subprocess.run([sys.executable, "-m", "prefine_core", "bench", "--task", TASK, "--quick", "--json",
                          "--out", str(quick_bench_root / TASK)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert {"return_mean", "cost_mean"} <= set(result["reference"]) and {"return_mean", "cost_mean"} <= set(result["lagrangian"])
    assert {r["method"] for r in result["rows"]} >= {"prefine", "bc", "dpo", "bc_net", "pairs"}
    assert all(ROW_KEYS <= set(r) for r in result["rows"])
    assert {r["section"] for r in result["rows"]} == {"grid", "no-safe-pool", "paper", "rounds"}
    assert result["pool"] and all({"source", "return_mean", "cost_mean"} <= set(p) for p in result["pool"])
    saved = json.loads((quick_bench_root / TASK / "result.json").read_text())
    text = task_markdown(saved)
    assert "Floors" in text and "PPO-Lagrangian" in text and "prefine" in text
    summary = summary_markdown([saved]).splitlines()
    assert len(summary) == 3 and TASK in summary[2]  # header, rule, the one budget of --quick
    assert summary[2].count("| yes") + summary[2].count("| no") == 3  # floor met, beats BC, beats DPO: each decided

    # BENCHMARKS.md is rewritten from the results under the root, and never drops a run it shows but cannot find
    from prefine_core.bench import write_benchmarks

    shown = tmp_path / "BENCHMARKS.md"
    shown.write_text(f"# B\n\n<!-- prefine-bench:start -->\n### {TASK}\n\n### {TASK} — run `{TASK}-10seeds`\n"
                     f"<!-- prefine-bench:end -->\n")
    before = shown.read_bytes()
    with pytest.raises(ValueError, match=f"not under {quick_bench_root}: {TASK}-10seeds; rewriting it now would drop"):
        write_benchmarks(root=quick_bench_root, path=shown)
    assert shown.read_bytes() == before
    shown.write_text(f"# B\n\n<!-- prefine-bench:start -->\n### {TASK}\n<!-- prefine-bench:end -->\n")
    write_benchmarks(root=quick_bench_root, path=shown)
    assert f"### {TASK}\n" in shown.read_text() and "**Summary.**" in shown.read_text()


def test_a_section_check_runs_under_the_write_lock_on_the_section_as_it_stands(tmp_path):
    """write_benchmarks checked for missing runs before taking BENCHMARKS.md's lock, so it could pass a section that
    another benchmark finishing at the same moment was replacing. The check now runs under the lock, on the text the
    write replaces; a refusal writes nothing."""
    import fcntl

    from prefine_core.report import write_section

    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# B\n\n<!-- s:start -->\nold\n<!-- s:end -->\n")
    seen = []

    def check(section: str) -> None:
        with open(tmp_path / ".BENCHMARKS.md.lock", "w") as other:  # another writer cannot take the lock now
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        seen.append(section)
        if section == "new":
            raise ValueError("refused")

    write_section("s", "new", path, check=check)
    assert seen == ["old"] and "<!-- s:start -->\nnew\n<!-- s:end -->" in path.read_text()
    before = path.read_bytes()
    with pytest.raises(ValueError, match="refused"):
        write_section("s", "newer", path, check=check)
    assert path.read_bytes() == before and seen == ["old", "new"]


def test_bench_cli_runs_the_methods_asked_for_and_checks_the_floors_of_staged_prefine(quick_bench_root):
    out = subprocess.run([sys.executable, "-m", "prefine_core", "bench", "--task", TASK, "--quick", "--json",
                          "--methods", "staged", "bc", "--top-methods", "dpo", "--out", str(quick_bench_root / TASK)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert sorted(r["method"] for r in result["rows"] if r["section"] == "grid") == ["bc", "dpo", "staged"]
    assert result["floors"] == {}  # PREFINE itself did not run
    [(budget, checks)] = result["floors_by_method"]["staged"].items()
    assert budget == "8" and {"cost_cut_60", "beats_bc", "beats_dpo", "met"} <= set(checks)
    stage = quick_bench_root / TASK / "runs" / "staged_n8_s0" / "bc_stage" / "policy.safetensors"
    assert load_policy(stage).meta.provenance["algorithm"] == "bc"
    bad = subprocess.run([sys.executable, "-m", "prefine_core", "bench", "--task", TASK, "--methods", "sft"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice: 'sft'" in bad.stderr


@pytest.mark.slow
def test_finetune_cli_from_teacher_pairs_returns_the_policy_and_its_evaluation(tmp_path):
    policy = REPO / "data" / "policies" / TASK / "reference.safetensors"
    if not policy.is_file():
        pytest.skip("shipped reference not trained yet")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"steps": 20, "eval_every": 10, "eval_episodes": 1, "batch_size": 4}))
    out = subprocess.run([sys.executable, "-m", "prefine_core", "finetune", "--policy", str(policy), "--config", str(config),
                          "--pairs-from-teacher", "20", "--beta", "0.1", "--episodes", "1", "--out", str(tmp_path / "run"),
                          "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert Path(result["path"]).is_file() and result["config"]["beta"] == 0.1 and result["config"]["steps"] == 20
    assert {"return_mean", "cost_mean"} <= set(result["evaluation"]) and "cost_reduction_pct" in result["comparison"]


def test_finetune_cli_rejects_a_bad_flag_value(tmp_path):
    out = subprocess.run([sys.executable, "-m", "prefine_core", "finetune", "--policy", str(tmp_path / "missing.safetensors"),
                          "--pairs-from-teacher", "5"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no file" in out.stderr


def test_quick_config_is_small():
    quick = BenchConfig.quick(TASK)
    assert quick.finetune.steps <= 50 and quick.seeds == 1 and max(quick.budgets) <= 10


def _tiny_run(tmp_path):
    """A random reference, two labelled pairs, the quick bench config: (reference, data, config, evals, run_dir)."""
    import dataclasses

    from prefine_core.envs import SafetyTask
    from prefine_core.policy import PolicyMeta, TanhGaussianPolicy
    from prefine_core.rollout import collect
    from prefine_core.trainer import PreferenceData

    with SafetyTask(TASK) as task:
        reference = TanhGaussianPolicy(PolicyMeta(task_id=TASK, obs_dim=task.obs_dim, act_dim=task.act_dim, hidden_sizes=(8,)))
        clips = [collect(reference, task, seed=s, max_steps=30) for s in range(4)]
    for i, clip in enumerate(clips):
        clip.costs[: 5 * i] = 1.0
    data = PreferenceData.from_pairs([(clips[0], clips[1]), (clips[2], clips[3])])
    config = dataclasses.replace(BenchConfig.quick(TASK, out_dir=tmp_path), eval_episodes=1)
    evals = {"reference": None, "lagrangian": None}
    run_dir = tmp_path / "runs" / "prefine_n2_s0"
    return reference, data, config, evals, run_dir


def test_a_cached_run_made_with_another_config_or_judge_is_moved_aside_and_run_again(tmp_path):
    import dataclasses

    import numpy as np

    from prefine_core.bench import finetune_row
    from prefine_core.teachers import SAFETY_JUDGE

    reference, data, config, evals, run_dir = _tiny_run(tmp_path)
    first = finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", config, 0, evals)
    assert finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", config, 0, evals) == first  # read back
    baselines = {"reference": {"return_mean": 10.0, "cost_mean": 4.0, "length_mean": 30.0},
                 "lagrangian": {"return_mean": 5.0, "cost_mean": 1.0}}  # e.g. a Lagrangian retrained longer
    again = finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", config, 0, baselines)
    assert again["retention_vs_lagrangian"] == pytest.approx(first["return_mean"] / 5.0)
    assert again["cost_reduction_pct"] == pytest.approx(100 * (4.0 - first["cost_mean"]) / 4.0)
    changed = dataclasses.replace(config, finetune=dataclasses.replace(config.finetune, beta=0.2))
    again = finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", changed, 0, evals)
    assert json.loads((run_dir / "config.json").read_text())["beta"] == 0.2 and np.isfinite(again["cost_mean"])
    stale = list((tmp_path / "stale").iterdir())
    assert len(stale) == 1 and json.loads((stale[0] / "row.json").read_text()) == first
    # a finished run whose checkpoint another judge chose (rows from before SAFETY_JUDGE) is rerun too
    row = json.loads((run_dir / "row.json").read_text())
    assert row["selection_judge"] == SAFETY_JUDGE
    (run_dir / "row.json").write_text(json.dumps({k: v for k, v in row.items() if k != "selection_judge"}))
    rerun = finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", changed, 0, evals)
    assert rerun["selection_judge"] == SAFETY_JUDGE and len(list((tmp_path / "stale").iterdir())) == 2


def test_a_cached_run_chosen_another_way_is_chosen_again_not_retrained(tmp_path):
    import dataclasses

    from prefine_core.bench import finetune_row

    reference, data, config, evals, run_dir = _tiny_run(tmp_path)
    first = finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", config, 0, evals)
    state = (run_dir / "state.json").read_text()
    reselect = dataclasses.replace(config, finetune=dataclasses.replace(config.finetune, select_smoothing=1))
    again = finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", reselect, 0, evals)
    assert not (tmp_path / "stale").exists() and (run_dir / "state.json").read_text() == state  # not retrained
    assert json.loads((run_dir / "config.json").read_text())["select_smoothing"] == 1
    assert again["finetune_seconds"] >= first["finetune_seconds"] and again["seed"] == 0


def test_a_cached_row_of_other_labels_or_another_reference_is_rerun_and_one_evaluated_otherwise_reevaluated(tmp_path):
    """A row was read back whenever its config and judge matched: one trained on other labels (a changed pool or
    budget) or from a retrained reference was reported as today's, and one evaluated at another cost limit kept it."""
    import copy
    import dataclasses

    import torch

    from prefine_core.bench import finetune_row
    from prefine_core.trainer import PreferenceData, trained_on

    reference, data, config, evals, run_dir = _tiny_run(tmp_path)
    finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", config, 0, evals)
    swapped = PreferenceData.from_pairs([(loser, winner) for winner, loser in zip(data.winners, data.losers)])
    finetune_row(run_dir, {"pairs": 2}, reference, swapped, "prefine", config, 0, evals)
    assert len(list((tmp_path / "stale").iterdir())) == 1 and trained_on(run_dir)[0] == swapped.fingerprint()
    retrained = copy.deepcopy(reference)
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    finetune_row(run_dir, {"pairs": 2}, retrained, swapped, "prefine", config, 0, evals)
    assert len(list((tmp_path / "stale").iterdir())) == 2
    state = (run_dir / "state.json").read_text()
    row = finetune_row(run_dir, {"pairs": 2}, retrained, swapped, "prefine", dataclasses.replace(config, cost_limit=1.0),
                       0, evals)
    assert row["evaluation"]["cost_limit"] == 1.0 and json.loads((run_dir / "row.json").read_text()) == row
    assert len(list((tmp_path / "stale").iterdir())) == 2 and (run_dir / "state.json").read_text() == state


@pytest.mark.parametrize("marker,kept", [(None, False), ("another-judge/1", False), ("today", True)])
def test_a_run_killed_midway_resumes_only_if_todays_judge_made_its_history(tmp_path, marker, kept):
    import dataclasses

    from prefine_core.bench import JUDGE_FILE, _setup_of, finetune_row
    from prefine_core.teachers import SAFETY_JUDGE

    reference, data, config, evals, run_dir = _tiny_run(tmp_path)
    finetune_row(run_dir, {"pairs": 2}, reference, data, "prefine", config, 0, evals)
    (run_dir / "row.json").unlink()  # as if killed before the row was written
    (run_dir / JUDGE_FILE).unlink()
    if marker is not None:
        (run_dir / JUDGE_FILE).write_text(SAFETY_JUDGE if marker == "today" else marker)
    assert _setup_of(run_dir, dataclasses.replace(config.finetune, seed=0)) == ("same" if kept else "stale")


def test_paired_difference_matches_seeds_and_gives_the_standard_error():
    from prefine_core.bench import paired_difference

    pre = [{"seed": 0, "cost_mean": 5.0}, {"seed": 1, "cost_mean": 3.0}, {"seed": 2, "cost_mean": 10.0}]
    bc = [{"seed": 1, "cost_mean": 4.0}, {"seed": 0, "cost_mean": 8.0}, {"seed": 3, "cost_mean": 100.0}]
    mean, se = paired_difference(pre, bc, "cost_mean")  # seeds 0 and 1: differences −3 and −1
    assert mean == pytest.approx(-2.0) and se == pytest.approx(1.0)  # std (ddof 1) √2, over √2
    assert paired_difference(pre, bc[:1], "cost_mean") is None


def test_a_cached_lagrangian_counts_only_when_trained_as_asked():
    from prefine_core.bench import _same_lagrangian

    config = BenchConfig(TASK, lagrange_lr=0.005)
    old = {"env_steps": 1_001_472, "cost_limit": 25.0, "lagrange_lr": 0.005}  # saved before "steps" was recorded
    assert _same_lagrangian(old, config, 1_000_000)
    assert not _same_lagrangian(old, config, 10_000_000)
    assert not _same_lagrangian({**old, "cost_limit": 101.3}, config, 1_000_000)
    assert not _same_lagrangian({k: v for k, v in old.items() if k != "lagrange_lr"}, config, 1_000_000)  # was 0.05
    assert _same_lagrangian({**old, "steps": 10_000_000, "env_steps": 10_001_792}, config, 10_000_000)


def test_a_shipped_lagrangian_is_used_only_when_trained_as_asked_and_readable(tmp_path, monkeypatch):
    import prefine_core.bench as bench
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import PolicyMeta, TanhGaussianPolicy, save_policy

    with SafetyTask(TASK) as task:
        meta = PolicyMeta(task_id=TASK, obs_dim=task.obs_dim, act_dim=task.act_dim, hidden_sizes=(8,), name="lagrangian")
    shipped = tmp_path / "baselines" / TASK
    save_policy(TanhGaussianPolicy(meta), shipped / "lagrangian.safetensors")
    trained = {"wall_s": 12.5, "env_steps": 4096, "steps": 4096, "cost_limit": 25.0, "final_penalty": 0.3, "lagrange_lr": 0.05}
    (shipped / "lagrangian.json").write_text(json.dumps(trained))
    monkeypatch.setattr(bench, "SHIPPED_BASELINES", tmp_path / "baselines")
    logs = []
    policy, got = bench.lagrangian(BenchConfig(TASK, lagrangian_steps=4096, out_dir=tmp_path / "out"), logs.append, 4096)
    assert got == trained and policy.meta.name == "lagrangian" and "using the shipped" in logs[0]
    assert (tmp_path / "out" / "lagrangian.json").is_file()  # cached like a trained one
    assert not bench._shipped_lagrangian_matches(shipped, BenchConfig(TASK, lagrangian_steps=8192), 8192)
    assert not bench._shipped_lagrangian_matches(shipped, BenchConfig(TASK, lagrangian_steps=4096, lagrange_lr=0.005), 4096)
    (shipped / "lagrangian.safetensors").write_bytes(b"not a checkpoint")
    assert not bench._shipped_lagrangian_matches(shipped, BenchConfig(TASK, lagrangian_steps=4096), 4096)
    (shipped / "lagrangian.json").write_text("{broken")
    assert not bench._shipped_lagrangian_matches(shipped, BenchConfig(TASK, lagrangian_steps=4096), 4096)


def test_two_results_set_aside_in_the_same_second_get_different_places(tmp_path):
    from prefine_core.bench import stale_path

    first = stale_path(tmp_path, "prefine_n2_s0")
    first.mkdir()
    second = stale_path(tmp_path, "prefine_n2_s0")  # same second (a run and its rerun, both stale)
    assert second != first and not second.exists() and second.parent == first.parent


def test_bench_config_flag_sets_the_fine_tune_every_method_derives_from(tmp_path):
    from prefine_core.cli import build_parser
    from prefine_core.cli.finetune import bench_config

    config = tmp_path / "steps.json"
    config.write_text(json.dumps({"steps": 12000, "eval_every": 1200}))
    args = build_parser().parse_args(["bench", "--task", TASK, "--budgets", "200", "--config", str(config)])
    bench = bench_config(args)
    assert (bench.finetune.steps, bench.finetune.eval_every, bench.budgets) == (12000, 1200, (200,))
    assert bench_config(build_parser().parse_args(["bench", "--task", TASK])).finetune == PrefineConfig()
    config.write_text(json.dumps({"steps": -1}))
    bad = subprocess.run([sys.executable, "-m", "prefine_core", "bench", "--task", TASK, "--config", str(config),
                          "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "steps must be in [1, 1000000], got -1" in bad.stderr
    assert not (tmp_path / "out").exists()



def test_benchmarks_md_holds_the_notes_the_benchmark_writes():
    # write_benchmarks puts bench_notes.md under the tables; an edit to BENCHMARKS.md alone would be lost on the next run
    from prefine_core.bench import NOTES_FILE

    assert NOTES_FILE.read_text(encoding="utf-8").strip() in (REPO / "BENCHMARKS.md").read_text(encoding="utf-8")


def test_the_dsrl_thresholds_column_shows_where_rows_have_its_rates():
    from prefine_core.bench import DSRL_COLUMN, _aggregate

    old = [{"method": "bc", "pairs": 2, "return_mean": 1.0, "cost_mean": 30.0}]  # evaluated before the rates existed
    assert DSRL_COLUMN not in _aggregate(old, ("method", "pairs"))[0]
    rates = {"violation_rate_k20": 1.0, "catastrophic_rate_k20": 0.0, "violation_rate_k40": 0.0,
             "catastrophic_rate_k40": 0.0, "violation_rate_k80": 0.0, "catastrophic_rate_k80": 0.0}
    (row,) = _aggregate([{**old[0], **rates}, {**old[0], "seed": 1, **rates, "violation_rate_k20": 0.0}],
                        ("method", "pairs"))
    assert row[DSRL_COLUMN] == "0.50 ± 0.50 / 0.00 ± 0.00 · 0.00 ± 0.00 / 0.00 ± 0.00 · 0.00 ± 0.00 / 0.00 ± 0.00"
    assert list(row)[-1] == "fine-tune s", "the wall time stays the last column (compare_bench_tables drops it)"


@pytest.mark.parametrize("kw,said", [
    ({"extra_seeds": 11, "seeds": 11}, "must lie above the pool seeds, which end at 9099 with extra_seeds 11"),
    ({"finetune": PrefineConfig(val_seed=500)}, "validation seeds \\(from val_seed 500\\) must lie above the pool seeds"),
    ({"pool_episodes": 101}, "pool_episodes must be in \\[1, 100\\]")])
def test_the_validation_seeds_stay_apart_from_every_pools(kw, said):
    """From 10 seeds up, the labelling rounds' pool episodes (8 000 + 100 per seed) were the validation episodes
    (9 000…): checkpoints were chosen on clips the run had been labelled on; and past 100 pool episodes one round's
    pool overlapped the next's."""
    with pytest.raises(ValueError, match=said):
        BenchConfig(task_id="SafetyPointCircle1-v0", **kw)
    assert BenchConfig(task_id="SafetyPointCircle1-v0", extra_seeds=10, seeds=10).extra_seeds == 10
    assert BenchConfig(task_id="SafetyPointCircle1-v0", extra_seeds=50, seeds=5).seeds == 5  # 5 extra seeds run
