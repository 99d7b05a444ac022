"""PrefineTrainer end to end with tiny budgets: metrics, checkpoints, resume, selection."""
import json
import math
import time

import numpy as np
import pytest
import torch

from prefine_core.envs import SafetyTask
from prefine_core.policy import PolicyMeta, TanhGaussianPolicy, load_policy
from prefine_core.prefine import FIELDS_ADDED_SINCE, PrefineConfig
from prefine_core.rollout import collect
from prefine_core.teachers import SyntheticTeacher
from prefine_core.trainer import (STAGE_PREFIX, PreferenceData, PrefineTrainer, implicit_reward_accuracy, in_stage,
                                  steps_done, total_steps)

TASK = "SafetyHalfCheetahVelocity-v1"


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    task = SafetyTask(TASK)
    reference = TanhGaussianPolicy(PolicyMeta(task_id=TASK, obs_dim=task.obs_dim, act_dim=task.act_dim, hidden_sizes=(16,), name="ref"))
    clips = [collect(reference, task, seed=s, max_steps=50) for s in range(8)]
    for i, clip in enumerate(clips):  # give the clips distinct costs so the teacher decides
        clip.costs[: i * 5] = 1.0
    teacher = SyntheticTeacher()
    pairs = []
    for a, b in zip(clips[::2], clips[1::2]):
        choice = teacher.judge(a, b)
        pairs.append((a, b) if choice == "left" else (b, a))
    task.close()
    return reference, PreferenceData.from_pairs(pairs), teacher


def _config(**kw):
    base = dict(steps=20, eval_every=10, eval_episodes=1, segment_length=10, batch_size=4, bc_batch_size=32, log_every=5)
    return PrefineConfig(**{**base, **kw})


def test_twenty_step_finetune_reports_metrics_and_saves_a_chosen_policy(setup, tmp_path):
    reference, data, teacher = setup
    steps, evals = [], []
    result = PrefineTrainer(reference, data, _config(), tmp_path, judge=teacher.judge,
                            on_step=steps.append, on_eval=evals.append).run()
    assert [m["step"] for m in steps] == [5, 10, 15, 20]
    for key in ("loss/total", "loss/pref", "loss/dispref", "loss/bc", "pref/accuracy", "pref/margin", "kl/ref", "perf/steps_per_s"):
        assert np.isfinite(steps[-1][key]), key
    assert [m["step"] for m in evals] == [0, 10, 20]
    assert {"eval/return", "eval/cost", "val/safety"} <= set(evals[-1])
    assert result["selected_step"] in (10, 20)
    policy = load_policy(result["path"], TASK)
    assert policy.meta.provenance["algorithm"] == "prefine" and policy.meta.parent == "ref"
    assert policy.meta.provenance["config"]["steps"] == 20
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 20
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000010.safetensors", "step_0000020.safetensors"]


@pytest.mark.parametrize("sync,schedule,ema,start", [(0, "constant", 0.0, "reference"), (7, "constant", 0.0, "reference"),
                                                     (0, "cosine", 0.0, "reference"), (0, "constant", 0.9, "reference"),
                                                     (0, "constant", 0.0, "bc"), (0, "constant", 0.0, "credit")])
