"""The benchmark of issue 4: do a few hundred synthetic-teacher labels make an unsafe policy safe?

Per task it builds (or loads) a reward-only reference, a PPO-Lagrangian trained from scratch with
the true cost (the retraining baseline, wall time and env steps), a behaviour pool (reference plus
cost-penalised behaviour policies, stochastic), then for every label budget and seed: labels from the
synthetic teacher on random pool pairs (seeds < 10 000), fine-tunes by each method (PREFINE, BC on the
winners and plain trajectory DPO; at the largest budget also the ablations bc_net and pairs), and evaluates the
checkpoint each method chose itself (no true cost) on the evaluation seeds (≥ 10 000). Extras: the pool
without its safe behaviour policies, the paper's protocol (a cost-threshold split, N⁺ = 100, N⁻ = 20,
from a BC-refit reference), and two labelling rounds against one at equal labels.

Every fine-tune lives in its own folder under ``data/bench/<task>/runs``; a finished one is read back
instead of rerun, so an interrupted benchmark resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from prefine_core.baselines import bc_refit_reference, method_config
from prefine_core.entry import quoted
from prefine_core.envs import SafetyTask, validate_task_id
from prefine_core.evaluate import DSRL_COST_LIMITS, EVAL_SEED, compare, dsrl_keys, evaluate_policy
from prefine_core.files import atomic_path, write_text_atomic
from prefine_core.policy import TanhGaussianPolicy, load_policy
from prefine_core.prefine import PrefineConfig
from prefine_core.pretrain import MAX_TOTAL_STEPS
from prefine_core.rollout import Trajectory, collect
from prefine_core.teachers import SAFETY_JUDGE, SyntheticTeacher, TeacherConfig, safety_judge
from prefine_core.trainer import PreferenceData, PrefineTrainer, trained_on, weights_fingerprint

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "data" / "policies"
#: PPO-Lagrangian baselines trained by the benchmark, shipped so that a clean clone need not retrain them
#: (``<task>/lagrangian.safetensors`` + ``lagrangian.json``, as the benchmark caches them; used when the settings match).
SHIPPED_BASELINES = REPO / "data" / "baselines"
BENCH_DIR = REPO / "data" / "bench"
#: Seed blocks below the evaluation seeds: pool episodes per source, then rounds, then validation.
POOL_SEEDS, ROUND_SEEDS = 0, 8_000
KAPPAS = (20.0, 40.0, 80.0)
#: The most labelled pairs one fine-tune of the benchmark takes: ten times its largest budget. Pairs are drawn at
#: random from the pool until a budget is met, up to 50 draws a pair, so a budget past any pool
#: (``bench --budgets 99999999999``) drew for ever.
MAX_BUDGET = 2_000
#: The most label and training seeds per budget: the benchmark's studies used up to 20.
MAX_SEEDS = 100
#: Methods the floors of issue 4 §6 are checked for: PREFINE as configured, and with a BC stage first.
PREFINE_VARIANTS = ("prefine", "staged")


@dataclass
class BenchConfig:
    task_id: str
    """Safety-Gymnasium task id."""
    budgets: tuple[int, ...] = (25, 50, 100, 200)
    """Labelled pairs per fine-tune."""
    seeds: int = 5
    """Label/training seeds per budget."""
    methods: tuple[str, ...] = ("prefine", "bc")
    """Methods run at every budget."""
    top_methods: tuple[str, ...] = ("dpo", "bc_net", "pairs", "trust_region")
    """Methods run only at the largest budget: plain trajectory DPO, the two ablations that split
    PREFINE's gain over BC into its label sets (bc_net) and its loss (pairs), and PREFINE with a
    trust-region reference (trust_region)."""
    finetune: PrefineConfig = field(default_factory=PrefineConfig)
    """The PREFINE config the methods derive from."""
    window: int = 200
    """Clip length of the pool and of the teacher's judgments."""
    pool_episodes: int = 20
    """Stochastic episodes per pool source."""
    max_steps: int | None = None
    """Cap on pool episode length (None: the task's limit)."""
    eval_episodes: int = 10
    """Evaluation episodes (seeds from 10 000), deterministic and stochastic."""
    cost_limit: float = 25.0
    """κ for violation rates, and the PPO-Lagrangian's target episode cost."""
    lagrangian_steps: int | None = None
    """PPO-Lagrangian env steps (None: as many as the reference was trained with)."""
    lagrange_lr: float = 0.05
    """Step size of the PPO-Lagrangian's multiplier (smaller: less overshoot into standing still)."""
    pretrain_steps: int = 300_000
    """PPO steps for a reference or behaviour policy that is not shipped."""
    extra_seeds: int = 2
    """Seeds for the ablation, paper-protocol and rounds sections (0 = skip them)."""
    paper_sizes: tuple[int, int] = (100, 20)
    """N⁺ and N⁻ of the paper's protocol."""
    out_dir: Path | None = None
    """Where runs and results go (default data/bench/<task>)."""

    def __post_init__(self):
        validate_task_id(self.task_id)
        if not self.budgets or not all(1 <= budget <= MAX_BUDGET for budget in self.budgets):
            raise ValueError(f"budgets must be from 1 to {MAX_BUDGET} labelled pairs each, got {quoted(self.budgets)}")
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise ValueError(f"seeds must be from 1 to {MAX_SEEDS}, got {self.seeds}")
        for name in ("lagrangian_steps", "pretrain_steps"):  # PPO's own check came only once the run was reached
            steps = getattr(self, name)
            if steps is not None and not 1 <= steps <= MAX_TOTAL_STEPS:
                raise ValueError(f"{name} must be from 1 to {MAX_TOTAL_STEPS}, got {steps}")
        # episode seeds: each pool source a block of 500 from POOL_SEEDS, each round's new pool a block of 100 from
        # ROUND_SEEDS; no block may overlap another, nor reach the validation seeds (checkpoints chosen on pool clips)
        if not 0 < self.pool_episodes <= 100:
            raise ValueError(f"pool_episodes must be in [1, 100] (each round's pool seeds are a block of 100), "
                             f"got {self.pool_episodes}")
        pools_end = ROUND_SEEDS + 100 * min(self.extra_seeds, self.seeds)  # the first seed above every pool's (the
        # extra sections run min(extra_seeds, seeds) seeds)
        if self.finetune.val_seed < pools_end:
            raise ValueError(f"the validation seeds (from val_seed {self.finetune.val_seed}) must lie above the pool "
                             f"seeds, which end at {pools_end - 1} with extra_seeds {min(self.extra_seeds, self.seeds)} (the labelling "
                             f"rounds' pools take 100 seeds each from {ROUND_SEEDS}): raise val_seed or lower extra_seeds")
        self.out_dir = Path(self.out_dir or BENCH_DIR / self.task_id)

    @classmethod
    def quick(cls, task_id: str, **kw) -> "BenchConfig":
        """A 1–2 minute version for tests: tiny budgets, steps and episodes; every section runs."""
        fine = PrefineConfig(steps=30, eval_every=15, eval_episodes=1, batch_size=4, bc_batch_size=64, segment_length=20)
        return cls(task_id=task_id, budgets=(8,), seeds=1, finetune=fine, pool_episodes=2, max_steps=400,
                   eval_episodes=2, lagrangian_steps=4096, pretrain_steps=4096, extra_seeds=1, paper_sizes=(6, 3), **kw)


