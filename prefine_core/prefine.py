"""The PREFINE objective (DESIGN §4): pure loss functions and the config that drives a fine-tune.

Notation (DESIGN §4): π_θ is the policy being tuned, π_ref the frozen reference. For a segment of
L logged steps (s_t, a_t) of a preferred trajectory τ⁺ or a dispreferred τ⁻,

* eq. 3, implicit reward     h(τ) = Σ_t [log π_θ(a_t|s_t) − log π_ref(a_t|s_t)]
* eq. 2, counterfactual      τ̃: the same states s_t with ã_t ~ π_θ(·|s_t), detached
* eq. 4, loss                L = −log σ(β[h(τ⁺) − h(τ̃⁺)]) − w⁻·log σ(β[h(τ̃⁻) − h(τ⁻)])
                                 + λ·BC-NLL(D⁺) + κ_KL·KL(π_θ‖π_ref)

so on preferred states the logged action must beat what the policy would do, and on dispreferred
states what the policy would do must beat the logged unsafe action. With ``counterfactuals="none"``
the two preference terms become plain trajectory DPO, −log σ(β[h(τ⁺) − h(τ⁻)]); ``"mixed"`` adds that
term to the counterfactual ones. ``sigmoid="step"`` applies the sigmoid per step and averages,
instead of once per segment sum.

Every function here is tensors in, tensors out: no optimizer, no I/O.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from prefine_core.entry import parse_json, quoted
from prefine_core.policy import TanhGaussianPolicy

COUNTERFACTUALS = ("policy", "none", "mixed")
SIGMOIDS = ("segment", "step")
IMPLICIT_REWARDS = ("ratio", "logp")
SELECTIONS = ("teacher", "heldout", "last")
LABEL_SETS = ("net", "pairs")
LR_SCHEDULES = ("constant", "cosine")
DISPREF_TARGETS = ("policy", "nearest_winner")
STARTS = ("reference", "bc")
STEP_CREDITS = ("none", "learned")
#: What turns a config into BC on every labelled pair's winner (the baseline, and the first stage of start="bc").
BC_ON_WINNERS: dict[str, object] = dict(pref_weight=0.0, dispref_weight=0.0, bc_weight=1.0, kl_weight=0.0,
                                        label_sets="pairs", start="reference")


# --------------------------------------------------------------------------------------------
# Pure loss pieces


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L), (B, L) -> (B,): Σ_t mask·x."""
    return (x * mask).sum(-1)


def preference_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    per_step: bool = False,
    clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Bradley–Terry term −log σ(β[h(chosen) − h(rejected)]) per segment (DESIGN §4 eq. 4).

    chosen, rejected: (B, L) per-step log-ratios log π_θ − log π_ref of the segment that should win
    and the one that should lose; mask: (B, L), 1 on real steps. Returns (loss (B,), margin (B,)),
    margin = h(chosen) − h(rejected) in nats (β not applied).

    ``per_step``: the sigmoid is applied to each step's difference and the losses averaged over
    the segment's real steps. ``clip`` > 0 clamps β·margin to [−clip, clip] per sample: a segment
    that already wins by that much stops pulling, and one that loses by more — a label the policy
    contradicts strongly, e.g. a safe clip that lost a tie-break — stops pushing (DESIGN §4 lesson 4).
    """
    diff = chosen - rejected  # (B, L)
    margin = masked_sum(diff, mask)  # (B,)
    if per_step:
        logits = beta * diff  # (B, L)
        if clip > 0:
            logits = logits.clamp(-clip, clip)
        loss = masked_sum(-F.logsigmoid(logits), mask) / mask.sum(-1).clamp(min=1.0)
    else:
        logits = beta * margin  # (B,)
        if clip > 0:
            logits = logits.clamp(-clip, clip)
        loss = -F.logsigmoid(logits)
    return loss, margin


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor, mean_ref: torch.Tensor, std_ref: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std²) ‖ N(mean_ref, std_ref²)) summed over the last axis: (…, act_dim) -> (…,).

    tanh is invertible, so this is also the KL between the squashed policies.
    """
    var, var_ref = std.pow(2), std_ref.pow(2)
    kl = torch.log(std_ref / std) + (var + (mean - mean_ref).pow(2)) / (2 * var_ref) - 0.5
    return kl.sum(-1)


