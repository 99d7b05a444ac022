"""CLI commands ``finetune`` (labels -> a safer policy) and ``bench`` (the issue-4 benchmark)."""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from prefine_core.baselines import METHODS
from prefine_core.bench import MAX_BUDGET, MAX_SEEDS, BenchConfig
from prefine_core.cli.args import (MAX_EPISODES, Progress, episode_count, existing_file, folder_to_write, given_path,
                                    non_negative_int, number, open_workspace, positive_float, whole_number,
                                    whole_number_between)
from prefine_core.prefine import PrefineConfig, config_fields
from prefine_core.pretrain import MAX_TOTAL_STEPS

_TYPES = {"int": whole_number, "float": number, "str": str}  # as every other flag reads them (no "٣", no "1_000")


#: The most pairs ``finetune --pairs-from-teacher`` labels: its pool (at most 10 episodes per source) holds a few
#: hundred clips, and the benchmark's largest budget is 200.
MAX_TEACHER_PAIRS = 2_000


#: The largest ``--config`` file read: a whole PrefineConfig is about 1 KB of JSON (one of 2 million unknown keys was
#: read whole, and its error said every key).
MAX_CONFIG_BYTES = 1_000_000


def _config_file(path: Path) -> PrefineConfig:
    """The PrefineConfig a ``--config`` file holds (``finetune``, ``bench``), refused under the flag's name. Read as
    bytes, so that a UTF-8 byte order mark (a Windows editor's) is taken; read as text, it was refused."""
    with open(path, "rb") as file:
        data = file.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"--config {path}: the file is larger than {MAX_CONFIG_BYTES // 1_000_000} MB; a PREFINE "
                         "config is about 1 KB of JSON")
    try:
        return PrefineConfig.from_json(data)
    except ValueError as exc:
        raise ValueError(f"--config {path}: {exc}") from None


def _config_from_args(args: argparse.Namespace) -> PrefineConfig:
    data = _config_file(args.config).to_dict() if args.config else {}
    given = [f["name"] for f in config_fields() if getattr(args, f["name"]) is not None]
    data.update({name: getattr(args, name) for name in given})
    try:
        return PrefineConfig.from_dict(data)
    except ValueError as exc:  # said under the flag or the file that gave the value, as argparse's own refusals
        flag = next((name for name in given if str(exc).startswith(f"{name} ")), None)
        if flag is not None:
            raise ValueError(f"--{flag.replace('_', '-')}: {exc}") from None
        raise ValueError(f"--config {args.config}: {exc}" if args.config else str(exc)) from None


