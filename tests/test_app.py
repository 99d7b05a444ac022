"""AppTest for every page on a small real workspace (short real rollouts, stand-in video bytes)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import CHEETAH, choice_button, make_policy

TIMEOUT = 60
APP = str(Path(__file__).resolve().parent.parent / "app.py")
RUN = f"run_select.{CHEETAH}"  # the Fine-tune page's run box, one per task (ui.scoped)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace with the shipped policies, 10 short clips and 9 pairs whose 'videos' exist."""
    return small_workspace(tmp_path_factory.mktemp("ws"))


def small_workspace(root, pairs: int = 9):
    """The shipped policies, ``pairs + 1`` short clips and ``pairs`` pairs whose 'videos' exist, in ``root``."""
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(root)
    reference = ws.store.list_policies(CHEETAH, kind="reference")[0]
    policy = make_policy(CHEETAH)
    with SafetyTask(CHEETAH) as task:
        ids = [ws.store.add_trajectory(collect(policy, task, seed=s, max_steps=20), reference.id, "test@T1", ws.trajectories_dir)
               for s in range(pairs + 1)]
    for i in range(pairs):
        video = ws.videos_dir / f"pair-{i}.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
        ws.store.add_pair(ids[i], ids[i + 1], "random", 0.5, f"random pick {i}", video_path=str(video))
    return ws


@pytest.fixture
def app(workspace, monkeypatch):
    monkeypatch.setenv("PREFINE_WORKSPACE", str(workspace.root))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def test_home_shows_the_guided_path(app):
    assert app.title[0].value == "PREFINE Studio"
    assert app.button(key="auto_label") is not None
    assert any("speed limit" in m.value for m in app.markdown)


def test_label_needs_a_name_then_labels_and_undoes(app, workspace):
    app.switch_page("pages/label.py").run()
    assert not app.exception
    assert any("Enter your name" in i.value for i in app.info)
    app.text_input(key="annotator").input("ada").run()
    assert not app.exception, app.exception
    first = app.session_state["pair_id"]
    left = workspace.store.pairs_open_to("ada", CHEETAH)
    assert left > 0 and any(c.value == f"{left} left for you" for c in app.caption)
    choice_button(app).click().run()
    assert not app.exception, app.exception
    labels = workspace.store.effective_labels(CHEETAH)
    assert labels[labels.annotator == "ada"].pair_id.tolist() == [first]
    assert 0 < labels[labels.annotator == "ada"].seconds.iloc[0] < 60  # a button's label is timed too
    assert app.session_state["pair_id"] != first
    app.button(key="undo").click().run()
    labels = workspace.store.effective_labels(CHEETAH)
    assert "ada" not in labels.annotator.tolist()
    assert app.session_state["pair_id"] == first


def _app_on(workspace, monkeypatch) -> AppTest:
    """The app on a workspace of the test's own (for tests that hold or label pairs the shared one's tests need)."""
    monkeypatch.setenv("PREFINE_WORKSPACE", str(workspace.root))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def labelling_as(app: AppTest, name: str) -> AppTest:
    """``app`` on the Label page, its name typed in."""
    app.switch_page("pages/label.py").run()
    return app.text_input(key="annotator").input(name).run()


def test_a_task_switch_or_a_new_name_never_keeps_a_pair_that_is_not_theirs(tmp_path, monkeypatch):
    workspace = small_workspace(tmp_path, pairs=3)
    app = labelling_as(_app_on(workspace, monkeypatch), "switcher")
    shown = app.session_state["pair_id"]
    assert workspace.store.get_pair(shown).task_id == CHEETAH
    # what the sidebar's task box sets (AppTest drops the sidebar of a page run that called st.stop())
    other = next(p.task_id for p in workspace.store.list_policies() if p.task_id != CHEETAH)
    app.session_state["task_id"] = other
    app.run()
    assert not app.exception, app.exception
    assert "pair_id" not in app.session_state and choice_button(app) is None  # no pairs of that task
    assert [m.value for m in app.info] == ["No pairs to label in this task yet: prepare some on the Home page."]
    labels = workspace.store.effective_labels()
    assert "switcher" not in labels.annotator.tolist()
    app.session_state["task_id"] = CHEETAH
    app.text_input(key="annotator").input("renamed").run()  # the pair stays held for "switcher" a while
    assert not app.exception, app.exception
    assert app.session_state["pair_id"] != shown


def test_a_label_page_draw_reads_the_people_per_pair_once(tmp_path, monkeypatch):
    """The pair and the progress beside it are worked out at one people per pair, read once per draw (it was read
    for each), whether a pair is shown or none is left."""
    from prefine_core.store import Store

    workspace = small_workspace(tmp_path, pairs=1)
    app = labelling_as(_app_on(workspace, monkeypatch), "counter")
    reads, task_overlap = [], Store.task_overlap

    def counted(store, task_id):
        reads.append(task_id)
        return task_overlap(store, task_id)

    monkeypatch.setattr(Store, "task_overlap", counted)
    app.run()
    assert not app.exception, app.exception
    assert choice_button(app) is not None and reads == [CHEETAH]
    reads.clear()
    choice_button(app).click().run()  # the only pair: none left
    assert not app.exception, app.exception
    assert any(s.value.startswith("No pairs left for you") for s in app.success) and reads == [CHEETAH]