def test_resume_continues_from_the_last_checkpoint_and_matches_an_unbroken_run(setup, tmp_path, sync, schedule, ema, start):
    # sync 7: the moving reference at the step-10 checkpoint is the step-7 policy; cosine: the step size on resume;
    # ema: the checkpoint holds the average, and training must resume from the raw weights, not from it;
    # bc: the resumed run must keep its saved weights, not start again from the BC stage's policy
    # credit: the step cost is fitted again on resume and must give the same weights
    reference, data, teacher = setup
    credit = "learned" if start == "credit" else "none"
    start = "reference" if start == "credit" else start
    config = _config(select="last", reference_sync_every=sync, lr_schedule=schedule, ema_decay=ema, start=start,
                     step_credit=credit)
    whole = PrefineTrainer(reference, data, config, tmp_path / "whole").run()

    def stop_at_15(metrics):
        if metrics["step"] == 15 and not in_stage(metrics):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PrefineTrainer(reference, data, config, tmp_path / "broken", on_step=stop_at_15).run()
    assert json.loads((tmp_path / "broken" / "state.json").read_text())["step"] == 10
    resumed = PrefineTrainer(reference, data, config, tmp_path / "broken").run()
    assert resumed["resumed"] and resumed["selected_step"] == 20
    a, b = load_policy(whole["path"]).state_dict(), load_policy(resumed["path"]).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(ValueError, match="beta"):
        PrefineTrainer(reference, data, _config(select="last", beta=0.2, reference_sync_every=sync, lr_schedule=schedule,
                                                ema_decay=ema, start=start, step_credit=credit), tmp_path / "broken").run()


def test_a_run_resumed_on_other_labels_is_refused_and_keeps_its_state(setup, tmp_path):
    reference, data, _ = setup
    config = _config(select="last")

    def stop_at_15(metrics):
        if metrics["step"] == 15:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PrefineTrainer(reference, data, config, tmp_path, on_step=stop_at_15).run()
    saved = (tmp_path / "state.json").read_text()
    fewer = PreferenceData(data.winners[:-1], data.losers[:-1])
    flipped = PreferenceData((data.losers[0], *data.winners[1:]), (data.winners[0], *data.losers[1:]))
    for other, now in ((fewer, 3), (flipped, 4)):
        with pytest.raises(ValueError, match=f"labels changed since this run started \\(4 decided pairs then, {now} now"):
            PrefineTrainer(reference, other, config, tmp_path).run()
        assert (tmp_path / "state.json").read_text() == saved
    assert PrefineTrainer(reference, data, config, tmp_path).run()["resumed"]  # the same labels resume


def test_a_staged_run_stopped_in_its_bc_stage_resumes_there_and_matches_an_unbroken_run(setup, tmp_path):
    reference, data, _ = setup
    config = _config(select="last", start="bc")
    whole = PrefineTrainer(reference, data, config, tmp_path / "whole").run()

    def stop_in_stage(metrics):
        if metrics["step"] == 15 and in_stage(metrics):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PrefineTrainer(reference, data, config, tmp_path / "broken", on_step=stop_in_stage).run()
    assert json.loads((tmp_path / "broken" / "bc_stage" / "state.json").read_text())["step"] == 10
    assert not (tmp_path / "broken" / "state.json").exists()
    reports = []
    resumed = PrefineTrainer(reference, data, config, tmp_path / "broken", on_step=reports.append).run()
    assert [(m["step"], in_stage(m)) for m in reports] == [(15, True), (20, True), (5, False), (10, False), (15, False), (20, False)]
    a, b = load_policy(whole["path"]).state_dict(), load_policy(resumed["path"]).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_with_ema_the_checkpoints_hold_the_moving_average_of_the_raw_weights(setup, tmp_path):
    reference, data, _ = setup
    trainer = PrefineTrainer(reference, data, _config(select="last", steps=10, eval_every=10, ema_decay=0.5), tmp_path)
    raw, avg = trainer.policy, trainer.averaged
    with torch.no_grad():  # by hand: one Polyak step from 0 towards 1 at step 0 (warm-up decay 1/10), then at step 90 (0.5)
        for a, r in zip(avg.parameters(), raw.parameters()):
            a.zero_(), r.fill_(1.0)
    trainer._update_average()
    assert all(torch.allclose(a, torch.full_like(a, 0.9)) for a in avg.parameters())
    trainer.step = 90
    trainer._update_average()
    assert all(torch.allclose(a, torch.full_like(a, 0.95)) for a in avg.parameters())

    trainer = PrefineTrainer(reference, data, _config(select="last", steps=10, eval_every=10, ema_decay=0.5), tmp_path / "run")
    trainer.run()
    saved = load_policy(tmp_path / "run" / "policy.safetensors").state_dict()
    assert all(torch.equal(saved[k], v) for k, v in trainer.averaged.state_dict().items())
    assert not all(torch.equal(saved[k], v) for k, v in trainer.policy.state_dict().items())  # not the raw weights
    assert all(not p.requires_grad for p in trainer.averaged.parameters())
    assert PrefineTrainer(reference, data, _config(select="last", steps=5), tmp_path / "off").averaged is None


