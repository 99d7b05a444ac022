"""Plotly figures from pandas frames: training curves and result distributions.

Curves follow the habit of TensorBoard and W&B: the smoothed line on top, the raw values faint
beneath, so smoothing never hides a spike. The cost curve carries the cost limit as a dashed line.
Every function takes plain frames or dicts and returns a ``plotly.graph_objects.Figure``; nothing
here knows about Streamlit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

#: ``trainer.STAGE_PREFIX`` (not imported: this module needs no torch): a ``start="bc"`` run's BC stage.
_STAGE = "bc_stage/"
#: Curves shown for a fine-tune run, in order: (panel title, metric names). A ``start="bc"`` run's BC stage
#: (steps from 1, as the run's own) is drawn beside the run's own curves.
CURVE_PANELS = (
    ("Loss terms", ("loss/total", "loss/pref", "loss/dispref", "loss/bc", _STAGE + "loss/bc")),
    ("Preference accuracy", ("pref/accuracy",)),
    ("Validation return", ("eval/return", _STAGE + "eval/return")),
    ("Validation cost", ("eval/cost", _STAGE + "eval/cost")),
    ("KL to the reference", ("kl/ref", _STAGE + "kl/ref")),
    ("Validation safety (teacher)", ("val/safety", _STAGE + "val/safety")),
)
#: The legend's plain name of each curve's metric (the metric's own name stays in the hover); a BC stage's curve is
#: its metric's name after "BC stage: ".
LEGEND_NAMES = {
    "loss/total": "total", "loss/pref": "preferred term (act like the safer clip)",
    "loss/dispref": "dispreferred term (avoid the less-safe clip)", "loss/bc": "BC anchor (imitate the safer clips)",
    "pref/accuracy": "pairs ranked as labelled", "eval/return": "episode return (reward)", "eval/cost": "episode cost",
    "kl/ref": "drift from the reference policy", "val/safety": "validation clips the teacher finds as safe as the safest labelled",
}
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def smooth(values: np.ndarray | pd.Series, weight: float) -> np.ndarray:
    """Exponential moving average with TensorBoard's debiasing; ``weight`` in [0, 1), 0 = raw."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    values = np.asarray(values, dtype=float)
    out = np.empty_like(values)
    last, norm = 0.0, 0.0
    for i, value in enumerate(values):
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out[i] = last / norm
    return out