def _teacher_pairs(reference, task_id: str, n: int, seed: int) -> list:
    """A self-contained labelled set: pool of shipped policies, judged by the synthetic teacher."""
    from prefine_core.bench import BenchConfig, benchmark_pool, label_pairs, reference_and_behaviours

    bench = BenchConfig(task_id=task_id, pool_episodes=max(2, min(10, n // 10)))
    _, behaviours = reference_and_behaviours(bench, lambda m: print(m, file=sys.stderr))
    return label_pairs(benchmark_pool(reference, behaviours, bench), n, seed)


def _check_out(out: Path | None) -> None:
    """Refuse an ``--out`` the run would write over: a file, or a folder holding other things than a run of this
    command (its files would be overwritten: a config.json and a policy.safetensors of the user's own, say). A run
    folder is known by the trainer state it resumes from (state.json, or bc_stage/state.json while a ``start="bc"``
    run is in its BC stage), as the app's run list reads it (``saved_step``)."""
    from prefine_core.trainer import STAGE_DIR, saved_step

    if out is None:
        return
    folder = Path(out)
    if not folder.parent.is_dir():  # as every other --out: a mistyped folder is refused, never made
        raise ValueError(f"--out: no folder {folder.parent} to make {folder.name} in (make it first, or check the path)")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"--out {out} is a file; give a run folder (a new one, or a run's to resume it)")
    has_state = any((where / "state.json").exists() for where in (folder, folder / STAGE_DIR))  # readable or not:
    # one cut short is the trainer's to name ("not a readable trainer state"), not a folder "with no state.json"
    if any(folder.iterdir()) and not has_state and saved_step(folder) is None and saved_step(folder / STAGE_DIR) is None:
        raise ValueError(f"--out {out} is not empty and holds no fine-tune run to resume (no state.json); give a new "
                         "or empty folder")


def _finetune(args: argparse.Namespace) -> dict:
    import torch

    from prefine_core.evaluate import compare, evaluate_policy
    from prefine_core.launcher import check_enough_labels
    from prefine_core.policy import load_policy
    from prefine_core.teachers import safety_judge
    from prefine_core.trainer import STAGE_PREFIX, PreferenceData, PrefineTrainer, in_stage, steps_done, total_steps

    torch.set_num_threads(1)
    config = _config_from_args(args)
    _check_out(args.out)
    if args.background:
        return _launch_in_workspace(args, config)
    reference = load_policy(args.policy)
    task_id = reference.meta.task_id
    quiet = args.json and not sys.stderr.isatty()
    if args.pairs_from_teacher is None:  # the labels of the workspace (--workspace, or the default one)
        ws = open_workspace(args.workspace)
        check_enough_labels(ws, task_id)  # the app's and --background's rule
        with Progress(None, "read labelled clips", quiet=quiet) as reading:
            pairs = ws.store.preference_pairs(task_id, on_progress=reading.update_to)
    else:
        pairs = _teacher_pairs(reference, task_id, args.pairs_from_teacher, config.seed)
    judge = safety_judge() if config.select == "teacher" else None
    out = Path(args.out or tempfile.mkdtemp(prefix="prefine-finetune-"))
    args.kept = lambda: _resumable(out, args)
    bar = Progress(total_steps(config.steps, config.start), f"PREFINE {task_id}", quiet=quiet)

    def progress(metrics: dict) -> None:
        stage = in_stage(metrics)
        loss = metrics[STAGE_PREFIX + "loss/total" if stage else "loss/total"]
        bar.update_to(steps_done(config.steps, config.start, metrics["step"], stage), loss=loss,
                      **({"stage": "bc"} if stage else {}))

    started = time.time()
    try:
        result = PrefineTrainer(reference, PreferenceData.from_pairs(pairs), config, out, judge=judge,
                                on_step=progress, parent=str(args.policy)).run()
    finally:
        bar.close()
    seconds = time.time() - started
    policy = load_policy(result["path"], task_id)
    # the fine-tuned policy, then the reference; deterministic, then stochastic actions (DESIGN §5 reports both)
    runs = [("evaluation", policy, True), ("reference", reference, True)]
    if not args.deterministic_only:
        runs += [("evaluation_stochastic", policy, False), ("reference_stochastic", reference, False)]
    evaluations = {}
    with Progress(len(runs) * args.episodes, "evaluate", quiet=quiet) as shown:
        for key, evaluated, deterministic in runs:
            done = len(evaluations) * args.episodes
            evaluations[key] = evaluate_policy(evaluated, task_id, episodes=args.episodes, deterministic=deterministic,
                                               on_episode=lambda i, _, done=done: shown.update_to(done + i))
    comparisons = {"comparison": compare(evaluations["evaluation"], evaluations["reference"])}
    if not args.deterministic_only:
        comparisons["comparison_stochastic"] = compare(evaluations["evaluation_stochastic"],
                                                       evaluations["reference_stochastic"])
    return {"path": result["path"], "task_id": task_id, "pairs": len(pairs), "selected_step": result["selected_step"],
            "seconds": round(seconds, 2), **evaluations, **comparisons,
            "config": config.to_dict()}


def _resumable(out: Path, args: argparse.Namespace) -> str:
    """What an interrupted fine-tune left in ``out``, and how to go on from it."""
    from prefine_core.trainer import STAGE_DIR, saved_step

    step, stage = saved_step(out), saved_step(out / STAGE_DIR)
    if step is None and stage is None:
        return f"no checkpoint was saved yet in {out}"
    at = f"step {step}" if step is not None else f"step {stage} of its BC stage"
    again = "the same command" if args.out else f"the same command with --out {out}"
    return f"the run is saved in {out} at {at}: {again} resumes it"


def _launch_in_workspace(args: argparse.Namespace, config: PrefineConfig) -> dict:
    """``--background``: the app's Launch from the command line: the policy file registered in the workspace (once:
    the same bytes are the same policy), the run recorded there and started in its own process; the app's Fine-tune
    page and ``runs`` follow, cancel and resume it, and it registers the policy it makes."""
    from prefine_core import transfer
    from prefine_core.launcher import launch_finetune

    if args.pairs_from_teacher is not None:
        raise ValueError("--background trains on a workspace's labels (it is recorded there, where the app and `runs` "
                         "show it): drop --pairs-from-teacher, or drop --background to fine-tune on teacher labels here")
    if args.out:
        raise ValueError("--background keeps the run's checkpoints in the workspace's run folder; drop --out")
    if args.deterministic_only:
        raise ValueError("--deterministic-only chooses this command's own evaluation, which a --background run does "
                         "not make (the Compare page evaluates its policy): drop one of them")
    ws = open_workspace(args.workspace)
    policy, added = transfer.register_policy(ws, Path(args.policy).name, Path(args.policy).read_bytes())
    try:
        run_id = launch_finetune(ws, policy.task_id, policy.id, config.to_dict())
    except ValueError:
        if added:  # refused (no labels for its task, say): the policy registered for it goes again, file and row
            ws.delete_policy(policy.id)
        raise
    return {"run_id": run_id, "task_id": policy.task_id, "start_policy_id": policy.id, "status": ws.store.get_run(run_id).status,
            "follow": f"the app's Fine-tune page (run {run_id}), or `runs --workspace {ws.root}`"}


def bench_config(args: argparse.Namespace) -> BenchConfig:
    """The benchmark the ``bench`` flags ask for."""
    kw = dict(out_dir=args.out) if args.out else {}
    if args.config:
        if args.quick:
            raise ValueError("--config sets the fine-tune of a full benchmark; --quick has its own tiny one")
        kw["finetune"] = _config_file(args.config)
    if args.quick:
        return BenchConfig.quick(args.task, methods=tuple(args.methods), top_methods=tuple(args.top_methods), **kw)
    budgets = tuple(args.budgets) if args.budgets else tuple(b for b in (25, 50, 100, 200) if b <= args.pairs) or (args.pairs,)
    return BenchConfig(task_id=args.task, budgets=budgets, seeds=args.seeds, extra_seeds=min(args.extra_seeds, args.seeds),
                       methods=tuple(args.methods), top_methods=tuple(args.top_methods),
                       lagrangian_steps=args.lagrangian_steps, lagrange_lr=args.lagrange_lr, **kw)


def _bench(args: argparse.Namespace) -> dict:
    from prefine_core.bench import run_bench, write_benchmarks

    config = bench_config(args)
    command = "python -m prefine_core " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else ""
    result = run_bench(config, log=lambda m: print(m, file=sys.stderr, flush=True), command=command)
    if args.write_benchmarks:
        try:
            write_benchmarks(root=Path(config.out_dir).parent)
        except ValueError as exc:
            raise ValueError(f"{exc}. This run's result is kept in {Path(config.out_dir) / 'result.json'}") from exc
    keep = ("return_mean", "cost_mean", "length_mean", "fall_rate", "violation_rate", "catastrophic_rate")
    return {"task": result["task"], "reference": {k: result["reference"][k] for k in keep},
            "lagrangian": {**{k: result["lagrangian"][k] for k in keep}, "wall_s": result["lagrangian"]["wall_s"],
                           "env_steps": result["lagrangian"]["env_steps"]},
            "pool": result["pool"], "rows": result["rows"], "floors": result["floors"],
            "floors_by_method": result["floors_by_method"]}


def register(command) -> None:
    p = command("finetune", "fine-tune a policy on preference labels with PREFINE")
    p.add_argument("--policy", type=existing_file, required=True, help="the reference policy (.safetensors)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--workspace", help="workspace folder whose store holds the labels (default: "
                                            "$PREFINE_WORKSPACE or data/workspace; store from $PREFINE_DB_URL if set)")
    source.add_argument("--pairs-from-teacher", type=whole_number_between(1, MAX_TEACHER_PAIRS), metavar="N",
                        help=f"label N pool pairs with the synthetic teacher (no store needed; 1 to "
                             f"{MAX_TEACHER_PAIRS})")
    p.add_argument("--config", type=existing_file, help="PrefineConfig as JSON; flags override it")
    p.add_argument("--out", type=given_path,
                   help="run folder (default: a new temporary folder); an unfinished run there resumes")
    p.add_argument("--episodes", type=episode_count, default=10, help=f"evaluation episodes, 1 to {MAX_EPISODES}")
    p.add_argument("--deterministic-only", action="store_true",
                   help="evaluate with deterministic (mean) actions only: half the evaluation time, and no "
                        "*_stochastic keys in the result")
    p.add_argument("--background", action="store_true",
                   help="start the run as the app's Launch does (recorded in the workspace, shown "
                        "live on the Fine-tune page and by `runs`, its policy registered) and return its run id; "
                        "without it the fine-tune runs here and is not recorded in the workspace")
    for f in config_fields():
        flag = "--" + f["name"].replace("_", "-")
        bounds = f" [{f['min']}, {f['max']}]" if f["min"] is not None else ""
        kw = dict(choices=f["choices"]) if f["choices"] else {}
        p.add_argument(flag, dest=f["name"], type=_TYPES[f["type"]], default=None,
                       help=f"{f['help']} (default {f['default']}){bounds}", **kw)
    p.set_defaults(handler=_finetune)

    b = command("bench", "the PREFINE benchmark: label budgets × seeds × methods, extras, BENCHMARKS.md")
    b.add_argument("--task", required=True, help="Safety-Gymnasium task id")
    budget = whole_number_between(1, MAX_BUDGET)
    b.add_argument("--pairs", type=budget, default=200,
                   help=f"largest label budget, 1 to {MAX_BUDGET} (budgets 25/50/100/200 up to it)")
    b.add_argument("--budgets", type=budget, nargs="+", help=f"explicit label budgets instead, each 1 to {MAX_BUDGET}")
    b.add_argument("--seeds", type=whole_number_between(1, MAX_SEEDS), default=5, help=f"seeds per budget, 1 to {MAX_SEEDS}")
    b.add_argument("--methods", nargs="+", choices=METHODS, metavar="METHOD", default=list(BenchConfig.methods),
                   help=f"methods at every budget, of {', '.join(METHODS)} (default {' '.join(BenchConfig.methods)})")
    b.add_argument("--top-methods", nargs="*", choices=METHODS, metavar="METHOD", default=list(BenchConfig.top_methods),
                   help=f"methods only at the largest budget (default {' '.join(BenchConfig.top_methods)})")
    b.add_argument("--extra-seeds", type=non_negative_int, default=2, help="seeds for ablation, paper protocol, rounds (0 skips them)")
    b.add_argument("--lagrangian-steps", type=whole_number_between(1, MAX_TOTAL_STEPS), default=None,
                   help=f"env steps of the PPO-Lagrangian baseline, 1 to {MAX_TOTAL_STEPS} (default: the reference's)")
    b.add_argument("--lagrange-lr", type=positive_float, default=0.05,
                   help="step size of the PPO-Lagrangian's multiplier")
    b.add_argument("--config", type=existing_file, metavar="FILE",
                   help="PrefineConfig as JSON that every method derives from (default: the defaults; not with --quick)")
    b.add_argument("--quick", action="store_true", help="a 1–2 minute version (tests)")
    b.add_argument("--out", type=folder_to_write, help="output folder (default data/bench/<task>)")
    b.add_argument("--write-benchmarks", action="store_true", help="rewrite the benchmark section of BENCHMARKS.md")
    b.set_defaults(handler=_bench)
