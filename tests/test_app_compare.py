"""AppTest of the Compare page: its choices, what it refuses, and how it shows a result."""
from __future__ import annotations

import json

import pytest

from conftest import CHEETAH
from prefine_core import comparison, jobs
from prefine_core.components.ui import plain
from test_app import app, workspace  # noqa: F401  (the fixtures: a fresh small workspace for this module)


A, B = f"policy_a.{CHEETAH}", f"policy_b.{CHEETAH}"  # Compare's boxes, one pair per task (ui.scoped)


def compare_runs(ws) -> list:
    return [run for run in ws.store.list_runs(CHEETAH) if run.kind == "compare"]


def open_compare(at, a: int, b: int, episodes: int | None = None):
    at.switch_page("pages/compare.py").run()
    at.selectbox(key=A).set_value(a)
    at.selectbox(key=B).set_value(b)
    if episodes is not None:
        at.text_input(key="episodes").set_value(str(episodes))
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_cost_limit_is_typed_checked_by_name_and_evaluated_with(app, workspace, monkeypatch):
    monkeypatch.setattr(jobs, "_spawn", lambda ws, run_id: None)  # the run stays queued; its config is what is checked
    open_compare(app, 1, 2, episodes=1)
    for typed, message in (("0", "Cost limit must be above 0"), ("abc", "Cost limit must be a number"),
                           ("nan", "Cost limit must be a finite number"), ("", "Cost limit is empty")):
        app.text_input(key="compare_cost_limit").set_value(typed).run()
        assert any(message in e.value for e in app.error), (typed, [e.value for e in app.error])
        assert app.button(key="compare").disabled
    app.text_input(key="compare_cost_limit").set_value(" 10 ").run()
    app.button(key="compare").click().run()
    assert not app.exception, app.exception
    [run] = [r for r in compare_runs(workspace) if (r.config["policy_a"], r.config["policy_b"]) == (1, 2)
             and r.status in jobs.ACTIVE]
    assert run.config["cost_limit"] == 10.0
    workspace.store.update_run(run.id, status="cancelled")


def test_choices_outlive_a_visit_to_another_page(app):
    open_compare(app, 1, 2, episodes=2)
    app.switch_page("pages/data.py").run()
    app.switch_page("pages/compare.py").run()
    assert not app.exception, app.exception
    assert (app.selectbox(key=A).value, app.selectbox(key=B).value) == (1, 2)
    assert app.text_input(key="episodes").value == "2"


def test_the_default_pair_is_two_different_policies(app):
    app.switch_page("pages/compare.py").run()
    reference = app.selectbox(key=A).value
    assert app.selectbox(key=B).value != reference
    assert not app.error


@pytest.mark.parametrize("episodes,message", [
    (0, "Episodes must be between 1 and 100, got 0"), (101, "Episodes must be between 1 and 100, got 101"),
    ("1e9", "Episodes must be between 1 and 100, got 1000000000"),  # a number field sent 1
    ("2.5", "Episodes must be a whole number, got '2.5'"),  # a number field sent 2
    ("", "Episodes is empty: type a whole number"),
])
def test_a_bad_episodes_value_is_refused_with_a_message(app, workspace, episodes, message):
    before = len(compare_runs(workspace))
    open_compare(app, 1, 2, episodes=episodes)
    assert [e.value for e in app.error] == [message]
    assert app.button(key="compare").disabled
    assert len(compare_runs(workspace)) == before


def test_the_same_policy_twice_gives_one_message(app):
    open_compare(app, 2, 2)
    assert len(app.error) == 1 and "pick two different policies" in app.error[0].value
    assert not app.main.caption  # no "Not evaluated yet" under it
    assert [i.value.split(",")[0] for i in app.main.info] == ["No fine-tune of this task has finished yet"]
    assert app.button(key="compare").disabled


