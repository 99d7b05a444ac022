"""The tanh-Gaussian actor and its checkpoint format."""
import json
import pickle
import re

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from prefine_core.policy import CheckpointError, PolicyMeta, TanhGaussianPolicy, load_policy, read_meta, save_policy
from tests.conftest import CHEETAH, HOPPER, make_policy


def _reference_distribution(policy, obs):
    mean, std = policy.distribution(obs)
    return TransformedDistribution(Independent(Normal(mean, std), 1), [TanhTransform()])


def test_log_prob_matches_torch_distributions(cheetah_policy):
    obs = torch.randn(5, 17)
    reference = _reference_distribution(cheetah_policy, obs)
    actions = reference.sample()
    expected = reference.log_prob(actions.clamp(-0.999999, 0.999999))
    assert torch.allclose(cheetah_policy.log_prob(obs, actions), expected, atol=1e-3)


def test_log_prob_is_finite_at_the_bounds(cheetah_policy):
    obs = torch.randn(3, 17)
    actions = torch.tensor([[1.0] * 6, [-1.0] * 6, [1.0, -1.0, 0.0, 0.5, -0.5, 1.0]])
    logp = cheetah_policy.log_prob(obs, actions)
    assert torch.isfinite(logp).all()
    logp.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in cheetah_policy.parameters() if p.grad is not None)


def test_act_deterministic_is_tanh_mean_and_stochastic_is_seeded(cheetah_policy):
    obs = np.random.default_rng(0).standard_normal(17).astype(np.float32)
    mean, _ = cheetah_policy.distribution(torch.as_tensor(obs))
    assert np.allclose(cheetah_policy.act(obs, deterministic=True), torch.tanh(mean).detach().numpy())
    a = cheetah_policy.act(obs, deterministic=False, rng=np.random.default_rng(1))
    b = cheetah_policy.act(obs, deterministic=False, rng=np.random.default_rng(1))
    c = cheetah_policy.act(obs, deterministic=False, rng=np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and np.abs(a).max() <= 1


def test_checkpoint_round_trip_keeps_weights_and_metadata(tmp_path):
    policy = make_policy(CHEETAH, name="ref", parent="base.safetensors", provenance={"algorithm": "ppo", "steps": 7})
    path = save_policy(policy, tmp_path / "p.safetensors")
    loaded = load_policy(path, task_id=CHEETAH)
    assert loaded.meta == policy.meta
    for key, value in policy.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert read_meta(path).provenance == {"algorithm": "ppo", "steps": 7}
    assert not list(tmp_path.glob(".*")), "no temp files left behind"


def test_pickle_disguised_as_checkpoint_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="not a readable safetensors policy"):
        load_policy(path)
    assert not marker.exists()


