"""Compare: two policies on the same seeds — numbers with deltas, distributions, one video of both."""
import streamlit as st

from prefine_core import comparison, jobs, plots, task_words
from prefine_core.components import ui

ws, task = ui.workspace(), ui.task_id()
st.title("Compare")
policies = ws.store.list_policies(task)
if len(policies) < 2:
    st.info(f"{task} has {len(policies)} policy; a comparison needs two. Fine-tune one first (Fine-tune page) "
            "or import one (Data page).")
    st.stop()
ids = [p.id for p in policies]
names = {p.id: p.name_and_kind for p in policies}
if comparison.newest_finetune(policies) is None:
    st.info("No fine-tune of this task has finished yet, so no policy here is an \"after\": B is another shipped "
            "policy for now. Fine-tune one (Home or the Fine-tune page) to compare before and after.")
first_a, first_b = comparison.default_pair(policies)
if ui.kept_choice(ui.scoped("policy_b", task), ids, in_url="policy_b") == first_a:
    first_a, first_b = first_b, first_a  # B is kept (or linked) on A's default: A's is the other one
gone = {side: ui.forget_missing(ui.scoped(key, task), ids) for side, key in (("A", "policy_a"), ("B", "policy_b"))}
gone = {side: policy for side, policy in gone.items() if policy is not None}
if gone:
    st.warning(" and ".join(f"{side}'s policy {policy}" for side, policy in gone.items()) + " no longer exists (deleted "
               "in another tab or from the CLI); another is shown in its place and nothing was started. Check A and B, "
               "then press the button.")
c1, c2, c3, c4 = st.columns([3, 3, 1, 1])
a = c1.selectbox("A (before)", ids, format_func=names.get,
                 **ui.kept(ui.scoped("policy_a", task), ids, in_url="policy_a", index=ids.index(first_a)))
first_b = first_b if first_b != a else first_a  # A came from the address or a kept choice: B's default is another
b = c2.selectbox("B (after)", ids, format_func=names.get,
                 **ui.kept(ui.scoped("policy_b", task), ids, in_url="policy_b", index=ids.index(first_b)))
# Text, not a number field: a browser's number field rounds or holds back what it cannot hold (1e9 arrived as 1, 2.5
# as 2) and the page would evaluate a count nobody typed; comparison_config says what is wrong instead.
episodes = c3.text_input("Episodes", help="1 to 100; evaluation seeds 10000, 10001, …; the same for A and B",
                         **ui.kept("episodes", in_url=True, value="5"))
cost_limit = c4.text_input("Cost limit", help="the episode cost counted as keeping within the limit (violation rate); "
                           "25 is Safety-Gymnasium's usual one", **ui.kept("compare_cost_limit", in_url="cost_limit", value="25"))
config = ui.guarded(comparison.comparison_config, a, b, episodes, cost_limit=cost_limit)
others = [r for r in comparison.active_comparisons(ws, task) if (r.config["policy_a"], r.config["policy_b"]) != (a, b)]
for other in others:  # e.g. started from another tab
    st.info(f"Run {other.id} is comparing {names.get(other.config['policy_a'], other.config['policy_a'])} and "
            f"{names.get(other.config['policy_b'], other.config['policy_b'])} in the background: pick them as A and B "
            "to follow it.")
run = comparison.latest_comparison(ws, a, b)
running = run is not None and run.status in jobs.ACTIVE
if st.button("Evaluate both on the same seeds", key="compare", type="primary", disabled=config is None or running) \
        and not gone:
    if ui.guarded(comparison.launch_comparison, ws, task, config) is not None:
        st.rerun()  # draws the new run's progress, the button held
if config is None:
    st.stop()  # the one message above says what to change
if running:
    st.caption(f"The button is held while run {run.id} is comparing these two (one evaluation of a pair at a time).")


@st.fragment(run_every=2.0)
@ui.survives_outage
def progress(run_id: int) -> None:
    run = ws.store.get_run(run_id)
    jobs.reap(ws, task)
    if run.status not in jobs.ACTIVE:
        st.rerun()
    done = ws.store.run_metrics(run_id)
    st.info(f"Evaluating {comparison.describe(run.config)} in the background… "
            f"{int(done.step.max()) if len(done) else 0} of {comparison.episodes_to_run(run.config)} episodes (each "
            "policy with its mean and with sampled actions), then the video")


if run is None:
    st.caption("Not evaluated yet: press the button above (it runs in the background)."
               + comparison.results_elsewhere(ws, task, a, b, {i: ui.plain(name) for i, name in names.items()}))
elif run.status in jobs.ACTIVE:
    ui.cancel_job_button(ws, run.id, key="cancel_compare")  # one started by mistake need not be waited out
    progress(run.id)
elif run.status == "cancelled":  # the user's own choice: said, not shown as an error
    st.info(f"Run {run.id}'s comparison was cancelled before it finished. The button above evaluates the pair again.")
elif run.status != "done":
    st.error(f"The comparison failed: {ui.plain(jobs.error_text(run) or 'no reason recorded')}. The button above evaluates "
             "the pair again.")
elif (result := comparison.saved_result(ws, run.id)) is None:
    st.error(f"{ui.plain(jobs.result_missing(ws, run))}. The button above evaluates the pair again.")
else:
    if stale := comparison.not_what_is_typed(run.config, config):
        st.warning(stale)
    st.markdown(f"**{comparison.verdict(result)}**")
    st.caption(task_words.what_the_numbers_mean(task))
    st.caption(f"{comparison.describe(run.config)} (run {run.id}, cost limit {run.config['cost_limit']:g})")
    # In Demo mode the sentence above and the video say it; the table of rates is there for whoever asks
    with st.expander("Every number, A beside B", expanded=not st.session_state.get("demo")):
        st.dataframe(comparison.comparison_table(result), hide_index=True, width="stretch", key="compare_table")
        st.caption(comparison.TABLE_TERMS + " Here each policy acted with its mean action, as in the verdict, the "
                   "distributions and the video.")
        if "a_sampled" in result:
            st.dataframe(comparison.comparison_table(result, sampled=True), hide_index=True, width="stretch",
                         key="compare_table_sampled")
            st.caption("The same seeds, each policy's actions sampled from it (its exploration noise on).")
    if warning := comparison.doing_less(result):
        st.warning(warning)
    limit = result["a"].get("cost_limit")
    d1, d2 = st.columns(2)
    d1.plotly_chart(plots.distribution_figure({"A": result["a"]["returns"], "B": result["b"]["returns"]},
                                              "Return per episode"), width="stretch", key="dist_return")
    d2.plotly_chart(plots.distribution_figure({"A": result["a"]["costs"], "B": result["b"]["costs"]},
                                              "Cost per episode", limit), width="stretch", key="dist_cost")
    st.subheader(comparison.video_title(result))
    steps = run.config.get("video_steps")  # a row edited by hand: said without its number
    st.caption(f"A (before): {ui.plain(names.get(a, a))} · B (after): {ui.plain(names.get(b, b))} · the first "
               f"{steps if isinstance(steps, int) else 'few hundred'} steps of the episode (the numbers above are of "
               "whole episodes)")
    if result["video"]:
        st.video(result["video"], loop=True, autoplay=True, muted=True)
    else:
        st.warning(f"The video of run {run.id} is missing from its folder. The button above evaluates the pair again.")
