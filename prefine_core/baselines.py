"""The methods PREFINE is measured against, as configs of the one trainer (no second training loop).

* ``bc``: behaviour cloning on the preferred (winning) clips — the baseline to beat (DESIGN §4).
* ``dpo``: plain trajectory-level DPO, winner segment against loser segment, no counterfactuals,
  no BC anchor.
* the untouched reference (nothing to train), and
* :func:`bc_refit_reference`: the paper's reference (b), BC on the pool's top-reward clips, which
  keeps the pool's safe behaviour inside π_ref's support.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from prefine_core.policy import TanhGaussianPolicy, load_policy
from prefine_core.prefine import BC_ON_WINNERS, PrefineConfig
from prefine_core.rollout import Trajectory
from prefine_core.trainer import PreferenceData, PrefineTrainer


def method_config(method: str, base: PrefineConfig) -> PrefineConfig:
    """``base`` turned into ``method``: prefine (as is); the baselines bc (BC on every pair's winner) and dpo;
    staged (PREFINE after a BC stage, against the BC policy: ``start="bc"``); ablations bc_net (BC on the net
    winners PREFINE uses), pairs (PREFINE on every pair's winner and loser),
    trust_region (the preference terms' reference refreshed to the policy every 200 steps), no_dispref, no_bc,
    mixed, per_step. Plain DPO always keeps the fixed π_ref."""
    changes = {
        "prefine": {},
        "bc": BC_ON_WINNERS,
        "bc_net": {**BC_ON_WINNERS, "label_sets": "net"},
        "dpo": dict(counterfactuals="none", bc_weight=0.0, dispref_weight=0.0, kl_weight=0.0, label_sets="pairs",
                    reference_sync_every=0, start="reference"),
        "staged": dict(start="bc"),
        "pairs": dict(label_sets="pairs"),
        "trust_region": dict(reference_sync_every=200, start="reference"),
        "no_dispref": dict(dispref_weight=0.0),
        "no_bc": dict(bc_weight=0.0),
        "mixed": dict(counterfactuals="mixed", label_sets="pairs"),
        "per_step": dict(sigmoid="step"),
    }
    if method not in changes:
        raise ValueError(f"method must be one of {sorted(changes)}, got {method!r}")
    return dataclasses.replace(base, **changes[method])


METHODS = ("prefine", "staged", "bc", "bc_net", "dpo", "pairs", "trust_region", "no_dispref", "no_bc", "mixed", "per_step")


def bc_refit_reference(
    reference: TanhGaussianPolicy, clips: Sequence[Trajectory], out_dir: str | Path,
    top_fraction: float = 0.5, steps: int = 3000, seed: int = 0,
) -> TanhGaussianPolicy:
    """Reference (b): BC, starting from ``reference``, on the top ``top_fraction`` of ``clips`` by return."""
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    ranked = sorted(clips, key=lambda c: c.total_return, reverse=True)
    n_top = max(1, int(round(top_fraction * len(ranked))))
    data = PreferenceData(tuple(ranked[:n_top]), tuple(ranked[n_top:] or ranked[:1]), paired=False)
    config = method_config("bc", PrefineConfig(steps=steps, eval_every=steps, eval_episodes=1, select="last", seed=seed))
    result = PrefineTrainer(reference, data, config, out_dir, name=f"bc-refit-{reference.meta.task_id}").run()
    return load_policy(result["path"], reference.meta.task_id)
