"""Tables of what a workspace holds, for the data page: clips, pairs, labels, policies."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefine_core.labelling import CHOICE_LABELS
from prefine_core.store import RETRACT, Store


def said(choice: str) -> str:
    """A label's choice in the words of the Label page's buttons ("A safer", not ``left``); an undo row is "undone";
    a choice no label may have (a row edited by hand) as it is stored."""
    return "undone" if choice == RETRACT else CHOICE_LABELS.get(choice, choice)


def trajectories_frame(store: Store, task_id: str) -> pd.DataFrame:
    columns = ["id", "source", "seed", "start", "length", "total_return", "total_cost", "fell", "video_path"]
    rows = [{c: getattr(r, c) for c in columns} for r in store.list_trajectories(task_id)]
    return pd.DataFrame(rows, columns=columns).rename(columns={"video_path": "video"})


def pairs_frame(store: Store, task_id: str) -> pd.DataFrame:
    labels = store.effective_labels(task_id)
    votes = (labels.groupby("pair_id").choice.agg(lambda c: ", ".join(sorted(map(said, c)))) if len(labels)
             else pd.Series(dtype=str))
    rows = [{"id": p.id, "A (clip)": p.left_id, "B (clip)": p.right_id, "strategy": p.strategy, "reason": p.reason,
             "video ready": p.video_ready, "labels": votes.get(p.id, "")} for p in store.list_pairs(task_id)]
    return pd.DataFrame(rows, columns=["id", "A (clip)", "B (clip)", "strategy", "reason", "video ready", "labels"])


def labels_frame(store: Store, task_id: str) -> pd.DataFrame:
    """Every label row ever written (retractions and skips included), newest first."""
    rows = [{"id": h.id, "pair": h.pair_id, "annotator": h.annotator, "choice": said(h.choice), "seconds": h.seconds,
             "replaces": h.supersedes_id, "at": h.created_at} for h in store.label_history(task_id)]
    return pd.DataFrame(rows, columns=["id", "pair", "annotator", "choice", "seconds", "replaces", "at"]).iloc[::-1]


def policy_rows(store: Store, task_id: str | None = None) -> list[dict]:
    """The registered policies (of ``task_id``; of every task for None), as the Data page and ``policies`` list them;
    ``file`` says whether the checkpoint is here ("missing": imported from an export made without its checkpoints, or
    its file removed since; such a policy cannot be evaluated or fine-tuned)."""
    return [{"id": p.id, "name": p.name, "task_id": p.task_id, "kind": p.kind, "parent": p.parent_id, "path": p.path,
             "file": "here" if Path(p.path).is_file() else "missing"} for p in store.list_policies(task_id)]


def policies_frame(store: Store, task_id: str) -> pd.DataFrame:
    return pd.DataFrame(policy_rows(store, task_id), columns=["id", "name", "kind", "parent", "file", "path"])