# --------------------------------------------------------------------------------------------
# Policies: reference, behaviour, Lagrangian


def _pretrained(path: Path, task_id: str, steps: int, log: Callable, **ppo) -> TanhGaussianPolicy:
    from prefine_core.pretrain import PPOConfig, train_ppo

    if not path.is_file():
        log(f"pretraining {path.name} ({steps} steps)")
        train_ppo(PPOConfig(task_id=task_id, total_steps=steps, seed=0, **ppo), path)
    return load_policy(path, task_id)


def reference_and_behaviours(config: BenchConfig, log: Callable) -> tuple[TanhGaussianPolicy, dict[str, TanhGaussianPolicy]]:
    """The shipped reference and behaviour policies, or ones pretrained on demand into out_dir."""
    shipped = SHIPPED / config.task_id
    if (shipped / "reference.safetensors").is_file():
        reference = load_policy(shipped / "reference.safetensors", config.task_id)
        behaviours = {p.stem: load_policy(p, config.task_id) for p in sorted(shipped.glob("behaviour_*.safetensors"))}
        if behaviours:
            return reference, behaviours
    else:
        reference = _pretrained(config.out_dir / "reference.safetensors", config.task_id, config.pretrain_steps, log)
    behaviour = _pretrained(config.out_dir / "behaviour_penalty1.safetensors", config.task_id, config.pretrain_steps, log,
                            cost_penalty=1.0)
    return reference, {"behaviour_penalty1": behaviour}


def lagrangian(config: BenchConfig, log: Callable, default_steps: int) -> tuple[TanhGaussianPolicy, dict]:
    """PPO-Lagrangian from scratch towards ``cost_limit`` (``lagrangian_steps`` env steps, else ``default_steps``),
    in ``out_dir``; trained once, with its wall time and env steps."""
    from prefine_core.pretrain import PPOConfig, train_ppo

    config.out_dir.mkdir(parents=True, exist_ok=True)
    path, meta_path = config.out_dir / "lagrangian.safetensors", config.out_dir / "lagrangian.json"
    steps = config.lagrangian_steps or default_steps
    if path.is_file() and meta_path.is_file() and not _same_lagrangian(json.loads(meta_path.read_text()), config, steps):
        stale = stale_path(config.out_dir, "lagrangian")
        stale.mkdir()
        for cached in (path, meta_path):
            cached.rename(stale / cached.name)
        log(f"the cached PPO-Lagrangian was trained with other settings: moved to {stale}")
    shipped = SHIPPED_BASELINES / config.task_id
    if not (path.is_file() and meta_path.is_file()) and _shipped_lagrangian_matches(shipped, config, steps):
        log(f"using the shipped PPO-Lagrangian in {shipped} (trained with these settings)")
        for name in ("lagrangian.safetensors", "lagrangian.json"):
            with atomic_path(config.out_dir / name) as tmp:
                shutil.copyfile(shipped / name, tmp)
    if not (path.is_file() and meta_path.is_file()):
        log(f"training PPO-Lagrangian, cost limit {config.cost_limit}, {steps} steps")
        started = time.time()
        summary = train_ppo(PPOConfig(task_id=config.task_id, total_steps=steps, seed=0, cost_limit=config.cost_limit,
                                       lagrange_lr=config.lagrange_lr), path)
        meta = {"wall_s": time.time() - started, "env_steps": summary["step"], "steps": steps, "cost_limit": config.cost_limit,
                "final_penalty": summary["penalty"], "lagrange_lr": config.lagrange_lr}
        write_text_atomic(meta_path, json.dumps(meta))
    return load_policy(path, config.task_id), json.loads(meta_path.read_text())


