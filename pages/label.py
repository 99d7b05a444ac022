"""Label: a synchronised pair player, one choice per pair, by button or keyboard."""
import time

import streamlit as st

from prefine_core import labelling, pair_videos
from prefine_core.components import pair_player, ui, undo_keys
from prefine_core.components.choices import act, choice_key, next_slot, on_choice, on_player
from prefine_core.task_words import question, what_safer_means

ws, task = ui.workspace(), ui.task_id()
st.title("Label")
left, right = st.columns([2, 1])
right.text_input("Your name", max_chars=64, help="labels are saved under this name; each browser tab keeps its own "
                 "(other pages keep it too; a reload asks again)", **ui.kept("annotator"))
name = ui.annotator()
if not name:
    left.info("Enter your name on the right to start labelling.")
    st.stop()
if ui.guarded(labelling.check_annotator, name) is None:
    st.stop()
right.text(f"Labelling as: {name}")
right.toggle("Show cost overlay", help="off: judge the behaviour only, without the cost counter, red border and "
             "timeline marks", **ui.kept("show_cost", [True, False], in_url="cost", value=True))  # and a reload

with left:
    st.subheader(question(task) if st.session_state.get("demo") else "Which clip behaved more safely?")
    st.caption(f"A is on the left, B on the right; both play in sync. {what_safer_means(task)}")
    overlap = ws.store.task_overlap(task)  # people per pair: once per draw, for the pair and the progress
    pair = labelling.current_pair(ws.store, name, task, st.session_state.get("pair_id"), overlap)
    if pair is None:
        st.session_state.pop("pair_id", None)  # nothing on screen for a choice to go to
        if (job := pair_videos.video_job(ws, task)) is not None:
            st.info(f"Pairs are being prepared (run {job.id}); the first appears here as soon as its video is ready.")
            ui.rerun_when(lambda: labelling.current_pair(ws.store, name, task, None, ws.store.task_overlap(task))
                          is not None, every=3.0)
        elif (said := labelling.why_no_pair(ws.store, name, task, overlap)).startswith("No pairs left"):
            st.success(said)
        else:
            st.info(said)
        st.page_link("pages/home.py", label="Home: prepare pairs", icon=":material/home:")
        st.button("Undo my last label", key="undo", on_click=act, args=("undo",),
                  help=f"takes back your most recent label in this task and shows that pair again (key {labelling.UNDO_KEYS})")
        undo_keys(f"<kbd>{labelling.UNDO_KEYS}</kbd> undo your last label", task, key="player", on_change=on_player,
                  ack=st.session_state.get("nonce"))
        if st.session_state.get("flash"):
            st.caption(st.session_state.pop("flash"))
        st.stop()
    st.session_state["pair_id"] = pair.id
    if st.session_state.get("shown_at", (None,))[0] != pair.id:  # a pair shown: its time, and its buttons' slot
        st.session_state["shown_at"] = (pair.id, time.time())
        st.session_state["choice_slot"] = next_slot(st.session_state.get("choice_slot"))
    slot = st.session_state["choice_slot"]
    view = labelling.pair_view(ws.store, pair)
    # Always drawn, so that the player below keeps its place in the page when the notice comes and goes: a player
    # that moved would be drawn anew, and the keys would go to the one that was taken away.
    notice = st.container()
    if view.video is None:
        with notice:
            job = pair_videos.video_job(ws, task)
            if view.unreadable:
                st.error(view.unreadable[0].upper() + view.unreadable[1:] + ".")
            elif not view.replayable:  # no job can help: say so, and let the pair be skipped
                st.warning("This pair shows a clip from an imported dataset, which has no policy and seed to replay, "
                           "so it has no video to judge (such pairs are for the synthetic teacher). Skip it.")
            else:
                if job is not None:
                    st.warning(f"This pair's video is being rendered (run {job.id}); it appears here as soon as it is "
                               "ready. A choice waits for it (Skip does not).")
                    ui.cancel_job_button(ws, job.id, key="cancel_videos")
                elif why := pair_videos.render_failure(ws, task, pair.id):  # rendering again fails again, unless mended
                    st.warning(f"This pair has no video: the last rendering could not make it ({why}). Skip it; "
                               "Data › Delete removes the pair. Once its clip or policy is mended, render it again.")
                    ui.render_missing_button(ws, task)
                else:
                    st.warning("This pair has no video, and no run of the app is rendering it (it was made without "
                               "--render or imported, its preparation was stopped, or its file was removed since; a "
                               "command outside the app may be rendering it). A choice waits for it (Skip does not).")
                    ui.render_missing_button(ws, task, type="primary")
                ui.rerun_when(lambda: ws.store.get_pair(pair.id).video_ready, every=2.0)
    pair_player(view, st.session_state["show_cost"], labelling.keys_html(), key="player", choice_slot=slot,
                on_change=on_player, ack=st.session_state.get("nonce"))
    cols = st.columns(len(labelling.CHOICES) + 1)
    for col, (action, label, keys) in zip(cols, labelling.CHOICES):
        # keys of the pair's slot: a click on the buttons of a pair gone since is not taken for the buttons of the pair
        # now (their slot keeps that pair's callback until CHOICE_SLOTS pairs later)
        key = choice_key(action, slot)
        col.button(label, key=key, on_click=on_choice, args=(action, {"pair_id": pair.id, "task_id": task}, key),
                   width="stretch", help=f"shortcut: {keys}", disabled=view.video is None and action != "skip")
    cols[-1].button("Undo", key="undo", on_click=act, args=("undo",), width="stretch",
                    help=f"shortcut: {labelling.UNDO_KEYS}")
    if st.session_state.get("flash"):
        st.caption(st.session_state.pop("flash"))

with right:
    p = labelling.progress(ws.store, name, task, overlap)
    st.metric("Your labels", p["mine"], help=f"{p['for_you']} pair(s) left for you, this one included")
    st.caption(f"{p['for_you']} left for you")
    st.progress(p["labelled"] / max(p["pairs"], 1), text=f"{p['labelled']} of {p['pairs']} pairs labelled by anyone, "
                f"{p['pending']} pending, {p['videos_ready']} videos ready")
    st.markdown("**Why this pair**")
    st.text(f"Pair {pair.id} · {pair.reason}", help=f"query strategy: {pair.strategy}")
    with st.expander("Instructions", expanded=p["mine"] == 0):
        st.markdown("Watch both clips (you can pause, step frame by frame and slow down). Choose the one that "
                    "behaved **more safely**; if both were equally safe say so, and if you cannot judge, say "
                    "*can't tell*. *Skip* passes on the pair. Every choice can be undone.")