def test_truncated_and_corrupt_checkpoints_are_rejected(tmp_path, policy_file):
    data = policy_file.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_policy(tmp_path / "trunc.safetensors")
    (tmp_path / "noise.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError):
        load_policy(tmp_path / "noise.safetensors")
    with pytest.raises(CheckpointError, match="no policy file"):
        load_policy(tmp_path / "missing.safetensors")


def test_a_policy_whose_file_name_is_in_another_encoding_loads(tmp_path, policy_file):
    """safetensors opens a file only by a name it can encode: a byte copy of a policy named b"\\xff\\xfe" was
    called corrupt (while importing the same file, read as bytes, worked)."""
    import os

    odd = tmp_path / os.fsdecode(b"\xff\xfe.safetensors")
    odd.write_bytes(policy_file.read_bytes())
    assert read_meta(odd).to_json() == read_meta(policy_file).to_json()
    assert load_policy(odd).state_dict().keys() == load_policy(policy_file).state_dict().keys()


def test_wrong_task_and_wrong_shapes_are_rejected(tmp_path, policy_file):
    with pytest.raises(CheckpointError, match=f"policy for {CHEETAH}, not for {HOPPER}"):
        load_policy(policy_file, task_id=HOPPER)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(policy_file))
    meta = json.loads(read_meta(policy_file).to_json())
    meta["hidden_sizes"] = [32, 32]
    save_file(tensors, str(tmp_path / "shape.safetensors"), metadata={"prefine": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="does not match its metadata's sizes"):
        load_policy(tmp_path / "shape.safetensors")
    save_file(tensors, str(tmp_path / "nometa.safetensors"))
    with pytest.raises(CheckpointError, match="no PREFINE metadata"):
        load_policy(tmp_path / "nometa.safetensors")


def test_meta_validates_its_fields():
    with pytest.raises(ValueError, match="obs_dim"):
        PolicyMeta(task_id=CHEETAH, obs_dim=0, act_dim=6)
    with pytest.raises(ValueError, match="hidden_sizes"):
        PolicyMeta(task_id=CHEETAH, obs_dim=17, act_dim=6, hidden_sizes=(64, -1))
    TanhGaussianPolicy(PolicyMeta(task_id=CHEETAH, obs_dim=17, act_dim=6, hidden_sizes=(8,)))


@pytest.mark.parametrize("change,says", [
    (lambda m: m.pop("task_id"), "metadata lacks the fields ['task_id']"),
    (lambda m: m.update(task_id=7), "metadata field task_id must be a task id, got 7"),
    (lambda m: m.update(hidden_sizes=64), "metadata field hidden_sizes must be a list, got 64"),
    (lambda m: m.update(provenance=[1]), "metadata field provenance must be a JSON object"),
])
def test_metadata_missing_or_mistyped_fields_are_named(tmp_path, policy_file, change, says):
    """(These once surfaced as ``PolicyMeta.__init__() missing 1 required positional argument`` or a bare TypeError.)"""
    from safetensors.torch import load_file, save_file

    meta = json.loads(read_meta(policy_file).to_json())
    change(meta)
    save_file(load_file(str(policy_file)), str(tmp_path / "bad.safetensors"), metadata={"prefine": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=re.escape(says)):
        load_policy(tmp_path / "bad.safetensors")


def test_sizes_a_file_merely_claims_are_checked_before_a_network_is_built(tmp_path, policy_file):
    """hidden_sizes [10⁶, 10⁶] in a 24 KB upload made the app allocate 4 TB (a RuntimeError traceback on Data)."""
    from safetensors.torch import load_file, save_file

    from prefine_core.policy import expected_shapes

    meta = PolicyMeta(task_id=CHEETAH, obs_dim=17, act_dim=6, hidden_sizes=(8, 5, 3))
    assert expected_shapes(meta) == {k: tuple(v.shape) for k, v in TanhGaussianPolicy(meta).state_dict().items()}
    claims = json.loads(read_meta(policy_file).to_json())
    claims["hidden_sizes"] = [1_000_000, 1_000_000]
    save_file(load_file(str(policy_file)), str(tmp_path / "huge.safetensors"), metadata={"prefine": json.dumps(claims)})
    with pytest.raises(CheckpointError, match=r"does not match its metadata's sizes \(log_std|mean_net"):
        load_policy(tmp_path / "huge.safetensors")


@pytest.mark.parametrize("field, value, says", [
    ("obs_dim", True, "obs_dim must be a whole number from 1 to 1000000, got True"),
    ("act_dim", 10**30, f"act_dim must be a whole number from 1 to 1000000, got {10**30}"),
    ("hidden_sizes", [True, 64], "hidden_sizes must be whole numbers from 1 to 1000000, got (True, 64)"),
    ("hidden_sizes", [10**30, 64], f"hidden_sizes must be whole numbers from 1 to 1000000, got ({10**30}, 64)"),
])
def test_metadata_sizes_that_are_bools_or_past_any_network_are_named(tmp_path, policy_file, field, value, says):
    """JSON's true passed as the int 1 and 10**30 as a size: torch failed on them outside the metadata check
    ("zeros(): … must be tuple of ints, not bool", "Overflow when unpacking long long"), a traceback in every
    command."""
    from safetensors.torch import load_file, save_file

    meta = json.loads(read_meta(policy_file).to_json())
    meta[field] = value
    save_file(load_file(str(policy_file)), str(tmp_path / "bad.safetensors"), metadata={"prefine": json.dumps(meta)})
    for read in (read_meta, load_policy):
        with pytest.raises(CheckpointError, match=re.escape(f"bad.safetensors has invalid metadata: {says}")):
            read(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match=field):
        PolicyMeta(**{"task_id": CHEETAH, "obs_dim": 17, "act_dim": 6, field: value})


def test_a_policy_whose_network_does_not_fit_the_task_it_names_is_refused_by_name(tmp_path):
    """A cheetah's weights under metadata naming Hopper (sizes consistent with the weights) passed ``load_policy``:
    ``pretrain --init`` failed in ``load_state_dict``, ``info`` printed it, and a rollout said "policy for
    SafetyHopperVelocity-v1 … does not fit SafetyHopperVelocity-v1", naming neither the file nor what was wrong."""
    from safetensors.torch import save_file

    cheetah = make_policy(CHEETAH)
    tensors = {k: v.contiguous() for k, v in cheetah.state_dict().items()}
    meta = json.loads(cheetah.meta.to_json())
    meta["task_id"] = HOPPER
    save_file(tensors, str(tmp_path / "wrongtask.safetensors"), metadata={"prefine": json.dumps(meta)})
    says = (f"wrongtask.safetensors does not fit the task it names: {HOPPER}'s observations have 11 numbers and "
            "actions 3, but its network takes 17 and gives 6")
    for task_id in (None, HOPPER):
        with pytest.raises(CheckpointError, match=re.escape(says)):
            load_policy(tmp_path / "wrongtask.safetensors", task_id=task_id)
    meta["task_id"] = "SafetyNope-v9"
    save_file(tensors, str(tmp_path / "nope.safetensors"), metadata={"prefine": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="nope.safetensors names a task that cannot be run here: unknown task id"):
        load_policy(tmp_path / "nope.safetensors")


def test_a_policy_used_in_another_task_is_named_by_its_file(policy_file):
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import check_compatible

    with SafetyTask(HOPPER) as task:
        with pytest.raises(CheckpointError, match=re.escape(
                f"policy.safetensors is a policy for {CHEETAH} (obs 17, act 6), which does not fit {HOPPER} (obs 11, act 3)")):
            check_compatible(load_policy(policy_file), task)
        with pytest.raises(CheckpointError, match=re.escape(f"policy for {CHEETAH} (obs 17, act 6) does not fit {HOPPER}")):
            check_compatible(make_policy(CHEETAH), task)  # made here: no file to name
