"""Data: browse clips, pairs, labels and policies; export, import, delete."""
import streamlit as st

from prefine_core import agreement, browse, labelling, pair_videos, transfer
from prefine_core.components import ui
from prefine_core.entry import counted
from prefine_core.workspace import plain_video_path

ws, task = ui.workspace(), ui.task_id()
st.title("Data")
counts = ws.store.counts(task)  # once per draw: it checks every pair's video file
tabs = st.tabs(["Pairs", "Labels", "Clips", "Policies", "Agreement", "Export / import", "Delete"])
with tabs[0]:
    pairs = browse.pairs_frame(ws.store, task)
    st.dataframe(pairs, hide_index=True, width="stretch", key="pairs_table")
    if not len(pairs):
        st.caption(f"No pairs of {task} yet: Home's *Prepare pairs* makes them (or `./studio cli pairs --collect`), "
                   "or import an export below.")
    if len(pairs):
        shown_pair = st.selectbox("Preview pair", pairs.id.tolist(), key="preview_pair")
        pair = ws.store.get_pair(shown_pair)
        if pair.video_ready:
            st.columns([1, 1])[0].video(pair.video_path, loop=True, muted=True)
        elif (job := pair_videos.video_job(ws, task)) is not None:
            st.caption(f"Its video is being rendered (run {job.id}); it shows here when it is ready.")
            ui.cancel_job_button(ws, job.id, key="cancel_videos")
            ui.rerun_when(lambda: ws.store.get_pair(shown_pair).video_ready, every=2.0)
        else:
            st.caption("Its video is not rendered yet.")
            ui.render_missing_button(ws, task)
with tabs[1]:
    labels = browse.labels_frame(ws.store, task)
    st.dataframe(labels, hide_index=True, width="stretch", key="labels_table")
    if not len(labels):
        st.caption("No labels yet: judge pairs on the Label page, or auto-label them on Home.")
    if unreadable := counts["unreadable_labels"]:
        st.warning(f"{counted(unreadable, 'label row')} of this task {'holds' if unreadable == 1 else 'hold'} a "
                   "choice no label may have (edited in the "
                   "database by hand?): each is read as taken back, not as a judgement.")
with tabs[2]:
    clips = browse.trajectories_frame(ws.store, task)
    st.dataframe(clips, hide_index=True, width="stretch", key="clips_table")
    if not len(clips):
        st.caption("No clips yet: preparing pairs collects them from the behaviour pool's policies.")
    if len(clips):
        pick = st.selectbox("Preview clip", clips.id.tolist(), key="preview_clip")
        record = ws.store.trajectory_record(pick)
        with_cost = record.replayable and st.toggle("Show cost overlay", value=True, key="clip_cost")
        video = pair_videos.clip_video(record)
        if video is None and not record.replayable:
            st.caption(f"Clip {pick} comes from an imported dataset: there is no policy and seed to replay, so no video.")
        elif video is None and st.button(f"Render clip {pick}", key="render_clip", help="replays it; a few seconds"):
            with st.spinner(f"Rendering clip {pick}…"):
                if ui.guarded(pair_videos.render_clip, ws, pick) is not None:
                    st.rerun()  # drawn again without the button
        if video:  # at about its own size (256 px), not stretched across the page
            st.columns([1, 2])[0].video(str(video if with_cost else plain_video_path(video)), loop=True, muted=True)


def delete_chosen_policy() -> None:
    """As :func:`delete_chosen`: runs before the page redraws, so the choice can be cleared once the policy is gone."""
    if not ui.confirmed("policy_delete_confirm"):
        return
    policy = ui.guarded(ws.delete_policy, st.session_state["policy_delete_id"], under="policy_delete_confirm")
    if policy is not None:
        st.toast(f"deleted policy {policy.id} ('{ui.plain(policy.name)}')")
        st.session_state["policy_delete_id"], st.session_state["policy_delete_confirm"] = None, ""


with tabs[3]:
    policies = browse.policies_frame(ws.store, task)
    st.dataframe(policies, hide_index=True, width="stretch", key="policies_table")
    names = dict(zip(map(int, policies.id), policies.name))
    gone = st.selectbox("Policy to delete (one nothing uses: a wrong upload, a checkpoint registered by mistake)",
                        list(names), index=None, format_func=lambda i: f"{i}: {names[i]}", key="policy_delete_id")
    st.text_input("Type DELETE to confirm", key="policy_delete_confirm")
    st.button("Delete policy", key="policy_delete", disabled=gone is None, on_click=delete_chosen_policy)
    ui.said_under("policy_delete_confirm")
