"""The guided path for a first run or a demo: pairs → labels → fine-tune → before/after.

It works on a fresh workspace with nothing prepared: the shipped reference policy (and any shipped
behaviour policies) of the task make the pool, a ``prepare`` job renders the pair videos in the
background, :func:`auto_label` lets the synthetic teacher label pairs so a demo never stalls, and
:func:`demo_status` tells the home page which steps are done and which comes next.
"""
from __future__ import annotations

from dataclasses import dataclass

from prefine_core.entry import counted, parse_number
from prefine_core.workspace import Workspace

TEACHER = "synthetic-teacher"
#: The guided path's pool: every source (the reference and the shipped behaviour policies) rolled out for 5 whole
#: episodes at temperature 1, in 200-step clips, and 24 random pairs of them, as the benchmark's pool is made. The
#: reference at three temperatures and 400-step episodes made 60 % of the clips the reference's, and the demo
#: fine-tunes copied it (data/studies/2026-12-02-demo-settings/).
DEMO_POOL = {"seeds": [0, 1, 2, 3, 4], "max_steps": None, "clip_length": 200, "pairs": 24, "strategy": "random",
             "reference_temperatures": [1.0]}
#: The fine-tune of the guided path (45–90 s on one core in that study): the fine-tuner's own steps and validation, and the
#: checkpoint the teacher judges safest, not the last one — from a few dozen labels the policy hops between the fast
#: and the safe gait as it trains. 1 500 steps with one validation episode every 250 stood Hopper still in one of
#: three runs of the study that chose these (data/studies/2026-12-02-demo-settings/, round 4).
DEMO_FINETUNE = {"steps": 4000, "eval_every": 400, "eval_episodes": 2, "log_every": 25, "select": "teacher"}


def launch_finetune(ws: Workspace, task_id: str, reference_id: int) -> int:
    """Start the guided path's fine-tune of the reference in the background: PREFINE's defaults with
    :data:`DEMO_FINETUNE` over them; returns its run's id."""
    from prefine_core import launcher
    from prefine_core.prefine import PrefineConfig

    return launcher.launch_finetune(ws, task_id, reference_id, {**PrefineConfig().to_dict(), **DEMO_FINETUNE})


def prepare_pairs(ws: Workspace, task_id: str, config: dict, report) -> dict:
    """Body of a ``prepare`` job: roll out the pool, choose pairs, render their videos one by one."""
    from prefine_core.pair_videos import render_pending
    from prefine_core.pool import PoolConfig, collect_pool, generate_pairs

    settings = {**DEMO_POOL, **config}
    pool = PoolConfig(task_id=task_id, seeds=tuple(settings["seeds"]), max_steps=settings["max_steps"],
                      clip_length=settings["clip_length"],
                      reference_temperatures=tuple(settings["reference_temperatures"]))
    added = collect_pool(ws, pool, on_progress=lambda done, total: report(
        done, {"prepare/rollouts": done, "prepare/rollouts_total": total}))
    print(f"pool: {len(added)} new clips", flush=True)
    pairs = generate_pairs(ws.store, task_id, settings["pairs"], strategy=settings["strategy"],
                           seed=len(ws.store.list_pairs(task_id)))
    print(f"{len(pairs)} new pairs; rendering videos", flush=True)
    report(0, {"prepare/videos": 0})  # the rendering has begun (pair_videos.job_progress_text)
    rendered = render_pending(ws, task_id, on_progress=lambda done, total: report(done, {"prepare/videos": done}))
    return {"clips": len(added), "pairs": len(pairs), **rendered}


def auto_label(ws: Workspace, task_id: str, n: int, annotator: str = TEACHER,
               unreadable: list[str] | None = None) -> int:
    """Let the synthetic teacher label up to ``n`` pairs it has not labelled, and nobody else holds or labelled (as
    the Label page hands a pair to one person); returns how many it labelled. ``unreadable``: as
    :func:`~prefine_core.teachers.label_pending`."""
    from prefine_core.teachers import SyntheticTeacher, label_pending

    if n <= 0:
        raise ValueError(f"the number of pairs to auto-label must be positive, got {n}")
    return label_pending(ws.store, SyntheticTeacher(name=annotator), task_id, limit=n, overlap=1, seconds=0.0,
                         unreadable=unreadable)


#: The most pairs one press of Home's *Auto-label* labels.
MAX_AUTO_LABEL = 500