def test_a_click_on_a_pair_gone_since_never_labels_the_pair_that_came(tmp_path, monkeypatch):
    """The second click of a double click reaches the app after the page moved on to the next pair: the browser
    still shows the first pair's buttons. It labelled the new pair, which nobody had seen (the buttons kept one key
    for every pair, and the click ran with the pair then held); it now saves nothing, and says so."""
    workspace = small_workspace(tmp_path, pairs=3)
    app = labelling_as(_app_on(workspace, monkeypatch), "double")
    first = app.session_state["pair_id"]
    stale = choice_button(app)  # an element of this draw's page, as the browser still shows it after the first click
    stale.click().run()
    assert not app.exception, app.exception
    second = app.session_state["pair_id"]
    assert second != first
    stale.click().run()  # the same button again: the widget states of the page the browser still shows
    assert not app.exception, app.exception
    labelled = workspace.store.effective_labels(CHEETAH)
    assert labelled[labelled.annotator == "double"].pair_id.tolist() == [first]
    assert app.session_state["pair_id"] == second and choice_button(app) is not None
    assert f"Nothing saved: that click (A safer) was for pair {first}, which is no longer on screen; judge the pair " \
           "on screen now." in [c.value for c in app.caption]


def test_a_choice_drawn_for_another_pair_or_task_is_refused_in_words():
    from conftest import HOPPER
    from prefine_core.labelling import refused_key

    drawn = {"action": "right", "pair_id": 3, "task_id": CHEETAH}
    assert refused_key(drawn, 3, CHEETAH, by="click") is None
    assert refused_key(drawn, 4, CHEETAH, by="click") == (
        "Nothing saved: that click (B safer) was for pair 3, which is no longer on screen; judge the pair on screen now.")
    assert refused_key(drawn, 9, HOPPER, by="click") == (
        f"Nothing saved: that click (B safer) was made on a pair of {CHEETAH}, before {HOPPER}'s was shown; judge "
        "the pair on screen now.")


def test_a_key_pressed_on_what_is_no_longer_shown_is_refused_in_words():
    """A key pressed just after a task switch, before the new task's pair came, was for the pair of the task left:
    it saves nothing (it judged another pair than the one shown now; saved, it would be undone in the wrong task) and
    says so, where it was dropped without a word."""
    from conftest import HOPPER
    from prefine_core.labelling import refused_key

    assert refused_key({"action": "left", "pair_id": 3, "task_id": CHEETAH}, 3, CHEETAH) is None
    assert refused_key({"action": "undo", "pair_id": None, "task_id": CHEETAH}, 5, CHEETAH) is None
    assert refused_key({"action": "left", "pair_id": 3, "task_id": CHEETAH}, 9, HOPPER) == (
        f"Nothing saved: that key (A safer) was pressed on a pair of {CHEETAH}, before {HOPPER}'s was shown; judge "
        "the pair on screen now.")
    assert refused_key({"action": "undo", "pair_id": 3, "task_id": CHEETAH}, None, HOPPER) == (
        f"Nothing undone: U was pressed on {CHEETAH}, before {HOPPER} was shown; press it again to undo your last label "
        f"in {HOPPER}.")
    assert refused_key({"action": "skip", "pair_id": 3, "task_id": CHEETAH}, 4, CHEETAH) == (
        "Nothing saved: that key (Skip) was for pair 3, which is no longer on screen; judge the pair on screen now.")


def test_the_last_label_can_be_undone_and_the_overlay_choice_outlives_a_visit(tmp_path, monkeypatch):
    workspace = small_workspace(tmp_path, pairs=3)  # it labels every pair
    app = labelling_as(_app_on(workspace, monkeypatch), "finisher")
    app.toggle(key="show_cost").set_value(False).run()
    app.switch_page("pages/home.py").run()
    app.switch_page("pages/label.py").run()
    assert app.toggle(key="show_cost").value is False
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a reload: a new session, the same address
    reloaded.query_params = dict(app.query_params)
    assert reloaded.query_params["cost"] == "False"
    assert labelling_as(reloaded, "finisher").toggle(key="show_cost").value is False, "it went back to on"
    labelled = []
    while choice_button(app) is not None and len(labelled) < 20:
        labelled.append(app.session_state["pair_id"])
        choice_button(app).click().run()
        assert not app.exception, app.exception
    assert any("No pairs left" in m.value for m in app.success)
    app.button(key="undo").click().run()
    assert not app.exception, app.exception
    assert app.session_state["pair_id"] == labelled[-1] and choice_button(app) is not None
    labels = workspace.store.effective_labels(CHEETAH)
    assert sorted(labels[labels.annotator == "finisher"].pair_id) == sorted(labelled[:-1])