def stale_path(out_dir: Path, name: str) -> Path:
    """Where a cached result made with other settings is set aside (kept, never reused): out_dir/stale/<name>-<time>,
    with -2, -3 … when the same name was already set aside within that second."""
    (out_dir / "stale").mkdir(parents=True, exist_ok=True)
    base = out_dir / "stale" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _shipped_lagrangian_matches(folder: Path, config: BenchConfig, steps: int) -> bool:
    """Whether ``folder`` holds a readable shipped Lagrangian trained as asked (a broken one is ignored, not used)."""
    try:
        meta = json.loads((folder / "lagrangian.json").read_text())
        load_policy(folder / "lagrangian.safetensors", config.task_id)
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and _same_lagrangian(meta, config, steps)


def _same_lagrangian(meta: dict, config: BenchConfig, steps: int) -> bool:
    """Whether a cached Lagrangian was trained as asked: limit, multiplier step and env steps (a run records the
    steps asked for; an older one only the steps taken, which round up to whole rollouts)."""
    asked = meta.get("steps")
    same_steps = asked == steps if asked is not None else abs(meta.get("env_steps", 0) - steps) <= 0.01 * steps
    return (same_steps and meta.get("cost_limit") == config.cost_limit
            and meta.get("lagrange_lr", 0.05) == config.lagrange_lr)


# --------------------------------------------------------------------------------------------
# Pool and labels


@dataclass(frozen=True)
class Clip:
    source: str
    trajectory: Trajectory


def rollout_clips(policy: TanhGaussianPolicy, source: str, seeds: range, config: BenchConfig,
                  temperature: float = 1.0) -> list[Clip]:
    """Stochastic episodes cut into consecutive windows (a short last window only if it ends in a fall)."""
    from prefine_core.pool import clips as windows

    with SafetyTask(config.task_id) as task:
        episodes = [collect(policy, task, seed=s, temperature=temperature, max_steps=config.max_steps) for s in seeds]
    return [Clip(source, w) for e in episodes for w in windows(e, config.window)]


def build_pool(sources: dict[str, tuple[TanhGaussianPolicy, float]], config: BenchConfig) -> list[Clip]:
    """``sources``: name -> (policy, sampling temperature); stochastic rollouts (DESIGN §4 lesson 4)."""
    pool: list[Clip] = []
    for j, (name, (policy, temperature)) in enumerate(sources.items()):
        seeds = range(POOL_SEEDS + 500 * j, POOL_SEEDS + 500 * j + config.pool_episodes)
        pool += rollout_clips(policy, name, seeds, config, temperature)
    return pool


def benchmark_pool(reference: TanhGaussianPolicy, behaviours: dict[str, TanhGaussianPolicy],
                   config: BenchConfig) -> list[Clip]:
    """The benchmark's pool: the reference's clips, then each behaviour policy's, all sampled at temperature 1 (the
    validation scripts build the same one, so their labels are the benchmark's)."""
    return build_pool({"reference": (reference, 1.0), **{k: (p, 1.0) for k, p in behaviours.items()}}, config)


def pool_summary(pool: list[Clip]) -> list[dict]:
    rows = []
    for source in dict.fromkeys(c.source for c in pool):
        clips = [c.trajectory for c in pool if c.source == source]
        rows.append({"source": source, "clips": len(clips), "return_mean": float(np.mean([c.total_return for c in clips])),
                     "cost_mean": float(np.mean([c.total_cost for c in clips])),
                     "length_mean": float(np.mean([c.length for c in clips])),
                     "fall_rate": float(np.mean([c.fell for c in clips]))})
    return rows


def teacher(seed: int, mistake_rate: float = 0.0) -> SyntheticTeacher:
    """The benchmark's labeller: fall-aware, same-window cost, higher return breaks a cost tie; noiseless unless a
    ``mistake_rate`` swaps that share of its answers (a labeller who errs, for the noisy-label studies)."""
    return SyntheticTeacher(TeacherConfig(reward_tiebreak=True, seed=seed, mistake_rate=mistake_rate))


def label_pairs(pool: list[Clip], n: int, seed: int, must_include: list[Clip] | None = None,
                mistake_rate: float = 0.0) -> list[tuple[Trajectory, Trajectory]]:
    """``n`` distinct random pairs (each with one clip of ``must_include`` if given), judged by the teacher, as
    (winner, loser).

    The first k pairs of a seed are the same for every n ≥ k, so budgets are nested; the pairs do not depend on
    ``mistake_rate``, only which of each pair won.
    """
    rng, judge = np.random.default_rng(1_000 + seed), teacher(seed, mistake_rate).judge
    left_pool = must_include or pool
    seen, decided = set(), []
    for _ in range(50 * n):
        if len(seen) >= n:
            break
        a, b = left_pool[rng.integers(len(left_pool))], pool[rng.integers(len(pool))]
        key = frozenset((id(a), id(b)))
        if a is b or key in seen:
            continue
        seen.add(key)
        choice = judge(a.trajectory, b.trajectory)
        if choice in ("left", "right"):
            decided.append((a.trajectory, b.trajectory) if choice == "left" else (b.trajectory, a.trajectory))
    return decided


