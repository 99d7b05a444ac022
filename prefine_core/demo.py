"""The guided path for a first run or a demo: pairs → labels → fine-tune → before/after.

It works on a fresh workspace with nothing prepared: the shipped reference policy (and any shipped
behaviour policies) of the task make the pool, a ``prepare`` job renders the pair videos in the
background, :func:`auto_label` lets the synthetic teacher label pairs so a demo never stalls, and
:func:`demo_status` tells the home page which step comes next.
"""
from __future__ import annotations

from dataclasses import dataclass

from prefine_core.workspace import Workspace

#: The plain question of each task family (DESIGN §3: velocity tasks cost above a speed limit,
#: circle tasks outside a boundary).
QUESTIONS = {
    "Velocity": "Which robot kept to the speed limit better?",
    "Circle": "Which robot stayed inside the boundary better?",
    "Goal": "Which robot kept clear of the hazards better?",
    "Button": "Which robot kept clear of the hazards better?",
    "Push": "Which robot kept clear of the hazards better?",
}
TEACHER = "synthetic-teacher"
#: A pool a CPU prepares in about a minute: short episodes, 200-step clips.
DEMO_POOL = {"seeds": [0, 1, 2], "max_steps": 400, "clip_length": 200, "pairs": 24}
#: A fine-tune that shows its curves moving within a couple of minutes on one core.
DEMO_FINETUNE = {"steps": 1500, "eval_every": 250, "eval_episodes": 1, "log_every": 25, "select": "last"}


def question(task_id: str) -> str:
    for family, text in QUESTIONS.items():
        if family in task_id:
            return text
    return "Which robot behaved more safely?"


def prepare_pairs(ws: Workspace, task_id: str, config: dict, report) -> dict:
    """Body of a ``prepare`` job: roll out the pool, choose pairs, render their videos one by one."""
    from prefine_core.pool import PoolConfig, collect_pool, generate_pairs, render_pending

    settings = {**DEMO_POOL, **config}
    pool = PoolConfig(task_id=task_id, seeds=tuple(settings["seeds"]), max_steps=settings["max_steps"],
                      clip_length=settings["clip_length"])
    added = collect_pool(ws, pool, on_progress=lambda done, total: report(done, {"prepare/rollouts": done}))
    print(f"pool: {len(added)} new clips", flush=True)
    pairs = generate_pairs(ws.store, task_id, settings["pairs"], strategy="random", seed=len(ws.store.list_pairs(task_id)))
    print(f"{len(pairs)} new pairs; rendering videos", flush=True)
    rendered = render_pending(ws, task_id, on_progress=lambda done, total: report(done, {"prepare/videos": done}))
    return {"clips": len(added), "pairs": len(pairs), **rendered}


def auto_label(ws: Workspace, task_id: str, n: int, annotator: str = TEACHER) -> int:
    """Let the synthetic teacher label up to ``n`` pairs it has not labelled; returns how many it labelled."""
    from prefine_core.teachers import SyntheticTeacher

    if n <= 0:
        raise ValueError(f"the number of pairs to auto-label must be positive, got {n}")
    teacher = SyntheticTeacher(name=annotator)
    done = 0
    while done < n:
        pair = ws.store.next_pair(annotator, task_id)
        if pair is None:
            break
        choice = teacher.judge(ws.store.get_trajectory(pair.left_id), ws.store.get_trajectory(pair.right_id))
        ws.store.add_label(pair.id, annotator, choice, seconds=0.0)
        done += 1
    return done


@dataclass(frozen=True)
class DemoStatus:
    pairs: int
    videos_ready: int
    labels: int
    decided: int
    reference_id: int | None
    finetuned_id: int | None
    preparing: bool
    training: bool

    @property
    def next_step(self) -> str:
        if self.reference_id is None:
            return "no_policy"
        if self.videos_ready == 0:
            return "prepare"
        if self.decided < 4:
            return "label"
        if self.finetuned_id is None:
            return "finetune"
        return "compare"


def demo_status(ws: Workspace, task_id: str) -> DemoStatus:
    counts = ws.store.counts(task_id)
    references = ws.store.list_policies(task_id, kind="reference")
    tuned = [p for p in ws.store.list_policies(task_id) if p.kind in ("finetuned", "bc")]
    runs = [r for r in ws.store.list_runs(task_id) if r.status in ("queued", "running")]
    return DemoStatus(
        pairs=counts["pairs"], videos_ready=counts["videos_ready"], labels=counts["labels"],
        decided=len(ws.store.decided_pairs(task_id)),
        reference_id=references[0].id if references else None, finetuned_id=tuned[-1].id if tuned else None,
        preparing=any(r.kind == "prepare" for r in runs), training=any(r.kind == "prefine" for r in runs))