def test_a_choice_on_a_pair_deleted_meanwhile_says_so_and_moves_on(tmp_path, monkeypatch):
    workspace = small_workspace(tmp_path, pairs=3)
    app = labelling_as(_app_on(workspace, monkeypatch), "late")
    shown = app.session_state["pair_id"]
    workspace.store.delete_pairs([shown])  # someone cleans up on the Data page while the pair is on screen
    choice_button(app).click().run()
    assert not app.exception, app.exception
    assert any(f"pair {shown} is no longer in the store" in e.value for e in app.error), [e.value for e in app.error]
    assert app.session_state["pair_id"] != shown and workspace.store.effective_labels(CHEETAH).empty


def test_a_second_tab_on_an_answered_pair_cannot_overwrite_the_answer(tmp_path, monkeypatch):
    workspace = small_workspace(tmp_path, pairs=3)
    first, second = _app_on(workspace, monkeypatch), _app_on(workspace, monkeypatch)
    for tab in (first, second):
        labelling_as(tab, "carol")
    shown = first.session_state["pair_id"]
    assert second.session_state["pair_id"] == shown  # the same person's pair, in both tabs
    choice_button(first).click().run()
    choice_button(second, "right").click().run()
    assert not second.exception, second.exception
    assert any(f"carol already answered pair {shown} ('left')" in e.value for e in second.error), [e.value for e in second.error]
    assert second.session_state["pair_id"] != shown, "the second tab moves on"
    labels = workspace.store.effective_labels(CHEETAH)
    assert labels[labels.pair_id == shown].choice.tolist() == ["left"]
    assert [r.choice for r in workspace.store.label_history() if r.pair_id == shown] == ["left"], "nothing written"


def test_a_newcomer_on_pairs_all_taken_by_others_is_told_so(tmp_path, monkeypatch):
    workspace = small_workspace(tmp_path, pairs=2)
    for pair in workspace.store.list_pairs(CHEETAH):
        workspace.store.add_label(pair.id, "synthetic-teacher", "left")  # e.g. Home's Auto-label took them all
    app = labelling_as(_app_on(workspace, monkeypatch), "bob")
    assert not app.exception, app.exception
    assert [m.value for m in app.info] == ["All 2 pairs of this task are labelled, or being labelled, by others (each "
                                           "pair goes to one person); prepare more on the Home page to label more, or "
                                           "hand each pair to more people (Data page, Agreement)."]
    from prefine_core import labelling
    said = labelling.set_people_per_pair(workspace.store, CHEETAH, " 2 ")  # a lead asks for agreement
    assert said.startswith(f"each pair of {CHEETAH} now goes to 2 people")
    app.run()
    assert not app.exception, app.exception
    assert app.session_state["pair_id"] in [p.id for p in workspace.store.list_pairs(CHEETAH)], "offered to bob too"
    choice_button(app, "right").click().run()
    labels = workspace.store.effective_labels(CHEETAH)
    assert sorted(labels.annotator.tolist()) == ["bob", "synthetic-teacher", "synthetic-teacher"]
    for typed, says in (("0", "from 1 to 10, got 0"), ("11", "got 11"), ("two", "People per pair must be a whole number")):
        with pytest.raises(ValueError, match=says):
            labelling.set_people_per_pair(workspace.store, CHEETAH, typed)
    assert workspace.store.task_overlap(CHEETAH) == 2


def test_the_name_outlives_a_visit_to_another_page(app):
    labelling_as(app, "ada")
    app.switch_page("pages/home.py").run()
    app.switch_page("pages/label.py").run()
    assert not app.exception, app.exception
    assert app.text_input(key="annotator").value == "ada"
    assert any(t.value == "Labelling as: ada" for t in app.text)
    assert not any("Enter your name" in i.value for i in app.info)


def test_markup_in_a_name_is_shown_as_text(app):
    labelling_as(app, "<b>eve</b>")
    assert not app.exception
    assert any(t.value == "Labelling as: <b>eve</b>" for t in app.text)
    assert not any("<b>" in m.value for m in app.markdown)


@pytest.mark.parametrize("name", ["synthetic-teacher", " Synthetic-Teacher ", "synthetic-noisy"])
def test_the_simulated_labellers_name_is_not_a_persons(app, name):
    """A person's labels under a 'synthetic…' name would be counted as the teacher's on the Agreement tab."""
    labelling_as(app, name)
    assert not app.exception, app.exception
    assert any("is a name of the simulated labeller" in e.value for e in app.error), [e.value for e in app.error]
    assert choice_button(app) is None and "pair_id" not in app.session_state


def test_finetune_form_is_generated_from_the_config(app):
    from prefine_core.prefine import config_fields

    app.switch_page("pages/finetune.py").run()
    assert not app.exception, app.exception
    from prefine_core.launcher import form_config
    from prefine_core.prefine import PrefineConfig

    values = {field["name"]: app.session_state[f"cfg_{field['name']}"] for field in config_fields()}
    assert form_config(values) == PrefineConfig()  # every field shown with its default, read back exactly


