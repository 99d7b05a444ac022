"""A finished fine-tune's checkpoints as a trade-off, and the one a person prefers registered as a policy.

The trainer chooses a checkpoint without the true cost (``trainer.py``), and where on the trade-off between
return and cost that choice lands varies from one label set to the next (BENCHMARKS.md, "What the checkpoints
reach"). The app shows every validated checkpoint with its validation return and cost — the curves the user
already watches — so that a person may prefer another point, a safer one at some return say; registered, it is a
policy like any other (Compare, a further fine-tune). The figures are from the validation episodes (seeds
9 000…), never the evaluation seeds: the Compare page measures a choice afresh.
"""
from __future__ import annotations

import pandas as pd

from prefine_core import jobs
from prefine_core.entry import counted, figure
from prefine_core.plots import wide_metrics
from prefine_core.trainer import checkpoint_path
from prefine_core.workspace import Workspace

#: Columns of :func:`checkpoint_frame`.
COLUMNS = ("step", "return", "cost", "length", "safety", "chosen", "available")


def _done_finetune(ws: Workspace, run_id: int):
    run = ws.store.get_run(run_id)  # a ValueError names a run that does not exist
    if run.kind != "prefine":
        raise ValueError(f"run {run_id} is a {run.kind} job, not a fine-tune: it has no checkpoints")
    if run.status != "done":
        raise ValueError(f"run {run_id} is {run.status}; its checkpoints can be chosen once it is done")
    return run


