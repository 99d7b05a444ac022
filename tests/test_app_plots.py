"""Curve smoothing and figures for the fine-tune and compare pages."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefine_core import plots


def test_smoothing_is_debiased_and_zero_means_raw():
    values = np.array([1.0, 3.0, 2.0, 5.0])
    assert plots.smooth(values, 0.0) == pytest.approx(values)
    assert plots.smooth(np.full(5, 7.0), 0.9) == pytest.approx(np.full(5, 7.0))  # no pull towards 0 at the start
    with pytest.raises(ValueError, match="smoothing weight"):
        plots.smooth(values, 1.0)


def test_a_resumed_run_keeps_the_latest_value_per_step():
    metrics = pd.DataFrame({"step": [10, 20, 20], "name": ["loss/total"] * 3, "value": [1.0, 2.0, 1.5]})
    assert plots.wide_metrics(metrics)["loss/total"].tolist() == [1.0, 1.5]


def test_run_figures_raw_beneath_smoothed_and_cost_limit():
    metrics = pd.DataFrame({"step": [10, 20, 10, 20], "name": ["loss/total", "loss/total", "eval/cost", "eval/cost"],
                            "value": [1.0, 0.5, 40.0, 20.0]})
    loss, cost = plots.run_figures(metrics, smoothing=0.5, cost_limit=25.0)
    raw, smoothed = loss.data
    assert raw.opacity < 1 and smoothed.name == "total"
    assert cost.layout.shapes[0].y0 == 25.0
    assert plots.run_figures(pd.DataFrame(columns=["step", "name", "value"])) == []


def test_validation_points_are_drawn_as_measured_and_per_step_curves_smoothed():
    metrics = pd.DataFrame({"step": [10, 20, 10, 20], "name": ["loss/total", "loss/total", "eval/cost", "eval/cost"],
                            "value": [1.0, 0.0, 700.0, 530.0]})
    loss, cost = plots.run_figures(metrics, smoothing=0.9)
    assert list(cost.data[1].y) == [700.0, 530.0]  # the line ends where the last validation was
    assert loss.data[1].y[-1] > 0.0  # the loss is smoothed


def test_a_runs_first_validation_point_is_seen_on_a_step_axis_from_0():
    """Only step 0's validation yet: a line through one point draws nothing, and the axis ran from -1 to 1."""
    metrics = pd.DataFrame({"step": [0, 0, 5], "name": ["eval/return", "eval/cost", "loss/total"],
                            "value": [4600.0, 900.0, 1.0]})
    figures = plots.run_figures(metrics, smoothing=0.6)
    assert figures and all("markers" in fig.data[1].mode for fig in figures)
    assert all(fig.layout.xaxis.rangemode == "nonnegative" for fig in figures)


def test_a_staged_runs_bc_stage_is_drawn_beside_the_run_from_its_first_report():
    from prefine_core.trainer import STAGE_PREFIX

    stage_only = pd.DataFrame({"step": [0, 10], "name": [STAGE_PREFIX + "eval/return"] * 2, "value": [1.0, 2.0]})
    (returns,) = plots.run_figures(stage_only)  # only the stage has reported: its curve shows, not "no points yet"
    assert [t.name for t in returns.data if t.showlegend is not False] == ["BC stage: episode return (reward)"]
    both = pd.concat([stage_only, pd.DataFrame({"step": [0], "name": ["eval/return"], "value": [2.0]})])
    (returns,) = plots.run_figures(both)
    assert [t.name for t in returns.data if t.showlegend is not False] == ["episode return (reward)",
                                                                            "BC stage: episode return (reward)"]
    assert plots._STAGE == STAGE_PREFIX


def test_legends_say_each_curve_in_plain_words_and_the_hover_its_metric_name():
    """The legends showed loss/pref, kl/ref, bc_stage/loss/bc: names an audience cannot read."""
    from prefine_core.trainer import STAGE_PREFIX

    names = [n for _, panel in plots.CURVE_PANELS for n in panel]
    metrics = pd.DataFrame({"step": [10] * len(names), "name": names, "value": 1.0})
    shown = {t.hovertemplate.split("<br>")[0]: t.name for fig in plots.run_figures(metrics) for t in fig.data
             if t.showlegend is not False}
    assert set(shown) == set(names)  # every curve's own name, in its hover
    assert all("/" not in legend for legend in shown.values()), shown
    assert shown["loss/pref"] == "preferred term (act like the safer clip)"
    assert shown[STAGE_PREFIX + "loss/bc"] == "BC stage: BC anchor (imitate the safer clips)"
    assert plots.legend_name("loss/unknown") == "loss/unknown"  # a metric without plain words keeps its own name


def test_distribution_figure_has_one_box_per_policy():
    fig = plots.distribution_figure({"A": [1, 2], "B": [3]}, "cost", limit=25)
    assert [t.name for t in fig.data] == ["A", "B"]


def test_the_trade_off_marks_the_start_and_the_trainers_choice_and_draws_the_limit_across_cost():
    frame = pd.DataFrame({"step": [0, 10, 20], "return": [90.0, 70.0, 85.0], "cost": [80.0, 10.0, 30.0],
                          "chosen": [False, False, True]})
    fig = plots.tradeoff_figure(frame, cost_limit=25.0)
    traces = {t.name: t for t in fig.data}
    assert list(traces["checkpoint"].x) == [10.0] and list(traces["start (step 0)"].text) == ["0"]
    assert list(traces["chosen by the trainer"].y) == [85.0]
    assert fig.layout.shapes[0].x0 == 25.0 and fig.layout.xaxis.title.text == "episode cost"
    assert [t.name for t in plots.tradeoff_figure(frame.assign(chosen=False)).data] == ["checkpoint", "start (step 0)"]
    assert traces["checkpoint"].mode == "markers+text"
    many = pd.DataFrame({"step": range(0, 4400, 400), "cost": range(11), "return": range(11),
                         "chosen": [False] * 10 + [True], "available": True})
    crowded = {t.name: t for t in plots.tradeoff_figure(many).data}
    assert crowded["checkpoint"].mode == "markers" and list(crowded["checkpoint"].text)[0] == "400"  # hover says it
    assert crowded["chosen by the trainer"].mode == "markers+text"