def test_no_second_comparison_of_a_pair_while_one_runs(app, workspace, monkeypatch):
    monkeypatch.setattr(jobs, "_spawn", lambda ws, run_id: None)  # the run stays queued; no process evaluates it
    open_compare(app, 2, 1, episodes=3)
    app.button(key="compare").click().run()
    assert not app.exception, app.exception
    [run] = [r for r in compare_runs(workspace) if (r.config["policy_a"], r.config["policy_b"]) == (2, 1)]
    assert run.config["episodes"] == 3
    assert app.button(key="compare").disabled
    assert any(f"run {run.id} is comparing these two" in c.value for c in app.caption)
    assert any("3 episodes each, seeds 10000–10002" in i.value and "0 of 12 episodes (each policy with its mean and with sampled actions)" in i.value
               for i in app.info)
    with pytest.raises(ValueError, match=f"run {run.id} is already comparing these two policies"):
        comparison.launch_comparison(workspace, CHEETAH, comparison.comparison_config(2, 1, 3))
    assert len([r for r in compare_runs(workspace) if r.config["policy_a"] == 2]) == 1
    open_compare(app, 1, 2)  # e.g. after a reload reset A and B: the running one is still said
    assert any(f"Run {run.id} is comparing" in i.value and "pick them as A and B" in i.value for i in app.info)
    open_compare(app, 2, 1, episodes=3)
    app.button(key="cancel_compare").click().run()  # started by mistake: stopped, not waited out
    assert not app.exception, app.exception
    assert workspace.store.get_run(run.id).status == "cancelled"
    assert not app.button(key="compare").disabled and not app.error  # the user's own choice is no error
    assert any(f"Run {run.id}'s comparison was cancelled before it finished" in i.value for i in app.info)


def test_a_b_that_is_safer_by_doing_little_is_said_so():
    from prefine_core.comparison import doing_less

    standing = {"a": summary(return_mean=4695.0, cost_mean=923.0), "b": summary(return_mean=-74.5, cost_mean=1.0)}
    assert "keeps only 0 % of A's return" in doing_less(standing)
    assert "keeps only 40 %" in doing_less({"a": summary(), "b": summary(return_mean=40.0, cost_mean=1.0)})
    assert doing_less({"a": summary(), "b": summary(return_mean=60.0, cost_mean=1.0)}) is None  # a safe gait
    assert doing_less({"a": summary(), "b": summary(return_mean=10.0, cost_mean=80.0)}) is None  # not safer


def test_the_verdict_says_the_comparison_in_one_plain_sentence():
    from prefine_core.comparison import verdict

    assert verdict({"a": summary(return_mean=4660.0, cost_mean=919.0, costs=[900.0, 938.0]),
                    "b": summary(return_mean=2624.0, cost_mean=7.06, costs=[13.0, 1.12], returns=[2600.0, 2648.0])}) == (
        "B cut the cost per episode by 99 % (919 → 7.06), and earned 56 % of A's return; it kept within the cost "
        "limit (25) in 2 of 2 episodes (A: 0).")
    assert verdict({"a": summary(cost_mean=30.0, costs=[30.0]), "b": summary(cost_mean=20.0, costs=[20.0])}).endswith(
        "in 1 of 1 episode (A: 0).")
    assert verdict({"a": summary(cost_mean=10.0), "b": summary(cost_mean=20.0)}).startswith(
        "B raised the cost per episode by 100 % (10 → 20)")
    assert verdict({"a": summary(cost_mean=0.0), "b": summary(cost_mean=0.0)}).startswith("B had no cost, as A had none")
    small = verdict({"a": summary(cost_mean=926.0), "b": summary(cost_mean=924.0)})
    assert small.startswith("B cut the cost per episode by 0.2 % (926 → 924)"), small  # not "by 0 %"
    almost = verdict({"a": summary(cost_mean=915.0), "b": summary(cost_mean=1.57)})
    assert almost.startswith("B cut the cost per episode by 99.8 % (915 → 1.57)"), almost  # not "by 100 %": cost is left
    assert verdict({"a": summary(cost_mean=1000.0), "b": summary(cost_mean=0.04)}).startswith(
        "B cut the cost per episode by 99.996 %")
    assert verdict({"a": summary(cost_mean=915.0), "b": summary(cost_mean=0.0)}).startswith(
        "B cut the cost per episode by 100 % (915 → 0)")
    assert "(1,234 → 12,345)" in verdict({"a": summary(cost_mean=1234.0), "b": summary(cost_mean=12345.0)})
    # a B episode within the limit in which the robot barely moved is said so (it was counted as a safe one)
    idle = verdict({"a": summary(return_mean=4700.0, cost_mean=926.0, costs=[926.0, 926.0, 926.0]),
                    "b": summary(return_mean=2800.0, cost_mean=325.0, costs=[13.0, 20.0, 934.0],
                                 returns=[22.0, 4100.0, 4300.0])})
    assert idle.endswith("in 2 of 3 episodes (A: 0), 1 of them by doing little (less than 50 % of A's mean return in "
                         "that episode)."), idle
    falls = verdict({"a": summary(fall_rate=0.2), "b": summary(fall_rate=0.0)})
    assert falls.endswith("; it fell in 0 % of episodes (A: 20 %).")


