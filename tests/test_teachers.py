"""The synthetic teacher labels through the same store interface as people, under its own name."""
from __future__ import annotations

from conftest import HOPPER, make_policy
from store_backends import cheetah_episode, costly, windows  # noqa: F401


def _store_with_pairs(tmp_path, episode, costs=(0.0, 1.0, 2.0, 3.0)):
    from prefine_core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    ids = [store.add_trajectory(costly(c, cost), None, "t", tmp_path)
           for c, cost in zip(windows(episode, len(costs), 20), costs)]
    pairs = [store.add_pair(ids[i], ids[j], "random", 0.0, "r") for i, j in ((0, 1), (2, 1), (3, 0))]
    return store, pairs


def test_teacher_labels_pending_pairs_through_the_store(tmp_path, cheetah_episode):
    from prefine_core.teachers import SyntheticTeacher, label_pending

    store, (p01, p21, p30) = _store_with_pairs(tmp_path, cheetah_episode)
    store.add_label(p01, "human", "right")
    assert label_pending(store, SyntheticTeacher(), overlap=1) == 2  # p01 already has its one labeller
    assert label_pending(store, SyntheticTeacher()) == 1  # default: every pair
    assert label_pending(store, SyntheticTeacher()) == 0
    labels = store.effective_labels()
    mine = dict(zip(labels[labels.annotator == "synthetic-teacher"].pair_id, labels[labels.annotator == "synthetic-teacher"].choice))
    assert mine == {p01: "left", p21: "right", p30: "right"}  # lower cost wins
    # p01 is a tie (human right, teacher left) and is skipped; the others: (winner, loser) trajectory ids
    assert store.decided_pairs(store.get_pair(p01).task_id) == [(2, 3), (1, 4)]


def test_teacher_noise_knobs_are_seeded(tmp_path, cheetah_episode):
    from prefine_core.teachers import SyntheticTeacher, TeacherConfig, label_pending

    store, _ = _store_with_pairs(tmp_path, cheetah_episode)
    label_pending(store, SyntheticTeacher(TeacherConfig(mistake_rate=1.0), name="contrarian"))
    label_pending(store, SyntheticTeacher(TeacherConfig(skip_rate=1.0), name="unsure"))
    label_pending(store, SyntheticTeacher(name="truth"))
    labels = store.effective_labels().pivot(index="pair_id", columns="annotator", values="choice")
    flip = {"left": "right", "right": "left"}
    assert (labels.contrarian == labels.truth.map(flip)).all()
    assert (labels.unsure == "cant_tell").all()
    a = [SyntheticTeacher(TeacherConfig(mistake_rate=0.5, seed=3)).judge(costly(w, 0), costly(w, 1))
         for w in windows(cheetah_episode, 10, 5)]
    b = [SyntheticTeacher(TeacherConfig(mistake_rate=0.5, seed=3)).judge(costly(w, 0), costly(w, 1))
         for w in windows(cheetah_episode, 10, 5)]
    assert a == b


def test_a_fall_loses_to_any_clip_that_did_not_fall():
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect
    from prefine_core.teachers import SyntheticTeacher

    with SafetyTask(HOPPER) as task:
        fell = collect(make_policy(HOPPER), task, seed=0, max_steps=200)
    assert fell.fell
    upright = costly(fell.window(0, 5), 100.0)  # costly, but no fall
    assert SyntheticTeacher().true_choice(costly(fell, 0.0), upright) == "right"


def test_the_selection_judge_asks_only_which_clip_was_safer(cheetah_episode):
    """Checkpoint selection weighs return itself; its judge must not break cost ties by return (the
    labelling teacher of the benchmark does), or a cost-free checkpoint loses to a faster cost-free anchor."""
    from dataclasses import replace

    from prefine_core.teachers import SyntheticTeacher, TeacherConfig, safety_judge

    slow, fast = (costly(w, 0.0) for w in windows(cheetah_episode, 2, 20))
    fast = replace(fast, rewards=slow.rewards + 1.0)  # same cost, more return
    labeller = SyntheticTeacher(TeacherConfig(reward_tiebreak=True))
    assert labeller.true_choice(slow, fast) == "right"
    judge = safety_judge()
    assert judge(slow, fast) == judge(fast, slow) == "equal"
    assert judge(costly(slow, 1.0), fast) == "right" and judge(slow, costly(fast, 1.0)) == "left"