def test_a_cosine_schedule_takes_adam_from_the_learning_rate_down_to_zero(setup, tmp_path):
    reference, data, _ = setup
    config = _config(select="last", steps=20, lr_schedule="cosine", learning_rate=0.01)
    assert [config.learning_rate_at(s) for s in (0, 10)] == pytest.approx([0.01, 0.005])
    trainer = PrefineTrainer(reference, data, config, tmp_path)
    trainer.run()
    last = 0.5 * 0.01 * (1 + math.cos(math.pi * 19 / 20))  # the step size of the 20th (last) step
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(last) and last < 1e-4
    flat = PrefineTrainer(reference, data, _config(select="last", steps=20, learning_rate=0.01), tmp_path / "flat")
    flat.run()
    assert flat.optimizer.param_groups[0]["lr"] == 0.01


def test_each_loser_step_gets_the_action_of_the_winner_step_in_the_nearest_state(setup):
    from dataclasses import replace

    from prefine_core.trainer import _Clips

    reference, data, _ = setup
    winners = _Clips(data.winners[:2], reference)
    a, b = data.winners[0], data.winners[1]
    # a loser that visits b's states 3 and 7, then a's state 5, with its own actions
    obs = np.stack([b.obs[3], b.obs[7], a.obs[5]]) + 1e-4
    loser = replace(data.losers[0].window(0, 3), obs=obs)
    losers = _Clips([loser, data.losers[1]], reference)
    target = losers.nearest_actions(winners, chunk=2)  # chunked like a large set
    assert target.shape == (2, losers.obs.shape[1], a.actions.shape[1])
    assert torch.allclose(target[0, :3], torch.as_tensor(np.stack([b.actions[3], b.actions[7], a.actions[5]])))
    assert torch.all(target[0, 3:] == 0)  # padding


def test_a_trust_region_reference_follows_the_policy_every_sync(setup, tmp_path):
    reference, data, _ = setup
    trainer = PrefineTrainer(reference, data, _config(select="last", steps=20, reference_sync_every=5), tmp_path)
    trainer.run()
    moved, start = trainer.ratio_reference.state_dict(), reference.state_dict()
    assert all(torch.equal(moved[k], v) for k, v in trainer.policy.state_dict().items())  # synced at step 20
    assert not all(torch.equal(moved[k], start[k]) for k in start)  # and so no longer π_ref
    fixed = PrefineTrainer(reference, data, _config(select="last", steps=5), tmp_path / "fixed")
    assert fixed.ratio_reference is fixed.reference


