"""Home: what PREFINE Studio does, and a guided path that works on a fresh workspace."""
import streamlit as st

from prefine_core import demo, jobs
from prefine_core.components import ui

ws, task = ui.workspace(), ui.task_id()
st.title("PREFINE Studio")
st.markdown("Teach a fast but reckless robot to be **safe** from your judgements: watch two clips, say which "
            "behaved more safely, and after a few dozen answers fine-tune the policy and compare before and after.")
jobs.reap(ws, task)
status = demo.demo_status(ws, task)
if status.next_step == "no_policy":
    st.error(f"No policy is registered for {task}. Pick another task in the sidebar, or import a policy on the Data page.")
    st.stop()
steps = ["prepare", "label", "finetune", "compare"]
st.progress((steps.index(status.next_step) + (status.next_step == "compare")) / 4,
            text=f"Next step: {status.next_step}")

with st.container(border=True):
    st.markdown(f"**1 · Pairs to judge** — {status.pairs} pairs, {status.videos_ready} videos ready")
    if status.preparing:
        st.caption("Rolling out the policies and rendering videos in the background; labelling can start with the first video.")
    elif st.button("Prepare pairs", key="prepare", type="primary" if status.next_step == "prepare" else "secondary",
                   help="rolls out the shipped policies and renders the pair videos (about a minute)"):
        jobs.launch(ws, "prepare", task, None, {})
        st.rerun()

with st.container(border=True):
    st.markdown(f"**2 · Judge** — *{demo.question(task)}* — {status.labels} labels, {status.decided} decided pairs")
    st.page_link("pages/label.py", label="Label pairs yourself", icon=":material/label:")
    c1, c2 = st.columns([1, 3])
    n = c1.number_input("Pairs to auto-label", 1, 500, 20, key="auto_n", label_visibility="collapsed")
    if c2.button("Auto-label with the synthetic teacher", key="auto_label",
                 help="a simulated labeller that judges by the true cost, so a demo never stalls"):
        done = ui.guarded(demo.auto_label, ws, task, int(n))
        if done is not None:
            st.toast(f"the teacher labelled {done} pair(s)" if done else "no unlabelled pairs left for the teacher")
            st.rerun()

with st.container(border=True):
    st.markdown("**3 · Fine-tune** — a short PREFINE run in the background, with live curves")
    if status.training:
        st.caption("A fine-tune is running; watch it on the Fine-tune page.")
    elif st.button("Fine-tune with demo settings", key="demo_finetune",
                   type="primary" if status.next_step == "finetune" else "secondary"):
        from prefine_core.launcher import launch_finetune
        from prefine_core.prefine import PrefineConfig

        values = {**PrefineConfig().to_dict(), **demo.DEMO_FINETUNE}
        if ui.guarded(launch_finetune, ws, task, status.reference_id, values) is not None:
            st.switch_page("pages/finetune.py")
    st.page_link("pages/finetune.py", label="Fine-tune page: all settings and curves", icon=":material/monitoring:")

with st.container(border=True):
    st.markdown("**4 · Before and after** — the reference and the fine-tuned policy on the same seeds")
    if status.finetuned_id is None:
        st.caption("Available once a fine-tune has finished.")
    else:
        st.page_link("pages/compare.py", label="Compare before / after", icon=":material/compare:")


@st.fragment(run_every=3.0 if status.preparing or status.training else None)
@ui.survives_outage
def watch() -> None:
    if demo.demo_status(ws, task) != status:
        st.rerun()


watch()
