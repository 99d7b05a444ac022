#!/usr/bin/env python
"""Whether a benchmark run reproduces from nothing: the rows of a rerun (its ``runs/*/row.json``, so that a rerun
stopped part way counts what it finished) compared with the committed ``result.json`` of the same command, field by
field (every figure a table shows but the wall time), and the rerun's DSRL rates (κ = 20, 40, 80; DESIGN §5), which
rows committed before session 20 do not carry. Prints the report; ``--write-benchmarks`` also puts it into
BENCHMARKS.md. Exit 1 when a compared figure differs (a row's, the reference's or the Lagrangian's).

    .venv/bin/python -m prefine_core bench --task SafetyPointCircle1-v0 --budgets 200 --seeds 10 --extra-seeds 0 \\
        --lagrangian-steps 1000000 --lagrange-lr 0.005 --out /tmp/rerun/pc10 --json   # the committed run's command
    git show HEAD:data/bench/SafetyPointCircle1-v0-10seeds/result.json > /tmp/committed/pc10/result.json
    .venv/bin/python scripts/bench_reproduces.py --run /tmp/rerun/pc10 /tmp/committed/pc10 [--run …] [--write-benchmarks]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: What identifies a row within one benchmark run.
KEY = ("section", "reference", "pool", "method", "pairs", "seed")
#: The figures compared: every one a table shows, but the fine-tune's wall time (a rerun never repeats it).
FIGURES = ("return_mean", "return_std", "cost_mean", "cost_std", "length_mean", "cost_per_step", "violation_rate",
           "catastrophic_rate", "fall_rate", "stoch_return_mean", "stoch_cost_mean", "stoch_fall_rate",
           "selected_step", "judgments", "winners")


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def compare(rerun: Path, committed: Path) -> dict:
    """Rows of ``rerun`` (a bench ``--out`` folder) matched with ``committed`` (a folder holding ``result.json``)."""
    old = json.loads((committed / "result.json").read_text())
    by_key = {tuple(row.get(k) for k in KEY): row for row in old["rows"]}
    rows = [json.loads(p.read_text()) for p in sorted((rerun / "runs").glob("*/row.json"))]
    compared, differing, unmatched = [], [], []
    for row in rows:
        before = by_key.get(tuple(row.get(k) for k in KEY))
        if before is None:
            unmatched.append(row)
            continue
        diffs = {f: (before.get(f), row.get(f)) for f in FIGURES if f in before and not _same(before[f], row.get(f))}
        compared.append(row)
        if diffs:
            differing.append((row, diffs))
    # the reference's and the Lagrangian's evaluations: None before the rerun wrote its result.json (after a seed)
    new = json.loads((rerun / "result.json").read_text()) if (rerun / "result.json").is_file() else None
    baselines = {name: None if new is None else
                 [f for f in FIGURES if f in old.get(name, {}) and not _same(old[name][f], new.get(name, {}).get(f))]
                 for name in ("reference", "lagrangian")}
    return {"task": old["task"], "command": old.get("command", ""),
            "out_dir": old.get("config", {}).get("out_dir") or committed.as_posix(), "rows": rows, "compared": compared,
            "differing": differing, "unmatched": unmatched, "committed_rows": len(old["rows"]),
            "baselines": baselines, "reference": (new or {}).get("reference") or old["reference"]}


def dsrl_table(rows: list[dict], reference: dict) -> str:
    """Mean over the rerun's seeds of each method's rates at DSRL's κ, the reference's first."""
    from prefine_core.evaluate import DSRL_COST_LIMITS, dsrl_keys
    from prefine_core.report import markdown_table

    methods: dict[str, list[dict]] = {"reference": [reference]}
    for row in rows:
        methods.setdefault(row["method"], []).append(row)
    table = []
    for method, group in methods.items():
        line = {"method": method, "seeds": len(group) if method != "reference" else "–"}
        for kappa in DSRL_COST_LIMITS:
            for name, key in zip(("violation", "catastrophic", "C/κ"), dsrl_keys(kappa)):
                values = [r[key] for r in group if key in r]
                line[f"{name} κ={kappa:g}"] = f"{sum(values) / len(values):.2f}" if values else "–"
        table.append(line)
    return markdown_table(table)


def report(found: dict, rerun: Path) -> str:
    same = len(found["compared"]) - len(found["differing"])
    finished = len(found["rows"])
    stopped = ("all of them" if finished >= found["committed_rows"] else
               f"{finished} of them before the rerun was stopped")
    lines = [f"**{found['task']}**: the committed run `{found['out_dir']}` (`{found['command']}`, "
             f"{found['committed_rows']} rows) run again from nothing into `{rerun.as_posix()}`, with the same "
             f"command but its --out; it finished {stopped}. **{same} of the {len(found['compared'])} rows compared "
             "are identical** "
             f"in every figure the tables show ({', '.join(FIGURES)}), the wall time aside."]
    for name, fields in found["baselines"].items():
        lines.append(f"- {name}: " + ("not evaluated yet by the rerun" if fields is None else
                                      f"DIFFERS in {', '.join(fields)}" if fields else "identical"))
    for row, diffs in found["differing"]:
        shown = "; ".join(f"{f} {a} → {b}" for f, (a, b) in diffs.items())
        lines.append(f"- DIFFERS: {row['method']} seed {row['seed']}: {shown}")
    if found["unmatched"]:
        lines.append(f"- {len(found['unmatched'])} rows have no committed counterpart")
    lines += ["", "DSRL's rates on the rerun rows (deterministic actions, the rows' evaluation episodes), mean over the "
              "seeds rerun; violation: cost > κ, catastrophic: cost > 2κ or a fall, C/κ: normalised cost:", "",
              dsrl_table(found["rows"], found["reference"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", nargs=2, type=Path, action="append", required=True, metavar=("RERUN", "COMMITTED"),
                        help="the rerun's --out folder and the committed run's folder (its result.json); repeatable")
    parser.add_argument("--write-benchmarks", action="store_true", help="put the report into BENCHMARKS.md")
    args = parser.parse_args(argv)
    for rerun, committed in args.run:
        for path, what in ((rerun / "runs", "the rerun's runs folder"), (committed / "result.json",
                                                                         "the committed result.json")):
            if not path.exists():
                parser.error(f"{what} {path} does not exist")
    found = [compare(rerun, committed) for rerun, committed in args.run]
    text = "\n\n".join(report(f, rerun) for f, (rerun, _) in zip(found, args.run))
    print(text)
    if args.write_benchmarks:
        from prefine_core.report import machine_line, write_section

        write_section("bench-reproduces", "## Does the benchmark reproduce? (a rerun from nothing)\n\n"
                      f"Machine (at this report; the reruns ran on it beside other work, so their wall times are not "
                      f"comparable): {machine_line()}\n\nCommand: `.venv/bin/python scripts/bench_reproduces.py "
                      + " ".join(f"--run {r.as_posix()} {c.as_posix()}" for r, c in args.run) + " --write-benchmarks`, "
                      "each rerun folder the `--out` of the committed run's own command, each committed folder holding "
                      "that run's `result.json` as committed (`git show HEAD:data/bench/<run>/result.json`, set aside "
                      "before the rerun).\n\n" + text)
    return 1 if any(f["differing"] or any(f["baselines"].values()) for f in found) else 0


if __name__ == "__main__":
    raise SystemExit(main())