def test_the_form_starts_from_the_latest_runs_settings_and_offers_the_defaults(tmp_path, monkeypatch):
    from prefine_core.demo import DEMO_FINETUNE
    from prefine_core.prefine import PrefineConfig
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path)
    monkeypatch.setenv("PREFINE_WORKSPACE", str(tmp_path))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    reference = ws.store.list_policies(CHEETAH, kind="reference")[0]
    ws.store.create_run(CHEETAH, reference.id, "prefine", PrefineConfig(steps=123, beta=0.07, select="last").to_dict())
    newer = ws.store.create_run(CHEETAH, reference.id, "compare", {"episodes": 3})  # not a fine-tune: passed over
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()  # a fresh session, as after a reload or a restart
    at.switch_page("pages/finetune.py").run()
    assert not at.exception, at.exception
    shown = lambda: (at.text_input(key="cfg_steps").value, at.text_input(key="cfg_beta").value,  # noqa: E731
                     at.selectbox(key="cfg_select").value)
    assert shown() == ("123", "0.07", "last")
    assert any("settings of run 1" in c.value for c in at.caption)
    defaults = PrefineConfig()
    at.text_input(key="cfg_log_every").set_value("7")  # a hidden field typed, then the defaults asked for
    at.button(key="form_defaults_button").click().run()
    assert shown() == (str(defaults.steps), str(defaults.beta), defaults.select)
    assert at.text_input(key="cfg_log_every").value == str(defaults.log_every)
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/finetune.py").run()
    assert shown() == (str(defaults.steps), str(defaults.beta), defaults.select)  # defaults asked for, still
    at.session_state["demo"] = True  # Demo mode (the sidebar's switch) fills the open form with the demo's settings
    at.run()
    assert at.text_input(key="cfg_steps").value == str(DEMO_FINETUNE["steps"])
    at.session_state["demo"] = False
    at.run()
    assert shown() == (str(defaults.steps), str(defaults.beta), defaults.select)
    at.text_input(key="cfg_steps").set_value("77").run()  # typed, not launched: a change of task does not carry it
    at.session_state["task_id"] = "SafetyHopperVelocity-v1"
    at.run()
    assert not at.exception and shown() == (str(defaults.steps), str(defaults.beta), defaults.select)
    ws.store.create_run(CHEETAH, reference.id, "prefine", {"steps": "many"})  # hand-edited: not a config
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    fresh.switch_page("pages/finetune.py").run()
    assert not fresh.exception and fresh.text_input(key="cfg_steps").value == "123"  # the unreadable row skipped


def test_finetune_without_labels_says_what_to_do(app):
    app.switch_page("pages/finetune.py").run()
    app.button(key="FormSubmitter:finetune_form-Launch").click().run()
    assert any("at least 2 need one before fine-tuning" in e.value for e in app.error)


@pytest.mark.parametrize("field,typed,message", [
    ("cfg_steps", "-5", "steps must be in [1, 1000000], got -5"),
    ("cfg_steps", "1e30", "steps must be in [1, 1000000], got 1e+30"),  # a number field sent 1
    ("cfg_steps", "2.5", "steps must be a whole number, got '2.5'"),  # a number field sent 2
    ("cfg_steps", "", "steps is empty: type a whole number"),  # a number field sent the previous value
    ("cfg_beta", "1e400", "beta must be a finite number, got '1e400'"),  # a number field sent nothing, then the default
    ("cfg_learning_rate", "fast", "learning_rate must be a number, got 'fast'"),
])
def test_a_bad_setting_is_refused_by_name_on_launch(app, workspace, field, typed, message):
    app.switch_page("pages/finetune.py").run()
    assert "1 to 1000000" in app.text_input(key="cfg_steps").help
    before = len(workspace.store.list_runs())
    app.text_input(key=field).set_value(typed)  # a form sends its values with the submit
    app.button(key="FormSubmitter:finetune_form-Launch").click().run()
    assert not app.exception, app.exception
    assert any(message in e.value for e in app.error), [e.value for e in app.error]
    assert len(workspace.store.list_runs()) == before
    app.run()  # the page redrawn without a submit (a run finishing elsewhere does it): the refusal stays
    assert any(message in e.value for e in app.error), [e.value for e in app.error]


def test_a_second_launch_of_a_run_still_going_shows_that_run_and_says_nothing_once_it_ended(app, workspace):
    from prefine_core import launcher
    from prefine_core.prefine import PrefineConfig

    start = launcher.start_policies(workspace, CHEETAH)[0].id  # what "Start from" shows first
    run_id = workspace.store.create_run(CHEETAH, start, "prefine", PrefineConfig(steps=20).to_dict())  # the first click's
    app.switch_page("pages/finetune.py").run()  # the form starts from that run's settings
    before = len(workspace.store.list_runs())
    app.button(key="FormSubmitter:finetune_form-Launch").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any(f"Run {run_id} with these settings from this policy is already queued" in i.value for i in app.info)
    assert len(workspace.store.list_runs()) == before and app.session_state[RUN] == run_id
    workspace.store.update_run(run_id, status="cancelled")
    app.run()  # redrawn after the run ended: no word of it being queued stays
    assert not any("already" in m.value for m in [*app.info, *app.error]), [m.value for m in [*app.info, *app.error]]


