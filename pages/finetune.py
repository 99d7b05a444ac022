"""Fine-tune: a form generated from PrefineConfig, background runs, live curves."""
import streamlit as st

from prefine_core import checkpoints, jobs, launcher, plots
from prefine_core.components import ui
from prefine_core.demo import DEMO_FINETUNE

ws, task = ui.workspace(), ui.task_id()
st.title("Fine-tune")
policies = launcher.start_policies(ws, task)
primary, more = launcher.form_fields()
last_run, last = launcher.last_settings(ws, task)
if st.session_state.get("demo"):
    source, settings = ("demo",), DEMO_FINETUNE
elif last_run is not None and st.session_state.get("form_defaults") != task:
    source, settings = ("run", task), last  # not the run's id: a run started elsewhere leaves what is typed here
    note, button = st.columns([5, 1])
    note.caption(f"The form starts from the settings of run {last_run}, the latest of this task.")
    if button.button("Default settings", key="form_defaults_button"):
        st.session_state["form_defaults"] = task
        st.rerun()
else:
    source, settings = ("defaults", task), {}
ui.fill_form(primary + more, settings, source)

starts = {p.id: p.name_and_kind for p in policies}
start_key = ui.scoped("start_policy", task)  # another task's pick is not a policy "gone" from this one
if (gone := ui.forget_missing(start_key, list(starts))) is not None:
    st.warning(f"Policy {gone}, picked in \"Start from\", no longer exists (deleted in another tab or from the CLI); "
               "another is shown in its place and nothing was launched. Check it, then press Launch.")

with st.form("finetune_form"):
    start = st.selectbox("Start from", list(starts), format_func=starts.get, key=start_key)
    values = ui.form_widgets(primary)
    with st.expander("More settings"):
        values.update(ui.form_widgets(more))
    inputs = (task, start, values)
    if not st.form_submit_button("Launch", type="primary") or gone is not None:
        ui.kept_refusal("launch_refused", inputs)  # a refusal stays while what it refused is still in the form
    elif (twin := launcher.twin_run(ws, *inputs)) is not None:  # a second click: said now, not kept (it ends)
        ui.set_kept(ui.scoped("run_select", task), twin.id)
        st.info(f"Run {twin.id} with these settings from this policy is already {twin.status}: it is shown below. "
                "Change a setting (a seed, say) to start another beside it.")
    else:
        run_id = ui.guarded(launcher.launch_finetune, ws, *inputs, keep=("launch_refused", inputs))
        if run_id is not None:
            st.session_state.pop("form_defaults", None)  # the next form starts from this run's settings
            ui.set_kept(ui.scoped("run_select", task), run_id)
            st.toast(f"Run {run_id} started in the background; its curves appear below.")  # outlives the refreshes


def run_actions(run, refusal: str | None) -> None:
    button, _ = st.columns([1, 5])  # one place: Cancel while it runs, Resume once it failed or was cancelled
    if run.status in jobs.ACTIVE and button.button("Cancel", key=f"cancel_{run.id}"):
        jobs.cancel(ws, run.id)
    if run.status in jobs.RESUMABLE and refusal is not None:  # said, not offered as a button that refuses
        st.warning(f"This run cannot be resumed: {ui.plain(refusal)}")
    elif run.status in jobs.RESUMABLE and button.button("Resume", key=f"resume_{run.id}"):
        ui.guarded(jobs.resume, ws, run.id, success=f"run {run.id} resumed")
        if ws.store.get_run(run.id).status in jobs.ACTIVE:
            st.rerun()  # redraw with the run live (its view refreshes again), not with the status read before the click


def checkpoint_choice(run, frame, limit: float | None) -> None:
    steps = frame[frame.available].step.tolist()
    if not steps:
        return
    with st.expander("Trade-off: every checkpoint, and choosing another"):
        st.plotly_chart(plots.tradeoff_figure(frame, limit), width="stretch", key=f"tradeoff_{run.id}")
        st.caption(checkpoints.choice_rule(run.config))
        chosen = [s for s in frame[frame.chosen].step if s in steps]
        step = st.selectbox("Checkpoint (step)", steps, index=steps.index(chosen[0]) if chosen else len(steps) - 1,
                            format_func=lambda s: f"{s} ★ the trainer's choice" if s in chosen else str(s),
                            key=f"checkpoint_{run.id}")
        registered = f"registered_{run.id}"  # kept across reruns (a run finishing elsewhere redraws the page)
        if st.button("Use this checkpoint as a policy", key=f"register_{run.id}"):
            policy_id = ui.guarded(checkpoints.register_checkpoint, ws, run.id, int(step))
            if policy_id is not None:
                st.session_state[registered] = (int(step), policy_id)
                st.rerun()  # the form above offers it as a start
        if registered in st.session_state and st.session_state[registered][0] == int(step):
            done_step, policy_id = st.session_state[registered]
            st.success(f"Step {done_step} is policy {policy_id}: pick it on the Compare page, or start a fine-tune from it "
                       "(\"Start from\" above).")