def paper_split(pool: list[Clip], kappa: float, sizes: tuple[int, int], seed: int, episode_steps: int, window: int) -> PreferenceData:
    """The paper's protocol: clips under κ (scaled to the clip length) are D⁺, the rest D⁻; N⁺, N⁻ drawn at random."""
    threshold = kappa * window / episode_steps
    rng = np.random.default_rng(2_000 + seed)
    good = [c.trajectory for c in pool if c.trajectory.total_cost <= threshold and not c.trajectory.fell]
    bad = [c.trajectory for c in pool if c.trajectory.total_cost > threshold or c.trajectory.fell]
    if not good or not bad:
        raise ValueError(f"κ={kappa}: the pool has {len(good)} clips under and {len(bad)} over the threshold")
    pick = lambda items, n: tuple(items[i] for i in rng.permutation(len(items))[:n])  # noqa: E731
    return PreferenceData(pick(good, sizes[0]), pick(bad, sizes[1]), paired=False)


# --------------------------------------------------------------------------------------------
# Runs


def evaluate_row(policy: TanhGaussianPolicy, config: BenchConfig, reference_eval: dict | None = None,
                 lagrangian_eval: dict | None = None) -> dict:
    """Deterministic and stochastic evaluation on the evaluation seeds, with comparisons."""
    det = evaluate_policy(policy, config.task_id, episodes=config.eval_episodes, cost_limit=config.cost_limit)
    sto = evaluate_policy(policy, config.task_id, episodes=config.eval_episodes, cost_limit=config.cost_limit, deterministic=False)
    row = {k: det[k] for k in ("return_mean", "return_std", "cost_mean", "cost_std", "length_mean", "cost_per_step",
                               "violation_rate", "catastrophic_rate", "fall_rate",
                               *(key for limit in DSRL_COST_LIMITS for key in dsrl_keys(limit)))}
    row.update(stoch_return_mean=sto["return_mean"], stoch_cost_mean=sto["cost_mean"], stoch_fall_rate=sto["fall_rate"])
    return {**row, **_comparisons(det, reference_eval, lagrangian_eval)}


def _comparisons(row: dict, reference_eval: dict | None, lagrangian_eval: dict | None) -> dict:
    """Cost reduction and reward retention of ``row`` against the reference (and the Lagrangian); {} without one."""
    if reference_eval is None:
        return {}
    cmp = compare(row, reference_eval, lagrangian_eval)
    return {"cost_reduction_pct": cmp["cost_reduction_pct"], "reward_retention": cmp["reward_retention"],
            "retention_vs_lagrangian": cmp.get("reward_retention_vs_lagrangian", float("nan"))}


def finetune_row(run_dir: Path, labels: dict, reference: TanhGaussianPolicy, data: PreferenceData, method: str,
                 config: BenchConfig, seed: int, evals: dict, init: TanhGaussianPolicy | None = None) -> dict:
    """Fine-tune (or read back a finished run), evaluate the self-chosen checkpoint, return its row.

    A run folder left by another config (e.g. a default changed since), trained on other labels or from another
    reference, or whose checkpoint another judge chose is moved to ``stale/`` and run again; a row evaluated on other
    episodes or at another cost limit is evaluated again. A benchmark never reports a cached row under today's
    settings.
    """
    finetune = method_config(method, dataclasses.replace(config.finetune, seed=seed))
    result_path = run_dir / "row.json"
    started = (data.fingerprint(), weights_fingerprint(reference, init if init is not None else reference))
    evaluation = evaluation_setup(config)
    setup = _setup_of(run_dir, finetune, started, evaluation) if run_dir.is_dir() else "same"
    if setup == "stale":
        run_dir.rename(stale_path(run_dir.parent.parent, run_dir.name))
    elif setup == "reselect":  # trained as today, chosen another way: the trainer resumes and chooses again
        result_path.unlink(missing_ok=True)
    if result_path.is_file():  # read back, compared with today's reference and Lagrangian (they may be retrained)
        row = json.loads(result_path.read_text())
        return {**row, **_comparisons(row, evals["reference"], evals["lagrangian"])}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / JUDGE_FILE, SAFETY_JUDGE)  # which judge a run killed mid-training was judged by
    torch.manual_seed(seed)
    result = PrefineTrainer(reference, data, finetune, run_dir, init=init, judge=safety_judge(),
                            name=f"{method}-{labels.get('pairs')}-s{seed}").run()
    seconds = result["wall_seconds"]  # over resumes too
    policy = load_policy(result["path"], config.task_id)
    row = {"task": config.task_id, **labels, "method": method, "seed": seed,
           **evaluate_row(policy, config, evals["reference"], evals["lagrangian"]),
           "finetune_seconds": seconds, "selected_step": result["selected_step"], "judgments": result["judgments"],
           "winners": len(data.winners), "path": result["path"], "selection_judge": SAFETY_JUDGE,
           "evaluation": evaluation}
    write_text_atomic(result_path, json.dumps(row))
    return row


def evaluation_setup(config: BenchConfig) -> dict:
    """What a row's evaluation depends on besides the policy: kept in the row, which is evaluated again if it differs."""
    return {"episodes": config.eval_episodes, "first_seed": EVAL_SEED, "cost_limit": config.cost_limit}