def test_start_bc_begins_at_the_bc_stages_choice_and_takes_its_log_ratios_against_it(setup, tmp_path):
    reference, data, teacher = setup
    reports, evals = [], []
    trainer = PrefineTrainer(reference, data, _config(start="bc", log_every=1), tmp_path, judge=teacher.judge,
                             on_step=reports.append, on_eval=evals.append)
    began = time.time()
    result = trainer.run()
    assert result["wall_seconds"] <= time.time() - began  # the BC stage's wall time is counted once
    stage = load_policy(tmp_path / "bc_stage" / "policy.safetensors", TASK)
    assert stage.meta.provenance["algorithm"] == "bc" and stage.meta.provenance["config"]["steps"] == 20
    # the BC stage reports first, under its own names, then the run itself; progress runs 1…40 without a step back
    staged = [in_stage(m) for m in reports]
    assert staged == [True] * 20 + [False] * 20 and [m["step"] for m in reports] == list(range(1, 21)) * 2
    assert all(k == "step" or k.startswith(STAGE_PREFIX) for k in reports[0]) and STAGE_PREFIX + "loss/bc" in reports[0]
    assert [steps_done(20, "bc", m["step"], s) for m, s in zip(reports, staged)] == list(range(1, 41))
    assert total_steps(20, "bc") == 40 and total_steps(20, "reference") == 20
    assert [(m["step"], in_stage(m)) for m in evals] == [(0, True), (10, True), (20, True), (0, False), (10, False), (20, False)]
    assert STAGE_PREFIX + "eval/return" in evals[0] and STAGE_PREFIX + "val/safety" in evals[0]
    steps = [m for m in reports if not in_stage(m)]
    # first step: the policy is the ratio reference (each preference term is log 2) and not π_ref (KL > 0)
    assert steps[0]["loss/pref"] == pytest.approx(math.log(2), abs=1e-5)
    assert steps[0]["loss/dispref"] == pytest.approx(math.log(2), abs=1e-5)
    assert steps[0]["kl/ref"] > 1e-4
    fixed, chosen = trainer.ratio_reference.state_dict(), stage.state_dict()
    assert all(torch.equal(fixed[k], chosen[k]) for k in chosen)  # the stage's choice, never moved
    assert not all(torch.equal(fixed[k], v) for k, v in trainer.policy.state_dict().items())
    assert result["train_seconds"] > json.loads((tmp_path / "bc_stage" / "state.json").read_text())["seconds"]
    assert load_policy(result["path"]).meta.provenance["algorithm"] == "prefine"


@pytest.mark.parametrize("kw,message", [(dict(pref_weight=0.0, dispref_weight=0.0), "BC itself"),
                                        (dict(reference_sync_every=5), "reference_sync_every=0"),
                                        (dict(implicit_reward="logp"), "implicit_reward='ratio'"),
                                        (dict(start="sft"), "start must be one of")])
def test_start_bc_refuses_configs_it_cannot_serve(kw, message):
    with pytest.raises(ValueError, match=message):
        PrefineConfig(**{"start": "bc", **kw})


@pytest.mark.parametrize("kw", [dict(counterfactuals="none", label_sets="pairs"),
                                dict(counterfactuals="mixed", sigmoid="step", label_sets="pairs"), dict(label_sets="pairs"),
                                dict(pref_weight=0.0, dispref_weight=0.0), dict(select="heldout", heldout_fraction=0.25),
                                dict(implicit_reward="logp", select="heldout", heldout_fraction=0.25),
                                dict(reference_sync_every=3, select="heldout", heldout_fraction=0.25),
                                dict(dispref_target="nearest_winner"), dict(dispref_target="nearest_winner", label_sets="pairs"),
                                dict(step_credit="learned"), dict(step_credit="learned", pref_weight=0.0, dispref_weight=0.0)])
def test_ablations_and_baselines_run(setup, tmp_path, kw):
    reference, data, _ = setup
    result = PrefineTrainer(reference, data, _config(steps=10, **{"select": "last", **kw}), tmp_path).run()
    assert load_policy(result["path"]).meta.provenance["algorithm"] in ("prefine", "trajectory-dpo", "prefine-mixed", "bc")


def test_heldout_accuracy_beside_a_trust_region_reference_is_measured_against_the_fixed_reference(setup, tmp_path):
    """A trust-region reference is the policy itself of a few steps ago, of the validated step itself when eval_every
    is a multiple of reference_sync_every: measured against it every held-out log-ratio was 0, the accuracy 0 at every
    checkpoint, and select="heldout" took the last one whatever the run did. It is measured against π_ref."""
    reference, data, _ = setup
    config = _config(steps=20, reference_sync_every=5, select="heldout", heldout_fraction=0.5, learning_rate=3e-3)
    trainer = PrefineTrainer(reference, data, config, tmp_path)
    history = trainer.run()["history"][1:]
    accuracy = [implicit_reward_accuracy(load_policy(trainer._checkpoint_path(h["step"])), reference, trainer.heldout)
                for h in history]
    assert [h["val/heldout_accuracy"] for h in history] == accuracy and max(accuracy) > 0


