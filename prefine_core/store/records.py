"""Records that cross the store's boundary: frozen dataclasses that check their own invariants."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prefine_core.teachers import CHOICES

#: What a label row may hold: a judgement (:data:`prefine_core.teachers.CHOICES`), ``"skip"``
#: (the annotator passed on the pair: kept as history, never served to them again, never a
#: preference), or ``"retract"`` (written only by :meth:`Store.undo_last_label`: the annotator's
#: earlier label on that pair no longer counts and the pair can be served to them again).
LABEL_CHOICES = (*CHOICES, "skip")
RETRACT = "retract"
POLICY_KINDS = ("reference", "behaviour", "finetuned", "bc", "imported")
RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled")
#: Longest annotator name accepted.
MAX_NAME = 64


@dataclass(frozen=True)
class PolicyRecord:
    id: int
    name: str
    path: str
    """Checkpoint file (``.safetensors``)."""
    task_id: str
    kind: str
    """One of :data:`POLICY_KINDS`."""
    parent_id: int | None
    provenance: dict = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def name_and_kind(self) -> str:
        """As a page's policy box offers it: "ppo-reference [reference]"."""
        return f"{self.name} [{self.kind}]"


@dataclass(frozen=True)
class TrajectoryRecord:
    id: int
    task_id: str
    policy_id: int | None
    source: str
    """Pool source, e.g. ``reference@T1.0``, ``behaviour_penalty2``, ``dataset:cheetah.hdf5``."""
    path: str
    """The ``.npz`` array file."""
    seed: int | None
    start: int
    """First step of this clip within its episode."""
    length: int
    total_return: float
    total_cost: float
    """True cost: for the teacher, agreement and evaluation; query strategies never read it."""
    fell: bool
    terminated: bool
    truncated: bool
    temperature: float | None
    """Sampling temperature of the rollout (None: dataset, or deterministic)."""
    video_path: str | None
    created_at: datetime | None = None

    @property
    def replayable(self) -> bool:
        """Whether the clip can be shown as a video: it comes from a seeded rollout of a registered policy. Clips of
        imported datasets carry no simulator state to replay, so they cannot."""
        return self.policy_id is not None and self.seed is not None


@dataclass(frozen=True)
class PairRecord:
    id: int
    task_id: str
    left_id: int
    right_id: int
    strategy: str
    """The query strategy that chose the pair (``random``, ``diversity``, ``uncertainty``, ``ref_vs_ft``, …)."""
    score: float
    """The strategy's score (higher = more worth asking)."""
    reason: str
    """Why it was chosen, in words a labeller understands."""
    video_path: str | None
    created_at: datetime | None = None

    @property
    def video_ready(self) -> bool:
        """Whether the pair's video is there to play: rendered, and its file not removed since (a file deleted by
        hand, a workspace copied without its videos) — a pair whose file is gone is rendered again."""
        return self.video_path is not None and Path(self.video_path).is_file()


@dataclass(frozen=True)
class LabelRecord:
    id: int
    pair_id: int
    annotator: str
    choice: str
    """One of :data:`LABEL_CHOICES` or ``"retract"``."""
    seconds: float | None
    supersedes_id: int | None
    """The earlier label row of the same annotator on the same pair that this one replaces."""
    created_at: datetime | None = None


@dataclass(frozen=True)
class RunRecord:
    id: int
    task_id: str
    policy_id: int | None
    """The policy the run starts from."""
    kind: str
    """What runs (:data:`prefine_core.jobs.KINDS`): ``prefine`` (a fine-tune, of any method), ``compare``, ``prepare``
    (the guided path's pool and pair videos) or ``render`` (pair videos)."""
    config: dict
    status: str
    """One of :data:`RUN_STATUSES`."""
    pid: int | None
    error: str | None
    output_policy_id: int | None
    log_path: str | None
    heartbeat: datetime | None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    host: str | None = None
    """The machine ``pid`` is a process of (None: a run recorded before the store kept it, read as this one)."""