def test_the_comparison_table_shows_numbers_as_a_person_reads_them():
    from prefine_core.comparison import comparison_table

    table = comparison_table({"a": summary(return_mean=4739.4636, cost_mean=915.0, violation_rate=1.0),
                              "b": summary(return_mean=2530.517, cost_mean=1.5678, violation_rate=0.2)})
    rows = table.set_index("metric")
    assert rows.loc["return (mean)", ["A", "B", "Δ (B − A)"]].tolist() == [4739.0, 2531.0, -2209.0]
    assert rows.loc["cost (mean)", ["B", "Δ (B − A)"]].tolist() == [1.568, -913.4]
    assert rows.loc["cost (mean)", "Δ %"] == "-99.8 %" and rows.loc["violation rate", "B"] == 0.2


def test_a_comparison_of_a_policy_that_is_not_there_is_refused_before_a_process_starts(workspace):
    from conftest import HOPPER, make_policy
    from prefine_core.policy import save_policy

    path = save_policy(make_policy(HOPPER), workspace.policies_dir / "hopper-for-compare.safetensors")
    hopper = workspace.store.add_policy("a hopper", path, HOPPER, "imported")
    before = len(workspace.store.list_runs())
    with pytest.raises(ValueError, match="policy_id 4242 does not exist"):
        comparison.launch_comparison(workspace, CHEETAH, comparison.comparison_config(1, 4242))
    with pytest.raises(ValueError, match=f"policy {hopper}\\) is a policy for {HOPPER}, not {CHEETAH}"):
        comparison.launch_comparison(workspace, CHEETAH, comparison.comparison_config(1, hopper))
    assert len(workspace.store.list_runs()) == before


def summary(**values) -> dict:
    return {"return_mean": 100.0, "cost_mean": 50.0, "violation_rate": 1.0, "catastrophic_rate": 0.0,
            "normalized_cost": 2.0, "cost_per_step": 0.05, "length_mean": 1000.0, "fall_rate": 0.0,
            "returns": [99.0, 101.0], "costs": [40.0, 60.0], "cost_limit": 25.0, **values}


