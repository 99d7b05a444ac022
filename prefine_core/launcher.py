"""What the fine-tune page needs: the form generated from PrefineConfig, launching, and the job list."""
from __future__ import annotations

import pandas as pd

from prefine_core import jobs
from prefine_core.entry import counted, parse_number
from prefine_core.prefine import PrefineConfig, config_fields
from prefine_core.trainer import STAGE_PREFIX, steps_done, total_steps
from prefine_core.workspace import Workspace

#: Fields shown first; the rest go under "More settings".
PRIMARY = ("steps", "beta", "bc_weight", "dispref_weight", "learning_rate", "segment_length", "eval_every", "select")
#: Cost limit κ drawn on the cost curves (DESIGN §5; the velocity tasks' default).
COST_LIMIT = 25.0


def form_fields() -> tuple[list[dict], list[dict]]:
    """(primary, more) field descriptions of :func:`prefine_core.prefine.config_fields`."""
    fields = config_fields()
    primary = sorted((f for f in fields if f["name"] in PRIMARY), key=lambda f: PRIMARY.index(f["name"]))
    return primary, [f for f in fields if f["name"] not in PRIMARY]


def form_config(values: dict) -> PrefineConfig:
    """The PrefineConfig of the form's values: numbers as typed (text) are parsed by their field's type, a bad one
    refused by name (:func:`prefine_core.entry.parse_number`), then the config's own checks."""
    types = {f["name"]: f["type"] for f in config_fields() if not f["choices"]}
    return PrefineConfig.from_dict({name: parse_number(name, value, whole=types[name] == "int") if name in types else value
                                    for name, value in values.items()})


def start_policies(ws: Workspace, task_id: str) -> list:
    """Policies a fine-tune may start from: the task's reference first, then earlier fine-tunes."""
    order = {"reference": 0, "finetuned": 1, "bc": 2, "imported": 3, "behaviour": 4}
    return sorted(ws.store.list_policies(task_id), key=lambda p: (order.get(p.kind, 9), -p.id))


def last_settings(ws: Workspace, task_id: str) -> tuple[int | None, dict]:
    """(id, settings) of the task's latest fine-tune run whose settings are a config, for the form to start from
    (a person's last choices outlive a reload, an app restart and a change of page); (None, {}) before any run. A
    row whose settings are not a config (hand-edited, unreadable) is passed over, never put into the form."""
    for run in ws.store.list_runs(task_id, kinds=("prefine",)):
        try:
            return run.id, PrefineConfig.from_saved(run.config).to_dict()
        except (ValueError, TypeError):
            continue
    return None, {}


def check_enough_labels(ws: Workspace, task_id: str) -> None:
    """A ValueError unless 2 or more of the task's pairs have a winner: the one rule of the app's Launch, of
    ``finetune --background`` and of ``finetune`` run in the foreground (which trained on 1)."""
    decided = len(ws.store.decided_pairs(task_id))
    if decided < 2:
        raise ValueError(f"{counted(decided, 'pair')} of {task_id} {'has' if decided == 1 else 'have'} a winner (judged A "
                         "safer or B safer; Equal and Can't tell name none): at least 2 need one before fine-tuning (label on "
                         "the Label page, or auto-label on Home)")


def launch_finetune(ws: Workspace, task_id: str, policy_id: int | None, values: dict) -> int:
    """Validate the form values and the data, then start the run; a ValueError says what to fix."""
    if policy_id is None:
        raise ValueError(f"no policy to start from for {task_id}; import one on the Data page")
    config = form_config(values)
    ws.runnable_policy(policy_id, task_id)
    check_enough_labels(ws, task_id)
    if (twin := _twin(ws, task_id, policy_id, config.to_dict())) is not None:
        raise ValueError(f"run {twin.id} with these settings from this policy is already {twin.status} (a second "
                         "click on Launch?); change a setting (a seed, say) to start another beside it")
    return jobs.launch(ws, "prefine", task_id, policy_id, config.to_dict())