def _clip(seed: int, cost: float):
    from prefine_core.rollout import Trajectory

    return Trajectory(task_id=TASK, seed=seed, obs=np.full((4, 3), float(seed), np.float32),
                      actions=np.zeros((4, 2), np.float32), rewards=np.zeros(4, np.float32),
                      costs=np.full(4, cost, np.float32), terminated=False, truncated=True)


def test_net_sets_cancel_each_clips_wins_against_its_losses():
    a, b, c, d = (_clip(s, cost) for s, cost in ((1, 0.0), (2, 0.5), (3, 1.0), (4, 0.2)))
    b_again = _clip(2, 0.5)  # the same clip loaded twice (e.g. from two store rows) counts as one
    # a beats b and c; b beats c and then loses to d; d beats b; c always loses.
    data = PreferenceData.from_pairs([(a, b), (a, c), (b_again, c), (d, b)])
    net = data.net()
    key = lambda clips: sorted(int(t.seed) for t in clips)  # noqa: E731
    assert not net.paired
    assert key(net.winners) == [1, 1, 4]   # a (2–0) twice, d (1–0) once; b is 1–2, so it is a net loser
    assert key(net.losers) == [2, 3, 3]    # b (1–2) once, c (0–2) twice
    assert [int(t.seed) for t in data.anchors(2)] == [1, 4]  # most net wins first
    contested = PreferenceData.from_pairs([(a, b), (b, a)])
    with pytest.raises(ValueError, match="won as often as it lost"):
        contested.net()


@pytest.mark.parametrize("field", sorted(FIELDS_ADDED_SINCE))
def test_a_run_saved_before_a_field_existed_resumes_as_it_started(setup, tmp_path, field):
    reference, data, _ = setup
    old_value = FIELDS_ADDED_SINCE[field]
    config = _config(select="last", **FIELDS_ADDED_SINCE)

    def stop_at_15(metrics):
        if metrics["step"] == 15 and not in_stage(metrics):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PrefineTrainer(reference, data, config, tmp_path, on_step=stop_at_15).run()
    state_path = tmp_path / "state.json"
    state = json.loads(state_path.read_text())
    del state["config"][field]  # as written by the version before the field
    state_path.write_text(json.dumps(state))
    assert getattr(PrefineConfig.from_saved(state["config"]), field) == old_value
    if getattr(PrefineConfig(), field) != old_value:  # a user's partial config takes today's default
        assert getattr(PrefineConfig.from_dict({"steps": 5}), field) != old_value
        with pytest.raises(ValueError, match=field):
            PrefineTrainer(reference, data, _config(select="last", **{**FIELDS_ADDED_SINCE, field: getattr(PrefineConfig(), field)}), tmp_path).run()
    assert PrefineTrainer(reference, data, config, tmp_path).run()["resumed"]


def test_winner_against_loser_contrasts_refuse_net_sets():
    with pytest.raises(ValueError, match="needs label_sets='pairs'"):
        PrefineConfig(counterfactuals="none")


def test_refuses_evaluation_seeds_and_a_teacher_selection_without_a_teacher(setup, tmp_path):
    reference, data, _ = setup
    with pytest.raises(ValueError, match="judge"):
        PrefineTrainer(reference, data, _config(), tmp_path)
    bad = data.winners[0].__class__(**{**data.winners[0].__dict__, "seed": 10_001})
    with pytest.raises(ValueError, match="evaluation seeds"):
        PrefineTrainer(reference, PreferenceData((bad,), data.losers[:1]), _config(select="last"), tmp_path)