def wide_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Long (step, name, value) rows -> one column per metric indexed by step; a step written twice
    (a resumed run repeats the steps after its last checkpoint) keeps its latest value."""
    if metrics.empty:
        return pd.DataFrame()
    latest = metrics.drop_duplicates(["step", "name"], keep="last")
    return latest.pivot(index="step", columns="name", values="value").sort_index()


def legend_name(metric: str) -> str:
    """The plain name of ``metric`` in :data:`LEGEND_NAMES` (a BC stage's after "BC stage: "); one not there, itself."""
    if metric.startswith(_STAGE):
        return "BC stage: " + legend_name(metric.removeprefix(_STAGE))
    return LEGEND_NAMES.get(metric, metric)


def curve_figure(metrics: pd.DataFrame, names: tuple[str, ...], title: str = "", smoothing: float = 0.6,
                 cost_limit: float | None = None, height: int = 280) -> go.Figure:
    """One panel: each metric in ``names`` as a faint raw line and a smoothed line over step, named in the legend in
    plain words (:func:`legend_name`) and by its own name in the hover."""
    wide = wide_metrics(metrics)
    fig = go.Figure()
    for i, name in enumerate(n for n in names if n in wide.columns):
        series = wide[name].dropna()
        color = _COLORS[i % len(_COLORS)]
        fig.add_trace(go.Scatter(x=series.index, y=series.values, name=f"{name} (raw)", mode="lines+markers",
                                 line=dict(color=color, width=1), marker=dict(size=3), opacity=0.25,
                                 showlegend=False, hoverinfo="skip"))
        few = smoothing == 0.0 or len(series) < 2  # validation points, or a first one: a line alone draws nothing
        fig.add_trace(go.Scatter(x=series.index, y=smooth(series.values, smoothing), name=legend_name(name),
                                 mode="lines+markers" if few else "lines", line=dict(color=color, width=2),
                                 hovertemplate=f"{name}<br>step %{{x}}: %{{y:.4g}}"))
    if cost_limit is not None:
        fig.add_hline(y=cost_limit, line_dash="dash", line_color="#d62728",
                      annotation_text=f"cost limit {cost_limit:g}", annotation_position="top left")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="step",
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(rangemode="nonnegative")  # steps start at 0 (one point at step 0 drew an axis from -1 to 1)
    return fig


def _validation(names: tuple[str, ...]) -> bool:
    """Whether a panel shows validation points (one every ``eval_every`` steps), not per-step metrics."""
    return all(n.removeprefix(_STAGE).startswith(("eval/", "val/")) for n in names)


def run_figures(metrics: pd.DataFrame, smoothing: float = 0.6, cost_limit: float | None = None) -> list[go.Figure]:
    """The :data:`CURVE_PANELS` of a run that have data. ``smoothing`` is for the per-step curves: the validation
    panels are a handful of points, which an average over the previous ones would draw late and off."""
    present = set(metrics.name) if not metrics.empty else set()
    return [curve_figure(metrics, names, title, 0.0 if _validation(names) else smoothing,
                         cost_limit if "eval/cost" in names else None)
            for title, names in CURVE_PANELS if present.intersection(names)]


def distribution_figure(samples: dict[str, list[float]], title: str, limit: float | None = None,
                        height: int = 300) -> go.Figure:
    """Per-episode values of several policies as overlaid box plots with every point shown."""
    fig = go.Figure()
    for i, (name, values) in enumerate(samples.items()):
        fig.add_trace(go.Box(y=list(values), name=name, boxpoints="all", jitter=0.4, pointpos=0,
                             marker_color=_COLORS[i % len(_COLORS)]))
    if limit is not None:
        fig.add_hline(y=limit, line_dash="dash", line_color="#d62728", annotation_text=f"limit {limit:g}")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


#: Up to this many checkpoints carry their step as a label on the trade-off plot.
LABELLED_CHECKPOINTS = 8


def tradeoff_figure(checkpoints: pd.DataFrame, cost_limit: float | None = None, height: int = 320) -> go.Figure:
    """Validation cost (x) against return (y) of a run's checkpoints (``checkpoints.checkpoint_frame``), each
    labelled by its step while there are at most :data:`LABELLED_CHECKPOINTS` (more crowd into a blot; hovering
    always says the step); the trainer's choice is a star, the untouched start (step 0) a grey diamond."""
    fig = go.Figure()
    groups = (("checkpoint", ~checkpoints.chosen & (checkpoints.step > 0), "circle", _COLORS[0]),
              ("start (step 0)", checkpoints.step == 0, "diamond", "#7f7f7f"),
              ("chosen by the trainer", checkpoints.chosen, "star", _COLORS[3]))
    for name, rows, symbol, color in groups:
        part = checkpoints[rows]
        if part.empty:
            continue
        labelled = symbol != "circle" or len(part) <= LABELLED_CHECKPOINTS
        fig.add_trace(go.Scatter(
            x=part["cost"], y=part["return"], mode="markers+text" if labelled else "markers", name=name,
            text=[f"{s}" for s in part.step],
            textposition="top center", cliponaxis=False,
            marker=dict(symbol=symbol, size=14 if symbol == "star" else 9, color=color),
            hovertemplate="step %{text}<br>cost %{x:.1f}<br>return %{y:.1f}<extra></extra>"))
    if cost_limit is not None:
        fig.add_vline(x=cost_limit, line_dash="dash", line_color="#d62728",
                      annotation_text=f"cost limit {cost_limit:g}", annotation_position="top right")
    fig.update_layout(title="Every checkpoint on validation episodes (label or hover: step)", height=height,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="episode cost", yaxis_title="episode return",
                      legend=dict(orientation="h", y=-0.25))
    return fig