def auto_label_report(ws: Workspace, task_id: str, n: int | str) -> str:
    """:func:`auto_label`, said in words, with what to do when the teacher ran out of pairs; ``n`` may be the text
    typed into the page, checked before anything is labelled."""
    n = parse_number("Pairs to auto-label", n, whole=True)
    if not 1 <= n <= MAX_AUTO_LABEL:
        raise ValueError(f"Pairs to auto-label must be between 1 and {MAX_AUTO_LABEL}, got {n}; nothing was labelled")
    unreadable: list[str] = []
    done = auto_label(ws, task_id, n, unreadable=unreadable)
    pairs = counted(done, "pair")
    if unreadable:  # said first: a damaged workspace is what to see to
        return (f"The synthetic teacher labelled {pairs} and passed over {counted(len(unreadable), 'pair')} whose clips "
                f"are gone or damaged ({'; '.join(unreadable[:3])}{' …' if len(unreadable) > 3 else ''}): restore the "
                "files and auto-label again, or Data › Delete removes such pairs.")
    if done == n:
        return f"The synthetic teacher labelled {pairs}."
    counts = ws.store.counts(task_id)
    if counts["pairs"] == 0:
        return "No pairs to label yet — prepare pairs first (step 1)."
    # what it could not take: pairs without a label held for a person on the Label page (it once said "none left")
    held = (f"; {counted(counts['pending'], 'unlabelled pair')} {'is' if counts['pending'] == 1 else 'are'} being "
            "judged on the Label page" if counts["pending"] else "")
    if done:
        return f"The synthetic teacher labelled {pairs}{held}; prepare more pairs to label more."
    return f"The synthetic teacher found no pair to label{held}; prepare more pairs first."


#: What "with a winner" counts (the store's decided pairs), beside :attr:`DemoStatus.judged_text`.
WINNER_HELP = ("Pairs whose labels name a safer clip: A safer or B safer (by majority where people differ; a tie "
               "names none). Equal and Can't tell name none, so they add a label but no pair with a winner. A "
               "fine-tune learns from these pairs only (decided pairs).")
#: The guided path, in order: each step's name in the status, and as the home page says it.
STEPS = {"prepare": "Prepare pairs", "label": "Label", "finetune": "Fine-tune", "compare": "Compare"}


@dataclass(frozen=True)
class DemoStatus:
    pairs: int
    videos_ready: int
    labels: int
    decided: int
    reference_id: int | None
    finetuned_id: int | None
    compared: bool
    """Whether a comparison of the newest fine-tuned policy has finished."""
    video_job_id: int | None
    """The job rolling out the pool or rendering videos (``prepare`` or ``render``), the newest; None when none is."""
    training: bool

    @property
    def preparing(self) -> bool:
        return self.video_job_id is not None

    @property
    def next_step(self) -> str:
        """The first step of :data:`STEPS` not done yet; ``done`` after the last, ``no_policy`` before the first."""
        if self.reference_id is None:
            return "no_policy"
        if self.pairs == 0 or (self.videos_ready == 0 and self.decided < 4):  # imported pairs with labels: on to
            return "prepare"                                                   # the fine-tune, videos or not
        if self.decided < 4:
            return "label"
        if self.finetuned_id is None:
            return "finetune"
        return "done" if self.compared else "compare"

    @property
    def judged_text(self) -> str:
        """The Judge step's count, as Home says it: the pairs with a winner, not the labels, are what a fine-tune
        learns from, and an Equal answer adds a label but no winner (:data:`WINNER_HELP`)."""
        return f"{counted(self.labels, 'label')}, {counted(self.decided, 'pair')} with a winner (A or B judged safer)"

    @property
    def steps_done(self) -> int:
        return len(STEPS) if self.next_step == "done" else list(STEPS).index(self.next_step)

    @property
    def progress_text(self) -> str:
        if self.next_step == "done":
            return f"all {len(STEPS)} steps done"
        if {"prepare": self.preparing, "finetune": self.training}.get(self.next_step):  # under way: not "next"
            return f"{self.steps_done} of {len(STEPS)} steps done · now: {STEPS[self.next_step]} (in the background)"
        return f"{self.steps_done} of {len(STEPS)} steps done · next: {STEPS[self.next_step]}"


def demo_status(ws: Workspace, task_id: str) -> DemoStatus:
    """Where the guided path stands; runs whose process died are marked failed first, so none counts as under way (Home
    said "in the background" of a dead preparation until something else reaped it)."""
    from prefine_core import jobs
    from prefine_core.comparison import newest_finetune

    jobs.reap(ws, task_id)
    counts = ws.store.counts(task_id)
    references = ws.store.list_policies(task_id, kind="reference")
    finetuned_id = newest_finetune(ws.store.list_policies(task_id))
    runs = ws.store.list_runs(task_id)  # newest first
    active = [r for r in runs if r.status in jobs.ACTIVE]
    return DemoStatus(
        pairs=counts["pairs"], videos_ready=counts["videos_ready"], labels=counts["labels"],
        decided=len(ws.store.decided_pairs(task_id)),
        reference_id=references[0].id if references else None, finetuned_id=finetuned_id,
        compared=any(r.kind == "compare" and r.status == "done"
                     and finetuned_id in (r.config.get("policy_a"), r.config.get("policy_b")) for r in runs),
        video_job_id=next((r.id for r in active if r.kind in ("prepare", "render")), None),
        training=any(r.kind == "prefine" for r in active))