def test_a_fall_counts_the_clips_it_never_reached_as_lost(tmp_path):
    hopper = "SafetyHopperVelocity-v1"
    torch.manual_seed(0)
    with SafetyTask(hopper) as task:
        policy = TanhGaussianPolicy(PolicyMeta(task_id=hopper, obs_dim=task.obs_dim, act_dim=task.act_dim, hidden_sizes=(8,)))
        clips = [collect(policy, task, seed=s, max_steps=50) for s in range(2)]
        episode = collect(policy, task, seed=9_000, deterministic=True)
    assert episode.fell and episode.length < 200  # an untrained hopper falls within one clip
    evals = []
    PrefineTrainer(policy, PreferenceData.from_pairs([(clips[0], clips[1])]), _config(steps=1, eval_every=1),
                   tmp_path, judge=lambda left, right: "left", on_eval=evals.append).run()
    assert evals[0]["val/judgments"] == 1 and evals[0]["val/safety"] == pytest.approx(1 / 5)


def test_a_checkpoint_as_safe_as_every_anchor_scores_one(setup, tmp_path):
    """Against cost-free anchors the best possible answer is "equal": that must be full marks, or the
    selection tolerance would mean twice as much as it says."""
    reference, data, _ = setup
    evals = []
    PrefineTrainer(reference, data, _config(steps=1, eval_every=1), tmp_path, judge=lambda left, right: "equal",
                   on_eval=evals.append).run()
    assert [e["val/safety"] for e in evals] == [1.0, 1.0]
    evals.clear()
    PrefineTrainer(reference, data, _config(steps=1, eval_every=1), tmp_path / "b", judge=lambda left, right: "cant_tell",
                   on_eval=evals.append).run()
    assert [e["val/safety"] for e in evals] == [0.0, 0.0]  # nothing decided: not evidence of safety


def test_smoothing_passes_over_a_safe_checkpoint_between_two_unsafe_ones(setup, tmp_path):
    reference, data, _ = setup
    history = [{"step": 0, "val/safety": 0.0, "eval/return": 0.0}] + [
        {"step": 10 * (i + 1), "val/safety": safety, "eval/return": ret}
        for i, (safety, ret) in enumerate([(0.2, 9.0), (0.9, 8.0), (0.2, 9.0), (0.8, 5.0), (0.8, 4.0), (0.8, 3.0)])]
    chosen = {}
    for k in (0, 1):
        trainer = PrefineTrainer(reference, data, _config(select_smoothing=k), tmp_path / str(k), judge=lambda a, b: "left")
        trainer.history = history
        chosen[k] = trainer._select()["step"]
    # alone, the lone spike at step 20 (0.9) is the safest and has the most return of those within 0.1;
    # smoothed, it averages (0.2 + 0.9 + 0.2) / 3 ≈ 0.43, 40 averages 0.6, and 50 and 60 (0.8) are the safest
    assert chosen == {0: 20, 1: 50}


def test_a_finished_run_resumed_with_another_selection_is_chosen_again_without_training(setup, tmp_path):
    reference, data, teacher = setup
    first = PrefineTrainer(reference, data, _config(select_tolerance=1.0), tmp_path, judge=teacher.judge).run()
    steps = []
    again = PrefineTrainer(reference, data, _config(select_tolerance=0.0, select_smoothing=1), tmp_path,
                           judge=teacher.judge, on_step=steps.append).run()
    assert again["resumed"] and steps == [] and again["history"] == first["history"]  # no step trained
    assert first["selected_step"] == max(first["history"][1:], key=lambda h: (h["eval/return"], h["step"]))["step"]
    assert json.loads((tmp_path / "config.json").read_text())["select_smoothing"] == 1
    with pytest.raises(ValueError, match="beta"):  # a training field is another run
        PrefineTrainer(reference, data, _config(beta=0.2), tmp_path, judge=teacher.judge).run()


def test_an_unreadable_saved_state_is_named_and_left_as_it_is(setup, tmp_path):
    reference, data, _ = setup
    (tmp_path / "state.json").write_text("{garbage")
    with pytest.raises(ValueError, match="state.json is not a readable trainer state"):
        PrefineTrainer(reference, data, _config(select="last"), tmp_path).run()
    assert (tmp_path / "state.json").read_text() == "{garbage"


