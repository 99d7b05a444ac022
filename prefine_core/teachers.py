"""The synthetic labeller: judges a pair of clips the way a sensible person would.

A fall is a catastrophic failure: a clip in which the robot fell loses to any clip in which it did
not (DESIGN §4, lesson 1 — otherwise "lower cost" means "fell sooner"). Otherwise the clip with the
lower cost over the same window wins; within ``equal_margin`` the answer is "equal". Noise knobs
follow B-Pref (mistake rate, skip rate, myopic discount, equal margin), all seeded.

It only ever sees what a labeller sees (the clips); human and synthetic labels go through the same
store interface, the teacher under its own annotator name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # keeps ``import prefine_core.store`` (which needs CHOICES) free of torch
    from prefine_core.rollout import Trajectory

#: The answers a labeller can give for a pair shown as (left, right).
CHOICES = ("left", "right", "equal", "cant_tell")
#: Annotator names starting with this (any case) are simulated labellers: Home's Auto-label and ``label-synthetic``
#: label under them, a person cannot take one, and the Agreement tab tells the teacher from people by it.
SYNTHETIC_PREFIX = "synthetic"


def is_synthetic(annotator: str) -> bool:
    """Whether ``annotator`` names a simulated labeller (:data:`SYNTHETIC_PREFIX`)."""
    return annotator.strip().casefold().startswith(SYNTHETIC_PREFIX)


@dataclass
class TeacherConfig:
    mistake_rate: float = 0.0
    """Probability of swapping a decided answer (left <-> right)."""
    equal_margin: float = 0.0
    """Cost difference up to which the answer is "equal"."""
    skip_rate: float = 0.0
    """Probability of answering "cant_tell"."""
    myopic_discount: float = 1.0
    """γ ≤ 1 weighting step t of a window of length H by γ^(H−1−t): < 1 forgets early steps."""
    reward_tiebreak: bool = False
    """On equal cost, prefer the clip with the higher return instead of answering "equal"."""
    seed: int = 0
    """Seeds the noise."""

    def __post_init__(self):
        for name in ("mistake_rate", "skip_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.equal_margin < 0:
            raise ValueError(f"equal_margin must be ≥ 0, got {self.equal_margin}")
        if not 0.0 < self.myopic_discount <= 1.0:
            raise ValueError(f"myopic_discount must be in (0, 1], got {self.myopic_discount}")


@dataclass
class SyntheticTeacher:
    """Answers ``judge(left, right)`` with one of :data:`CHOICES`."""

    config: TeacherConfig = field(default_factory=TeacherConfig)
    name: str = "synthetic-teacher"

    def __post_init__(self):
        self._rng = np.random.default_rng(self.config.seed)

    def _window_cost(self, clip: Trajectory, horizon: int) -> float:
        costs = clip.costs[:horizon].astype(np.float64)
        weights = self.config.myopic_discount ** np.arange(len(costs) - 1, -1, -1)
        return float((weights * costs).sum())

    def true_choice(self, left: Trajectory, right: Trajectory) -> str:
        """The noiseless answer."""
        if left.fell != right.fell:
            return "right" if left.fell else "left"
        horizon = min(left.length, right.length)
        if left.fell and right.fell and left.length != right.length:
            return "left" if left.length > right.length else "right"  # the one that stayed up longer
        cost_left, cost_right = self._window_cost(left, horizon), self._window_cost(right, horizon)
        if abs(cost_left - cost_right) <= self.config.equal_margin:
            if self.config.reward_tiebreak:
                ret_left, ret_right = left.rewards[:horizon].sum(), right.rewards[:horizon].sum()
                if ret_left != ret_right:
                    return "left" if ret_left > ret_right else "right"
            return "equal"
        return "left" if cost_left < cost_right else "right"

    def judge(self, left: Trajectory, right: Trajectory) -> str:
        """The answer with the configured noise."""
        if self._rng.random() < self.config.skip_rate:
            return "cant_tell"
        choice = self.true_choice(left, right)
        if choice in ("left", "right") and self._rng.random() < self.config.mistake_rate:
            choice = "right" if choice == "left" else "left"
        return choice


#: Names :func:`safety_judge` and the score selection makes of its answers; recorded with benchmark runs so
#: that one chosen another way is rerun.
SAFETY_JUDGE = "safety-only/2"  # 2: a clip as safe as its anchor scores 1 (trainer._score), not ½


def safety_judge():
    """The judge of checkpoint selection (``select='teacher'``) everywhere — app, CLI, benchmark: the noiseless,
    fall-aware teacher asked only "which clip was safer?"; two clips with the same cost are "equal" whatever
    their returns.

    Selection weighs return itself (the highest validation return among the safest checkpoints). A judge that
    broke cost ties by return would count return twice and score a cost-free checkpoint as less safe than a
    cost-free anchor clip that happened to run faster — the benchmark's labelling teacher does that, and
    with it as the judge a checkpoint with no cost at all could score 0 and lose to one with cost.
    """
    return SyntheticTeacher(TeacherConfig()).true_choice


def label_pending(store, teacher: SyntheticTeacher, task_id: str | None = None, limit: int | None = None,
                  overlap: int = 1_000_000, on_label=None, seconds: float | None = None,
                  unreadable: list[str] | None = None) -> int:
    """Label the pairs this teacher has not labelled yet, through ``store.add_label`` under ``teacher.name``
    (each answer taking ``seconds``, if given).

    It asks :meth:`Store.next_pair` like a person would, so ``overlap`` works as for people (the
    default: every pair, whoever else labelled it). Returns how many labels were written; ``on_label(written)``
    after each. A pair with a clip gone or damaged since it was made is passed over (else it came back first every
    time, and nothing after it was labelled) and said in ``unreadable``; it is not labelled, not even as a skip, so
    that a later call labels it once its file is restored.
    """
    written, passed_over = 0, []
    while limit is None or written < limit:
        pair = store.next_pair(teacher.name, task_id=task_id, overlap=overlap, passing_over=passed_over)
        if pair is None:
            break
        try:
            left, right = store.get_trajectory(pair.left_id), store.get_trajectory(pair.right_id)
        except ValueError as exc:  # its row deleted, its file removed or cut short (the store's NotFound too)
            passed_over.append(pair.id)
            if unreadable is not None:
                unreadable.append(f"pair {pair.id} passed over: {exc}")
            continue
        store.add_label(pair.id, teacher.name, teacher.judge(left, right), seconds=seconds)
        written += 1
        if on_label is not None:
            on_label(written)
    return written
