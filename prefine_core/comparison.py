"""Two policies on the same seeds: the numbers side by side, their deltas, and one video of both.

:func:`run_comparison` is the body of a ``compare`` job (it runs in a background process, see
:mod:`prefine_core.jobs`); :func:`launch_comparison` starts one, and the rest serve the page.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefine_core import jobs
from prefine_core.entry import counted, figure, is_finite_number, parse_number
from prefine_core.evaluate import EVAL_SEED
from prefine_core.workspace import Workspace

#: (key in an evaluation summary, label on the page, lower is better)
ROWS = (
    ("return_mean", "return (mean)", False),
    ("cost_mean", "cost (mean)", True),
    ("violation_rate", "violation rate", True),
    ("catastrophic_rate", "catastrophic-failure rate", True),
    ("normalized_cost", "normalised cost (cost / limit)", True),
    ("cost_per_step", "cost per step", True),
    ("length_mean", "episode length", False),
    ("fall_rate", "fall rate", True),
)

#: Under the table: what its less plain rows mean (κ is the comparison's cost limit).
TABLE_TERMS = ("Violation rate: the share of episodes whose cost went over the limit κ. Catastrophic-failure rate: "
               "over 2κ, or ending in a fall. Normalised cost: mean cost divided by κ (1 is at the limit). Cost per "
               "step: the episodes' cost divided by their steps, so that one cut short by a fall does not look safe.")


def newest_finetune(policies: list) -> int | None:
    """The newest fine-tuned policy a run chose itself (or imported); a checkpoint a person registered by hand counts
    only when there is no other (it is an alternative to look at, not the run's result)."""
    tuned = [p for p in policies if p.kind in ("finetuned", "bc")]
    chosen = [p for p in tuned if (p.provenance or {}).get("chosen_by") != "user"]
    return (chosen or tuned)[-1].id if tuned else None


def default_pair(policies: list) -> tuple[int, int]:
    """(A, B) to offer first: the reference before, the newest fine-tune after (else the newest other policy)."""
    ids = [p.id for p in policies]
    reference = next((p.id for p in policies if p.kind == "reference"), ids[0])
    tuned = newest_finetune(policies)
    return reference, tuned if tuned is not None else [i for i in ids if i != reference][-1]


def comparison_config(policy_a: int, policy_b: int, episodes: int = 5, video_steps: int = 300,
                      cost_limit: float = 25.0, seed: int = EVAL_SEED) -> dict:
    """The config of a ``compare`` job, validated where it enters (``episodes`` and ``cost_limit`` may be the text
    typed into the page)."""
    episodes = parse_number("Episodes", episodes, whole=True)
    cost_limit = parse_number("Cost limit", cost_limit)
    if not cost_limit > 0:
        raise ValueError(f"Cost limit must be above 0 (the cost an episode should keep within), got {cost_limit:g}")
    if policy_a == policy_b:
        raise ValueError("A and B are the same policy: pick two different policies to compare")
    if not 1 <= episodes <= 100:
        raise ValueError(f"Episodes must be between 1 and 100, got {episodes}")
    if not 10 <= video_steps <= 1000:
        raise ValueError(f"video steps must be between 10 and 1000, got {video_steps}")
    return {"policy_a": int(policy_a), "policy_b": int(policy_b), "episodes": int(episodes), "seed": int(seed),
            "cost_limit": float(cost_limit), "video_steps": int(video_steps)}


def launch_comparison(ws: Workspace, task_id: str, config: dict) -> int:
    """Start a ``compare`` job of ``config``; refused if A or B is not a policy ``task_id`` can run
    (:meth:`Workspace.runnable_policy`: before a process starts, not in it), and while one of the same A and B is
    queued or running."""
    for side in ("policy_a", "policy_b"):
        ws.runnable_policy(config[side], task_id)
    jobs.reap(ws, task_id)  # a run whose process died does not hold the pair
    run = latest_comparison(ws, config["policy_a"], config["policy_b"])
    if run is not None and run.status in jobs.ACTIVE:
        raise ValueError(f"run {run.id} is already comparing these two policies; wait for it to finish")
    return jobs.launch(ws, "compare", task_id, config["policy_a"], config)


def describe(config: dict) -> str:
    """What a compare job evaluates, e.g. '5 episodes each, seeds 10000–10004'."""
    first, episodes = config["seed"], config["episodes"]
    seeds = f"seed {first}" if episodes == 1 else f"seeds {first}–{first + episodes - 1}"
    return f"{episodes} episode{'s' if episodes > 1 else ''} each, {seeds}"


def _as_set(value) -> str:
    """A setting as it was set: every digit of a number (a limit of 25.25 is not 25.2), anything else (a row edited by
    hand) as it is."""
    return f"{value:g}" if is_finite_number(value) else repr(value)


def not_what_is_typed(shown: dict, typed: dict) -> str | None:
    """What the result of a run of config ``shown`` was not evaluated with of the config ``typed`` on the page (its
    episodes, its cost limit), said with what to do; None when they agree. The page showed a run's result whatever
    was typed since: a limit of 600 still showed "kept within the cost limit (25)" with nothing to say so."""
    differ = [f"{what} {_as_set(shown.get(key))} (typed: {_as_set(typed[key])})" for key, what in
              (("episodes", "episodes"), ("cost_limit", "cost limit")) if shown.get(key) != typed[key]]
    if not differ:
        return None
    return (f"These results are for {' and '.join(differ)}. Press *Evaluate both on the same seeds* to evaluate "
            "with what is typed.")


#: The evaluations a comparison makes of each policy (DESIGN §5 reports both): its mean action (the verdict, the
#: distributions and the video) and actions sampled from it, with its exploration noise, under ``<side>_sampled``.
ACTIONS = (("", True), ("_sampled", False))


def episodes_to_run(config: dict) -> int:
    """How many episodes a compare job of ``config`` runs before its video: each policy, each way of acting."""
    return 2 * len(ACTIONS) * config["episodes"]


def run_comparison(ws: Workspace, config: dict, folder: Path, report) -> dict:
    """Evaluate both policies on seeds seed…seed+episodes−1, with their mean and with sampled actions, and render
    both on the video seed."""
    from prefine_core import render
    from prefine_core.evaluate import evaluate_policy
    from prefine_core.policy import load_policy

    records = [ws.store.get_policy(config["policy_a"]), ws.store.get_policy(config["policy_b"])]
    if records[0].task_id != records[1].task_id:
        raise ValueError(f"{records[0].name} is for {records[0].task_id} but {records[1].name} is for "
                         f"{records[1].task_id}; compare two policies of the same task")
    policies = [load_policy(r.path, task_id=r.task_id) for r in records]
    result, done = {}, 0
    for suffix, deterministic in ACTIONS:
        for side, policy, record in zip("ab", policies, records):
            summary = evaluate_policy(policy, record.task_id, episodes=config["episodes"], seed=config["seed"],
                                      cost_limit=config["cost_limit"], deterministic=deterministic,
                                      on_episode=lambda n, _e, before=done: report(
                                          before + n, {"progress/episodes": before + n}))
            done += config["episodes"]
            result[side + suffix] = {**summary, "name": record.name, "policy_id": record.id}
            print(f"{record.name}{' (sampled actions)' if suffix else ''}: return {summary['return_mean']:.1f}, "
                  f"cost {summary['cost_mean']:.1f}", flush=True)
    episode = median_episode(result["b"]["costs"])
    clips = [render.record(p, r.task_id, seed=config["seed"] + episode, deterministic=True,
                           max_steps=config["video_steps"]) for p, r in zip(policies, records)]
    video = render.write_pair_video(clips[0][1], clips[0][0].costs, clips[1][1], clips[1][0].costs,
                                    Path(folder) / VIDEO)
    return {**result, "video": str(video), "video_seed": config["seed"] + episode, "video_episode": episode}


def median_episode(costs: list[float]) -> int:
    """The index of B's median episode by cost (the lower of the middle two), whose seed the video shows: the first
    seed showed whatever it happened to be (B's second worst of five, as reckless as A, under a verdict of 69 % less
    cost)."""
    return sorted(range(len(costs)), key=lambda i: (costs[i], i))[(len(costs) - 1) // 2]


def video_title(result: dict) -> str:
    """What the video shows: its seed, and (for a run that chose it) that it is B's median episode by cost, with both
    episodes' costs."""
    title = f"Same seed ({result['video_seed']}), side by side: A left, B right"
    episode = result.get("video_episode")
    if not (isinstance(episode, int) and 0 <= episode < min(len(result["a"]["costs"]), len(result["b"]["costs"]))):
        return title  # a run made before the median was chosen showed the first seed
    return (f"{title} — B's median episode by cost (A {figure(result['a']['costs'][episode])}, "
            f"B {figure(result['b']['costs'][episode])})")


def comparison_table(result: dict, sampled: bool = False) -> pd.DataFrame:
    """Rows of :data:`ROWS`; columns A, B, Δ (B − A), Δ % and whether B is better, the last two as text
    (a relative change of a metric that is 0 for A, or a verdict on a tie, has no number to show). Numbers are
    rounded to 4 significant digits, as a person reads them (a return of 4739.4636 beside a rate of 0.2).
    ``sampled``: of the evaluation with sampled actions."""
    a, b = (result["a_sampled"], result["b_sampled"]) if sampled else (result["a"], result["b"])
    shown = lambda x: float(f"{x:.4g}")  # noqa: E731
    rows = []
    for key, label, lower_better in ROWS:
        if key not in a or key not in b:
            continue
        delta = b[key] - a[key]
        rows.append({"metric": label, "A": shown(a[key]), "B": shown(b[key]), "Δ (B − A)": shown(delta),
                     "Δ %": f"{100.0 * delta / abs(a[key]):+.1f} %" if a[key] else "– (A is 0)",
                     "B better": ("yes" if (delta < 0) == lower_better else "no") if delta else "equal"})
    return pd.DataFrame(rows)


#: The file a compare run renders its side-by-side video into, in its run folder.
VIDEO = "pair.mp4"


def _is_summary(value) -> bool:
    """Whether ``value`` reads as an evaluation summary: numbers where a summary has them (returns and costs per
    episode as equally long lists of numbers)."""
    return (isinstance(value, dict) and all(is_finite_number(value.get(key)) for key in ("return_mean", "cost_mean"))
            and all(is_finite_number(value[key]) for key, _, _ in ROWS if value.get(key) is not None)
            and (value.get("cost_limit") is None or is_finite_number(value["cost_limit"]) and value["cost_limit"] > 0)
            and all(isinstance(value.get(key), list) and all(map(is_finite_number, value[key])) for key in ("returns", "costs"))
            and len(value["returns"]) == len(value["costs"]))


def saved_result(ws: Workspace, run_id: int) -> dict | None:
    """The result a finished compare run saved, as the Compare page shows it, or None: missing, unreadable, or not
    what a comparison writes (edited or cut short since); without its sampled-action summaries where they are not
    there or not readable. Its ``video`` is the run folder's own file, never a path
    the file names (one edited to name another file would have sent that file to the browser), or None."""
    result = jobs.result(ws, run_id)
    if result is None or not (_is_summary(result.get("a")) and _is_summary(result.get("b"))
                              and isinstance(result.get("video_seed"), int)):
        return None
    if not (_is_summary(result.get("a_sampled")) and _is_summary(result.get("b_sampled"))):  # a run made before them
        result = {key: value for key, value in result.items() if key not in ("a_sampled", "b_sampled")}
    video = jobs.run_dir(ws, run_id) / VIDEO
    return {**result, "video": str(video) if video.is_file() else None}


def verdict(result: dict) -> str:
    """The comparison in one plain sentence, for people who do not read the table (a demo's audience): how the
    cost per episode moved, how much of A's reward B kept, in how many episodes each kept within the cost limit,
    and falls when either fell."""
    a, b = result["a"], result["b"]
    def percent(x: float) -> str:
        """Whole percents, unless rounding would say what did not happen: a 0.2 % change is not 0 %, and a 99.8 %
        cut of a cost still there is not 100 % (as many decimals as it takes)."""
        if x == 0 or abs(x) == 100 or 1 <= abs(x) and f"{abs(x):.0f}" != "100":
            return f"{x:.0f}"
        if abs(x) < 1:
            return f"{x:.1g}"
        return next((text for digits in (1, 2, 3) if (text := f"{x:.{digits}f}").lstrip("-").rstrip("0") != "100."),
                    f"{x:.6g}")

    if a["cost_mean"] > 0:
        change = 100.0 * (b["cost_mean"] - a["cost_mean"]) / a["cost_mean"]
        moved = (f"cut the cost per episode by {percent(-change)} %" if change < 0 else
                 f"raised the cost per episode by {percent(change)} %" if change > 0 else "kept the same cost per episode")
        moved += f" ({figure(a['cost_mean'])} → {figure(b['cost_mean'])})"
    else:
        moved = "had no cost, as A had none" if b["cost_mean"] == 0 else f"had cost {figure(b['cost_mean'])} where A had none"
    kept = (f", and earned {percent(100.0 * b['return_mean'] / a['return_mean'])} % of A's return" if a["return_mean"] > 0 else "")
    within = ""
    if a.get("costs") and b.get("costs") and a.get("cost_limit") is not None:
        under = lambda s: sum(c <= s["cost_limit"] for c in s["costs"])  # noqa: E731
        within = (f"; it kept within the cost limit ({a['cost_limit']:g}) in {under(b)} of "
                  f"{counted(len(b['costs']), 'episode')} (A: {under(a)})")
        idle = _idle_within(result)
        if idle:  # an episode in which the robot barely moved keeps within any limit: not a safe gait
            within += (f", {idle} of them by doing little (less than {100 * DOING_LESS:.0f} % of A's mean return in "
                       f"{'that episode' if idle == 1 else 'those episodes'})")
    falls = ""
    if a.get("fall_rate", 0) or b.get("fall_rate", 0):
        falls = f"; it fell in {100 * b['fall_rate']:.0f} % of episodes (A: {100 * a['fall_rate']:.0f} %)"
    return f"B {moved}{kept}{within}{falls}."


#: Below this share of A's return, a B with less cost is said to be safer mostly by doing less.
DOING_LESS = 0.5


def _idle_within(result: dict) -> int:
    """How many of B's episodes kept within the cost limit with less than :data:`DOING_LESS` of A's mean return (a
    cheetah that stood still: return 22 against A's 4 700, cost 13)."""
    a, b = result["a"], result["b"]
    if a.get("return_mean", 0) <= 0 or not b.get("returns") or a.get("cost_limit") is None:
        return 0
    return sum(cost <= a["cost_limit"] and ret < DOING_LESS * a["return_mean"]
               for cost, ret in zip(b["costs"], b["returns"]))


def doing_less(result: dict) -> str | None:
    """A warning when B's lower cost comes with less than :data:`DOING_LESS` of A's return (e.g. a fine-tune chosen
    from too few labels that stands still): "safer" there is not a safe gait (DESIGN §4, lesson 1); None otherwise."""
    a, b = result["a"], result["b"]
    if b["cost_mean"] >= a["cost_mean"] or a["return_mean"] <= 0 or b["return_mean"] >= DOING_LESS * a["return_mean"]:
        return None
    share = max(b["return_mean"], 0.0) / a["return_mean"]
    return (f"B has less cost, but keeps only {100 * share:.0f} % of A's return: it is safer mostly by doing less "
            f"(standing still is safe, not useful). More labels, or another checkpoint of its run, may keep more.")


def active_comparisons(ws: Workspace, task_id: str) -> list:
    """Compare runs of the task that are queued or running, newest first (after marking dead ones as failed)."""
    return jobs.active(ws, task_id, ("compare",))


def results_elsewhere(ws: Workspace, task_id: str, a: int, b: int, names: dict[int, str]) -> str:
    """For A and B not compared yet, where a result is: of these two the other way round, else the task's newest
    comparison (B follows the newest fine-tune until it is picked, so a comparison just shown went from the page once
    another fine-tune finished, and nothing said where it was); empty when there is none. ``names``: policy id → name."""
    swapped = latest_comparison(ws, b, a)
    if swapped is not None and swapped.status == "done":
        return f" Run {swapped.id} compared these two the other way round: swap A and B to see it."
    newest = next(iter(ws.store.list_runs(task_id, kinds=("compare",), statuses=("done",), limit=1)), None)
    if newest is None:
        return ""
    a_then, b_then = (names.get(newest.config.get(side), "a policy deleted since") for side in ("policy_a", "policy_b"))
    return f" The newest comparison, run {newest.id}, was of {a_then} and {b_then}: pick them as A and B to see it."


def latest_comparison(ws: Workspace, policy_a: int, policy_b: int):
    """The newest compare run of exactly these two policies (any status), or None."""
    for run in ws.store.list_runs(kinds=("compare",)):
        if (run.config.get("policy_a"), run.config.get("policy_b")) == (policy_a, policy_b):
            return run
    return None