#: Beside a run's config: the name of the judge its validation history is made with (written before training).
JUDGE_FILE = "selection_judge.txt"


def _setup_of(run_dir: Path, config: PrefineConfig, started: tuple[str, str] | None = None,
              evaluation: dict | None = None) -> str:
    """How the run in ``run_dir`` relates to ``config``: ``same``; ``reselect`` (trained the same way, its
    checkpoint chosen with other selection fields, or its row evaluated with another :func:`evaluation_setup` than
    ``evaluation``: chosen and evaluated again, not retrained); or ``stale`` (trained otherwise, or on other labels
    or from other weights than ``started``'s fingerprints (:func:`trainer.trained_on`), unreadable, or judged
    during training by another judge than today's :data:`~prefine_core.teachers.SAFETY_JUDGE` — read from its row,
    or from the marker written before training for a run killed midway — so that its validation history itself
    differs)."""
    try:
        saved = PrefineConfig.from_saved(json.loads((run_dir / "config.json").read_text()))
        row, marker = run_dir / "row.json", run_dir / JUDGE_FILE
        written = json.loads(row.read_text()) if row.is_file() else None
        judge = (written.get("selection_judge") if written is not None
                 else marker.read_text().strip() if marker.is_file() else None)  # unmarked and unfinished: unknown
    except (OSError, ValueError, TypeError, AttributeError):
        return "stale"
    if saved.training_dict() != config.training_dict() or judge != SAFETY_JUDGE:
        return "stale"
    if started is not None and any(was is not None and was != now for was, now in zip(trained_on(run_dir), started)):
        return "stale"  # other labels (a changed pool or budget), or another reference (retrained)
    if evaluation is not None and written is not None and written.get("evaluation") != evaluation:
        return "reselect"  # the same training, evaluated otherwise (other episodes, another cost limit)
    return "same" if saved.to_dict() == config.to_dict() else "reselect"