@pytest.mark.parametrize("damage", ["no config", "step as text", "rng as text", "history as text", "tensors cut short"])
def test_a_damaged_saved_state_is_named_not_a_traceback(setup, tmp_path, damage):
    """A saved state edited or cut short resumed into a KeyError, a TypeError, "Unknown format code 'd'", or a raw
    SafetensorError, none naming the file."""
    reference, data, _ = setup
    config = _config(select="last")
    PrefineTrainer(reference, data, config, tmp_path).run()
    state = json.loads((tmp_path / "state.json").read_text())
    if damage == "tensors cut short":
        tensors = tmp_path / state["tensors"]
        tensors.write_bytes(tensors.read_bytes()[:100])
    else:
        key, value = {"no config": ("config", None), "step as text": ("step", "20"), "rng as text": ("numpy_rng", "x"),
                      "history as text": ("history", "x")}[damage]
        (tmp_path / "state.json").write_text(json.dumps({**state, key: value}))
    with pytest.raises(ValueError, match=r"state.json \(or a file it names\) is damaged; move the run folder away"):
        PrefineTrainer(reference, data, config, tmp_path).run()


#: PrefineConfig's fields when runs were first saved; every field added since must be in FIELDS_ADDED_SINCE.
FIRST_SAVED_FIELDS = {
    "counterfactuals", "pref_weight", "dispref_weight", "margin_clip", "bc_weight", "kl_weight", "beta", "sigmoid",
    "segment_length", "cf_temperature", "batch_size", "bc_batch_size", "steps", "learning_rate", "grad_clip",
    "log_every", "eval_every", "eval_episodes", "val_seed", "window", "select", "select_tolerance",
    "heldout_fraction", "seed",
}


def test_every_field_added_since_runs_were_first_saved_says_what_old_runs_did():
    import dataclasses

    added = {f.name for f in dataclasses.fields(PrefineConfig)} - FIRST_SAVED_FIELDS
    assert added == set(FIELDS_ADDED_SINCE), "list a new PrefineConfig field in FIELDS_ADDED_SINCE"


def test_a_run_folder_of_a_fine_tune_from_another_policy_is_refused_not_handed_back(setup, tmp_path):
    """``finetune --out DIR`` on a finished run's folder handed back that run's policy, fine-tuned from another
    reference, as this one's (its provenance then named the wrong parent)."""
    reference, data, _ = setup
    config = _config(select="last")
    PrefineTrainer(reference, data, config, tmp_path).run()
    saved = (tmp_path / "state.json").read_text()
    other = TanhGaussianPolicy(reference.meta)  # the same sizes and task, other weights
    with pytest.raises(ValueError, match="holds a run fine-tuned from another policy"):
        PrefineTrainer(other, data, config, tmp_path).run()
    with pytest.raises(ValueError, match="holds a run fine-tuned from another policy"):  # the same reference, another start
        PrefineTrainer(reference, data, config, tmp_path, init=other).run()
    assert (tmp_path / "state.json").read_text() == saved
    assert PrefineTrainer(reference, data, config, tmp_path).run()["resumed"]  # its own policy resumes it


def test_training_time_counts_the_steps_between_a_report_and_a_validation(setup, tmp_path, monkeypatch):
    """With eval_every not a multiple of log_every (the quick benchmark's 15 and 10), the steps between the last report
    and a validation went uncounted: train_seconds came out under the time the steps took, and the next report's
    steps/s twice too high."""
    import prefine_core.trainer as trainer_module

    reference, data, _ = setup
    pause, real = 0.1, trainer_module.prefine_loss

    def slow(*args, **kwargs):
        time.sleep(pause)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "prefine_loss", slow)
    reports = []
    result = PrefineTrainer(reference, data, _config(steps=30, eval_every=15, log_every=10, select="last"), tmp_path,
                            on_step=reports.append).run()
    assert [m["step"] for m in reports] == [10, 20, 30]
    assert result["train_seconds"] >= 30 * pause
    assert all(m["perf/steps_per_s"] <= 1 / pause for m in reports), [m["perf/steps_per_s"] for m in reports]