with tabs[4]:
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    people = c1.text_input("People per pair", value=str(ws.store.task_overlap(task)), key=ui.scoped("overlap", task),
                           help="how many annotators the Label page hands each pair of this task to (1 to 10); "
                                "agreement between people needs 2 or more")
    if c2.button("Save", key="save_overlap"):
        ui.guarded(lambda: st.success(labelling.set_people_per_pair(ws.store, task, people)))
    stats = ui.guarded(agreement.report, ws.store, task)
    if stats and stats["judgements"]:
        c1, c2, c3 = st.columns(3)
        c1.metric("Judgements", stats["judgements"])
        c2.metric("Pairs judged by ≥ 2", stats["overlapping_pairs"])
        c3.metric("Krippendorff's α", ui.number_or_dash(stats["krippendorff_alpha"]))
        st.caption("Agreement of each annotator with the true cost ordering, and Cohen's κ between annotators"
                   + (f" ({', '.join(stats['synthetic'])} — Auto-label or `label-synthetic` — counts as one of them, "
                      f"in α too; α among people alone: {ui.number_or_dash(stats['krippendorff_alpha_people'])})"
                      if stats["synthetic"] else ""))
        st.dataframe(stats["annotators"], hide_index=True, width="stretch", key="agreement_table")
        st.caption("agreement: the share of an annotator's answers that match the truth (Equal where the costs are "
                   "equal); decided: answers naming a safer clip on pairs whose truth names one, and decided_agreement "
                   "the share of those that are right. κ and α compare all four answers (A, B, Equal, Can't tell): "
                   "two Can't tell on one pair agree.")
        if stats["kappa"]:
            st.dataframe(stats["kappa"], hide_index=True, width="stretch", key="kappa_table")
        if stats["kappa_no_common_pairs"] or not stats["kappa"]:
            st.caption("Cohen's κ needs two annotators who judged the same pairs"
                       + (" (annotators with no pair in common are left out)" if stats["kappa"] else "")
                       + (": set People per pair to 2 or more." if ws.store.task_overlap(task) < 2 else "."))
    else:
        st.info("No labels yet for this task.")
with tabs[5]:
    videos = st.toggle("With the pairs' videos", value=True, key="export_videos",
                       help="each rendered pair's video and its cost-free twin, about 0.25 MB (PointCircle) to 0.7 MB (HalfCheetah) a pair of 200-step clips: "
                            "where the export is imported, its pairs can be labelled without replaying their clips "
                            "(a replay on another machine or software build drifts, and is refused)")
    made_of = (task, counts, len(ws.store.list_policies(task)), videos)  # of another task or state: not offered
    if st.button("Prepare an export of this task", key="export"):
        before = (st.session_state.get("export_zip") or (None, None))[1]
        st.session_state["export_zip"] = (made_of, ui.guarded(transfer.prepare_download, ws, task, videos, before))
    if (kept := st.session_state.get("export_zip")) and kept[1] and kept[0] == made_of and kept[1].is_file():
        size = kept[1].stat().st_size
        st.download_button(f"Download export (.zip, {size / 1024**2:.1f} MB)", kept[1].read_bytes,
                           file_name=f"prefine-{task}.zip", mime="application/zip", key="download_export")
        if size > (limit := st.get_option("server.maxUploadSize")) * 1024**2:
            st.caption(f"It is over the {limit} MB an upload to this page takes: import it with `./studio cli import "
                       "FILE.zip` (up to 2 GB unpacked), or prepare it without the videos; a folder export "
                       "(`./studio cli export --out DIR`, then `./studio cli import DIR`) has no size limit.")
    elif kept:
        st.caption("The export prepared earlier was of another task, or the workspace changed since, or it was cleared "
                   "away a day after it was made: prepare it again.")
    upload = st.file_uploader("Import a file", type=list(transfer.ACCEPTED), key="upload",
                              help="a .zip exported here, a DSRL/D4RL .hdf5 dataset, or a .safetensors policy")
    restore = st.checkbox("Restore pairs deleted here", key="restore_deleted",
                          help="an export made before a pair was deleted here still holds it: it is left out, with its "
                               "labels, unless this is ticked")
    if upload is not None and st.button(f"Import {upload.name}", key="import"):
        # said literally: it names files and policies as their makers named them (`<b>`, `**` and all)
        ui.guarded(lambda: st.success(ui.plain(transfer.import_upload(ws, upload.name, upload.getvalue(), task, restore))))


def delete_chosen() -> None:
    """Runs before the page redraws, so the choice and the confirmation can be cleared once the pairs are gone."""
    if not ui.confirmed("delete_confirm"):
        return
    doomed = st.session_state["delete_ids"]
    if ui.guarded(ws.delete_pairs, doomed, success=f"deleted {len(doomed)} pair(s)", under="delete_confirm") is not None:
        st.session_state["delete_ids"], st.session_state["delete_confirm"] = [], ""


with tabs[6]:
    doomed = st.multiselect("Pairs to delete, with all their labels", pairs.id.tolist(), key="delete_ids",
                            help="an import of an export made before does not bring them back (unless asked to)")
    st.text_input("Type DELETE to confirm", key="delete_confirm")
    st.button("Delete", key="delete", type="primary", disabled=not doomed, on_click=delete_chosen)
    ui.said_under("delete_confirm")
