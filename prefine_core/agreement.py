"""How far labellers agree: with the true cost ordering, and with each other.

* Per annotator: the share of their judgements equal to the noiseless synthetic teacher's answer
  (:meth:`SyntheticTeacher.true_choice`: a fall loses, otherwise lower cost over the same window
  wins), over all judgements and over the decided ones (both answers left/right).
* Between two annotators: Cohen's κ on the pairs both judged.
* Over everyone: Krippendorff's α (nominal) on the pairs judged by two or more; and over people alone, without
  the simulated labellers (:func:`teachers.is_synthetic`), whose answers are the truth itself or a noisy copy of it.

Judgements are the standing labels (``Store.effective_labels``: no skips, no retracted labels);
the categories are left, right, equal, cant_tell.
"""
from __future__ import annotations

import itertools
import math
from collections import Counter

import pandas as pd

from prefine_core.teachers import SyntheticTeacher, is_synthetic


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """κ = (p_o − p_e) / (1 − p_e) for two raters' answers on the same items; NaN if undefined."""
    if len(a) != len(b):
        raise ValueError(f"the two raters answered {len(a)} and {len(b)} items; need the same items")
    if not a:
        return math.nan
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / n**2
    if expected == 1.0:
        return 1.0 if observed == 1.0 else math.nan
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha_nominal(units: list[list[str]]) -> float:
    """α = 1 − (n − 1) Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k over units with ≥ 2 values; NaN if undefined.

    o_ck is the coincidence matrix: each ordered pair of values (c, k) from different raters of one
    unit with m values adds 1/(m − 1).
    """
    coincidence: Counter = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for i, j in itertools.permutations(range(m), 2):
            coincidence[(values[i], values[j])] += 1.0 / (m - 1)
    totals: Counter = Counter()
    for (c, _), weight in coincidence.items():
        totals[c] += weight
    n = sum(totals.values())
    disagree = sum(w for (c, k), w in coincidence.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n <= 1 or expected == 0:
        return math.nan
    return 1.0 - (n - 1) * disagree / expected


def with_truth(store, task_id: str | None = None, teacher: SyntheticTeacher | None = None) -> pd.DataFrame:
    """The standing judgements with a ``truth`` column: the noiseless teacher's answer for the pair."""
    teacher = teacher or SyntheticTeacher()
    labels = store.effective_labels(task_id)
    truth = {}
    for pair_id, left_id, right_id in labels[["pair_id", "left_id", "right_id"]].drop_duplicates().itertuples(index=False):
        truth[pair_id] = teacher.true_choice(store.get_trajectory(int(left_id)), store.get_trajectory(int(right_id)))
    return labels.assign(truth=labels.pair_id.map(truth))


def annotator_agreement(labels: pd.DataFrame) -> pd.DataFrame:
    """Per annotator: judgements, agreement with ``truth`` (all), and on decided pairs (left/right both)."""
    rows = []
    for annotator, group in labels.groupby("annotator", sort=True):
        decided = group[group.choice.isin(["left", "right"]) & group.truth.isin(["left", "right"])]
        rows.append({"annotator": annotator, "judgements": len(group),
                     "agreement": float((group.choice == group.truth).mean()),
                     "decided": len(decided),
                     "decided_agreement": float((decided.choice == decided.truth).mean()) if len(decided) else math.nan})
    return pd.DataFrame(rows, columns=["annotator", "judgements", "agreement", "decided", "decided_agreement"])


def pairwise_kappa(labels: pd.DataFrame) -> pd.DataFrame:
    """Cohen's κ for every two annotators, on the pairs both judged."""
    by_annotator = {a: dict(zip(g.pair_id, g.choice)) for a, g in labels.groupby("annotator", sort=True)}
    rows = []
    for a, b in itertools.combinations(sorted(by_annotator), 2):
        shared = sorted(by_annotator[a].keys() & by_annotator[b].keys())
        rows.append({"annotator_a": a, "annotator_b": b, "overlap": len(shared),
                     "kappa": cohen_kappa([by_annotator[a][p] for p in shared], [by_annotator[b][p] for p in shared])})
    return pd.DataFrame(rows, columns=["annotator_a", "annotator_b", "overlap", "kappa"])


def _alpha(labels: pd.DataFrame) -> float | None:
    alpha = krippendorff_alpha_nominal(labels.groupby("pair_id").choice.apply(list).tolist())
    return None if math.isnan(alpha) else alpha


def report(store, task_id: str | None = None, teacher: SyntheticTeacher | None = None) -> dict:
    """Everything above as plain values (NaN → None), for the CLI's ``--json`` and the app.

    ``kappa`` holds the two annotators who judged some pair in common (``kappa_no_common_pairs`` counts the others:
    they have no κ); ``synthetic`` names the simulated labellers among the annotators, counted in every figure but
    ``krippendorff_alpha_people``."""
    labels = with_truth(store, task_id, teacher)
    judged_together = labels.pair_id.value_counts()

    def clean(frame: pd.DataFrame) -> list[dict]:
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                for row in frame.to_dict("records")]

    kappa = pairwise_kappa(labels)
    return {
        "judgements": len(labels),
        "overlapping_pairs": int((judged_together >= 2).sum()),
        "annotators": clean(annotator_agreement(labels)),
        "synthetic": sorted(a for a in labels.annotator.unique() if is_synthetic(a)),
        "kappa": clean(kappa[kappa.overlap > 0]),
        "kappa_no_common_pairs": int((kappa.overlap == 0).sum()),
        "krippendorff_alpha": _alpha(labels),
        "krippendorff_alpha_people": _alpha(labels.loc[~labels.annotator.map(is_synthetic).astype(bool)]),
    }
