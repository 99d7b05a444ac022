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
from prefine_core.envs import SafetyTask, validate_task_id
from prefine_core.evaluate import DSRL_COST_LIMITS, EVAL_SEED, compare, dsrl_keys, evaluate_policy
from prefine_core.files import atomic_path, write_text_atomic
from prefine_core.policy import TanhGaussianPolicy, load_policy
from prefine_core.prefine import PrefineConfig
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
        if not self.budgets or min(self.budgets) <= 0:
            raise ValueError(f"budgets must be positive, got {self.budgets}")
        if self.seeds <= 0:
            raise ValueError(f"seeds must be positive, got {self.seeds}")
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


NOTES = """\
**Settings and why** (chosen on validation seeds 9 000–9 001 of HalfCheetah with seed-0 labels, never on the
evaluation seeds): β = 0.05 on 50-step segment sums (DESIGN §4: ≤ 0.1; larger let the preference terms
dominate in the prototypes), λ = 1 (BC-dominant), w⁻ = 0.5 with β·margin clamped to [−2, 2] per sample
(without the lower clamp the D⁻ term pushed the policy off safe clips that had lost a reward tie-break,
and validation cost swung between 14 and 416 across checkpoints), Adam 1e-3 for 4 000 steps (3e-4 had not
left the fast gait after 4 000 steps; 20 000 steps would break the 5-minute budget with validation), batch
16 segments + 256 BC pairs, counterfactuals at temperature 1. BC and trajectory DPO use the same steps,
step size and selection, and DPO PREFINE's margin cap (standard DPO has none), so that it differs from PREFINE
only in what each clip is contrasted with. Checkpoints every 400 steps; the one used is chosen without the true cost: the
teacher, asked only which clip was safer (no reward tie-break — the app's judge too), judges 200-step clips of
2 deterministic validation episodes against the 10 most-winning labelled clips (a fall loses the clips it never
reached), and among checkpoints within 0.1 of the safest the highest validation return wins (`judgments` counts
these extra teacher calls). Until this session's rerun the benchmark's judge was the labelling teacher, which
breaks cost ties by return: a checkpoint with no cost at all then lost to faster cost-free anchors and could score
0, so selection counted return twice (PointCircle, BC seed 0: cost-free checkpoints scored 0, the chosen one cost 134).
Labels: random pool pairs judged by the noiseless synthetic teacher (fall-aware, same-window cost,
higher return breaks a cost tie); budgets are nested per seed. Evaluation: 10 episodes from seed 10 000,
deterministic (stochastic beside it). Floors use the fine-tune's own chosen checkpoint, means over seeds.
**Label sets** (`label_sets = net`; chosen on validation seeds 9 500–9 509 with the labels of seeds 0–1, never on the
evaluation seeds): with random pairs a clip is often labelled twice, and on every pair's own sets a fast clip that
beat a faster one is imitated as a winner even when it lost to a slow one. PREFINE cancels each clip's wins against
its losses (a clip that won k more often than it lost is in D⁺ k times, one that lost k more often in D⁻ k times,
an even clip in neither). Validation return / cost, every pair's sets → net: PointCircle 200 pairs 25.5 / 60 →
32.1 / 47 (2 seeds); HalfCheetah 200 pairs 2675 / 6.7 → 2609 / 6.3, 50 pairs 2417 / 4.2 → 2591 / 2.8 (1 seed);
Hopper within noise (measured with a deduplicating variant, which kept each clip once and so lost the weight of
clips that won again and again: HalfCheetah cost 92 — discarded). The BC baseline keeps every pair's winner, as
specified; `bc_net` (BC on PREFINE's net winners) and `pairs` (PREFINE on every pair's sets, the previous
default) run at the largest budget, so that a gain over BC can be traced to the label sets or to the loss.
**Trust-region reference** (`trust_region`, an ablation, not the default): DPO's implicit KL pulls the policy back
towards π_ref — here the unsafe policy (DESIGN §4 lesson 3) — so this variant takes the preference terms'
log-ratios against a copy of the policy refreshed every 200 steps (as TR-DPO; `reference_sync_every`). It was
compared with the default on validation seeds 9 500–9 509 (labels of seeds 0–3, 200 pairs;
`scripts/validate_variants.py --task ID --seeds 0 1 2 3`, Hopper `--seeds 0 1`) by the issue's own criterion, lower cost than BC at equal or better return: HalfCheetah default 2629 / 5.9, trust region 2635 / 3.2,
BC 2628 / 8.2; PointCircle default 27.7 / 37.8, trust region 24.7 / 11.8, BC 27.0 / 89.7; Hopper (2 seeds) default
1486 / 100, trust region 1459 / 88, BC 1494 / 101. The default beat BC on two tasks there, the trust region on one
(it is safer everywhere but gives up return on PointCircle and Hopper), so the default stayed; the rows below
show it on the evaluation seeds, read after that choice and not used to make it. A reference-free variant
(`implicit_reward = logp`, the preference terms on log π_θ alone, as CPO / SimPO) was compared the same way and
not run on the evaluation seeds: HalfCheetah 2659 / 3.6 (beats BC and the default), PointCircle 25.0 / 22.7
(safer, less return), Hopper (2 seeds) 1519 / 126 (more return, more cost) — one task of three, so not chosen.
(Those validation figures were chosen by the old, reward-tie-breaking judge.)
**Session 4 variants** (all with the safety-only judge, its "equal" still scored ½; validation seeds 9 500–9 509,
200 pairs, labels of seeds 0–3, Hopper 0–1; return / cost, fall rate where not 0). The rule was written down before each run: adopt a variant
if PREFINE with it has lower mean cost at a return within 1 % (or better) than the default on two of three tasks,
and loses more than 2 % return on none.

| variant | HalfCheetah | PointCircle | Hopper | adopted |
|---|---|---|---|---|
| default | 2629 / 5.9 | 25.5 / 31.2 | 1543 / 171, falls 0.2 | – |
| `lr_schedule = cosine` (step size to 0 over the run) | 2643 / 3.7 | 27.3 / 33.7 | 1471 / 89 | no (HC only) |
| `eval_episodes = 4` (validation episodes per checkpoint) | 2628 / 6.2 | 27.6 / 52.0 | 1486 / 100 | no |
| `dispref_target = nearest_winner` | 2662 / 7.5 | 27.3 / 38.1 | 1517 / 121 | no |
| nearest_winner + cosine | 2646 / 7.2 | 27.2 / 33.4 | 1504 / 109 (1 seed) | no |
| BC (for reference) | 2628 / 8.1 | 28.8 / 101 | 1494 / 101 | – |
| BC, cosine | 2660 / 15.5 | 25.4 / 57.9 | 1497 / 111 | – |
| BC, 4 validation episodes | 2628 / 7.0 | 23.7 / 27.7 | 1494 / 101 | – |

`nearest_winner`: on dispreferred states the logged loser action is contrasted with the action a preferred clip took
in the nearest state instead of a sample of π_θ — at a state where π_θ still acts like the loser, pushing the
loser's action down against π_θ's own sample mostly widens π_θ; a winner's action gives the mean a direction
(a unit test shows the difference). It did not help here. The rule ignored falls, and in hindsight it should not
have: the default's higher Hopper return comes with falls in 2 of 10 validation episodes, and under a fall-aware rule
the cosine schedule would have been adopted. It was not switched after the fact; the three stay as options.
**Selection score.** With the safety-only judge a validation clip exactly as safe as its anchor ("equal") scored ½, so
against cost-free anchors no checkpoint could pass 0.5 and the 0.1 tolerance admitted twice as many unsafe clips as
it says. A clip at least as safe as its anchor now scores 1. Same validation runs, default and BC: identical on
HalfCheetah (2629 / 5.9 and 2628 / 8.1), PointCircle default 25.5 / 31.2 → 24.6 / 39.9 (one seed chose another
checkpoint), BC 28.8 / 101; Hopper seed 0 still chooses a checkpoint that falls in 4 of 10 validation episodes
(1610 / 252): among checkpoints within the tolerance of the safest the highest validation return wins, and the
2 validation episodes of that checkpoint did not fall. The tables below are this scoring and this judge.
**Selection rules** (session 5; written down before the study ran). Every checkpoint of the validation runs is
evaluated on validation seeds 9 500–9 509 (`scripts/validate_selection.py`), and five rules, reading only what the
selection may read (validation return and length on seeds 9 000…, `val/safety`), pick one checkpoint each:
today's (highest return within 0.1 of the safest), `safest` (highest `val/safety`, ties by return), `fall_free`
(today's among checkpoints whose validation episodes did not fall), `smoothed` (today's on `val/safety` averaged
with the neighbouring checkpoints') and `latest_safe` (the latest within 0.1 of the safest). Adopt a rule if, for
PREFINE, it gives lower mean validation cost at a return within 1 % (or better) than today's on two of three tasks,
loses more than 2 % return on none and raises the fall rate on none; of several, the one with the lowest cost
summed relative to today's. The same rule then serves every method. Result (labels of seeds 0–3, 200 pairs;
validation return / cost of the chosen checkpoint, fall rate where not 0):

| method | rule | HalfCheetah | Hopper | PointCircle |
|---|---|---|---|---|
| PREFINE | today's | 2629 / 5.9 | 1513 / 134, falls 0.10 | 24.6 / 39.9 |
| PREFINE | `safest` | 2626 / 6.3 | 1472 / 90 | 24.6 / 39.9 |
| PREFINE | `fall_free` | 2629 / 5.9 | 1513 / 134, falls 0.10 | 24.6 / 39.9 |
| PREFINE | `smoothed` | 2610 / 3.1 | 1543 / 178, falls 0.20 | 26.4 / 29.0 |
| PREFINE | `latest_safe` | 2583 / 4.3 | 1461 / 84 | 26.5 / 47.2 |
| PREFINE | (oracle: fewest falls, then lowest cost, on these seeds) | 2557 / 0.9 | 1448 / 73 | 25.7 / 11.9 |
| BC | today's | 2628 / 8.1 | 1387 / 77 | 28.8 / 101 |
| BC | `smoothed` | 2627 / 28.2 | 1455 / 133, falls 0.12 | 27.6 / 95.2 |
| BC | (oracle) | 2568 / 0.8 | 1363 / 56 | 24.5 / 14.6 |

No rule passed: `smoothed` wins on HalfCheetah and PointCircle but raises Hopper's fall rate; `safest` and
`latest_safe` give up more than 2 % of Hopper's return (the default's Hopper return there came with falls, but the
criterion written down did not excuse that, so it stands). Today's rule stays; `select_smoothing` ships as an option.
The oracle rows say where the headroom is: on PointCircle a checkpoint of cost 12 at the same return existed in
every run, and the teacher's verdicts on 2 validation episodes did not find it.
The same five rules on the fresh runs below (labels of seeds 20–23, checkpoints evaluated from seed 9 600), read
after the decision: PREFINE today's 2625 / 3.0 · 1514 / 130 · 22.8 / 27.1; `safest` 2613 / 1.6 · 1499 / 118 ·
22.8 / 27.1 (it would pass here, having failed above: the rules differ by noise at 4 seeds); `latest_safe` safer
everywhere at 1.3–1.5 % less return; `smoothed` chose early checkpoints on Hopper that fall in 28 % of episodes.
`fall_free` changes nothing with 2 validation episodes, and only 2 of the 457 cached benchmark choices.
**Cosine schedule, confirmatory run** (session 5; written down before it ran). Last session's cosine result was read
with a rule that ignored falls, and a fall-aware rule was proposed only after seeing it — so it is tested again on
data it has not seen: labels of seeds 20–23 (never used before) and validation episodes from seed 9 600. Adopt
`lr_schedule = cosine` as PREFINE's default if, on two of three tasks, PREFINE with it has lower mean cost than
without at a return within 1 % (or better), and on no task it loses more than 2 % return — where a return the
default reached with more falls does not count as a loss (a fall is never the better trade) — and on no task it
raises the fall rate.
Result (4 seeds; validation return / cost; no falls anywhere): HalfCheetah default 2625 / 2.98, cosine 2650 / 2.98
(the same cost to the hundredth: not lower); Hopper 1514 / 130 against 1485 / 107 (1.9 % less return: not within
1 %); PointCircle 22.8 / 27.1 against 22.1 / 6.0 (3.2 % less return: a loss). **Not adopted**, on data it had not
seen — last session's "would have passed" was hindsight. BC on the same data: HalfCheetah 2792 / 75.6 (one seed
chose a checkpoint at cost 271), Hopper 1526 / 155, PointCircle 24.8 / 81.2: safer than BC on all three, PREFINE
gives up some return on each.
**Ten validation episodes** (session 5; written down before it ran). The selection study showed the verdicts on 2
validation episodes misjudge checkpoints (PointCircle seed 1: checkpoints at cost 0 on seeds 9 000–9 001 cost 32–89
on seeds 9 500–9 509). `eval_episodes = 10` runs on the same fresh data as the cosine run and is adopted by the same
criterion (against the default; fall-aware), for every method alike.
Result (4 seeds): HalfCheetah 2626 / 6.0 against the default's 2625 / 3.0 (costlier); Hopper 1434 / 137 with falls
in 12.5 % of episodes against 1514 / 130 and none (seed 23 chose a checkpoint whose validation episodes had already
fallen once — within 0.1 of the safest, and the fastest); PointCircle 23.4 / 21.0 against 22.8 / 27.1 (better).
One task of three: **not adopted**. BC with ten: 2660 / 8.2, 1532 / 151 (falls 2.5 %), 23.4 / 47.5.
**Ten validation episodes with `fall_free`** (session 5, written down before it ran; for the next session to act on,
since adopting it means rerunning every benchmark row). The ten-episode failure above was one Hopper pick that had
already fallen in validation, which `fall_free` excludes. On labels not used before (seeds 30–33) and validation
episodes from seed 9 700: PREFINE with `eval_episodes = 10` chosen by `fall_free` against the default (2 episodes,
today's rule), by the same criterion (lower cost at ≤ 1 % less return on two tasks, > 2 % loss on none, no more falls).
Result (4 seeds, return / cost, no falls anywhere): HalfCheetah 2599 / 10.6 → 2647 / 6.5 (better on both), Hopper
1506 / 121 → 1491 / 113 (1.0 % less return, safer), PointCircle 29.1 / 38.5 → 26.8 / 24.0 (7.9 % less return).
Two tasks pass, but PointCircle loses more than 2 %: **not adopted**. (`fall_free` picked the same checkpoints as
today's rule in all 24 of these runs; the gains and the loss are the ten episodes'.)
**Weight averaging** (session 6; written down before it ran). The prototypes' best checkpoints "touched the slow
gait and left it again", and the selection studies found safer checkpoints at the same return that 2 validation
episodes could not tell apart from their neighbours: the policy a checkpoint holds is one noisy point of a
trajectory that hops between gaits. `ema_decay = 0.995` validates, checkpoints and ships the exponential moving
average of the weights (a 200-step time constant against 400 steps between checkpoints; warmed up as
min(decay, (1 + t) / (10 + t))) while Adam steps the raw weights — standard in behaviour cloning, so BC gets it too.
On labels not used before (seeds 40–43, 200 pairs) and validation episodes from seed 9 800: adopt it as every
method's default if PREFINE with it, against PREFINE without, has lower mean cost at a return within 1 % (or better)
on two of three tasks, loses more than 2 % return on none (a return the default reached with more falls is not a
loss) and raises the fall rate on none. PREFINE with it against BC with it is reported beside, not used to decide.
Result (4 seeds, validation return / cost, no falls anywhere; `scripts/validate_variants.py --task ID --pairs 200
--seeds 40 41 42 43 --variants prefine ema bc bc_ema --validation-seed 9800`, read back by `scripts/validate_selection.py
data/bench/validation/<task> … --validation-seed 9800 --seeds 40 41 42 43`, rule `return_within_tolerance`): HalfCheetah 2650 / 13.6 → 2668 / 10.6
(better on both); PointCircle 26.5 / 19.2 → 23.9 / 3.8 (9.8 % less return: a loss); Hopper 1450 / 84 → 1495 / 109
(costlier). One task of three, and a loss on PointCircle: **not adopted**; `ema_decay` ships as an option (default 0).
Beside it, PREFINE against BC on the same labels: without averaging HalfCheetah 2650 / 13.6 against 2621 / 4.9,
PointCircle 26.5 / 19.2 against 23.0 / 17.2, Hopper 1450 / 84 against 1515 / 136; both averaged 2668 / 10.6 against
2649 / 10.1, 23.9 / 3.8 against 24.2 / 22.9, 1495 / 109 against 1496 / 109 — again a trade-off on every task, never
lower cost at equal or better return on two.
**What the checkpoints reach, whatever the choice** (session 6; descriptive, no rule adopted by it). Every checkpoint
evaluated on 10 validation episodes from seed 9 800 (`scripts/validate_selection.py data/bench/validation/<task> …
--validation-seed 9800 --frontier 0 5 10 25 50 75 100 150 --paired prefine bc`, which prints every figure below): per run, the best return among checkpoints that did not fall
and cost at most C. Runs of the weight-averaging study (labels of seeds 40–43) and four more label sets per task
(seeds 44–47, `validate_variants.py … --seeds 44 45 46 47 --variants prefine bc --validation-seed
9800`). Per level: mean over the runs that reach C (how many of 8 in brackets), then PREFINE − BC seed by seed over
the seeds where both reach it (mean ± standard error, and in how many PREFINE is ahead).

| task | C | PREFINE | BC | PREFINE − BC, paired | ahead |
|---|---|---|---|---|---|
| HalfCheetah | 0 | – (0) | 2461 (1) | – | – |
| HalfCheetah | 5 | 2622 (7) | 2590 (7) | +35 ± 17 | 5 of 6 |
| HalfCheetah | 10 | 2645 (8) | 2619 (7) | +29 ± 15 | 5 of 7 |
| HalfCheetah | 25 | 2662 (8) | 2638 (8) | +25 ± 12 | 6 of 8 |
| HalfCheetah | 50 | 2690 (8) | 2668 (8) | +22 ± 12 | 6 of 8 |
| HalfCheetah | 100 | 2723 (8) | 2717 (8) | +5 ± 12 | 5 of 8 |
| PointCircle | 0 | 22.2 (6) | 21.5 (5) | +1.4 ± 0.6 | 4 of 4 |
| PointCircle | 5 | 22.2 (6) | 21.9 (5) | +0.8 ± 0.2 | 4 of 4 |
| PointCircle | 10 | 22.3 (7) | 22.7 (6) | +0.2 ± 0.4 | 3 of 5 |
| PointCircle | 25 | 24.3 (8) | 23.3 (6) | +1.8 ± 1.2 | 4 of 6 |
| PointCircle | 50 | 26.6 (8) | 25.6 (8) | +1.0 ± 0.6 | 5 of 8 |
| PointCircle | 100 | 28.5 (8) | 28.5 (8) | +0.1 ± 1.4 | 5 of 8 |

Hopper (8 runs, label sets 40–47; only one checkpoint of any run under cost 50, a BC one standing still at return
1073): at C = 100 PREFINE 1471, BC 1483 (paired −12 ± 9, PREFINE ahead in 3 of 8), at C = 150 1511 and 1517 (−7 ± 6);
PREFINE reaches C = 75 in 4 runs, BC in 2. With weight averaging (first four runs) the HalfCheetah and PointCircle
frontiers are likewise above BC's, and Hopper ties.

Under the limit and up to twice it, PREFINE's checkpoints reach more return than BC's on HalfCheetah (by 22–35, about
two standard errors) and on PointCircle (by 0.8–1.8, where it also reaches cost ≤ 25 in all 8 runs against 6),
and far above the limit the two meet; on Hopper BC's reach a little more return at C ≥ 100 (within two standard
errors) while PREFINE's get under cost 75 twice as often. So the preference terms do add to BC in what a fine-tune
*can* become on two tasks of three. The checkpoints the methods chose themselves, on the same 8 label sets and the same
validation episodes: HalfCheetah PREFINE 2649 / 10.6 against BC 2638 / 17.5, PointCircle 24.6 / 18.1 against
22.8 / 28.3, Hopper 1472 / 93 against 1452 / 108 — lower cost at higher return on all three, where on the benchmark's
label sets 0–4 they were not (paired cost −6.9 ± 12.1, −10.2 ± 16.1 and −14.5 ± 25.3: within noise either way). What the floors measure, the chosen checkpoint, lands PREFINE and BC at
different points of trade-offs that differ by less than the choice's own scatter; that is why "lower cost at equal
or better return" comes and goes between label sets. The gap to close is the choice, not the loss. (Read after the
runs; the benchmark's seeds and verdict stay as they are. Every run's and checkpoint's figures:
`data/studies/2026-12-01-averaging-and-frontier/`.)
**Staged PREFINE** (session 7; `start = "bc"`, method `staged`; rule written down before it ran). DPO's own recipe
takes π_ref to be the supervised policy; here π_ref is the unsafe start, whose implicit KL holds PREFINE back
(DESIGN §4, lesson 3). Staged first runs BC on every pair's winner (same steps, its own checkpoint choice), then
PREFINE from the policy BC chose, with the log-ratios against it. On validation (label sets 48–51, episodes
9 700…) it passed the rule — lower cost than BC at a higher return on HalfCheetah (2660 / 5.7 against 2628 / 5.8,
a hair) and PointCircle (25.0 / 34.4 against 24.0 / 42.6), no fall rate above BC's — so it was measured on the
benchmark's label sets 0–4 and evaluation seeds at 200 pairs (the PREFINE and BC rows reproduced the table below
to the digit): HalfCheetah 2662 / 8.3 against BC 2624 / 7.1 (paired: cost +1.2 ± 4.6, return +38 ± 7, the clearest
paired gain over BC of any variant, at BC's cost), PointCircle 27.4 / 50.3 against 29.9 / 95.7 (cost −45 ± 27,
return −2.4 ± 2.5), Hopper 1542 / 143.5 against 1405 / 80.5 (+63 ± 40, +137 ± 89). It beats BC on no task by the
strict rule, and every other floor holds for it at 200 pairs (fine-tune 55–87 s with its BC stage): an option,
not the default. A choice rule for it written down beforehand (the teacher-safest checkpoint, for both methods)
beat BC on validation on one task of three (PointCircle) and was not taken further. With 10 seeds (read after the
decision) the HalfCheetah parity goes: staged − BC cost +20.9 ± 11.3, return +59 ± 21 (faster and costlier, as
PREFINE), PointCircle −34 ± 19 / −1.8 ± 1.6; staged − PREFINE is within noise on both. Runs, rows and commands:
`data/studies/2026-12-01-staged/`.
**Session 8** (rules written down before each run; `data/studies/2026-12-01-dispref/`, `…-steps/`, `…-twenty-seeds/`).
The D⁻ weight, the one term that uses what BC cannot (the losers), at w⁻ = 1 and 2 against 0.5 (label sets 52–55,
validation episodes 9 900…): neither beats BC on any task (w⁻ = 2 is safer than BC on all three and gives up return
on all three; w⁻ = 1 chose a PointCircle checkpoint at cost 149 and a Hopper one that falls). Three times the steps
(12 000, both methods, label sets 56–59, episodes 9 950…): beats BC on no task; both land further up the trade-off.
Neither was run on the evaluation seeds. Pooling the default PREFINE and BC of every validation study since session 6
(20 label sets, 40–59) gave PREFINE − BC return +24 ± 12 / cost +1.7 ± 5.9 on HalfCheetah, +1.45 ± 0.81 / −19 ± 10 on
PointCircle, +26 ± 48 / −5 ± 13 on Hopper; so the benchmark itself was run with twenty label sets (0–19) at 200 pairs,
PREFINE and BC, nothing chosen by it (seeds 0–9 reproduce the rows below to the digit): HalfCheetah 2635 / 14.5
against 2636 / 10.9 (paired return −0.6 ± 17.3, cost +3.6 ± 6.7), PointCircle 26.0 / 34.6 against 27.1 / 58.9
(−1.1 ± 1.2, −24 ± 14), Hopper 1486 / 101.8 against 1466 / 114.5 (+20 ± 36, −13 ± 17; falls 0.010 against 0.015).
With four times the seeds the 5- and 10-seed gaps on HalfCheetah and Hopper shrink to noise, and PointCircle stays
safer at a return within one standard error: by the strict rule one task of three (Hopper, by less than a standard
error), every other floor held on all three. The issue's 5-seed verdict below stands.
**Session 9** (rule written down before the run; `data/studies/2026-12-01-step-credit/`). A per-step signal: a step
cost ĉ(s, a) fitted to the same labels by Bradley–Terry on clip sums (with a learned fall penalty; no true cost read)
weighs winners' steps by how safe and losers' steps by how unsafe they look, in the preference terms and the BC
anchor (`step_credit = "learned"`, `prefine_core/credit.py`). Label sets 60–63, validation episodes 9 970…: it
beats BC on HalfCheetah only (2706 / 31.8 against 2662 / 33.6), not on PointCircle (25.1 / 65.9 against 23.8 / 26.8)
or Hopper (1531 / 167 against 1487 / 108), and moved the default faster and costlier on all three — not run on the
evaluation seeds; an option. The fitted step cost orders held-out pairs right in 82–94 % of cases, but its per-step
credit is coarse (p 0.45 / 0.62 / 0.23 on truly costly steps against 0.12 / 0.35 / 0.01 on cost-free ones): each
pool clip is one policy at one speed, so its label says little about which of its steps were unsafe. The same model
was tried as a checkpoint judge (its Bradley–Terry verdicts instead of the teacher's) and dropped before any study:
on deterministic validation rollouts (HalfCheetah, 50 labels) its clip costs moved by about as much as separates
the safe behaviour policy's clips from the reference's: it judged the safe policy's nearly cost-free clips (cost
0–3) less safe than the most-winning anchor (verdicts 0.00), as it judged the reference's (`judge_diagnostic.py`).
**Session 10** (`data/studies/2026-12-01-floor-power/`, `…-selection-tolerance/`). How often the 5-seed floor comes
out met for the method as it is: over all C(20, 5) = 15 504 draws of five of the twenty label sets of the
twenty-seed run, PREFINE has lower mean cost than BC at a mean return at least BC's in 16.7 % of draws on
HalfCheetah, 21.8 % on Hopper and 17.3 % on PointCircle (BC beats PREFINE by the same rule in 17.2 %, 1.5 % and
4.2 %), and on two tasks of three in 12.0 % (`power.py`). Sets 0–4, the benchmark's, pass on none. Robust passing
would take much more than a better choice: with every PREFINE run shifted by half of BC's mean cost and half of
BC's return spread, Hopper would pass in 97 % of draws and PointCircle in 66 %, HalfCheetah (PREFINE's two
fast, costly picks among twenty) in 39 %. Then a pre-registered test of the one selection setting never chosen by
the issue's own comparison with BC, `select_tolerance` (0.1 since session 2; session 5 judged tolerance 0 by PREFINE
against PREFINE), on label sets 52–63 with every checkpoint evaluated on 10 validation episodes from seed 9 980: no
band passes on two tasks in more than 15.0 % of five-label-set draws (today's 6.4 %, tolerance 0 and 0.05 11.4 %);
a narrower band moves PREFINE below BC's cost on HalfCheetah (−4.2 ± 7.6 against +0.5 ± 9.3) and changes nothing on
PointCircle, and on these twelve label sets PREFINE's chosen Hopper checkpoints are no better than BC's at any band
(−20 ± 42 return, +6 ± 16 cost at 0.1). Not adopted; nothing was run on the evaluation seeds. On label sets 40–47
(session 6) every band from 0 to 0.1 had PREFINE below BC's cost at a higher return on all three tasks; on 52–63 it
does not on two: the sign belongs to the label sets.
**Session 11** (`data/studies/2026-12-01-noisy-labels/`; written down before it ran). People err, and BC copies
every winner, so a labeller who swaps answers is where PREFINE's use of the losers (net label sets, the D⁻ term)
should show if it helps. On label sets 70–73 (200 pairs) labelled with `mistake_rate` 0.2 (one decided answer in
five swapped; the same pairs at ε = 0 beside them), PREFINE and BC with their own checkpoint choice, 10 validation
episodes from seed 9 990: PREFINE beats BC by the issue's rule on none of the three tasks at ε = 0.2 (the hypothesis
asked two). It is safer than BC on HalfCheetah (14.4 against 24.9 at 32 less return) and PointCircle (23.8 against
58.1 at 2.6 less), faster and costlier on Hopper: another point of the same trade-off, as without noise. The noise
costs neither method clearly on HalfCheetah or Hopper; on PointCircle it makes PREFINE slower (−6.7 ± 1.7 return).
With 200 random pairs over 160–300 clips most clips are labelled once or twice, so the net label sets have little
to cancel. No default changed; nothing ran on the evaluation seeds.
A pool check (`data/studies/2026-12-01-hopper-pool/`, descriptive): of the Hopper pool's 86 slow-gait clips that did
not fall, only 26 keep within the limit scaled to the clip (5 per 200 steps), and 20 of those are an episode's first
window (the hopper starting up); its median clip costs 26.5 (about 130 per episode), and no other source has a clip
within it. The pool holds no steady hop under the limit, so copying its winners lands where PREFINE (101.8) and BC
(114.5) do, and the Lagrangian's gait (1612 at cost 0) is one it does not contain. HalfCheetah's and PointCircle's
safe sources keep within it (23 % and 68–100 % of clips). A slower Hopper behaviour policy is the next thing to try
there; it changes the pool for every method, so the Hopper benchmark would be rerun whole.
**Session 12** (`data/studies/2026-12-01-slower-hopper/`; written down before it ran). A Hopper gait under the
limit was put in the pool: `behaviour_speedcap0.35`, chosen from pool rollouts alone by a rule fixed beforehand (it
fell in none of 100 clips, and 79 of its 80 clips past the start keep within the limit; a 0.4 cap fell in 33 %, a 0.3
cap stood still). On label sets 80–87 (200 pairs; validation episodes from seed 8 000), each method with its own
checkpoint choice, the benchmark's pool against the same pool with that gait added: PREFINE 1434 / 103.8 → 1288 / 0.0,
BC 1419 / 106.7 → 1274 / 5.3. With the gait both keep the limit (PREFINE in all 80 episodes, BC in 88 %), and PREFINE
beats BC by the issue's rule (return +13 ± 18, cost −5.3 ± 5.2, paired). But PREFINE's return is 80 % of the
Lagrangian's 1 612, under the 90 % floor: the gait's own pace. The rule written beforehand shipped the gait only if
the return floor held too. A second candidate, picked by the same rule (the 0.45 gait trained on with a 0.6 m/s cap
and a cost penalty floored at 0, so falling never pays: 69 % of its clips past the start within the limit, 1 % fell),
halves both methods' cost at the same return (PREFINE 1464 / 49.2, BC 1492 / 57.7), still twice the limit; there
PREFINE is safer than BC at less return. Neither met both. A third (that one trained on with a 0.55 cap and twice
the penalty: 86 % of its clips past the start within the limit, 2 % fell) brought PREFINE under the limit at the
return floor, 1454 / 18.9, ahead of BC's 1445 / 47.0 (paired return +9 ± 76, cost −28.1 ± 18.0). Falls rose to 9 %
and 11 % of episodes, and BC stayed over the limit, so by the rule it fails too. Found in a third round on the same
validation data, it was tested again on fresh label sets 88–95 and episodes from seed 8 100 by a rule written before
(falls in it): PREFINE 1319 / 53.0, falling in 23 % of episodes, against BC 1447 / 44.3 — the lead did not hold and
is closed. Nothing was shipped; the benchmark's pool and its Hopper rows stay as they are. No gait tried keeps the
limit at the Lagrangian's pace without falls: on Hopper the pool, not the fine-tuner, bounds both methods.
**Session 13.** Nothing of the fine-tuner, its defaults, its selection or the benchmark's pools changed, and no
variant was run on any seed: twelve sessions of settings, losses, selection rules, label sets and pools left PREFINE
and BC on one trade-off within noise (session 10: a method at BC's level passes "beats BC" on two tasks of three in
12 % of five-label-set draws), on Hopper the pool bounds both (sessions 11–12), and on HalfCheetah BC's 200-label
point (2626 / 6.4 over 10 seeds) is the Lagrangian's own (2630 / 14.4), which leaves no room for a reliable strict
win there. The 200-pair 10-seed runs of HalfCheetah, PointCircle and Hopper were rerun with their own commands on
unchanged code, their PREFINE and BC fine-tunes read from the twenty-seed run's cache: every row of their tables
came out identical (16, 17 and 16 rows; `scripts/compare_bench_tables.py`), and their `result.json` files are
committed. Hopper's main run and the two other named 10-seed runs are still to restore. The demo (Home's guided
path) is measured in its own section, "The demo", below; it chooses nothing here.
**Session 14.** Nothing of the fine-tuner, its defaults, its selection or the benchmark's pools changed, and no
variant was run on any seed (session 13's reasons stand). Hopper's main run, PointCircle's 100-pair 10-seed run
and Hopper's 50-pair 10-seed run were rerun from scratch with their own commands on today's code (no cache; the
shipped Lagrangians reused; two runs side by side on the 2 cores): every row of their tables came out identical (38 of
38, 17 of 17 and 16 of 16; `scripts/compare_bench_tables.py`), and their `result.json` files are committed. Every run
this section shows now has its `result.json` in the repository, so `bench --write-benchmarks` can rewrite the section
on a clean clone again (it refused, naming these runs, while they were missing). This section was rewritten so: only
the fine-tune wall times and the Machine line changed, the times now being those of the committed reruns (sessions
12–14, each beside another benchmark, so up to 2–3× the first runs' on a quieter machine; every fine-tune stays
under the 5-minute floor).
**Session 17** (`data/studies/2026-12-07-rl-stage/`; a feasibility probe, nothing adopted, no evaluation seed used).
The route every note since session 13 named: after PREFINE, PPO on the task's own reward minus a step cost fitted to
the same labels (`credit.fit_step_cost`), from PREFINE's chosen checkpoint, 200 000 environment steps
(`scripts/validate_rl_stage.py`; label set 0, 10 validation episodes from seed 9 500). PointCircle: the stage beats
BC (learned cost 34.9 / 69.8 against BC's 28.1 / 111; with the true cost 31.8 / 0, above the Lagrangian trained from
scratch). HalfCheetah: PPO hacks the learned cost. A gait just over the limit (about 3.4 m/s) gets 3190–3370 at cost
877–942, and a stronger penalty slows it to 2119 / 0. The fitted step cost rises only from 0.18 to about 0.5 across the
3.2 m/s limit: the pool has nothing between its 2.7 m/s safe gait and its 4.5–5 m/s fast ones, so the labels cannot
place the limit. Even the true cost beats BC there in none of four settings: 2484 / 1.5 and 2567 / 0.2 are safer and
slower than BC's 2654 / 7.1, and with less exploration noise 2996 / 204 and 1637 / 134. Hopper: the learned cost
teaches falling (every episode, also with the penalty floored at 0), and the true cost makes it stand nearly still
(998 / 0). So the stage would beat BC on one task of three, not the two the floor asks for. Labels near the limit
(rounds on the stage's own rollouts) could mend the learned cost, but not the stage itself, which fails with the
true cost too. That loop was not built.
**Baselines.** The PPO-Lagrangian multiplier steps by `lagrange_lr`·(mean cost − limit)/limit per update. At
the old 0.05 it overshot: Hopper and PointCircle stood still at cost 0 (returns 1042 and 2.5), which made the
"≥ 90 % of the Lagrangian's return" floor meaningless there. Hopper and PointCircle now use 0.005: PointCircle
with 1M env steps reaches 28 at cost 0 — a much harder floor than before. The Hopper one stood still after 1M
steps (1056, cost 0), so it is trained for 10M (`--lagrangian-steps 10000000`, 46 min on one core; 65 for the shipped retrain): it learns
to hop under the limit (2M steps: 1307; 10M: 1612 at cost 0, no falls), which makes the Hopper return floor
1451 instead of 950. HalfCheetah keeps its 0.05 run (2630, cost 14). The three Lagrangians are shipped in `data/baselines/` (retrained this session with the same
commands: the same returns and costs to the digit), so a clean clone's benchmark reuses them instead of retraining.
**Pools.** Each task's pool is the reference plus its shipped behaviour policies (see the Foundation table):
HalfCheetah w = 0.5 (as fast as the reference) and w = 2 (safe); Hopper w = 0.5 (fast, falls) and a slow hop
trained on a forward reward that peaks at 0.45 m/s (no cost signal; a cost penalty teaches the hopper to
fall, a Lagrangian to stand); PointCircle w = 0.05, 0.2 and 0.5.
Wall times are as measured on this 2-core machine with two benchmarks running side by side (one core each);
compare them with each other, not with a quiet machine.
**DSRL's thresholds.** The tables' violation and catastrophic rates are at the benchmark's κ = 25 (the
Lagrangian's limit). A row evaluated since 2026-12-07 also carries them, and the normalised cost C/κ, at DSRL's
κ = 20, 40 and 80 (`violation_rate_k20`, … in `result.json`; a table column where its rows have them); the rows
above were evaluated before, and their policies are not kept. The three 200-pair, 10-seed runs were trained again
from nothing on 2026-12-07 (`scripts/bench_reproduces.py`): every figure of all 180 rows came out identical, and
the section *Does the benchmark reproduce?* at the end of this file gives their rates at DSRL's κ (as at κ = 25,
PREFINE's are below BC's on PointCircle and above them on HalfCheetah and Hopper). DSRL's
normalised reward (R − r_min)/(r_max − r_min) needs a fixed dataset's return range, which this
benchmark does not have (its pool follows its settings); reward retention against the reference and against the
Lagrangian stands in for it.
"""


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


def write_benchmarks(notes: str = NOTES, root: Path = BENCH_DIR, path: Path | None = None) -> Path:
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