def run_view(run, smoothing: float, limit: float | None) -> None:
    """The chosen run's status, buttons, curves and log, as ``run`` was read (refreshed every 2 s while it is queued or
    running)."""
    run_id = run.id
    refusal = jobs.resume_refusal(ws, run) if run.status in jobs.RESUMABLE else None
    error = jobs.error_text(run, refusal)
    st.markdown(f"**Status:** {run.status}" + (f" — {ui.plain(error)}" if error else ""))
    metrics = ws.store.run_metrics(run_id)
    # a finished fine-tune's checkpoints, read once for the saved policy's line and the trade-off below
    frame = checkpoints.checkpoint_frame(ws, run.id, metrics) if run.kind == "prefine" and run.status == "done" else None
    # its policy's row gone (a hand edit: the store refuses to delete a policy a run made) is said, not a traceback
    if run.status == "done" and run.output_policy_id is not None and (
            made := ui.guarded(ws.store.get_policy, run.output_policy_id)) is not None:
        chosen = checkpoints.chosen_words(frame) if frame is not None else ""
        st.success(f"Saved as policy {made.id}, {ui.plain(made.name)}{chosen}.")
        if run.policy_id is not None and st.button("Compare it with the policy it started from", key=f"compare_{run.id}",
                                                   icon=":material/compare:"):
            ui.set_kept(ui.scoped("policy_a", task), run.policy_id)
            ui.set_kept(ui.scoped("policy_b", task), made.id)
            st.switch_page("pages/compare.py")
    run_actions(run, refusal)
    if run.status in jobs.ACTIVE:
        fraction, text = launcher.progress_bar(run, metrics)
        st.progress(fraction, text=text)
    figures = plots.run_figures(metrics, smoothing, limit)
    if not figures:
        st.caption("No curve points yet — the first appear after the first logging step.")
    cols = st.columns(2)
    for i, fig in enumerate(figures):
        cols[i % 2].plotly_chart(fig, width="stretch", key=f"curve_{i}")
    if figures and run.kind == "prefine":
        st.caption(checkpoints.curves_words(run.config))
    with st.expander("Log (last lines)"):
        st.code(jobs.log_tail(ws, run.id, 30) or "(empty)", language=None)
    if frame is not None:
        checkpoint_choice(run, frame, limit)


def live_run_view(run_id: int, smoothing: float, limit: float | None) -> None:
    """:func:`run_view` of an active run, every 2 s; once the run has ended, the whole page is drawn again instead,
    so the finished view (the checkpoint picker a person opens) is drawn once, by the page, and not first by this
    fragment and then replaced by the page's redraw a moment later (which closed an open list)."""
    run = ws.store.get_run(run_id)  # read once: a run that ended between two reads had its finished view drawn by
    if run.status not in jobs.ACTIVE:  # this fragment, then drawn again by the page, closing a list just opened
        st.rerun()
    run_view(run, smoothing, limit)


# Only what changes refreshes itself: a finished run's curves and checkpoint picker are drawn once, not
# re-sent every 2 s (and re-read from the store) while a person works with them; the jobs table checks
# for new or finished runs every 10 s when none is active, every 2 s while one is.
table = launcher.jobs_frame(ws, task)
live = bool(table.status.isin(jobs.ACTIVE).any())


@st.fragment(run_every=2.0 if live else 10.0)
@ui.survives_outage
def jobs_table(shown: list) -> None:
    now = launcher.jobs_frame(ws, task)
    if launcher.run_states(now) != shown:  # a run started, ended or appeared (e.g. from the CLI): redraw the page
        st.rerun()
    st.dataframe(now, hide_index=True, width="stretch", key="jobs_table")


st.subheader("Runs")
if table.empty:
    st.info("No runs yet for this task. Label some pairs, then press Launch.")
    st.query_params.pop("run_select", None)  # another task's run (the box that would clear it is not drawn)
    ui.rerun_when(lambda: not launcher.jobs_frame(ws, task).empty, every=10.0)
    st.stop()
jobs_table(launcher.run_states(table))
ids = table.id.tolist()
c1, c2, c3 = st.columns([2, 3, 1])  # kept across pages and in the address (the newest run until another is picked)
ui.follow_newest(ui.scoped("run_select", task), ids[0])
run_id = c1.selectbox("Run", ids, format_func=lambda i: f"run {i}",
                      **ui.kept(ui.scoped("run_select", task), ids, in_url="run_select", index=0))
smoothing = c2.slider("Smoothing", 0.0, 0.99, help="of the per-step curves (losses, accuracy, KL); validation points "
                      "are drawn as measured", **ui.kept("smoothing", value=0.6), step=0.01)
limit = c3.number_input("Cost limit line", min_value=0.0, max_value=1e6, step=5.0,
                        help="episode cost drawn as a dashed line on the cost curve (0: none); 25 is Safety-Gymnasium's "
                             "usual limit", **ui.kept("cost_limit", value=launcher.COST_LIMIT))


# Live or finished as the jobs table read it: a run that ended since is found ended by its live view, which draws the
# page again. (Read afresh here, a run that ended after the table was read had its finished view drawn, and then drawn
# again 2 s later by the table's redraw, which closed a checkpoint list a person had just opened.)
if table.status[table.id == run_id].isin(jobs.ACTIVE).any():
    st.fragment(run_every=2.0)(ui.survives_outage(live_run_view))(run_id, smoothing, limit or None)
else:
    run_view(ws.store.get_run(run_id), smoothing, limit or None)
