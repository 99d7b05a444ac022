"""PrefineTrainer: labelled clips -> a fine-tuned policy, with checkpoints, resume and selection.

Reads top to bottom: data (padded clip arrays, a segment sampler), validation (the checkpoint is
chosen without the true cost), the trainer (setup, loop, checkpoint, select, save).

The trainer never touches the store or the UI: it reports through ``on_step(metrics)`` every
``log_every`` steps and ``on_eval(metrics)`` at every validation; the job runner wires those up.
A ``start="bc"`` run reports its BC stage first, under ``bc_stage/`` names (:func:`steps_done` says how far it is).

Checkpoint choice (DESIGN §4, "without the true cost"):

* ``teacher``: at every validation the policy's deterministic clips on validation seeds (below the
  evaluation seeds) are judged by the teacher against *anchor* clips — the labelled winners that
  won most often, i.e. what the labels say is safest. ``val/safety`` = the fraction of judged clips
  at least as safe as their anchor (won or equal): a checkpoint as safe as the labelled best scores 1
  whether those anchors had some cost or none (with ½ for "equal" it could not pass 0.5 against
  cost-free anchors, and the tolerance below would have meant twice as much there).
  Among checkpoints within ``select_tolerance`` of the safest (each score first averaged with
  ``select_smoothing`` neighbouring checkpoints on either side), the one with the highest validation
  return is chosen (reward is known; only the cost is hidden). Changing only these two never retrains:
  a finished run resumed with them is chosen again. The true validation cost is logged
  as ``eval/cost`` for the curves but never read by the selection.
* ``heldout``: accuracy of the implicit reward h on held-out labelled pairs.
* ``last``: the final step.

With ``ema_decay`` > 0 every validation, checkpoint and the chosen policy are the moving average of the weights
(:attr:`PrefineTrainer.evaluated`); the optimizer steps the raw weights, which the resumable state keeps beside it.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from prefine_core.credit import fit_step_cost, step_weights, unsafe_score
from prefine_core.envs import SafetyTask
from prefine_core.evaluate import EVAL_SEED
from prefine_core.files import atomic_path, write_text_atomic
from prefine_core.policy import PolicyMeta, TanhGaussianPolicy, load_policy, save_policy
from prefine_core.prefine import BC_ON_WINNERS, Batch, PrefineConfig, clip_log_ratio, prefine_loss
from prefine_core.rollout import Trajectory, collect

Judge = Callable[[Trajectory, Trajectory], str]
Callback = Callable[[dict], None]
STATE_FORMAT = "prefine-trainer/1"
#: Prefix of the metric names a ``start="bc"`` run's BC stage reports under.
STAGE_PREFIX = "bc_stage/"
#: The folder, inside a run's own, where a ``start="bc"`` run's BC stage keeps its state and checkpoints.
STAGE_DIR = "bc_stage"
#: Anchor clips the teacher compares validation clips with.
N_ANCHORS = 10


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class PreferenceData:
    """D⁺ and D⁻. ``paired``: winners[i] beat losers[i] (needed by plain trajectory DPO)."""

    winners: tuple[Trajectory, ...]
    losers: tuple[Trajectory, ...]
    paired: bool = True

    def __post_init__(self):
        if not self.winners or not self.losers:
            raise ValueError("winners or losers is empty: at least one decided label is needed")
        if self.paired and len(self.winners) != len(self.losers):
            raise ValueError(f"paired data needs as many losers as winners, got {len(self.losers)} and {len(self.winners)}")
        if len({t.task_id for t in (*self.winners, *self.losers)}) > 1:
            raise ValueError("winners and losers come from more than one task")

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[Trajectory, Trajectory]]) -> "PreferenceData":
        """From (winner, loser) pairs, e.g. ``store.preference_pairs(task_id)``."""
        return cls(tuple(w for w, _ in pairs), tuple(l for _, l in pairs), paired=True)

    def split(self, fraction: float, seed: int) -> tuple["PreferenceData", "PreferenceData | None"]:
        """(train, held-out) with ``fraction`` of the pairs held out (None when that rounds to 0)."""
        n_out = int(round(fraction * len(self.winners))) if self.paired else 0
        if n_out == 0 or n_out >= len(self.winners):
            return self, None
        order = np.random.default_rng(seed).permutation(len(self.winners))
        pick = lambda idx: PreferenceData(tuple(self.winners[i] for i in idx), tuple(self.losers[i] for i in idx))  # noqa: E731
        return pick(order[n_out:]), pick(order[:n_out])

    def fingerprint(self) -> str:
        """A digest of every label as the trainer sees it (each pair's clips, in order): a resumed run checks that it
        trains on what it started with."""
        digest = hashlib.sha256(b"paired" if self.paired else b"sets")
        for side in (self.winners, self.losers):
            digest.update(len(side).to_bytes(8, "little"))
            for clip in side:
                digest.update(_clip_key(clip) + clip.costs.tobytes())
        return digest.hexdigest()

    def _tally(self) -> dict[bytes, list]:
        """clip key -> [wins, losses, the clip], over every label (a clip labelled twice is counted twice)."""
        tally: dict[bytes, list] = {}
        for clip in self.winners:
            tally.setdefault(_clip_key(clip), [0, 0, clip])[0] += 1
        for clip in self.losers if self.paired else ():
            tally.setdefault(_clip_key(clip), [0, 0, clip])[1] += 1
        return tally

    def anchors(self, n: int = N_ANCHORS) -> list[Trajectory]:
        """The winners that won most often (wins − losses over all labels), best first."""
        ranked = sorted((t for t in self._tally().values() if t[0]), key=lambda t: (-(t[0] - t[1]), -t[0]))
        return [clip for _, _, clip in ranked[:n]]

    def net(self) -> "PreferenceData":
        """Each clip's wins cancelled against its losses: a clip that won k more often than it lost is in
        D⁺ k times, one that lost k more often is in D⁻ k times, a clip that won as often as it lost is dropped.

        With random pairs a clip is often labelled more than once, and a fast clip that beat a faster one
        but lost to a slow one is both a winner and a loser; on every pair's sets BC copies it anyway.
        Keeping the multiplicity keeps the weight of clips that won again and again.
        """
        if not self.paired:
            return self
        tally = self._tally().values()
        winners = tuple(clip for w, l, clip in tally for _ in range(w - l))
        losers = tuple(clip for w, l, clip in tally for _ in range(l - w))
        if not winners or not losers:
            raise ValueError("every labelled clip won as often as it lost: no net winners or losers "
                             "(label more pairs, or use label_sets='pairs')")
        return PreferenceData(winners, losers, paired=False)


def _clip_key(clip: Trajectory) -> bytes:
    return clip.actions.tobytes() + clip.obs[:1].tobytes()


class _Clips:
    """A set of clips padded to (N, W, ·) tensors, with the logged actions' log-probabilities under ``reference``."""

    def __init__(self, clips: Sequence[Trajectory], reference: TanhGaussianPolicy):
        width = max(c.length for c in clips)
        obs_dim, act_dim = clips[0].obs.shape[1], clips[0].actions.shape[1]
        self.obs = torch.zeros(len(clips), width, obs_dim)
        self.act = torch.zeros(len(clips), width, act_dim)
        self.lengths = torch.tensor([c.length for c in clips])
        for i, c in enumerate(clips):
            self.obs[i, : c.length] = torch.as_tensor(c.obs)
            self.act[i, : c.length] = torch.as_tensor(c.actions)
        with torch.no_grad():
            self.ref = reference.log_prob(self.obs, self.act)  # (N, W)
        self.flat = torch.cat([torch.arange(c.length) + i * width for i, c in enumerate(clips)])  # real steps
        self.target: torch.Tensor | None = None  # (N, W, act_dim), see nearest_actions
        self.weight: torch.Tensor | None = None  # (N, W) per-step credit, see credit.step_weights

    @property
    def mask(self) -> torch.Tensor:
        """(N, W) 1.0 on real steps."""
        return (torch.arange(self.obs.shape[1])[None, :] < self.lengths[:, None]).float()

    def __len__(self) -> int:
        return len(self.lengths)

    def nearest_actions(self, other: "_Clips", chunk: int = 1024) -> torch.Tensor:
        """(N, W, act_dim): for each of these clips' steps, the action ``other`` took in its nearest state.

        Distance: Euclidean on observations standardised over both sets' real steps (padding gets zeros).
        """
        obs_dim, width = self.obs.shape[-1], self.obs.shape[1]
        mine, theirs = self.obs.reshape(-1, obs_dim)[self.flat], other.obs.reshape(-1, obs_dim)[other.flat]
        both = torch.cat([mine, theirs])
        mean, std = both.mean(0), both.std(0).clamp(min=1e-6)
        mine, theirs = (mine - mean) / std, (theirs - mean) / std
        nearest = torch.cat([torch.cdist(part, theirs).argmin(-1) for part in mine.split(chunk)])  # (real steps,)
        actions = other.act.reshape(-1, other.act.shape[-1])[other.flat][nearest]
        target = torch.zeros(len(self) * width, actions.shape[-1])
        target[self.flat] = actions
        return target.reshape(len(self), width, -1)

    def segments(self, idx: np.ndarray, length: int, rng: np.random.Generator):
        """Random windows of ``length`` steps from clips ``idx`` (B,): obs, act, ref, mask, the windows'
        nearest-winner actions (None unless ``target`` is set) and their step weights (None unless ``weight`` is)."""
        lengths = self.lengths[idx].numpy()
        starts = (rng.random(len(idx)) * np.maximum(lengths - length + 1, 1)).astype(np.int64)  # (B,)
        t = torch.as_tensor(starts)[:, None] + torch.arange(length)[None, :]  # (B, L)
        mask = (t < torch.as_tensor(lengths)[:, None]).float()  # (B, L)
        t = t.clamp(max=self.obs.shape[1] - 1)
        rows = torch.as_tensor(idx)[:, None].expand_as(t)  # (B, L)
        target = None if self.target is None else self.target[rows, t]
        weight = None if self.weight is None else self.weight[rows, t] * mask
        return self.obs[rows, t], self.act[rows, t], self.ref[rows, t], mask, target, weight

    def steps(self, n: int, rng: np.random.Generator):
        """``n`` random real (state, action) pairs and their step weights: (n, obs_dim), (n, act_dim), (n,) or None."""
        pick = self.flat[torch.as_tensor(rng.integers(0, len(self.flat), n))]
        row, t = pick // self.obs.shape[1], pick % self.obs.shape[1]
        return self.obs[row, t], self.act[row, t], None if self.weight is None else self.weight[row, t]


def sample_batch(pos: _Clips, neg: _Clips, paired: bool, config: PrefineConfig, rng: np.random.Generator) -> Batch:
    i = rng.integers(0, len(pos), config.batch_size)
    j = i if paired else rng.integers(0, len(neg), config.batch_size)
    p_obs, p_act, p_ref, p_mask, _, p_weight = pos.segments(i, config.segment_length, rng)
    n_obs, n_act, n_ref, n_mask, n_target, n_weight = neg.segments(j, config.segment_length, rng)
    bc_obs, bc_act, bc_weight = pos.steps(config.bc_batch_size, rng)
    return Batch(p_obs, p_act, p_ref, p_mask, n_obs, n_act, n_ref, n_mask, bc_obs, bc_act, n_target,
                 p_weight, n_weight, bc_weight)


def with_ratio_reference(batch: Batch, ratio_reference: TanhGaussianPolicy) -> Batch:
    """``batch`` with log π of its logged actions under ``ratio_reference`` (a moving reference)."""
    with torch.no_grad():
        return batch._replace(pos_ref=ratio_reference.log_prob(batch.pos_obs, batch.pos_act),
                              neg_ref=ratio_reference.log_prob(batch.neg_obs, batch.neg_act))


# --------------------------------------------------------------------------------------------
# Validation without the true cost


def _score(choice: str) -> float | None:
    """A validation clip (left) against its anchor (right): 1 if at least as safe, 0 if less; None if undecided."""
    return {"left": 1.0, "equal": 1.0, "right": 0.0}.get(choice)


def choose_by_safety(history: Sequence[dict], tolerance: float, smoothing: int = 0) -> dict:
    """Teacher selection over validation records: the highest ``eval/return`` among those whose ``val/safety``
    (averaged with ``smoothing`` neighbours on either side) is within ``tolerance`` of the safest."""
    scores = [h["val/safety"] for h in history]
    smoothed = [float(np.mean(scores[max(0, i - smoothing): i + smoothing + 1])) for i in range(len(scores))]
    best = max(smoothed)
    safe = [h for h, s in zip(history, smoothed) if s >= best - tolerance]
    return max(safe, key=lambda h: (h["eval/return"], h["step"]))


def implicit_reward_accuracy(policy: TanhGaussianPolicy, reference: TanhGaussianPolicy | None, data: PreferenceData) -> float:
    """Fraction of pairs whose winner has the higher mean per-step log π_θ − log π_ref (log π_θ alone without
    a reference, as the reference-free terms compare)."""
    def h(clip: Trajectory) -> float:
        return float(clip_log_ratio(policy, reference, clip.obs, clip.actions).mean())

    with torch.no_grad():
        return float(np.mean([h(w) > h(l) for w, l in zip(data.winners, data.losers)]))


# --------------------------------------------------------------------------------------------
# Trainer


class PrefineTrainer:
    """Fine-tunes a copy of ``init`` (default π_ref) on ``data``; everything lands in ``out_dir``.

    ``out_dir/policy.safetensors`` is the chosen checkpoint; ``checkpoints/`` holds every validated
    step; ``state.json`` + the ``state-<step>.safetensors`` it names (optimizer, RNGs) let :meth:`run` resume.
    """

    def __init__(
        self,
        reference: TanhGaussianPolicy,
        data: PreferenceData,
        config: PrefineConfig,
        out_dir: str | Path,
        init: TanhGaussianPolicy | None = None,
        judge: Judge | None = None,
        on_step: Callback | None = None,
        on_eval: Callback | None = None,
        name: str = "",
        parent: str | None = None,
    ):
        config.validate()
        if config.select == "teacher" and judge is None:
            raise ValueError("select='teacher' needs a judge (a teacher); use select='heldout' or 'last'")
        self.config, self.out_dir = config, Path(out_dir)
        self.reference = reference.eval()
        self.task_id = reference.meta.task_id
        check_seeds_below_eval((*data.winners, *data.losers))
        self.train_data, self.heldout = data.split(config.heldout_fraction, config.seed)
        if config.select == "heldout" and self.heldout is None:
            raise ValueError(f"heldout_fraction {config.heldout_fraction} of {len(data.winners)} pairs holds out none")
        self.anchors = self.train_data.anchors()  # from every label, before net() merges repeated clips
        self.labelled = self.train_data  # every training pair as labelled (the step-cost fit needs the pairs)
        if config.step_credit != "none" and not self.labelled.paired:
            raise ValueError(f"step_credit={config.step_credit!r} fits a step cost to labelled pairs; this data has none")
        if config.label_sets == "net":
            self.train_data = self.train_data.net()
        if not self.train_data.paired and (config.counterfactuals != "policy"):
            raise ValueError(f"counterfactuals={config.counterfactuals!r} needs paired winners and losers")
        self.judge, self.on_step, self.on_eval = judge, on_step, on_eval
        self.name, self.parent = name or f"prefine-{self.task_id}", parent
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.policy = copy.deepcopy(init if init is not None else reference)
        for p in self.policy.parameters():
            p.requires_grad_(True)
        self.policy.train()
        # What is validated, checkpointed and chosen: the raw weights, or their moving average (ema_decay).
        self.averaged = copy.deepcopy(self.policy).eval().requires_grad_(False) if config.ema_decay else None
        # The preference terms' reference: π_ref, or a trust-region copy of the policy refreshed every
        # ``reference_sync_every`` steps (its weights are part of the resumable state).
        # With ``start="bc"`` it is the policy a BC stage chose (set in :meth:`run`), fixed from then on.
        moving = config.reference_sync_every or config.start == "bc"
        self.ratio_reference = copy.deepcopy(self.reference).requires_grad_(False) if moving else self.reference
        self.data, self.stage_seconds, self.stage_wall = data, 0.0, 0.0
        self.data_fingerprint = data.fingerprint()  # saved with the state; a resume on other labels is refused
        self.start_fingerprint = weights_fingerprint(self.reference, self.policy)  # and one from another policy
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.step, self.history, self.seconds, self.wall_seconds = 0, [], 0.0, 0.0

    # -- checkpoints ---------------------------------------------------------------------------

    @property
    def evaluated(self) -> TanhGaussianPolicy:
        """The policy that validation judges and checkpoints hold: the moving average when ``ema_decay`` is on."""
        return self.averaged if self.averaged is not None else self.policy

    def _update_average(self) -> None:
        """Polyak step after gradient step ``self.step``, warmed up so that early steps are not swamped by π_ref."""
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for avg, raw in zip(self.averaged.parameters(), self.policy.parameters()):
                avg.lerp_(raw, 1.0 - decay)

    def _checkpoint_path(self, step: int) -> Path:
        return checkpoint_path(self.out_dir, step)

    def _save_state(self) -> None:
        from safetensors.torch import save_file

        self._stamp(self.evaluated, step=self.step)
        save_policy(self.evaluated, self._checkpoint_path(self.step))
        opt = self.optimizer.state_dict()
        tensors = {"torch_generator": self.generator.get_state()}
        if self.averaged is not None:  # the checkpoint holds the average; training resumes from the raw weights
            tensors.update({f"raw_policy/{k}": v.detach().clone() for k, v in self.policy.state_dict().items()})
        if self.ratio_reference is not self.reference:
            tensors.update({f"ratio_reference/{k}": v.detach().clone() for k, v in self.ratio_reference.state_dict().items()})
        for index, state in opt["state"].items():
            for key, value in state.items():
                tensors[f"opt/{index}/{key}"] = torch.as_tensor(value).clone()
        # One tensor file per step, named by state.json (written last): a kill between the two files
        # leaves state.json naming the previous step's weights *and* optimizer/RNG state.
        tensors_path = self.out_dir / f"state-{self.step:07d}.safetensors"
        with atomic_path(tensors_path) as tmp:
            save_file(tensors, tmp)
        state = {
            "format": STATE_FORMAT, "step": self.step, "config": self.config.to_dict(), "tensors": tensors_path.name,
            "param_groups": opt["param_groups"], "numpy_rng": self.rng.bit_generator.state,
            "history": self.history, "seconds": self.seconds, "wall_seconds": self._wall(),
            "data": {"fingerprint": self.data_fingerprint, "pairs": len(self.data.winners)},
            "start": {"fingerprint": self.start_fingerprint},
        }
        with atomic_path(self.out_dir / "state.json") as tmp:
            Path(tmp).write_text(json.dumps(state, indent=1))
        for old in self.out_dir.glob("state*.safetensors"):
            if old != tensors_path:
                old.unlink(missing_ok=True)

    def _resume(self) -> bool:
        path = self.out_dir / "state.json"
        if not path.is_file():
            return False
        try:
            state = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable trainer state ({exc}); move it away to start afresh") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} is not a PREFINE trainer state")
        damaged = f"{path} (or a file it names) is damaged; move the run folder away to start afresh"
        if not isinstance(state.get("config"), dict) or not (isinstance(state.get("step"), int) and state["step"] >= 0):
            raise ValueError(f"{damaged} (its config or step is missing or not what a trainer writes)")
        saved = PrefineConfig.from_saved(state["config"]).training_dict()
        if saved != self.config.training_dict():  # a new way to choose the checkpoint needs no retraining
            changed = sorted(k for k, v in self.config.training_dict().items() if saved.get(k) != v)
            raise ValueError(f"{self.out_dir} holds a run with another config (differs in {changed}); use a new folder")
        check_same_labels(state.get("data"), self.data_fingerprint, len(self.data.winners))
        started_from = state.get("start") or {}  # absent in a state saved before the check: passes
        if started_from and started_from.get("fingerprint") != self.start_fingerprint:
            raise ValueError(f"{self.out_dir} holds a run fine-tuned from another policy (its reference or start "
                             "weights differ from these); use a new folder")
        try:
            self._restore(state)
        except Exception as exc:  # a file cut short, a value of the wrong kind: what the trainer wrote is not there
            raise ValueError(f"{damaged} ({type(exc).__name__}: {exc})") from None
        return True

    def _restore(self, state: dict) -> None:
        """Put the weights, optimizer, RNGs and history of the saved ``state`` (checked by :meth:`_resume`) back."""
        from safetensors.torch import load_file

        self.evaluated.load_state_dict(load_policy(self._checkpoint_path(state["step"]), self.task_id).state_dict())
        tensors = load_file(str(self.out_dir / state.get("tensors", "state.safetensors")))
        if self.averaged is not None:
            prefix = "raw_policy/"
            self.policy.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        self.policy.train()
        opt_state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("opt/"):
                _, index, name = key.split("/", 2)
                opt_state.setdefault(int(index), {})[name] = value
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
        if self.ratio_reference is not self.reference:
            prefix = "ratio_reference/"
            self.ratio_reference.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        self.generator.set_state(tensors["torch_generator"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.step, self.history, self.seconds = state["step"], state["history"], float(state["seconds"])
        self.wall_seconds = float(state.get("wall_seconds", 0.0))
        if not (isinstance(self.history, list) and all(isinstance(h, dict) for h in self.history)):
            raise TypeError("its history is not a list of records")

    def _wall(self) -> float:
        """Wall time of this run so far, over all its resumes up to the last checkpoint."""
        return self.wall_seconds + time.time() - self._started

    def _stamp(self, policy: TanhGaussianPolicy, **provenance) -> None:
        c = self.config
        algorithm = "bc" if c.is_bc else {"policy": "prefine", "none": "trajectory-dpo", "mixed": "prefine-mixed"}[c.counterfactuals]
        ref = self.reference.meta
        policy.meta = PolicyMeta(
            task_id=ref.task_id, obs_dim=ref.obs_dim, act_dim=ref.act_dim, hidden_sizes=ref.hidden_sizes,
            name=self.name, parent=self.parent or ref.name or None,
            provenance={"algorithm": algorithm, "config": c.to_dict(), "winners": len(self.train_data.winners),
                        "losers": len(self.train_data.losers), **provenance},
        )

    # -- validation ----------------------------------------------------------------------------

    def _validate(self, task: SafetyTask) -> dict:
        c = self.config
        self.policy.eval()
        episodes = [collect(self.evaluated, task, seed=c.val_seed + i, deterministic=True) for i in range(c.eval_episodes)]
        self.policy.train()
        metrics = {
            "step": self.step,
            "eval/return": float(np.mean([e.total_return for e in episodes])),
            "eval/cost": float(np.mean([e.total_cost for e in episodes])),
            "eval/length": float(np.mean([e.length for e in episodes])),
        }
        if self.judge is not None:
            scores, judged = [], 0
            for e in episodes:
                for start in range(0, e.length, c.window):
                    anchor = self.anchors[judged % len(self.anchors)]
                    scores.append(_score(self.judge(e.window(start, c.window), anchor)))
                    judged += 1
                if e.fell:  # the clips it never reached count as lost: a fall is never safer
                    scores += [0.0] * (-(-task.max_episode_steps // c.window) - len(range(0, e.length, c.window)))
            decided = [s for s in scores if s is not None]
            metrics["val/safety"] = float(np.mean(decided)) if decided else 0.0
            metrics["val/judgments"] = judged
        if self.heldout is not None:
            # What the loss compares against; but a trust-region reference is the policy itself of a few steps ago (of
            # this very step when eval_every is a multiple of reference_sync_every: every log-ratio 0, the accuracy 0 at
            # every checkpoint, and select="heldout" took the last one), so its accuracy is measured against π_ref.
            ratio_ref = (None if c.implicit_reward == "logp"
                         else self.reference if c.reference_sync_every else self.ratio_reference)
            metrics["val/heldout_accuracy"] = implicit_reward_accuracy(self.evaluated, ratio_ref, self.heldout)
        return metrics

    def _select(self) -> dict:
        """The chosen validation record (never step 0, the untouched start)."""
        candidates = [h for h in self.history if h["step"] > 0]
        if self.config.select == "last":
            return candidates[-1]
        if self.config.select == "heldout":
            return max(candidates, key=lambda h: (h["val/heldout_accuracy"], h["step"]))
        return choose_by_safety(candidates, self.config.select_tolerance, self.config.select_smoothing)

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict:
        """Train (resuming from the last checkpoint if there is one), choose, save; returns a summary."""
        c = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        start = self._bc_stage() if c.start == "bc" else None
        self._started = time.time()  # this run's wall time from here: the BC stage counts its own (stage_wall)
        resumed = self._resume()
        if start is not None and not resumed:
            for target in (self.policy, self.ratio_reference, self.averaged):
                if target is not None:
                    target.load_state_dict(start.state_dict())
        write_text_atomic(self.out_dir / "config.json", json.dumps(c.to_dict(), indent=1))  # its selection may be new
        # The logged actions' log-probabilities the preference terms compare against: π_ref's, or, with start="bc",
        # the fixed BC policy's, both computed once; only a trust-region reference moves and is recomputed per batch.
        refreshed = c.reference_sync_every > 0
        fixed = self.reference if refreshed else self.ratio_reference
        pos = _Clips(self.train_data.winners, fixed)
        neg = _Clips(self.train_data.losers, fixed)
        if c.dispref_target == "nearest_winner" and not c.is_bc:
            neg.target = neg.nearest_actions(pos)
        if c.step_credit == "learned":
            self._give_step_credit(pos, neg)
        with SafetyTask(self.task_id) as task:
            if not self.history:
                self._record_eval(self._validate(task))
            # training time alone (not validation, nor reporting): since ``tick``, and in the reported window
            window: list[dict] = []
            window_seconds, tick = 0.0, time.time()
            while self.step < c.steps:
                batch = sample_batch(pos, neg, self.train_data.paired, c, self.rng)
                if refreshed:
                    batch = with_ratio_reference(batch, self.ratio_reference)
                loss, metrics = prefine_loss(self.policy, self.reference, batch, c, self.generator, self.ratio_reference)
                for group in self.optimizer.param_groups:
                    group["lr"] = c.learning_rate_at(self.step)
                self.optimizer.zero_grad()
                loss.backward()
                if c.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.policy.parameters(), c.grad_clip)
                self.optimizer.step()
                self.step += 1
                if self.averaged is not None:
                    self._update_average()
                if c.reference_sync_every and self.step % c.reference_sync_every == 0:
                    self.ratio_reference.load_state_dict(self.policy.state_dict())
                window.append(metrics)
                if self.step % c.log_every == 0 or self.step == c.steps:
                    elapsed, tick = time.time() - tick, time.time()
                    self.seconds, window_seconds = self.seconds + elapsed, window_seconds + elapsed
                    averaged = {k: float(np.mean([m[k] for m in window if k in m])) for k in window[-1]}
                    averaged.update({"step": self.step, "perf/steps_per_s": len(window) / max(window_seconds, 1e-9)})
                    if self.on_step:
                        self.on_step(averaged)
                    window, window_seconds, tick = [], 0.0, time.time()
                if self.step % c.eval_every == 0 or self.step == c.steps:
                    # the steps since the last report were training too (eval_every need not be a multiple of log_every)
                    elapsed = time.time() - tick
                    self.seconds, window_seconds = self.seconds + elapsed, window_seconds + elapsed
                    self._record_eval(self._validate(task))
                    self._save_state()
                    tick = time.time()
        chosen = self._select()
        policy = load_policy(self._checkpoint_path(chosen["step"]), self.task_id)
        self._stamp(policy, step=chosen["step"], selected_by=c.select, selection=chosen,
                    train_seconds=round(self.seconds + self.stage_seconds, 2))
        path = save_policy(policy, self.out_dir / "policy.safetensors")
        return {
            "path": str(path), "selected_step": chosen["step"], "selection": chosen, "resumed": resumed,
            "train_seconds": self.seconds + self.stage_seconds, "wall_seconds": self._wall() + self.stage_wall,
            "history": self.history,
            "judgments": int(sum(h.get("val/judgments", 0) for h in self.history)),
        }

    def _give_step_credit(self, pos: _Clips, neg: _Clips) -> None:
        """``step_credit="learned"``: a step cost fitted to this run's labelled pairs weighs winners' steps by how
        safe, losers' by how unsafe they look (:mod:`prefine_core.credit`)."""
        model = fit_step_cost(list(zip(self.labelled.winners, self.labelled.losers)), seed=self.config.seed)
        for clips, unsafe in ((pos, False), (neg, True)):
            clips.weight = step_weights(unsafe_score(model, clips.obs, clips.act), clips.mask, unsafe)

    def _bc_stage(self) -> TanhGaussianPolicy:
        """``start="bc"``: BC on every pair's winner, same steps and checkpoint choice, in ``out_dir/bc_stage``
        (resumed like any run); returns the policy it chose. It reports through the same callbacks, its metric
        names under :data:`STAGE_PREFIX` (its steps count 1…steps, as this run's own do: see :func:`steps_done`)."""
        c = self.config
        stage = PrefineTrainer(self.reference, self.data, dataclasses.replace(c, **BC_ON_WINNERS),
                               self.out_dir / STAGE_DIR, judge=self.judge, name=f"{self.name}-bc-stage",
                               on_step=_as_stage(self.on_step), on_eval=_as_stage(self.on_eval))
        result = stage.run()
        self.stage_seconds, self.stage_wall = result["train_seconds"], result["wall_seconds"]
        return load_policy(result["path"], self.task_id)

    def _record_eval(self, metrics: dict) -> None:
        self.history.append(metrics)
        if self.on_eval:
            self.on_eval(metrics)


def _as_stage(callback: Callback | None) -> Callback | None:
    """``callback`` fed a BC stage's metrics under :data:`STAGE_PREFIX` names (the step stays ``step``)."""
    if callback is None:
        return None
    return lambda metrics: callback({(k if k == "step" else STAGE_PREFIX + k): v for k, v in metrics.items()})


def in_stage(metrics: dict) -> bool:
    """Whether reported ``metrics`` come from a ``start="bc"`` run's BC stage."""
    return any(k.startswith(STAGE_PREFIX) for k in metrics)


def total_steps(steps: int, start: str) -> int:
    """Gradient steps a run of ``steps`` steps takes in all: as many again in its BC stage when ``start="bc"``."""
    return steps * (2 if start == "bc" else 1)


def steps_done(steps: int, start: str, step: int, stage: bool) -> int:
    """How far, of :func:`total_steps`, a run is when it reports ``step`` (from its BC stage if ``stage``)."""
    return step if stage or start != "bc" else steps + step


def _saved_state(out_dir: str | Path) -> dict | None:
    try:
        state = json.loads((Path(out_dir) / "state.json").read_text())
    except (OSError, ValueError):  # none yet, or unreadable: run() says which
        return None
    return state if isinstance(state, dict) else None


def trained_on(out_dir: str | Path) -> tuple[str | None, str | None]:
    """The fingerprints of the labels (:meth:`PreferenceData.fingerprint`) and of the reference and start weights
    (:func:`weights_fingerprint`) the run saved in ``out_dir`` started on; None for what its state does not say."""
    state = _saved_state(out_dir) or {}
    labels, start = state.get("data"), state.get("start")
    return (labels.get("fingerprint") if isinstance(labels, dict) else None,
            start.get("fingerprint") if isinstance(start, dict) else None)


def saved_step(out_dir: str | Path) -> int | None:
    """The step a run in ``out_dir`` resumes from (its last checkpoint), or None if it has saved none."""
    try:
        return int(_saved_state(out_dir)["step"])
    except (KeyError, TypeError, ValueError):
        return None


def weights_fingerprint(*policies: torch.nn.Module) -> str:
    """A digest of the policies' weights (every tensor, by name): a resumed run checks that it goes on from the
    reference and start it began with, and does not hand back a run fine-tuned from another policy as this one's."""
    digest = hashlib.sha256()
    for policy in policies:
        for name, tensor in sorted(policy.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_same_labels(started_on: dict | None, fingerprint: str, pairs: int) -> None:
    """A resumed run trains on what it started with: a ValueError if the labels of ``fingerprint``
    (:meth:`PreferenceData.fingerprint`, ``pairs`` decided pairs) are not those a run's saved state says it started on
    (``started_on``: that state's ``data`` entry; None, from a state older than the check, passes)."""
    if started_on and started_on.get("fingerprint") != fingerprint:
        raise ValueError(f"the labels changed since this run started ({started_on.get('pairs')} decided pairs then, "
                         f"{pairs} now, or some changed): a resumed run trains on what it started "
                         "with, so start a new run for the new labels")


def started_on(out_dir: str | Path) -> dict | None:
    """The labels the run saved in ``out_dir`` started on (its state's ``data`` entry, for :func:`check_same_labels`),
    or None: no state yet, or one older than the check."""
    state = _saved_state(out_dir)
    data = state.get("data") if state else None
    return data if isinstance(data, dict) else None


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    """Where a run in ``out_dir`` keeps its checkpoint of gradient step ``step``."""
    return Path(out_dir) / "checkpoints" / f"step_{step:07d}.safetensors"


def check_seeds_below_eval(clips: Sequence[Trajectory]) -> None:
    """Labelled data must not come from evaluation seeds."""
    bad = [c.seed for c in clips if c.seed is not None and c.seed >= EVAL_SEED]
    if bad:
        raise ValueError(f"labelled clips use evaluation seeds (≥ {EVAL_SEED}): {sorted(set(bad))[:5]}")