class Batch(NamedTuple):
    """One gradient step's data. B⁺ and B⁻ may differ unless the loss pairs winners with losers."""

    pos_obs: torch.Tensor  # (B⁺, L, obs_dim) states of preferred segments
    pos_act: torch.Tensor  # (B⁺, L, act_dim) their logged actions
    pos_ref: torch.Tensor  # (B⁺, L) log π_ref of the logged actions (precomputed)
    pos_mask: torch.Tensor  # (B⁺, L) 1 on real steps
    neg_obs: torch.Tensor  # (B⁻, L, obs_dim) states of dispreferred segments
    neg_act: torch.Tensor  # (B⁻, L, act_dim)
    neg_ref: torch.Tensor  # (B⁻, L)
    neg_mask: torch.Tensor  # (B⁻, L)
    bc_obs: torch.Tensor  # (M, obs_dim) state-action pairs drawn from D⁺ for the BC anchor
    bc_act: torch.Tensor  # (M, act_dim)
    neg_target: torch.Tensor | None = None  # (B⁻, L, act_dim) what should beat neg_act; None = a policy sample
    pos_weight: torch.Tensor | None = None  # (B⁺, L) per-step credit of preferred steps; None = 1 on every step
    neg_weight: torch.Tensor | None = None  # (B⁻, L) per-step credit of dispreferred steps
    bc_weight: torch.Tensor | None = None  # (M,) per-pair weight of the BC anchor's state-action pairs


def clip_log_ratio(policy: TanhGaussianPolicy, reference: TanhGaussianPolicy | None, obs, actions) -> torch.Tensor:
    """log π_θ(a_t|s_t) − log π_ref(a_t|s_t) at each step of one clip, (T,), from its obs (T, obs_dim) and actions
    (T, act_dim) (arrays or tensors); log π_θ alone without a reference (the reference-free score). Summed over the
    clip it is the clip's implicit reward h(τ)."""
    obs = torch.as_tensor(obs, dtype=torch.float32)
    actions = torch.as_tensor(actions, dtype=torch.float32)
    logp = policy.log_prob(obs, actions)
    return logp if reference is None else logp - reference.log_prob(obs, actions)