def test_a_result_says_its_episodes_and_reads_plainly(app, workspace):
    run_id = workspace.store.create_run(CHEETAH, 1, "compare", comparison.comparison_config(1, 3, episodes=2))
    video = jobs.run_dir(workspace, run_id) / "pair.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    result = {"a": summary(), "b": summary(return_mean=90.0, cost_mean=10.0, costs=[27.0, 33.0]), "video": str(video),
              "video_seed": 10000, "video_episode": 0,
              "a_sampled": summary(return_mean=80.0), "b_sampled": summary(return_mean=70.0, cost_mean=5.0)}
    (video.parent / "result.json").write_text(json.dumps(result))
    workspace.store.update_run(run_id, status="done")
    open_compare(app, 1, 3, episodes=2)
    assert any(c.value.startswith("2 episodes each, seeds 10000–10001") for c in app.caption)
    assert any(m.value == "**B cut the cost per episode by 80 % (50 → 10), and earned 90 % of A's return; it kept "
               "within the cost limit (25) in 0 of 2 episodes (A: 0).**" for m in app.markdown), [m.value for m in app.markdown]
    said = [c.value for c in app.caption]  # for people new to safe RL: what cost and return are, which robot is which
    assert any(c.startswith("Cost counts the steps of an episode that break the task's rule (staying under the speed "
                            "limit): lower is safer. Return is") for c in said), said
    names = {p.id: p.name for p in workspace.store.list_policies(CHEETAH)}
    assert any(c.startswith(f"A (before): {plain(names[1])}") and f"B (after): {plain(names[3])}" in c
               and "the first 300 steps of the episode" in c for c in said), said
    table, sampled = (frame.value.set_index("metric") for frame in app.dataframe)
    assert sampled.loc["return (mean)", "B"] == 70.0 and sampled.loc["cost (mean)", "Δ %"] == "-90.0 %"
    assert any(c.startswith("The same seeds, each policy's actions sampled from it") for c in said), said
    assert any(c.startswith(comparison.TABLE_TERMS) for c in said) and "Violation rate: the share of episodes" in comparison.TABLE_TERMS
    assert table.loc["cost (mean)", "Δ %"] == "-80.0 %" and table.loc["cost (mean)", "B better"] == "yes"
    assert table.loc["return (mean)", "B better"] == "no"
    assert table.loc["fall rate", "Δ %"] == "– (A is 0)" and table.loc["fall rate", "B better"] == "equal"
    assert not app.warning, "typed as evaluated"
    assert [h.value for h in app.subheader] == ["Same seed (10000), side by side: A left, B right — B's median episode "
                                                "by cost (A 40, B 27)"]
    [numbers] = [e for e in app.expander if e.label == "Every number, A beside B"]
    assert numbers.proto.expanded, "open, except in Demo mode"
    app.session_state["demo"] = True
    app.run()
    [numbers] = [e for e in app.expander if e.label == "Every number, A beside B"]
    assert not numbers.proto.expanded and app.dataframe, "closed for an audience, there when asked for"
    app.session_state["demo"] = False
    app.run()
    app.text_input(key="compare_cost_limit").set_value("600").run()  # the result of limit 25 was shown, unsaid
    app.text_input(key="episodes").set_value("7").run()
    assert [w.value for w in app.warning] == ["These results are for episodes 2 (typed: 7) and cost limit 25 (typed: "
                                              "600). Press *Evaluate both on the same seeds* to evaluate with what is typed."]
    app.text_input(key="compare_cost_limit").set_value("25").run()
    app.text_input(key="episodes").set_value("2").run()
    assert not app.warning
    open_compare(app, 3, 1)  # the same two the other way round: not run yet, and said where the result is
    assert any(f"Run {run_id} compared these two the other way round" in c.value for c in app.caption)
    open_compare(app, 2, 3)  # another pair (a newer fine-tune is B's default): said where the result shown before is
    shown = {p.id: plain(p.name_and_kind) for p in workspace.store.list_policies(CHEETAH)}
    assert any(f"The newest comparison, run {run_id}, was of {shown[1]} and {shown[3]}: pick them" in c.value
               for c in app.caption), [c.value for c in app.caption]
    # a result naming another file as its video: the run's own video is played, never that file
    secret = workspace.root / "secret.mp4"
    secret.write_bytes(b"not for the browser")
    (video.parent / "result.json").write_text(json.dumps({**result, "video": str(secret)}))
    assert comparison.saved_result(workspace, run_id)["video"] == str(video)
    (video.parent / "result.json").write_text(json.dumps({**result, "b_sampled": summary(costs="abc")}))
    assert {"a_sampled", "b_sampled"}.isdisjoint(comparison.saved_result(workspace, run_id)), \
        "a result without readable sampled-action summaries (a run made before them) shows its one table"
    video.unlink()
    open_compare(app, 1, 3)
    assert not app.exception and app.get("video") == [] and any(
        w.value.startswith(f"The video of run {run_id} is missing from its folder") for w in app.warning)


