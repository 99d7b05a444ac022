#!/usr/bin/env python
"""What a presenter's demo shows: Home's guided path, end to end, timed, on a fresh workspace.

For each task: *Prepare pairs* (the ``prepare`` job: the shipped policies' pool and the pair videos), *Auto-label*
20 pairs (Home's default), then for each fine-tune seed *Fine-tune with demo settings* (a background ``prefine``
run, as the button launches it, the seed set in the form) and the Compare page's default comparison of the
reference and that fine-tune (5 episodes from seed 10 000, and the pair video) — each through the same job
processes the app starts. It reports each step's wall time, before → after return and cost, the episodes within
the cost limit, and the sentence the Compare page says. Results go to ``data/demo-bench/result.json`` and the
``demo`` section of BENCHMARKS.md.

    .venv/bin/python scripts/bench_demo.py [--tasks ID ...] [--seeds 0 1 2 3 4] [--labels 20] [--also JSON ...]

``--also '{"steps": 4000}'`` fine-tunes each seed once more with those fields over the demo settings (on the same
pool and labels), and ``--pool '{"strategy": "diversity"}'`` prepares the pairs with those fields over the demo
pool's, to measure a change to the demo's settings before making it.

The demo is product behaviour, not the issue-4 benchmark: these figures choose nothing there.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TASKS = ("SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyPointCircle1-v0")
OUT = REPO / "data" / "demo-bench" / "result.json"  # not under data/bench/: that holds the fine-tuning runs


def wait_for(ws, run_id: int, timeout: float) -> tuple[dict, float]:
    """Wait for background run ``run_id``; (its result, seconds from now until it finished). A failed run raises."""
    from prefine_core import jobs

    started = time.time()
    try:
        while time.time() - started < timeout:
            jobs.reap(ws)
            run = ws.store.get_run(run_id)
            if run.status not in jobs.ACTIVE:
                if run.status != "done":
                    raise RuntimeError(f"run {run_id} ({run.kind}) ended {run.status}: {run.error}\n"
                                       f"{jobs.log_tail(ws, run_id)}")
                return jobs.result(ws, run_id) or {}, time.time() - started
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} did not finish within {timeout:.0f} s")
    except BaseException:  # interrupted (Ctrl-C) or timed out: the job must not go on in a folder about to be removed
        jobs.cancel(ws, run_id)
        print(f"cancelled run {run_id}", file=sys.stderr, flush=True)
        raise


def demo_task(root: Path, task_id: str, seeds: list[int], labels: int, variants: list[dict], pool: dict,
              base: dict | None = None) -> dict:
    """Home's path on a fresh workspace in ``root`` for ``task_id``: one pool and one set of labels, a fine-tune and
    a comparison per seed and per variant of the demo settings (``{}``: the demo's own)."""
    from prefine_core import comparison, demo, jobs
    from prefine_core.launcher import launch_finetune
    from prefine_core.prefine import PrefineConfig
    from prefine_core.workspace import Workspace

    ws = Workspace.open(root)
    reference = demo.demo_status(ws, task_id).reference_id
    prepared, prepare_s = wait_for(ws, jobs.launch(ws, "prepare", task_id, None, pool), 1800)
    started = time.time()
    said = demo.auto_label_report(ws, task_id, str(labels))
    label_s = time.time() - started
    runs = []
    for variant, seed in ((variant, seed) for variant in variants for seed in seeds):
        values = {**PrefineConfig().to_dict(), **demo.DEMO_FINETUNE, **(base or {}), **variant, "seed": seed}
        tuned, finetune_s = wait_for(ws, launch_finetune(ws, task_id, reference, values), 1800)
        policy = ws.store.list_policies(task_id, kind="finetuned")[-1].id
        config = comparison.comparison_config(reference, policy)
        result, compare_s = wait_for(ws, comparison.launch_comparison(ws, task_id, config), 1800)
        a, b = result["a"], result["b"]
        runs.append({"settings": variant, "seed": seed, "finetune_seconds": finetune_s, "compare_seconds": compare_s,
                     "selected_step": tuned.get("selected_step"),
                     "before": {k: a[k] for k in ("return_mean", "cost_mean", "fall_rate", "costs")},
                     "after": {k: b[k] for k in ("return_mean", "cost_mean", "fall_rate", "costs")},
                     "cost_limit": a["cost_limit"], "verdict": comparison.verdict(result),
                     "doing_less": comparison.doing_less(result)})
        print(f"{task_id} {variant or 'demo settings'} seed {seed}: {runs[-1]['verdict']} "
              f"(fine-tune {finetune_s:.0f} s, compare {compare_s:.0f} s)", file=sys.stderr, flush=True)
    decided = len(ws.store.decided_pairs(task_id))
    return {"task": task_id, "pool": pool, "prepare_seconds": prepare_s, "clips": prepared.get("clips"), "pairs": prepared.get("pairs"),
            "label_seconds": label_s, "labelled": said, "decided_pairs": decided, "runs": runs}


def _settings(variant: dict | None, demo_finetune: dict | None) -> str:
    """The fine-tune's steps and validation, as run: the demo's settings of the time with ``variant`` over them."""
    if not demo_finetune:  # results saved without the demo's settings of the time
        return ", ".join(f"{key} {value}" for key, value in variant.items()) if variant else "demo"
    merged = {**demo_finetune, **(variant or {})}
    return (f"{merged['steps']} steps, {merged['eval_episodes']} validation episode(s) every {merged['eval_every']}"
            + ("" if variant else " (the demo's)"))


def _within(costs: list[float], limit: float) -> int:
    return sum(c <= limit for c in costs)


def markdown(results: list[dict], command: str, machine: str, note: str = "", demo_finetune: dict | None = None) -> str:
    from prefine_core.report import markdown_table

    rows = []
    for task in results:
        for run in task["runs"]:
            before, after = run["before"], run["after"]
            rows.append({"task": task["task"], "fine-tune": _settings(run.get("settings"), demo_finetune), "seed": run["seed"],
                         "return before → after": f"{before['return_mean']:.0f} → {after['return_mean']:.0f}",
                         "cost before → after": f"{before['cost_mean']:.1f} → {after['cost_mean']:.1f}",
                         "episodes within the limit": f"{_within(before['costs'], run['cost_limit'])} → "
                                                      f"{_within(after['costs'], run['cost_limit'])} of {len(after['costs'])}",
                         "falls before → after": f"{before['fall_rate']:.1f} → {after['fall_rate']:.1f}",
                         "checkpoint": run["selected_step"], "fine-tune s": round(run["finetune_seconds"]),
                         "compare s": round(run["compare_seconds"]),
                         "warning": "doing less" if run["doing_less"] else ""})
    steps = [{"task": t["task"], "prepare pairs s": round(t["prepare_seconds"]), "clips": t["clips"], "pairs": t["pairs"],
              "auto-label s": round(t["label_seconds"], 1), "decided pairs": t["decided_pairs"]} for t in results]
    return "\n".join([
        "## The demo: Home's guided path, end to end", "",
        f"Machine: {machine}", "",
        f"Command: `{command}`", "",
        "What a presenter gets from a fresh workspace by pressing Home's buttons in order: *Prepare pairs*, *Auto-label* "
        "(20 pairs), *Fine-tune with demo settings* (one run per seed below), then the Compare page's default "
        "comparison of the reference and the fine-tune (5 episodes from seed 10 000, deterministic, and the pair "
        "video) — the app's own background jobs, timed from launch to finish. Product behaviour, not issue 4's "
        "benchmark: nothing there is chosen by it.", "",
        *([note.strip(), ""] if note.strip() else []),
        markdown_table(steps), "",
        markdown_table(rows), ""])


def json_object(text: str) -> dict:
    """A command-line JSON object (``--pool``, ``--finetune``, ``--also``), refused in words otherwise."""
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r} (give an object, e.g. '{{\"steps\": 4000}}')") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return value