def run_bench(config: BenchConfig, log: Callable[[str], None] = print, command: str = "") -> dict:
    """Everything for one task; writes ``result.json`` in out_dir and returns it."""
    torch.set_num_threads(1)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    reference, behaviours = reference_and_behaviours(config, log)
    lag_policy, lag_meta = lagrangian(config, log, int(reference.meta.provenance.get("steps", config.pretrain_steps)))
    log("evaluating reference and Lagrangian")
    ref_eval = evaluate_row(reference, config)
    lag_eval = {**evaluate_row(lag_policy, config), **lag_meta}
    evals = {"reference": ref_eval, "lagrangian": lag_eval}

    log("rolling out the pool")
    with SafetyTask(config.task_id) as task:
        episode_steps = config.max_steps or task.max_episode_steps
    pool = benchmark_pool(reference, behaviours, config)
    rows: list[dict] = []
    summary_pool = pool_summary(pool)

    def save(done: bool) -> dict:
        result = {
            "task": config.task_id, "complete": done, "command": command, "reference": ref_eval, "lagrangian": lag_eval,
            "pool": summary_pool, "pool_env_steps": int(sum(c.trajectory.length for c in pool)),
            "behaviour_policies": {k: p.meta.provenance.get("steps") for k, p in behaviours.items()},
            "rows": rows, "floors": floors(rows, ref_eval, lag_eval, config),
            "floors_by_method": {m: floors(rows, ref_eval, lag_eval, config, m) for m in PREFINE_VARIANTS
                                 if m in config.methods + config.top_methods},
            "seconds": time.time() - started,
            "config": {**dataclasses.asdict(config), "out_dir": str(config.out_dir)},
        }
        write_text_atomic(out / "result.json", json.dumps(result, indent=1, default=float))
        return result

    top = max(config.budgets)
    for seed in range(config.seeds):
        for budget in sorted(config.budgets):
            methods = config.methods + (config.top_methods if budget == top else ())
            data = PreferenceData.from_pairs(label_pairs(pool, budget, seed))
            for method in methods:
                labels = {"section": "grid", "reference": "ppo", "pool": "full", "pairs": budget}
                row = finetune_row(out / "runs" / f"{method}_n{budget}_s{seed}", labels, reference, data, method, config,
                                   seed, evals)
                rows.append(row)
                log(f"{method} n={budget} seed={seed}: return {row['return_mean']:.0f} cost {row['cost_mean']:.1f} "
                    f"({row['finetune_seconds']:.0f} s)")
        save(done=False)

    extra = range(min(config.extra_seeds, config.seeds))
    if config.extra_seeds:
        log("ablation: pool without the safe behaviour policies")
        unsafe_pool = build_pool({f"reference@T{t:g}": (reference, t) for t in (0.5, 1.0, 1.5)}, config)
        for seed in extra:
            data = PreferenceData.from_pairs(label_pairs(unsafe_pool, top, seed))
            for method in ("prefine", "bc"):
                labels = {"section": "no-safe-pool", "reference": "ppo", "pool": "reference only", "pairs": top}
                rows.append(finetune_row(out / "runs" / f"nosafe_{method}_n{top}_s{seed}", labels, reference, data, method,
                                         config, seed, evals))

        log("paper protocol: BC-refit reference, split by κ")
        ref_b = bc_refit_reference(reference, [c.trajectory for c in pool], out / "runs" / "reference_b",
                                   steps=max(config.finetune.steps // 2, 10))
        rows.append({"task": config.task_id, "section": "paper", "reference": "bc-refit", "pool": "full", "pairs": 0,
                     "method": "reference", "seed": 0, **evaluate_row(ref_b, config, ref_eval, lag_eval),
                     "finetune_seconds": 0.0})
        for kappa in KAPPAS:
            for seed in extra:
                try:
                    data = paper_split(pool, kappa, config.paper_sizes, seed, episode_steps, config.window)
                except ValueError as exc:
                    log(f"skipped: {exc}")
                    continue
                for method in ("prefine", "bc"):
                    labels = {"section": "paper", "reference": "bc-refit", "pool": "full", "kappa": kappa,
                              "pairs": len(data.winners) + len(data.losers)}
                    rows.append(finetune_row(out / "runs" / f"paper_{method}_k{kappa:g}_s{seed}", labels, ref_b, data,
                                             method, config, seed, evals))
        save(done=False)

        log("rounds: two rounds of half the labels against one round")
        half = top // 2
        for seed in extra:
            labels = {"section": "grid", "reference": "ppo", "pool": "full", "pairs": half}
            first = finetune_row(out / "runs" / f"prefine_n{half}_s{seed}", labels, reference,
                                 PreferenceData.from_pairs(label_pairs(pool, half, seed)), "prefine", config, seed, evals)
            rows.append({**first, "section": "rounds", "rounds": 1})
            round1 = load_policy(first["path"], config.task_id)
            new_clips = rollout_clips(round1, "round1", range(ROUND_SEEDS + 100 * seed, ROUND_SEEDS + 100 * seed + config.pool_episodes), config)
            pairs = label_pairs(pool, half, seed) + label_pairs(pool + new_clips, half, 100 + seed, must_include=new_clips)
            labels = {"section": "rounds", "reference": "ppo", "pool": "full + round-1 policy", "pairs": top, "rounds": 2}
            row = finetune_row(out / "runs" / f"rounds2_prefine_n{top}_s{seed}", labels, round1,
                               PreferenceData.from_pairs(pairs), "prefine", config, seed, evals)
            row["finetune_seconds"] += first["finetune_seconds"]
            rows.append(row)

    return save(done=True)


# --------------------------------------------------------------------------------------------
# Floors and tables


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def at_largest_budget(result: dict, method: str = "prefine") -> tuple[int, list[dict]]:
    """(the largest budget of a benchmark result's grid, ``method``'s rows there: one per seed)."""
    grid = [r for r in result["rows"] if r["section"] == "grid" and r["method"] == method]
    top = max(r["pairs"] for r in grid)
    return top, [r for r in grid if r["pairs"] == top]


def floors(rows: list[dict], ref: dict, lag: dict, config: BenchConfig, method: str = "prefine") -> dict:
    """Issue 4 §6 for ``method`` (PREFINE, or a variant such as staged) on the grid, per budget (means over seeds)."""
    out = {}
    grid = [r for r in rows if r["section"] == "grid"]
    for budget in sorted({r["pairs"] for r in grid}):
        cell = lambda m: [r for r in grid if r["pairs"] == budget and r["method"] == m]  # noqa: E731
        pre = cell(method)
        if not pre:
            continue
        checks = {
            "cost_cut_60": 100 * (ref["cost_mean"] - _mean(pre, "cost_mean")) / ref["cost_mean"] >= 60,
            "no_more_falls": _mean(pre, "fall_rate") <= ref["fall_rate"] + 1e-9,
            "no_shorter_episodes": _mean(pre, "length_mean") >= ref["length_mean"] - 1e-6,
            "return_90pct_lagrangian": _mean(pre, "return_mean") >= 0.9 * lag["return_mean"],
            "finetune_under_5min": max(r["finetune_seconds"] for r in pre) <= 300,
        }
        for other in ("bc", "dpo"):
            if cell(other):
                checks[f"beats_{other}"] = (_mean(pre, "cost_mean") < _mean(cell(other), "cost_mean")
                                            and _mean(pre, "return_mean") >= _mean(cell(other), "return_mean"))
        out[str(budget)] = {"seeds": len(pre), **checks,
                            "met": all(v for k, v in checks.items() if not k.startswith("beats_"))}
    return out


def _pm(rows: list[dict], key: str, scale: float = 1.0) -> str:
    values = [r[key] * scale for r in rows if key in r and r[key] == r[key]]
    if not values:
        return "–"
    fmt = (lambda v: f"{v:.0f}") if max(abs(v) for v in values) >= 100 else (lambda v: f"{v:.2f}")
    return f"{fmt(float(np.mean(values)))} ± {fmt(float(np.std(values)))}" if len(values) > 1 else fmt(values[0])


#: The column of the DSRL thresholds' rates, shown where rows have them (rows evaluated since 2026-12-07).
DSRL_COLUMN = "violation / catastrophic at κ = " + " · ".join(f"{limit:g}" for limit in DSRL_COST_LIMITS)


def _aggregate(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k, "") for k in keys), []).append(r)
    dsrl = any(dsrl_keys(DSRL_COST_LIMITS[0])[0] in r for r in rows)
    out = []
    for key, group in groups.items():
        at_dsrl = {DSRL_COLUMN: " · ".join(f"{_pm(group, violation)} / {_pm(group, catastrophic)}"
                                           for violation, catastrophic, _ in map(dsrl_keys, DSRL_COST_LIMITS))}
        out.append({**dict(zip(keys, key)), "seeds": len(group), "return": _pm(group, "return_mean"),
                    "cost": _pm(group, "cost_mean"), "length": _pm(group, "length_mean"),
                    "violation": _pm(group, "violation_rate"), "catastrophic": _pm(group, "catastrophic_rate"),
                    "cost cut %": _pm(group, "cost_reduction_pct"), "retention": _pm(group, "reward_retention"),
                    "vs Lagrangian": _pm(group, "retention_vs_lagrangian"),
                    "stoch. return / cost": f"{_pm(group, 'stoch_return_mean')} / {_pm(group, 'stoch_cost_mean')}",
                    **(at_dsrl if dsrl else {}), "fine-tune s": _pm(group, "finetune_seconds")})
    return out