DAMAGED = [json.dumps(damaged) for damaged in (
    {}, {"a": summary(), "b": summary(cost_mean="high"), "video_seed": 1},
    {"a": summary(costs="abc"), "b": summary(), "video_seed": 1},
    {"a": summary(returns=[1.0]), "b": summary(), "video_seed": 1},
    {"a": summary(), "b": summary(fall_rate=None, length_mean=[3]), "video_seed": 1})]


@pytest.mark.parametrize("saved", [None, "{not json", "[1, 2]", *DAMAGED])
def test_a_done_comparison_whose_result_is_not_here_is_said_not_a_traceback(app, workspace, saved):
    """An app instance sharing the store from another machine, without the workspace folder, showed a TypeError;
    a result.json edited or cut short since (no summaries, a cost as text, costs not a list of numbers, fewer
    returns than costs) showed a KeyError or a TypeError."""
    run_id = workspace.store.create_run(CHEETAH, 1, "compare", comparison.comparison_config(1, 2, episodes=2))
    if saved is not None:
        jobs.run_dir(workspace, run_id).mkdir(parents=True, exist_ok=True)
        (jobs.run_dir(workspace, run_id) / "result.json").write_text(saved)
    workspace.store.update_run(run_id, status="done")
    open_compare(app, 1, 2)
    said = [e.value.replace("\\", "") for e in app.error]
    assert len(said) == 1 and said[0].startswith(f"Run {run_id} finished, but its result") and \
        "must share the workspace folder too" in said[0], said


def test_a_reload_keeps_the_task_demo_mode_the_pair_compared_and_the_episodes(app, workspace, monkeypatch):
    """A reload is a new session: what it keeps, it keeps in the page's address (the episodes went back to 5)."""
    from streamlit.testing.v1 import AppTest

    from test_app import APP, TIMEOUT

    app.toggle(key="demo_toggle").set_value(True).run()
    open_compare(app, 2, 1, episodes=7)
    address = dict(app.query_params)
    assert address == {"policy_a": "2", "policy_b": "1", "episodes": "7", "cost_limit": "25", "demo": "1", "task": CHEETAH}

    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params = address
    reloaded.run()
    assert reloaded.toggle(key="demo_toggle").value is True and reloaded.session_state["task_id"] == CHEETAH
    reloaded.switch_page("pages/compare.py").run()
    assert not reloaded.exception, reloaded.exception
    assert (reloaded.selectbox(key=A).value, reloaded.selectbox(key=B).value) == (2, 1)
    assert reloaded.text_input(key="episodes").value == "7"
    reloaded.text_input(key="episodes").set_value("1e9").run()  # kept as typed, and refused as typed
    assert dict(reloaded.query_params)["episodes"] == "1e9"
    assert [e.value for e in reloaded.error] == ["Episodes must be between 1 and 100, got 1000000000"]

    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)  # an address naming what is not there
    reloaded.query_params = {"policy_a": "999", "policy_b": "x", "task": "SafetyNope-v0", "demo": "yes"}
    reloaded.run()
    assert not reloaded.toggle(key="demo_toggle").value and reloaded.session_state["task_id"] == CHEETAH
    reloaded.switch_page("pages/compare.py").run()
    assert not reloaded.exception and not reloaded.error, reloaded.exception
    first_a, first_b = comparison.default_pair(workspace.store.list_policies(CHEETAH))
    assert (reloaded.selectbox(key=A).value, reloaded.selectbox(key=B).value) == (first_a, first_b)
    assert reloaded.text_input(key="episodes").value == "5"