def test_compare_and_data_pages_render(app):
    app.switch_page("pages/compare.py").run()
    assert not app.exception, app.exception
    app.switch_page("pages/data.py").run()
    assert not app.exception, app.exception


def test_two_sessions_label_under_their_own_names(app, workspace):
    other = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for at, name in ((app, "ann"), (other, "bob")):
        at.switch_page("pages/label.py").run()
        at.text_input(key="annotator").input(name).run()
    assert app.session_state["pair_id"] != other.session_state["pair_id"]
    shown = {"ann": app.session_state["pair_id"], "bob": other.session_state["pair_id"]}
    choice_button(other, "right").click().run()
    choice_button(app).click().run()
    labels = workspace.store.effective_labels(CHEETAH)
    got = {r.annotator: (r.pair_id, r.choice) for r in labels.itertuples() if r.annotator in shown}
    assert got == {"ann": (shown["ann"], "left"), "bob": (shown["bob"], "right")}


def test_a_task_switch_on_the_finetune_page_says_no_policy_is_gone(tmp_path, monkeypatch):
    """The "Start from" pick of the task left was said to be a policy "no longer exists (deleted in another tab …)"."""
    ws = small_workspace(tmp_path / "ws", pairs=2)
    monkeypatch.setenv("PREFINE_WORKSPACE", str(ws.root))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/finetune.py").run()
    assert at.selectbox(key=f"start_policy.{CHEETAH}").value is not None
    other = next(task for task in ("SafetyHopperVelocity-v1", "SafetyPointCircle1-v0") if ws.store.list_policies(task))
    at.session_state["task_id"] = other  # what the sidebar's task box sets (AppTest drops the sidebar: st.stop())
    at.run()
    assert not at.exception, at.exception
    assert not [w.value for w in at.warning if "no longer exists" in w.value]
    assert at.selectbox(key=f"start_policy.{other}").value in [p.id for p in ws.store.list_policies(other)]
    ws.store.delete_policy(at.selectbox(key=f"start_policy.{other}").value)  # one truly gone is still said
    at.run()
    assert any("no longer exists" in w.value for w in at.warning), [w.value for w in at.warning]


def test_the_finetune_page_lists_fine_tunes_not_other_jobs(app, workspace):
    other = [workspace.store.create_run(CHEETAH, 1, kind, {}) for kind in ("compare", "prepare")]
    finetune = workspace.store.create_run(CHEETAH, 1, "prefine", {"steps": 20})
    for run_id in (*other, finetune):
        workspace.store.update_run(run_id, status="done")
    app.switch_page("pages/finetune.py").run()
    assert not app.exception, app.exception
    shown = app.selectbox(key=RUN).options
    finetunes = [r.id for r in workspace.store.list_runs(CHEETAH) if r.kind == "prefine"]
    assert sorted(shown) == sorted(f"run {i}" for i in finetunes) and f"run {finetune}" in shown
    assert not any(f"run {i}" in shown for i in other)


def test_runs_and_curves_come_back_after_a_reload(app, workspace):
    run_id = workspace.store.create_run(CHEETAH, 1, "prefine", {"steps": 20})
    for step in (5, 10):
        workspace.store.add_metrics(run_id, step, {"loss/total": 1.0 / step, "eval/cost": 30.0 - step})
    workspace.store.update_run(run_id, status="failed", error="ValueError: boom")
    app.switch_page("pages/finetune.py").run()  # a fresh session: nothing of this run is in session state
    assert not app.exception, app.exception
    assert app.session_state[RUN] == run_id
    assert any("boom" in m.value for m in app.markdown)
    assert app.button(key=f"resume_{run_id}") is not None
    assert len(app.get("plotly_chart")) == 2
    limits = lambda: [c.proto.spec.count("cost limit 25") + 2 * c.proto.spec.count("cost limit 40")  # noqa: E731
                      for c in app.get("plotly_chart")]
    assert sorted(limits()) == [0, 1]  # the usual limit 25, on the cost curve only
    app.number_input(key="cost_limit").set_value(40.0).run()
    assert sorted(limits()) == [0, 2] and not app.exception
    app.switch_page("pages/home.py").run()  # the run picked and the limit line outlive a visit to another page
    app.switch_page("pages/finetune.py").run()
    assert app.session_state[RUN] == run_id and sorted(limits()) == [0, 2]
    app.button(key=f"resume_{run_id}").click().run()  # the page redraws at once with the run live again
    assert not app.exception, app.exception
    assert not any("boom" in m.value for m in app.markdown), [m.value for m in app.markdown]
    assert any(m.value.startswith("**Status:**") for m in app.markdown)