def checkpoint_frame(ws: Workspace, run_id: int, metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per validation of run ``run_id``: step, validation return / cost / length, the teacher's safety
    score (NaN without a teacher), whether the trainer chose it, and whether its checkpoint file is there (step 0
    is the untouched start, which has none). ``metrics``: the run's ``store.run_metrics`` when the caller has
    already read them (the Fine-tune page, for its curves)."""
    wide = wide_metrics(ws.store.run_metrics(run_id) if metrics is None else metrics)
    if wide.empty or "eval/return" not in wide.columns:  # typed, so that frame[frame.available] stays a frame of rows
        return pd.DataFrame({name: pd.Series(dtype=bool if name in ("chosen", "available") else float) for name in COLUMNS})
    evals = wide[wide["eval/return"].notna()]
    outcome = jobs.result(ws, run_id) or {}
    folder = jobs.run_dir(ws, run_id)
    column = lambda name: evals[name].to_numpy() if name in evals.columns else float("nan")  # noqa: E731
    frame = pd.DataFrame({
        "step": evals.index.astype(int), "return": column("eval/return"), "cost": column("eval/cost"),
        "length": column("eval/length"), "safety": column("val/safety"),
    })
    frame["chosen"] = frame.step == outcome.get("selected_step")
    frame["available"] = [step > 0 and checkpoint_path(folder, step).is_file() for step in frame.step]
    return frame.reset_index(drop=True)


def chosen_words(frame: pd.DataFrame) -> str:
    """The checkpoint the trainer chose, as the end of a sentence (", the checkpoint of step 2400: validation return
    2 650, cost 20.5"), from :func:`checkpoint_frame`; empty when none is marked. The page said only which policy a
    run saved, and its step and figures were found only by opening the trade-off."""
    chosen = frame[frame.chosen]
    if chosen.empty:
        return ""
    row = chosen.iloc[0]
    return (f", the checkpoint of step {int(row.step)}: validation return {figure(row['return'])}, "
            f"cost {figure(row.cost)} (★ under Trade-off)")


def choice_rule(config: dict) -> str:
    """What the trade-off's points are and how the trainer chose its checkpoint (★), in words, from a run's saved
    config: the star can sit above a checkpoint with less validation cost, and without this the page did not say why."""
    from prefine_core.prefine import PrefineConfig

    try:
        c = PrefineConfig.from_saved(config)
    except (TypeError, ValueError):  # saved by another version (a field unknown here): the rule is not said
        return "Validation episodes, not the evaluation seeds: measure a choice on the Compare page."
    return (f"Validation episodes (seeds {c.val_seed}…), not the evaluation seeds: measure a choice on the Compare "
            f"page. {_star(c)}")


def curves_words(config: dict) -> str:
    """What the Fine-tune page's curves are, in words, from a run's saved config: a validation point is the mean of a
    few episodes (its cost swung 900 → 50 → 900 between checkpoints, and nothing said why), and a preference accuracy
    near 0.5 is chance."""
    from prefine_core.prefine import PrefineConfig

    try:
        c = PrefineConfig.from_saved(config)
        episodes = f"the mean of {counted(c.eval_episodes, 'episode')} (seeds {c.val_seed}…) at each checkpoint"
    except (TypeError, ValueError):  # saved by another version
        episodes = "the mean of a few episodes at each checkpoint"
    return (f"Validation return and cost: {episodes}, so a point can swing with the episodes it happened to get; the "
            "Compare page measures a policy on more, on the evaluation seeds (10000…). Preference accuracy: the share "
            "of a batch's labelled pairs the policy ranks as people did (0.5 is chance).")


def _star(c) -> str:
    """How the trainer chose its checkpoint (★) under config ``c``."""
    if c.select == "last":
        return "★ is the trainer's choice: the last checkpoint."
    if c.select == "heldout":
        return ("★ is the trainer's choice: the checkpoint that ranks the most held-out labelled pairs as people did "
                "(it never sees the true cost).")
    smoothed = (f", each averaged with {c.select_smoothing} neighbouring checkpoint{'s' if c.select_smoothing > 1 else ''} "
                "on either side" if c.select_smoothing else "")
    return (f"★ is the trainer's choice, made without the true cost: among the checkpoints whose teacher safety score "
            f"(validation clips judged against the labelled winners{smoothed}) is within {c.select_tolerance:g} of the "
            "best, the one with the highest validation return. So a checkpoint with less validation cost can lose to "
            "it on return; choose that one below to use it instead.")


def register_checkpoint(ws: Workspace, run_id: int, step: int) -> int:
    """Register the checkpoint of ``step`` of finished run ``run_id`` as a policy of its task; returns its id.

    The trainer's own choice returns the policy the run already registered; any other step is checked as a policy
    file (a damaged one is refused with the reason) and registered once, however often it is asked for.
    """
    from prefine_core.policy import load_policy
    from prefine_core.prefine import PrefineConfig

    run = _done_finetune(ws, run_id)
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
        raise ValueError(f"step must be a positive whole number, got {step!r}")
    outcome = jobs.result(ws, run_id) or {}
    if step == outcome.get("selected_step") and run.output_policy_id is not None:
        try:
            own = ws.store.get_policy(run.output_policy_id)
        except ValueError:  # its row gone since, or the run's column edited (NotFound is one): registered anew below
            own = None
        if own is not None and own.task_id == run.task_id:  # an edit naming another robot's policy is not its own
            return own.id
    path = checkpoint_path(jobs.run_dir(ws, run_id), step)
    if not path.is_file():
        have = checkpoint_frame(ws, run_id).query("available").step.tolist()
        raise ValueError(f"run {run_id} has no checkpoint at step {step}; it has checkpoints at steps {have}")
    load_policy(path, run.task_id)
    try:
        kind = PrefineConfig.from_saved(run.config).policy_kind
    except ValueError as exc:  # a row edited or damaged since: said as the run's, not as fields the user wrote
        raise ValueError(f"run {run_id}'s saved settings cannot be read ({exc}); its checkpoints cannot be "
                         "registered") from None
    return ws.store.add_policy(f"run {run_id} step {step} ({kind}, chosen by hand)", path, run.task_id, kind,
                               parent_id=run.policy_id, provenance={"run_id": run_id, "step": step, "chosen_by": "user"})