def run_finetune(ws: Workspace, run, report) -> dict:
    """The background job of a fine-tune run (:data:`prefine_core.jobs.KINDS`): PREFINE (or BC, or trajectory DPO) on
    the task's labels, from the run's policy, resuming from its last checkpoint; registers the policy it chose."""
    from prefine_core.policy import load_policy
    from prefine_core.teachers import safety_judge
    from prefine_core.trainer import PreferenceData, PrefineTrainer, saved_step

    config = PrefineConfig.from_saved(run.config)
    start = ws.store.get_policy(run.policy_id)
    reference = load_policy(start.path, task_id=run.task_id)
    pairs = ws.store.preference_pairs(run.task_id)
    if not pairs:
        raise ValueError(f"no decided labels for {run.task_id}: label some pairs (left/right) first")
    print(f"{len(pairs)} decided pairs; starting from {start.name}", flush=True)
    folder = jobs.run_dir(ws, run.id)
    resumes_at = saved_step(folder)
    if resumes_at is not None:
        print(f"resuming from the checkpoint of step {resumes_at} of {config.steps} (checkpoints every "
              f"{config.eval_every} steps: the steps after it are trained again)", flush=True)
    judge = safety_judge() if config.select == "teacher" else None
    trainer = PrefineTrainer(
        reference, PreferenceData.from_pairs(pairs), config, folder, judge=judge,
        on_step=lambda m: report(m["step"], m), on_eval=lambda m: report(m["step"], m),
        name=f"run {run.id}: fine-tuned {start.name}", parent=start.name)
    summary = trainer.run()
    kind = config.policy_kind
    # told apart in lists ("1 step", not "1 steps": a smallest run is a first try from the form)
    name = f"run {run.id} ({kind}, {counted(len(pairs), 'pair')}, {counted(config.steps, 'step')}, seed {config.seed})"
    policy_id = ws.store.add_policy(name, summary["path"], run.task_id, kind,
                                    parent_id=start.id, provenance={"run_id": run.id, "config": config.to_dict()})
    return {"output_policy_id": policy_id, "path": summary["path"], "selected_step": summary["selected_step"],
            "train_seconds": summary["train_seconds"]}


def twin_run(ws: Workspace, task_id: str, policy_id: int | None, values: dict):
    """The task's fine-tune still queued or running from ``policy_id`` with the settings ``values`` make (what a
    second click on Launch would start again), or None, also for values that make no config. A run whose process
    died does not count."""
    try:
        config = form_config(values).to_dict()
    except (ValueError, TypeError):
        return None
    return _twin(ws, task_id, policy_id, config)


def _twin(ws: Workspace, task_id: str, policy_id: int | None, config: dict):
    return next((run for run in jobs.active(ws, task_id, ("prefine",))
                 if run.policy_id == policy_id and run.config == config), None)


def jobs_frame(ws: Workspace, task_id: str) -> pd.DataFrame:
    """One row per fine-tune run of the task, newest first, after marking runs whose process died as failed.
    (Pair preparation and comparisons show their progress on their own pages.)"""
    jobs.reap(ws, task_id)
    runs = ws.store.list_runs(task_id, kinds=("prefine",))
    latest = ws.store.latest_steps([run.id for run in runs], except_prefix=STAGE_PREFIX)
    rows = []
    for run in runs:
        done, total, _ = _progress(run, *latest[run.id])
        rows.append({"id": run.id, "status": run.status, "step": done, "of": total,
                     "started": run.created_at, "error": jobs.error_text(run) or ""})
    return pd.DataFrame(rows, columns=["id", "status", "step", "of", "started", "error"])


def run_progress(run, metrics: pd.DataFrame) -> tuple[int, int, bool]:
    """(gradient steps done, in all, whether in its BC stage) of a fine-tune run whose ``store.run_metrics`` are
    ``metrics``; a ``start="bc"`` run counts its BC stage's steps first."""
    own = metrics[~metrics.name.str.startswith(STAGE_PREFIX)].step
    return _progress(run, int(own.max()) if len(own) else None, int(metrics.step.max()) if len(metrics) else None)


def _progress(run, own_step: int | None, any_step: int | None) -> tuple[int, int, bool]:
    """:func:`run_progress` from the highest step the run reported itself and the highest of any metric."""
    steps, start = run.config.get("steps", 0), str(run.config.get("start", "reference"))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        steps = 0  # a row whose settings are not a config's (hand-edited): its progress is shown without a total
    if own_step is not None:
        return steps_done(steps, start, own_step, stage=False), total_steps(steps, start), False
    # nothing from the run itself yet: its BC stage's progress, if it has one
    return any_step or 0, total_steps(steps, start), start == "bc"


def run_states(table: pd.DataFrame) -> list[tuple[int, str]]:
    """(id, status) of each run in a :func:`jobs_frame`: what, when it changes, needs the page redrawn."""
    return list(zip(table.id.astype(int).tolist(), table.status.tolist()))


def progress_bar(run, metrics: pd.DataFrame) -> tuple[float, str]:
    """(fraction done, its text) of an active fine-tune run (``metrics``: its ``store.run_metrics``), for a progress bar."""
    done, total, in_stage = run_progress(run, metrics)
    return min(done / max(total, 1), 1.0), f"step {done} of {total}" + (" (BC stage)" if in_stage else "")