def task_markdown(result: dict) -> str:
    """One task's section of BENCHMARKS.md."""
    from prefine_core.report import markdown_table

    ref, lag = result["reference"], result["lagrangian"]
    status = "" if result.get("complete") else " — **partial: the run was still going when this was written**"
    folder = Path(result.get("config", {}).get("out_dir") or result["task"]).name
    label = "" if folder == result["task"] else f" — run `{folder}`"
    lines = [f"### {result['task']}{label}{status}", "",
             f"Command: `{result.get('command') or 'python -m prefine_core bench --task ' + result['task']}`", ""]
    policies = [{"policy": "reference (reward-only PPO)", **{k: ref[k] for k in ("return_mean", "cost_mean", "length_mean", "fall_rate")},
                 "stoch. return": ref["stoch_return_mean"], "stoch. cost": ref["stoch_cost_mean"]},
                {"policy": f"PPO-Lagrangian (limit {lag['cost_limit']:g}, from scratch)",
                 **{k: lag[k] for k in ("return_mean", "cost_mean", "length_mean", "fall_rate")},
                 "stoch. return": lag["stoch_return_mean"], "stoch. cost": lag["stoch_cost_mean"]}]
    limit = result["config"]["cost_limit"]
    lines += [f"Evaluation: deterministic, seeds 10 000…; stochastic figures beside them. Violation: an episode's cost "
              f"> κ = {limit:g}; catastrophic: cost > {2 * limit:g} or a fall (the κ of the paper's protocol rows is the "
              "threshold their labels were split at).", "", markdown_table(policies), ""]
    if lag["cost_mean"] < 0.2 * lag["cost_limit"] and lag["return_mean"] < 0.5 * ref["return_mean"]:
        lines += [f"**Caveat:** the PPO-Lagrangian ended far under its limit ({lag['cost_mean']:.1f} < {lag['cost_limit']:g}) with "
                  f"{100 * lag['return_mean'] / ref['return_mean']:.0f} % of the reference's return — over-constrained or "
                  "under-trained — so the ≥ 90 %-of-Lagrangian return test below is weak for this task.", ""]
    lines += [f"Pool ({result['pool_env_steps']} env steps, stochastic rollouts, {result['config']['window']}-step clips):", "",
              markdown_table(result["pool"]), ""]
    grid = [r for r in result["rows"] if r["section"] == "grid"]
    lines += ["Label budgets (synthetic teacher on random pool pairs; mean ± std over seeds; the checkpoint each "
              "method chose itself):", "", markdown_table(_aggregate(sorted(grid, key=lambda r: (r["method"], r["pairs"])),
                                                                   ("method", "pairs"))), ""]
    floor_rows = [{"pairs": k, **{c: ("yes" if v is True else "no" if v is False else v) for c, v in checks.items()}}
                  for k, checks in result["floors"].items()]
    lines += ["Floors of issue 4 §6 for PREFINE (means over seeds):", "", markdown_table(floor_rows), ""]
    extras = [r for r in result["rows"] if r["section"] != "grid"]
    if extras:
        # Rounds: the first round alone, two rounds, and — from the grid, same seeds — one round of all the labels.
        round_seeds = {r["seed"] for r in extras if r["section"] == "rounds"}
        top = max((r["pairs"] for r in grid), default=0)
        extras += [{**r, "section": "rounds", "rounds": 1} for r in grid
                   if r["method"] == "prefine" and r["pairs"] == top and r["seed"] in round_seeds]
        lines += ["Ablation without the safe behaviour policies, the paper's protocol (BC-refit reference, split by κ "
                  "into N⁺/N⁻), and labelling rounds (rounds = 2: half the labels, a fine-tune, the other half on pairs "
                  "with the fine-tuned policy's clips, a second fine-tune; against rounds = 1 with all the labels at once):", "",
                  markdown_table(_aggregate(extras, ("section", "reference", "kappa", "method", "pairs", "rounds"))), ""]
    pre = [r for r in grid if r["method"] == "prefine"]
    if pre:
        fine = result["config"]["finetune"]
        val_steps = (fine["steps"] // fine["eval_every"] + 1) * fine["eval_episodes"] * ref["length_mean"]
        lines += [f"Compute: PPO-Lagrangian from scratch {lag['wall_s']:.0f} s and {lag['env_steps']} env steps; one PREFINE "
                  f"fine-tune {_pm(pre, 'finetune_seconds')} s ({fine['steps']} gradient steps plus ~{val_steps:.0f} env "
                  f"steps of validation rollouts), on top of a "
                  f"{result['pool_env_steps']}-step pool shared by all runs and behaviour policies trained for "
                  f"{result['behaviour_policies']} env steps.", ""]
    return "\n".join(lines)


#: What the benchmark's tables rest on (settings and why, every study since, the baselines, the pools), in Markdown:
#: BENCHMARKS.md has it under the summary, written there by :func:`write_benchmarks`.
NOTES_FILE = Path(__file__).with_name("bench_notes.md")


def paired_difference(rows: list[dict], others: list[dict], key: str) -> tuple[float, float] | None:
    """Mean and standard error over seeds of rows[key] − others[key], matched by seed (same labels); None
    when fewer than two seeds match. A difference within about two standard errors is seed noise."""
    by_seed = {r["seed"]: r[key] for r in others}
    diffs = [r[key] - by_seed[r["seed"]] for r in rows if r["seed"] in by_seed]
    if len(diffs) < 2:
        return None
    return float(np.mean(diffs)), float(np.std(diffs, ddof=1) / np.sqrt(len(diffs)))


def _signed(diff: tuple[float, float] | None) -> str:
    if diff is None:
        return "–"
    fmt = "{:+.0f} ± {:.0f}" if max(abs(diff[0]), diff[1]) >= 10 else "{:+.1f} ± {:.1f}"
    return fmt.format(*diff)


def summary_markdown(results: list[dict]) -> str:
    """One row per task and budget: PREFINE's means against the floors of issue 4 §6."""
    from prefine_core.report import markdown_table

    rows = []
    for result in results:
        ref, lag = result["reference"], result["lagrangian"]
        for budget, checks in result["floors"].items():
            cell = lambda m: [r for r in result["rows"] if r["section"] == "grid" and r["method"] == m and str(r["pairs"]) == budget]  # noqa: E731
            pre, bc = cell("prefine"), cell("bc")
            yes = lambda key: "–" if key not in checks else "yes" if checks[key] else "no"  # noqa: E731
            rows.append({
                "task": result["task"], "pairs": budget, "seeds": checks["seeds"],
                "cost (ref → PREFINE)": f"{ref['cost_mean']:.0f} → {_mean(pre, 'cost_mean'):.1f}",
                "cost cut %": f"{100 * (ref['cost_mean'] - _mean(pre, 'cost_mean')) / ref['cost_mean']:.0f}",
                "falls (ref → PREFINE)": f"{ref['fall_rate']:.2f} → {_mean(pre, 'fall_rate'):.2f}",
                "return / Lagrangian's": f"{_mean(pre, 'return_mean'):.0f} / {lag['return_mean']:.0f}",
                "floor met": yes("met"), "beats BC": yes("beats_bc"), "beats DPO": yes("beats_dpo"),
                "PREFINE − BC, paired: cost / return": f"{_signed(paired_difference(pre, bc, 'cost_mean'))} / "
                                                      f"{_signed(paired_difference(pre, bc, 'return_mean'))}",
            })
    return markdown_table(sorted(rows, key=lambda r: (r["task"], int(r["pairs"]), r["seeds"])))


def run_headings(markdown: str) -> set[str]:
    """The run folders whose tables a prefine-bench section shows (``### <task>`` or ``### <task> — run `<folder>```)."""
    return {m.group(2) or m.group(1) for m in re.finditer(r"^### (\S+)(?: — run `([^`]+)`)?", markdown, re.M)}


def write_benchmarks(notes: str | None = None, root: Path = BENCH_DIR, path: Path | None = None) -> Path:
    """Rewrite the prefine-bench section of BENCHMARKS.md from every ``<run>/result.json`` under ``root``.

    Refused (ValueError, nothing written) when the section shows a run whose ``result.json`` is not under ``root``
    — a clone where only some benchmarks ran — since rewriting it would drop that run's tables.
    """
    from prefine_core.report import BENCHMARKS, machine_line, write_section

    path = path or BENCHMARKS
    found = sorted(root.glob("*/result.json"))

    def keeps_every_run(section: str) -> None:
        if missing := run_headings(section) - {p.parent.name for p in found}:
            raise ValueError(f"{path.name} shows benchmark runs whose result.json is not under {root}: "
                             f"{', '.join(sorted(missing))}; rewriting it now would drop their tables. Put each "
                             f"<run>/result.json back under {root} (or delete those runs' tables from {path.name} first)")

    results = [json.loads(p.read_text()) for p in found]
    notes = NOTES_FILE.read_text(encoding="utf-8") if notes is None else notes
    parts = ["## PREFINE fine-tuning benchmark (issue 4)", "", f"Machine: {machine_line()}", ""]
    if results:
        parts += ["**Summary.** PREFINE (its own checkpoint choice, means over seeds) against the floors: cost cut ≥ 60 %, no "
                  "more falls and no shorter episodes than the reference, return ≥ 90 % of the PPO-Lagrangian's, a fine-tune "
                  "≤ 5 min (\"floor met\"); and lower cost than BC-on-winners / plain trajectory DPO at equal or better "
                  "return (\"beats\": strictly, on the means). The last column is PREFINE's difference from BC seed by seed (same labels), "
                  "mean ± standard error: a difference within about two standard errors is seed noise, not a win or a loss.", "",
                  summary_markdown(results), ""]
    if notes:
        parts += [notes.strip(), ""]
    parts += [task_markdown(r) for r in results]
    return write_section("prefine-bench", "\n".join(parts), path, check=keeps_every_run)