def _log_ratios(
    policy: TanhGaussianPolicy, reference: TanhGaussianPolicy | None, obs: torch.Tensor, act: torch.Tensor,
    ref_logp: torch.Tensor, temperature: float, generator: torch.Generator | None, counterfactual: bool = True,
    cf_act: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-step log π_θ − log π_ref of the logged actions and of fresh counterfactuals, each (B, L).

    Without ``counterfactual`` only the logged actions' log-ratios are computed (second item None).
    ``reference`` None: no reference at all, the implicit reward is log π_θ itself (``ref_logp`` is ignored).
    ``cf_act`` (B, L, act_dim): given counterfactual actions instead of samples of π_θ.
    """
    if reference is None:
        ref_logp = torch.zeros_like(ref_logp)
    if not counterfactual:
        return policy.log_prob(obs, act) - ref_logp, None
    with torch.no_grad():
        if cf_act is None:
            cf_act = policy.sample(obs, temperature=temperature, generator=generator)  # (B, L, act_dim), eq. 2
        cf_ref = reference.log_prob(obs, cf_act) if reference is not None else torch.zeros_like(ref_logp)  # (B, L)
    both = policy.log_prob(obs.unsqueeze(0).expand(2, *obs.shape), torch.stack([act, cf_act]))  # (2, B, L)
    return both[0] - ref_logp, both[1] - cf_ref


def _credited(logged: torch.Tensor, counterfactual: torch.Tensor | None, weight: torch.Tensor | None):
    """Per-step log-ratios (B, L) of the logged actions and of the counterfactuals at the same states, each
    scaled by the step's credit (B, L); unchanged without weights."""
    if weight is None:
        return logged, counterfactual
    return logged * weight, None if counterfactual is None else counterfactual * weight


def prefine_loss(
    policy: TanhGaussianPolicy,
    reference: TanhGaussianPolicy,
    batch: Batch,
    config: "PrefineConfig",
    generator: torch.Generator | None = None,
    ratio_reference: TanhGaussianPolicy | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """DESIGN §4 eq. 4 on one batch; returns (scalar loss, metrics named ``group/name``).

    ``ratio_reference``: the policy the preference terms' log-ratios are taken against, when it is not
    ``reference`` (a trust-region reference, see ``PrefineConfig.reference_sync_every``; the batch's
    ``pos_ref``/``neg_ref`` must then hold its log-probabilities). The KL term and metric stay on ``reference``.
    """
    c = config
    ratio_ref = None if c.implicit_reward == "logp" else reference if ratio_reference is None else ratio_reference
    zero = batch.pos_obs.new_zeros(())
    per_step = c.sigmoid == "step"
    pref_loss, dispref_loss, correct, margins = zero, zero, [], []
    if not c.is_bc:
        sampled = c.counterfactuals != "none"
        pos, pos_cf = _log_ratios(policy, ratio_ref, batch.pos_obs, batch.pos_act, batch.pos_ref, c.cf_temperature, generator, sampled)
        neg, neg_cf = _log_ratios(policy, ratio_ref, batch.neg_obs, batch.neg_act, batch.neg_ref, c.cf_temperature, generator, sampled,
                                  cf_act=batch.neg_target)
        pos, pos_cf = _credited(pos, pos_cf, batch.pos_weight)
        neg, neg_cf = _credited(neg, neg_cf, batch.neg_weight)
        if sampled:
            loss_pos, margin_pos = preference_loss(pos, pos_cf, batch.pos_mask, c.beta, per_step, c.margin_clip)
            loss_neg, margin_neg = preference_loss(neg_cf, neg, batch.neg_mask, c.beta, per_step, c.margin_clip)
            pref_loss, dispref_loss = loss_pos.mean(), loss_neg.mean()
            margins += [margin_pos, margin_neg]
        if c.counterfactuals in ("none", "mixed"):
            # Plain trajectory DPO: winner segment against loser segment (different states).
            h_pos = masked_sum(pos, batch.pos_mask).unsqueeze(-1)  # (B, 1)
            h_neg = masked_sum(neg, batch.neg_mask).unsqueeze(-1)  # (B, 1)
            ones = torch.ones_like(h_pos)
            loss_dpo, margin_dpo = preference_loss(h_pos, h_neg, ones, c.beta, clip=c.margin_clip)
            pref_loss = pref_loss + loss_dpo.mean()
            margins.append(margin_dpo)
    mean, std = policy.distribution(batch.bc_obs)  # (M, act_dim) each
    bc_nll = -policy.log_prob(batch.bc_obs, batch.bc_act)  # (M,)
    bc_loss = bc_nll.mean() if batch.bc_weight is None else (batch.bc_weight * bc_nll).sum() / batch.bc_weight.sum().clamp(min=1e-8)
    with torch.no_grad():
        mean_ref, std_ref = reference.distribution(batch.bc_obs)
    kl = gaussian_kl(mean, std, mean_ref, std_ref).mean()
    total = c.pref_weight * pref_loss + c.dispref_weight * dispref_loss + c.bc_weight * bc_loss + c.kl_weight * kl
    metrics = {
        "loss/total": total.item(), "loss/pref": pref_loss.item(), "loss/dispref": dispref_loss.item(),
        "loss/bc": bc_loss.item(), "kl/ref": kl.item(),
    }
    if margins:
        all_margins = torch.cat(margins).detach()
        metrics["pref/accuracy"] = (all_margins > 0).float().mean().item()
        metrics["pref/margin"] = all_margins.mean().item()
    return total, metrics


# --------------------------------------------------------------------------------------------
# Config


@dataclass
class PrefineConfig:
    """Everything a fine-tune needs besides its data; drives the CLI flags, the app form and the saved run."""

    counterfactuals: str = "policy"
    """Contrast for the preference terms: policy (PREFINE), none (plain trajectory DPO), mixed (both)."""
    label_sets: str = "net"
    """How labels become D⁺ and D⁻: net (a clip's wins cancelled against its losses — in D⁺ as often as it
    won more than it lost, in D⁻ as often as it lost more, dropped if even) or pairs (every pair's winner
    and loser as labelled)."""
    pref_weight: float = 1.0
    """Weight of the preferred term (0 with dispref_weight 0 gives BC on the winners)."""
    dispref_weight: float = 0.5
    """w⁻, weight of the dispreferred term (0 = no D⁻ ablation)."""
    margin_clip: float = 2.0
    """Clamp β·margin of each preference term to [−clip, clip] per sample (0 = off)."""
    bc_weight: float = 1.0
    """λ, weight of the BC anchor on D⁺ (0 = no BC ablation)."""
    kl_weight: float = 0.0
    """Weight of an explicit KL(π_θ‖π_ref) on logged states (0 = off)."""
    beta: float = 0.05
    """β, inverse temperature of the sigmoid on segment sums of log-ratios."""
    sigmoid: str = "segment"
    """Where the sigmoid acts: segment (on the segment sum) or step (per step, averaged)."""
    segment_length: int = 50
    """L, steps per segment drawn from a labelled clip."""
    reference_sync_every: int = 0
    """Every this many steps the preference terms' reference becomes a copy of the policy being tuned (a
    trust-region reference, as TR-DPO): their implicit KL then pulls towards where the policy has got to,
    not back to the unsafe start. 0 = the fixed π_ref (the paper). The KL term and metric keep π_ref."""
    implicit_reward: str = "ratio"
    """What the preference terms compare: ratio (log π_θ − log π_ref, DPO's implicit reward) or logp (log π_θ
    alone, reference-free as in CPO and SimPO: nothing pulls the policy back towards the unsafe π_ref)."""
    dispref_target: str = "policy"
    """What must beat the logged loser action on dispreferred states: policy (a sample of π_θ, the paper's
    counterfactual) or nearest_winner (the action of a preferred clip in the most similar state, by standardised
    observation distance). At a state where π_θ still acts like the unsafe loser, pushing down the loser's action
    against π_θ's own sample mostly widens π_θ; a winner's action gives the term a direction to move the mean."""
    start: str = "reference"
    """Where the preference terms start, and what their log-ratios compare against: reference (π_ref, the paper) or
    bc (DPO's own recipe, supervised first: BC on every pair's winner with these steps and its own checkpoint
    choice, then PREFINE from the policy it chose, with the log-ratios against that policy — so their implicit KL
    holds the policy near the imitated safe behaviour instead of pulling it back to the unsafe π_ref). The KL term
    and metric keep π_ref; the fine-tune's time counts both stages."""
    step_credit: str = "none"
    """Per-step credit (``prefine_core.credit``): none, or learned — a step cost fitted to the same labels (Bradley–Terry
    on clip sums) weighs each winner step by how safe and each loser step by how unsafe it looks, in the preference
    terms and the BC anchor; a label says which clip was safer, not at which steps."""
    cf_temperature: float = 1.0
    """Std scale of the policy-sampled counterfactual actions."""
    batch_size: int = 16
    """Preferred and dispreferred segments per gradient step."""
    bc_batch_size: int = 256
    """State-action pairs from D⁺ per step for the BC anchor."""
    steps: int = 4000
    """Gradient steps."""
    learning_rate: float = 1e-3
    """Adam step size."""
    lr_schedule: str = "constant"
    """constant, or cosine: the step size falls from learning_rate to 0 over the run (SGDR without restarts), so
    late checkpoints settle instead of hopping between gaits."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    ema_decay: float = 0.0
    """Validation, checkpoints and the chosen policy use an exponential moving average of the weights (Polyak
    averaging) with this decay per gradient step, warmed up as min(decay, (1 + t) / (10 + t)); training steps the raw
    weights. A preference step moves the policy noisily between gaits; the average moves with the drift and not the
    noise. 0 = the raw weights."""
    log_every: int = 10
    """Report the loss terms and preference accuracy, averaged, every this many steps (curves, progress)."""
    eval_every: int = 400
    """Validate and checkpoint every this many steps."""
    eval_episodes: int = 2
    """Validation episodes per checkpoint (seeds below the evaluation seeds)."""
    val_seed: int = 9_000
    """First validation seed; all validation seeds (one per validation episode) stay below 10 000 (evaluation seeds)."""
    window: int = 200
    """Length of the validation clips the teacher judges."""
    select: str = "teacher"
    """Checkpoint choice without the true cost: teacher (judges validation clips), heldout (pairs), last."""
    select_tolerance: float = 0.1
    """Teacher selection: among checkpoints this close to the safest, take the highest return."""
    select_smoothing: int = 0
    """Teacher selection: average each checkpoint's validation safety with this many neighbouring checkpoints on
    each side before the tolerance applies (a safe checkpoint between two unsafe ones is more likely a lucky draw
    of a few verdicts than a safe policy). 0 = each checkpoint on its own."""
    heldout_fraction: float = 0.0
    """Fraction of labelled pairs kept out of training for heldout selection (a held-out pair may share a clip with a
    training pair, so its accuracy reads high; the choice between checkpoints is what it serves)."""
    seed: int = 0
    """Seeds torch, numpy and the batch sampler."""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        types = typing.get_type_hints(type(self))
        for name, (low, high) in FIELD_BOUNDS.items():
            value = getattr(self, name)
            if types[name] is int and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"{name} must be a whole number, got {quoted(value)}")
            if (not isinstance(value, (int, float)) or isinstance(value, bool)
                    or isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {quoted(value)}")
            if (low is not None and value < low) or (high is not None and value > high):
                # 1e30 typed, not its 31 digits; an int past any float (10**400 in a JSON file) by its size
                said = (repr(value) if abs(value) < 1e15 else f"{value:.6g}" if abs(value) < 1e300
                        else f"a number of {len(str(abs(value)))} digits")
                raise ValueError(f"{name} must be in [{low}, {high}], got {said}")
        for name, choices in FIELD_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {quoted(getattr(self, name))}")
        if self.pref_weight == self.dispref_weight == self.bc_weight == self.kl_weight == 0:
            raise ValueError("pref_weight, dispref_weight, bc_weight and kl_weight are all 0: nothing to train")
        if self.label_sets == "net" and self.counterfactuals != "policy":
            raise ValueError(f"counterfactuals={self.counterfactuals!r} contrasts each winner with its own loser: "
                             "it needs label_sets='pairs'")
        if self.dispref_target != "policy" and self.counterfactuals != "policy":
            raise ValueError(f"dispref_target={self.dispref_target!r} replaces the dispreferred counterfactual; "
                             "it needs counterfactuals='policy'")
        if self.implicit_reward == "logp" and self.reference_sync_every:
            raise ValueError("reference_sync_every refreshes a reference that implicit_reward='logp' does not use; set it to 0")
        if self.start == "bc" and self.is_bc:
            raise ValueError("start='bc' puts preference terms after a BC stage; this config is BC itself "
                             "(pref_weight and dispref_weight are 0): use start='reference'")
        if self.start == "bc" and (self.reference_sync_every or self.implicit_reward == "logp"):
            raise ValueError("start='bc' fixes the preference terms' reference to the BC policy; it needs "
                             "reference_sync_every=0 and implicit_reward='ratio'")
        if self.select == "heldout" and self.heldout_fraction <= 0:
            raise ValueError("heldout_fraction must be > 0 when select is 'heldout'")
        from prefine_core.evaluate import EVAL_SEED

        if self.val_seed + self.eval_episodes > EVAL_SEED:  # the checkpoint would be chosen on evaluation episodes
            raise ValueError(f"validation seeds {self.val_seed}…{self.val_seed + self.eval_episodes - 1} reach the "
                             f"evaluation seeds ({EVAL_SEED} and up): lower val_seed or eval_episodes")

    def training_dict(self) -> dict:
        """The fields that shape training (all but :data:`SELECTION_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in SELECTION_FIELDS}

    def learning_rate_at(self, step: int) -> float:
        """Adam's step size for gradient step ``step`` (0 = the first)."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        return 0.5 * self.learning_rate * (1.0 + math.cos(math.pi * step / self.steps))

    @property
    def is_bc(self) -> bool:
        """Only the BC anchor is on (the BC-on-winners baseline)."""
        return self.pref_weight == 0 and self.dispref_weight == 0

    @property
    def policy_kind(self) -> str:
        """The kind of policy it trains, as the store registers it: ``bc`` for the BC baseline, else ``finetuned``."""
        return "bc" if self.is_bc else "finetuned"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PrefineConfig":
        if not isinstance(data, dict):
            raise ValueError(f"a PREFINE config must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config fields {quoted(sorted(unknown))}")
        types = typing.get_type_hints(cls)
        cast = {k: float(v) if types[k] is float and isinstance(v, int) and not isinstance(v, bool) and abs(v) < 1e300
                else v for k, v in data.items()}  # a larger int stays one: validate() says it is out of bounds
        return cls(**cast)

    @classmethod
    def from_saved(cls, data: dict) -> "PrefineConfig":
        """A complete config saved by a run (store row, trainer state): a field added since it was saved takes
        the behaviour that run had, not today's default, so an old run resumes as it started."""
        from prefine_core.store.engine import UNREADABLE_JSON

        if not isinstance(data, dict):
            raise ValueError(f"a PREFINE config must be a JSON object, got {type(data).__name__}")
        if set(data) == {UNREADABLE_JSON}:  # what the store hands out for a value that is no JSON object
            raise ValueError(f"the saved settings are not a JSON object ({data[UNREADABLE_JSON]!r}): edited or damaged "
                             "since they were saved")
        return cls.from_dict({**FIELDS_ADDED_SINCE, **data})

    @classmethod
    def from_json(cls, text: str | bytes) -> "PrefineConfig":
        return cls.from_dict(parse_json("config", text))


#: (min, max) of every numeric field; None = unbounded.
FIELD_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "pref_weight": (0.0, 100.0), "dispref_weight": (0.0, 100.0), "margin_clip": (0.0, 100.0),
    "bc_weight": (0.0, 100.0), "kl_weight": (0.0, 100.0), "beta": (1e-4, 10.0),
    "segment_length": (1, 1000), "reference_sync_every": (0, 1_000_000), "cf_temperature": (0.01, 10.0), "batch_size": (1, 4096),
    "bc_batch_size": (1, 65536), "steps": (1, 1_000_000), "learning_rate": (1e-7, 1.0),
    "grad_clip": (0.0, 1000.0), "ema_decay": (0.0, 0.9999), "log_every": (1, 100_000), "eval_every": (1, 1_000_000), "eval_episodes": (1, 100),
    "val_seed": (0, 9_999), "window": (1, 1000), "select_tolerance": (0.0, 1.0), "select_smoothing": (0, 10),
    "heldout_fraction": (0.0, 0.9), "seed": (0, 2**31 - 1),
}
#: Fields added after runs were first saved -> the value that reproduces what those runs did.
FIELDS_ADDED_SINCE: dict[str, object] = {"label_sets": "pairs", "reference_sync_every": 0, "implicit_reward": "ratio",
                                         "lr_schedule": "constant", "dispref_target": "policy",
                                         "select_smoothing": 0, "ema_decay": 0.0, "start": "reference",
                                         "step_credit": "none"}
#: Fields that only choose among a run's checkpoints: changing them never retrains (a finished run is chosen again).
SELECTION_FIELDS = ("select_tolerance", "select_smoothing")
FIELD_CHOICES: dict[str, tuple[str, ...]] = {"counterfactuals": COUNTERFACTUALS, "sigmoid": SIGMOIDS, "select": SELECTIONS,
                                             "label_sets": LABEL_SETS, "implicit_reward": IMPLICIT_REWARDS,
                                             "lr_schedule": LR_SCHEDULES, "dispref_target": DISPREF_TARGETS,
                                             "start": STARTS, "step_credit": STEP_CREDITS}
#: Every field's name in plain words, for the app form's labels: an audience watching a demo reads these, a researcher
#: the field's own name that :func:`config_fields` puts in brackets after it (and the help, from its docstring).
FIELD_LABELS: dict[str, str] = {
    "counterfactuals": "Compared with", "label_sets": "How labels are counted", "pref_weight": "Safer-clip weight",
    "dispref_weight": "Less-safe-clip weight w⁻", "margin_clip": "Margin cap", "bc_weight": "Imitation anchor λ",
    "kl_weight": "Stay-close penalty", "beta": "Preference strength β",
    "sigmoid": "Compare per clip piece or per step", "segment_length": "Steps per clip piece L",
    "reference_sync_every": "Refresh the reference every … steps", "implicit_reward": "How a clip is scored",
    "dispref_target": "Replaces a less-safe action", "start": "First stage", "step_credit": "Per-step credit",
    "cf_temperature": "Spread of the policy's own actions", "batch_size": "Clip pieces per step",
    "bc_batch_size": "Imitated actions per step", "steps": "Training steps", "learning_rate": "Learning rate",
    "lr_schedule": "Learning-rate schedule", "grad_clip": "Update size cap", "ema_decay": "Weight averaging",
    "log_every": "Curve point every … steps", "eval_every": "Checkpoint every … steps",
    "eval_episodes": "Episodes per checkpoint", "val_seed": "First validation seed",
    "window": "Validation clip length", "select": "Checkpoint chosen by",
    "select_tolerance": "Checkpoint choice: safety tolerance",
    "select_smoothing": "Checkpoint choice: neighbours averaged", "heldout_fraction": "Share of pairs held out",
    "seed": "Random seed",
}


def config_fields() -> list[dict]:
    """Every PrefineConfig field as {name, label, type, default, help, min, max, choices}, for forms and flags; the
    label is the plain words of :data:`FIELD_LABELS` with the name in brackets, so an error naming the field is
    still found on the form."""
    import ast
    import inspect

    docs: dict[str, str] = {}
    body = ast.parse(inspect.getsource(PrefineConfig)).body[0].body
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = str(after.value.value)
    types = typing.get_type_hints(PrefineConfig)
    rows = []
    for f in dataclasses.fields(PrefineConfig):
        low, high = FIELD_BOUNDS.get(f.name, (None, None))
        rows.append({
            "name": f.name, "label": f"{FIELD_LABELS[f.name]} ({f.name})", "type": types[f.name].__name__,
            "default": f.default, "help": docs.get(f.name, ""),
            "min": low, "max": high, "choices": list(FIELD_CHOICES.get(f.name, ())),
        })
    return rows
