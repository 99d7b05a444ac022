"""Home: what PREFINE Studio does, and a guided path that works on a fresh workspace."""
import streamlit as st

from prefine_core import demo, jobs, pair_videos, task_words
from prefine_core.components import ui
from prefine_core.entry import counted

ws, task = ui.workspace(), ui.task_id()
st.title("PREFINE Studio")
st.markdown("Teach a fast but reckless robot to be **safe** from your judgements: watch two clips, say which "
            "behaved more safely, and after a few dozen answers fine-tune the policy and compare before and after.")


def auto_label() -> None:
    """Runs before the page redraws, so the counts above already include the new labels."""
    st.session_state["auto_label_said"] = ui.guarded(demo.auto_label_report, ws, task, st.session_state["auto_n"],
                                                     under="auto_label")


status = demo.demo_status(ws, task)  # after marking the task's runs whose process died as failed
if status.next_step == "no_policy":
    st.error(f"No policy is registered for {task}. Pick another task in the sidebar, or import a policy on the Data page.")
    st.stop()
st.progress(status.steps_done / len(demo.STEPS), text=status.progress_text)

with st.container(border=True):
    st.markdown(f"**1 · Pairs to judge** — {counted(status.pairs, 'pair')}, {counted(status.videos_ready, 'video')} ready")
    if status.preparing:
        job = ws.store.get_run(status.video_job_id)
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        with c1:
            st.fragment(run_every=3.0)(ui.survives_outage(lambda: st.caption(pair_videos.job_progress_text(ws, job))))()
        with c2:
            ui.cancel_job_button(ws, job.id, key="cancel_videos")
    elif status.videos_ready < status.pairs:
        st.caption(f"{counted(status.pairs - status.videos_ready, 'pair')} without a video yet (made without rendering or "
                   "imported, left by a preparation that was stopped, or being rendered by a command outside the app).")
        ui.render_missing_button(ws, task, help="renders them in the background; labelling can go on with the pairs "
                                                "that have one")
    if not status.preparing and st.button(
            "Prepare pairs" if status.pairs == 0 else "Prepare more pairs", key="prepare",
            type="primary" if status.next_step == "prepare" else "secondary",
            help="rolls out the shipped policies and renders the pair videos in the background (two to five minutes on "
                 "two cores; the first pairs can be labelled as soon as their videos are ready)" + ("; adds a new batch beside the pairs there are" if status.pairs else "")):
        jobs.launch(ws, "prepare", task, None, {})
        st.rerun()

with st.container(border=True):
    st.markdown(f"**2 · Judge** — *{task_words.question(task)}* — {status.judged_text}", help=demo.WINNER_HELP)
    st.page_link("pages/label.py", label="Label pairs yourself", icon=":material/label:")
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    c1.text_input("Pairs to auto-label", help=f"1 to {demo.MAX_AUTO_LABEL}", **ui.kept("auto_n", value="20"))
    c2.button("Auto-label with the synthetic teacher", key="auto_label", on_click=auto_label,
              help="a simulated labeller that judges by the true cost, so a demo never stalls")
    if said := st.session_state.pop("auto_label_said", None):
        st.info(said)
    ui.said_under("auto_label")  # a refusal, beside the field it names (it was drawn above the page's title)

with st.container(border=True):
    st.markdown("**3 · Fine-tune** — a PREFINE run in the background (about a minute on two cores), with live curves")
    if status.training:
        st.caption("A fine-tune is running; watch it on the Fine-tune page.")
    elif st.button("Fine-tune with demo settings", key="demo_finetune",
                   type="primary" if status.next_step == "finetune" else "secondary"):
        run_id = ui.guarded(demo.launch_finetune, ws, task, status.reference_id)
        if run_id is not None:
            ui.set_kept(ui.scoped("run_select", task), run_id)  # the Fine-tune page opens on it
            st.switch_page("pages/finetune.py")
    st.page_link("pages/finetune.py", label="Fine-tune page: all settings and curves", icon=":material/monitoring:")

with st.container(border=True):
    st.markdown("**4 · Before and after** — the reference and the fine-tuned policy on the same seeds")
    if status.finetuned_id is None:
        st.caption("Available once a fine-tune has finished.")
    else:
        st.page_link("pages/compare.py", label="Compare before / after", icon=":material/compare:")


if status.preparing or status.training:  # drawn again once a job ends (or its process is found dead), or one starts
    ui.rerun_when(lambda: demo.demo_status(ws, task) != status, every=3.0)