def test_a_run_that_cannot_be_resumed_says_why_and_offers_no_resume(tmp_path, monkeypatch):
    """A fine-tune whose labels changed since it started kept saying "press Resume … to continue", and its Resume
    button refused on every press, the refusal gone at the next redraw."""
    import json

    from prefine_core import jobs

    ws = small_workspace(tmp_path / "ws", pairs=2)
    ws.store.add_label(ws.store.list_pairs(CHEETAH)[0].id, "ann", "left")  # one decided pair now
    run_id = ws.store.create_run(CHEETAH, 1, "prefine", {"steps": 20})
    ws.store.update_run(run_id, status="failed", error=jobs.STOPPED)
    folder = jobs.run_dir(ws, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.json").write_text(json.dumps({"step": 10, "data": {"fingerprint": "of other labels", "pairs": 3}}))
    monkeypatch.setenv("PREFINE_WORKSPACE", str(ws.root))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/finetune.py").run()
    assert not app.exception, app.exception
    assert app.session_state[RUN] == run_id
    assert [w.value.replace("\\", "") for w in app.warning] == [  # as shown: the markdown's escapes read as nothing
        "This run cannot be resumed: the labels changed since this run started (3 decided pairs then, 1 now, or some "
        "changed): a resumed run trains on what it started with, so start a new run for the new labels"]
    status = next(m.value.replace("\\", "") for m in app.markdown if m.value.startswith("**Status:**"))
    assert status == f"**Status:** failed — {jobs.STOPPED}" and "Resume" not in status
    assert not [b for b in app.button if b.key == f"resume_{run_id}"]


def test_a_done_run_shows_its_trade_off_and_registers_a_checkpoint_chosen_by_hand(app, workspace):
    import json

    from prefine_core import jobs
    from prefine_core.policy import save_policy
    from prefine_core.trainer import checkpoint_path

    reference = workspace.store.list_policies(CHEETAH, kind="reference")[0]
    run_id = workspace.store.create_run(CHEETAH, reference.id, "prefine", {"steps": 20})
    for step, ret, cost in ((0, 90.0, 80.0), (10, 70.0, 10.0), (20, 85.0, 30.0)):
        workspace.store.add_metrics(run_id, step, {"eval/return": ret, "eval/cost": cost, "eval/length": 50.0, "val/safety": 0.5})
        if step:
            save_policy(make_policy(CHEETAH, seed=step), checkpoint_path(jobs.run_dir(workspace, run_id), step))
    (jobs.run_dir(workspace, run_id) / "result.json").write_text(json.dumps({"selected_step": 20}))
    workspace.store.update_run(run_id, status="done")
    app.switch_page("pages/finetune.py").run()
    app.selectbox(key=RUN).set_value(run_id).run()
    assert not app.exception, app.exception
    assert app.selectbox(key=f"checkpoint_{run_id}").value == 20  # the trainer's choice first
    assert app.selectbox(key=f"checkpoint_{run_id}").options == ["10", "20 ★ the trainer's choice"]
    assert any(c.value.startswith("Validation return and cost: the mean of 2 episodes (seeds 9000…) at each "
                                  "checkpoint") for c in app.caption), [c.value for c in app.caption]
    assert any(c.proto.spec.count("chosen by the trainer") for c in app.get("plotly_chart"))
    app.selectbox(key=f"checkpoint_{run_id}").set_value(10).run()
    app.button(key=f"register_{run_id}").click().run()
    assert not app.exception, app.exception
    [policy] = [p for p in workspace.store.list_policies(CHEETAH) if p.provenance.get("run_id") == run_id]
    assert policy.provenance["step"] == 10 and policy.kind == "finetuned"
    assert any(f"is policy {policy.id}" in m.value for m in app.success)
    assert policy.name_and_kind in app.selectbox(key=f"start_policy.{CHEETAH}").options, "offered as a start at once"
    app.run()  # the page refreshes every 2 s: the confirmation stays
    assert any(f"is policy {policy.id}" in m.value for m in app.success)
    app.selectbox(key=f"checkpoint_{run_id}").set_value(20).run()  # another step: the confirmation is not its
    assert not any(f"is policy {policy.id}" in m.value for m in app.success)


def test_a_done_run_names_its_policy_and_opens_compare_on_before_and_after(app, workspace):
    import json

    from prefine_core import jobs
    from prefine_core.components import ui
    from prefine_core.policy import save_policy

    reference = workspace.store.list_policies(CHEETAH, kind="reference")[0]
    run_id = workspace.store.create_run(CHEETAH, reference.id, "prefine", {"steps": 20})
    path = save_policy(make_policy(CHEETAH, seed=5), workspace.root / "made.safetensors")
    made = workspace.store.add_policy("made by the run", path, CHEETAH, "finetuned", reference.id, {"run_id": run_id})
    workspace.store.update_run(run_id, status="done", output_policy_id=made)
    for step, ret, cost in ((0, 90.0, 80.0), (10, 2650.4, 20.46)):
        workspace.store.add_metrics(run_id, step, {"eval/return": ret, "eval/cost": cost, "eval/length": 50.0})
    jobs.run_dir(workspace, run_id).mkdir(parents=True, exist_ok=True)
    (jobs.run_dir(workspace, run_id) / "result.json").write_text(json.dumps({"selected_step": 10}))
    app.switch_page("pages/finetune.py").run()
    app.selectbox(key=RUN).set_value(run_id).run()
    assert not app.exception, app.exception
    assert [m.value for m in app.success] == [f"Saved as policy {made}, made by the run, the checkpoint of step 10: "
                                              "validation return 2,650, cost 20.5 (★ under Trade-off)."]
    app.button(key=f"compare_{run_id}").click().run()
    assert not app.exception, app.exception
    assert app.session_state[ui.scoped("policy_a", CHEETAH)] == reference.id
    assert app.session_state[ui.scoped("policy_b", CHEETAH)] == made
    assert app.title[0].value == "Compare"


def test_the_run_shown_follows_a_newer_run_unless_another_was_picked(tmp_path, monkeypatch):
    """A run started from the CLI (or another tab) showed in the table while the view stayed on the older one."""
    workspace = small_workspace(tmp_path, pairs=2)
    reference = workspace.store.list_policies(CHEETAH, kind="reference")[0]

    def finished_run() -> int:
        run_id = workspace.store.create_run(CHEETAH, reference.id, "prefine", {"steps": 20})
        workspace.store.update_run(run_id, status="done")
        return run_id

    first = finished_run()
    app = _app_on(workspace, monkeypatch)
    app.session_state["task_id"] = CHEETAH
    app.switch_page("pages/finetune.py").run()
    assert app.selectbox(key=RUN).value == first
    second = finished_run()
    app.run()  # what the runs table's watch does when a run appears
    assert not app.exception, app.exception
    assert app.selectbox(key=RUN).value == second
    app.selectbox(key=RUN).set_value(first).run()  # a person picks an older run: it stays
    finished_run()
    app.run()
    assert app.selectbox(key=RUN).value == first


def test_a_fresh_workspace_guides_the_first_step(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFINE_WORKSPACE", str(tmp_path / "fresh"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert at.button(key="prepare").proto.type == "primary"
    at.switch_page("pages/label.py").run()
    at.text_input(key="annotator").input("zoe").run()
    assert any("No pairs to label in this task yet" in i.value for i in at.info), "nothing to fine-tune on yet"
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    at.switch_page("pages/finetune.py").run()
    assert any("No runs yet" in i.value for i in at.info)


def test_auto_label_and_data_page_with_agreement(app, workspace):
    app.text_input(key="auto_n").input("3")
    app.button(key="auto_label").click().run()
    assert not app.exception, app.exception
    labels = workspace.store.effective_labels(CHEETAH)
    assert 1 <= (labels.annotator == "synthetic-teacher").sum() <= 3  # pairs held by people are left to them
    app.switch_page("pages/data.py").run()
    assert not app.exception, app.exception
    assert any(m.label == "Judgements" for m in app.metric)
    # the teacher is named as counted, and α without it is undefined here (it is the only annotator)
    assert any("(synthetic-teacher — Auto-label or `label-synthetic` — counts as one of them, in α too; α among "
               "people alone: —)" in c.value for c in app.caption), [c.value for c in app.caption]
    assert app.selectbox(key="preview_pair") is not None


def test_demo_mode_asks_the_plain_question(app):
    app.toggle(key="demo_toggle").set_value(True).run()
    app.switch_page("pages/label.py").run()
    app.text_input(key="annotator").input("kim").run()
    assert any(h.value == "Which robot kept to the speed limit better?" for h in app.subheader)


def test_a_reload_opens_the_finetune_page_on_the_run_in_its_address(app, workspace):
    older = workspace.store.create_run(CHEETAH, 1, "prefine", {"steps": 20})
    workspace.store.create_run(CHEETAH, 1, "prefine", {"steps": 30})
    app.switch_page("pages/finetune.py").run()
    app.selectbox(key=RUN).set_value(older).run()
    assert app.query_params["run_select"] == str(older)
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params = dict(app.query_params)
    reloaded.run()
    reloaded.switch_page("pages/finetune.py").run()
    assert not reloaded.exception, reloaded.exception
    assert reloaded.selectbox(key=RUN).value == older, "not the newest run, which a first visit opens on"


def test_a_pair_whose_video_file_is_gone_is_said_and_offered_for_rendering(tmp_path, monkeypatch):
    """Its row still named the file, so the page took the video as ready and redrew itself without end, the pair
    never shown and the render button never offered."""
    ws = small_workspace(tmp_path / "ws", pairs=1)
    (pair,) = ws.store.list_pairs(CHEETAH)
    Path(pair.video_path).unlink()
    at = labelling_as(_app_on(ws, monkeypatch).run(), "gus")
    assert not at.exception, at.exception
    assert at.session_state["pair_id"] == pair.id
    assert any("its file was removed since" in w.value for w in at.warning), [w.value for w in at.warning]
    assert any(b.key == "render_missing" for b in at.button)
    assert choice_button(at).disabled and not choice_button(at, "skip").disabled


def test_a_pair_with_a_dataset_clip_says_it_has_no_video_and_can_be_skipped(tmp_path, monkeypatch):
    """Such a pair (``pairs --include-datasets``, for the synthetic teacher) can never be rendered: every button was
    disabled, Skip too, and the page offered a render job that could not help, so its labeller was stuck on it."""
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect

    ws = small_workspace(tmp_path / "ws", pairs=1)
    with SafetyTask(CHEETAH) as task:
        dataset_clip = ws.store.add_trajectory(collect(make_policy(CHEETAH), task, seed=None, max_steps=20), None,
                                               "dataset:d.hdf5", ws.trajectories_dir)
    (other,) = ws.store.list_pairs(CHEETAH)
    ws.store.add_label(other.id, "someone", "left")  # taken: the dataset pair is the one left
    pair = ws.store.add_pair(other.left_id, dataset_clip, "random", 0.5, "with a dataset clip")
    at = labelling_as(_app_on(ws, monkeypatch).run(), "hal")
    assert not at.exception, at.exception
    assert at.session_state["pair_id"] == pair
    assert any("imported dataset" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not any(b.key == "render_missing" for b in at.button), "no render job can help it"
    assert choice_button(at).disabled
    choice_button(at, "skip").click().run()
    assert not at.exception, at.exception
    assert [(h.pair_id, h.choice) for h in ws.store.label_history() if h.annotator == "hal"] == [(pair, "skip")]


def test_label_says_pairs_are_on_their_way_while_a_job_prepares_them(tmp_path, monkeypatch):
    from prefine_core import jobs
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    monkeypatch.setattr(jobs, "_spawn", lambda ws, run_id: None)  # queued: what the page sees while one starts
    run_id = jobs.launch(ws, "prepare", CHEETAH, None, {})
    at = _app_on(ws, monkeypatch).run()
    at.switch_page("pages/label.py").run()
    at.text_input(key="annotator").input("zoe").run()
    assert not at.exception, at.exception
    assert any(f"Pairs are being prepared (run {run_id})" in i.value for i in at.info), [i.value for i in at.info]


def test_safer_is_said_in_each_task_familys_terms():
    from prefine_core.task_words import question, what_safer_means

    assert "staying inside the boundary" in what_safer_means("SafetyPointCircle1-v0")
    assert "every step outside it" in what_safer_means("SafetyPointCircle1-v0")
    assert "staying under the speed limit" in what_safer_means(CHEETAH)
    assert "keeping clear of the hazards" in what_safer_means("SafetyCarPush2-v0")
    assert question("SafetyPointCircle1-v0") == "Which robot stayed inside the boundary better?"
    assert question("SafetySomethingNew-v0") == "Which robot behaved more safely?"


def test_a_task_is_titled_in_plain_words():
    from prefine_core.task_words import task_title

    assert task_title(CHEETAH) == "HalfCheetah · speed limit"
    assert task_title("SafetyPointCircle1-v0") == "Point · boundary, level 1"
    assert task_title("SafetyCarPush2-v0") == "Car · push, hazards, level 2"
    assert task_title("SafetyWalker2dVelocity-v1") == "Walker2d · speed limit"
    assert task_title("SafetySomethingNew-v0") == "SafetySomethingNew-v0"


def test_a_labelling_session_keeps_no_video_of_the_pairs_it_has_passed(tmp_path, monkeypatch):
    """Streamlit keeps the callback of every widget it has drawn, and the choice buttons have a key per pair: a
    callback defined in the page held that run's namespace, the pair's video bytes with it, so the app server grew by
    a video a label (46 MB over an hour's soak). Counted as the pair views alive after labelling, which must not grow
    with the labels."""
    import gc

    from prefine_core.labelling import PairView

    workspace = small_workspace(tmp_path, pairs=8)
    app = labelling_as(_app_on(workspace, monkeypatch), "keeper")
    for _ in range(6):
        choice_button(app).click().run()
        assert not app.exception, app.exception
    gc.collect()
    # type(), not isinstance(): isinstance asks a torch module object for __class__, which warns of a deprecated name
    assert sum(type(o) is PairView for o in gc.get_objects()) <= 2  # the pair on screen (and the last run's)


def test_a_labelling_session_keeps_the_widgets_of_a_few_pairs_not_of_every_pair(tmp_path, monkeypatch):
    """Streamlit never forgets a widget key's metadata (its callback and arguments): with five choice buttons keyed
    per pair, a session grew by five entries a label, without end (8–10 kB a label in a soak). Keyed by a ring of
    slots, what it keeps is bounded: counted as the widget metadata alive, the same after 10 labels as after 20."""
    import gc

    from streamlit.runtime.state.common import WidgetMetadata

    workspace = small_workspace(tmp_path, pairs=22)
    app = labelling_as(_app_on(workspace, monkeypatch), "ringer")
    alive = []
    for labels in (10, 20):
        while len(workspace.store.label_history()) < labels:
            choice_button(app).click().run()
            assert not app.exception, app.exception
        gc.collect()
        alive.append(sum(type(o) is WidgetMetadata for o in gc.get_objects()))
    assert alive[1] == alive[0], alive