def test_a_task_switch_gives_that_tasks_own_pair_and_coming_back_the_first_tasks(app, workspace):
    """Each task has its own A and B boxes: a switch never shows one task's policies among the other's (the
    browser kept showing the old names while the server evaluated the new task's defaults)."""
    from conftest import HOPPER

    hopper = workspace.store.list_policies(HOPPER)
    assert len(hopper) >= 2, "the shipped Hopper policies"
    open_compare(app, 2, 1)
    app.session_state["task_id"] = HOPPER  # the sidebar's choice (AppTest leaves the sidebar out of this page's run)
    app.run()
    assert not app.exception, app.exception
    chosen = (app.selectbox(key=f"policy_a.{HOPPER}").value, app.selectbox(key=f"policy_b.{HOPPER}").value)
    assert chosen == comparison.default_pair(hopper) and chosen[0] != chosen[1], chosen
    assert not app.error, [e.value for e in app.error]
    assert "policy_a" not in app.query_params, "the address no longer names the other task's policy"
    app.session_state["task_id"] = CHEETAH
    app.run()
    assert (app.selectbox(key=A).value, app.selectbox(key=B).value) == (2, 1), "the first task's own choice"


def test_an_address_naming_one_policy_of_another_task_still_compares_two(app, workspace):
    from streamlit.testing.v1 import AppTest

    from conftest import HOPPER
    from test_app import APP, TIMEOUT

    first_a, first_b = comparison.default_pair(workspace.store.list_policies(CHEETAH))
    hopper = workspace.store.list_policies(HOPPER)[0].id
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params = {"task": CHEETAH, "policy_a": str(first_b), "policy_b": str(hopper)}
    reloaded.run()
    reloaded.switch_page("pages/compare.py").run()
    assert (reloaded.selectbox(key=A).value, reloaded.selectbox(key=B).value) == (first_b, first_a)
    assert not reloaded.error, [e.value for e in reloaded.error]
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)  # and A of another task, B on A's default
    reloaded.query_params = {"task": CHEETAH, "policy_a": str(hopper), "policy_b": str(first_a)}
    reloaded.run()
    reloaded.switch_page("pages/compare.py").run()
    assert (reloaded.selectbox(key=A).value, reloaded.selectbox(key=B).value) == (first_b, first_a)
    assert not reloaded.error, [e.value for e in reloaded.error]  # it said "A and B are the same policy"


def test_a_policy_deleted_while_picked_is_said_and_no_click_acts_on_its_stand_in(app, workspace, tmp_path):
    """Deleted from the CLI or another tab: a click on Evaluate (or Launch) then arrived with another policy put in
    its place, unsaid, and started a comparison (or a fine-tune) nobody chose."""
    from conftest import make_policy
    from prefine_core.policy import save_policy

    path = save_policy(make_policy(CHEETAH), tmp_path / "spare.safetensors")
    spare = workspace.store.add_policy("spare", path, CHEETAH, "imported")
    before = len(compare_runs(workspace))
    open_compare(app, 1, spare, episodes=1)
    workspace.store.delete_policy(spare)
    app.button(key="compare").click().run()
    assert not app.exception, app.exception
    assert any(f"B's policy {spare} no longer exists" in w.value for w in app.warning), [w.value for w in app.warning]
    assert len(compare_runs(workspace)) == before and app.selectbox(key=B).value != spare

    spare = workspace.store.add_policy("spare", path, CHEETAH, "imported")
    app.switch_page("pages/finetune.py").run()
    app.selectbox(key=f"start_policy.{CHEETAH}").set_value(spare)
    runs = len(workspace.store.list_runs(CHEETAH))
    workspace.store.delete_policy(spare)
    app.button(key="FormSubmitter:finetune_form-Launch").click().run()
    assert not app.exception, app.exception
    assert any(f"Policy {spare}, picked in \"Start from\", no longer exists" in w.value for w in app.warning)
    assert len(workspace.store.list_runs(CHEETAH)) == runs


@pytest.mark.parametrize("costs, median", [([5.0], 0), ([579.0, 20.0, 78.0, 30.0, 737.0], 2), ([3.0, 1.0, 2.0, 4.0], 2),
                                           ([2.0, 2.0, 2.0], 1)])
def test_the_video_shows_bs_median_episode_by_cost(costs, median):
    """The video showed the first seed, whatever it was: under a verdict of 69 % less cost, B's second worst of five
    episodes (cost 579), as reckless as A."""
    assert comparison.median_episode(costs) == median