def read_saved(path: Path) -> dict:
    """Results printed by an earlier ``--no-write`` run, checked before anything is written from them."""
    try:
        saved = json.loads(path.read_text())
        tasks = saved["results"]
        if not isinstance(saved["command"], str) or not isinstance(saved["machine"], str) or not tasks or not all(
                isinstance(t, dict) and {"task", "runs", "prepare_seconds"} <= set(t) for t in tasks):
            raise ValueError
        markdown(tasks, saved["command"], saved["machine"], "", saved.get("demo_finetune"))  # every row readable
    except OSError as exc:
        raise SystemExit(f"bench_demo.py: --from {path}: {exc.strerror or exc}; nothing was written") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SystemExit(f"bench_demo.py: --from {path} is not the output of a bench_demo.py --no-write run; "
                         "nothing was written") from None
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--labels", type=int, default=20, help="pairs auto-labelled (Home's default: 20)")
    parser.add_argument("--also", nargs="*", type=json_object, default=[], metavar="JSON",
                        help="fine-tune again with these fields over the demo settings, e.g. '{\"steps\": 4000}'")
    parser.add_argument("--pool", type=json_object, default={}, metavar="JSON",
                        help="prepare the pairs with these fields over the demo pool's, e.g. '{\"strategy\": \"diversity\"}'")
    parser.add_argument("--finetune", type=json_object, default={}, metavar="JSON",
                        help="these fields over the demo's fine-tune settings in every run (a quick check: fewer steps)")
    parser.add_argument("--no-write", action="store_true", help="print the results; leave BENCHMARKS.md alone")
    parser.add_argument("--from", dest="saved", type=Path, default=None, metavar="JSON",
                        help="write the results printed by an earlier --no-write run instead of running")
    parser.add_argument("--note", default="", help="a paragraph for the section, under its introduction")
    args = parser.parse_args(argv)
    # Ctrl-C, and a kill, stop the wait for a job so that the job is cancelled (wait_for), never left running
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from prefine_core.envs import validate_task_id
    from prefine_core.files import write_text_atomic
    from prefine_core.report import machine_line, write_section

    if args.saved is not None:
        saved = read_saved(args.saved)
    else:
        try:
            tasks = [validate_task_id(t) for t in args.tasks]
        except ValueError as exc:
            parser.error(f"--tasks: {exc}")
        command = "python scripts/bench_demo.py " + " ".join(argv if argv is not None else sys.argv[1:])
        machine = machine_line()  # the load at the start
        results = []
        for task in tasks:
            with tempfile.TemporaryDirectory(prefix="prefine-demo-") as root:
                results.append(demo_task(Path(root) / "ws", task, args.seeds, args.labels, [{}, *args.also], args.pool,
                                         args.finetune))
        from prefine_core.demo import DEMO_FINETUNE, DEMO_POOL

        saved = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "machine": machine,
                 "command": command.strip(), "demo_pool": {**DEMO_POOL, **args.pool},
                 "demo_finetune": {**DEMO_FINETUNE, **args.finetune}, "results": results}
        print(json.dumps(saved, indent=1))
    if not args.no_write:
        section = markdown(saved["results"], saved["command"], saved["machine"], args.note, saved.get("demo_finetune"))
        write_text_atomic(OUT, json.dumps(saved, indent=1))
        write_section("demo", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
