"""Bad input: each is rejected with a message naming the problem, the store and workspace unchanged,
and no file a user hands in ever runs code (a pickle payload would leave a marker file behind).

Entry points: the library, the CLI (``python -m prefine_core``) and the app's upload path
(:func:`prefine_core.transfer.import_upload`, what the Data page calls) or the pages via AppTest.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import CHEETAH, HOPPER, choice_button, clips_workspace, make_policy

REPO = Path(__file__).resolve().parent.parent


class Payload:
    """Unpickling this creates ``path``: proof that a file was (or, as we assert, was not) executed."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def snapshot(ws) -> tuple:
    """What a rejected input must leave untouched: every row count and every file under the workspace."""
    store = ws.store
    rows = (len(store.list_policies()), len(store.list_trajectories()), len(store.list_pairs()),
            len(store.label_history()), len(store.list_runs()))
    files = sorted(str(p.relative_to(ws.root)) for p in ws.root.rglob("*") if p.is_file() and p.name != "prefine.db"
                   and not p.name.startswith("prefine.db"))
    return rows, files


def cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL="egl", PREFINE_SHIPPED_POLICIES="")
    env.pop("PREFINE_DB_URL", None)
    return subprocess.run([sys.executable, "-m", "prefine_core", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A small labelled workspace: one policy, 6 real clips, 3 pairs, 3 labels; and its export."""
    from prefine_core.exchange import export_bundle

    root = tmp_path_factory.mktemp("bad-input")
    ws = clips_workspace(root / "ws", ("left", "right", "equal"))
    export_bundle(ws, root / "export", CHEETAH)
    ws.export_folder = root / "export"
    return ws


@pytest.fixture
def bundle(ws, tmp_path):
    """A fresh, valid copy of the workspace's export, to break in one way."""
    folder = tmp_path / "bundle"
    shutil.copytree(ws.export_folder, folder)
    return folder


def rewrite_jsonl(path: Path, edit) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))


# -- checkpoints ---------------------------------------------------------------------------------

def _valid_bytes(tmp_path) -> bytes:
    from prefine_core.policy import save_policy

    return save_policy(make_policy(CHEETAH), tmp_path / "valid.safetensors").read_bytes()


def _wrong_shape(tmp_path) -> bytes:
    from safetensors.torch import save_file

    policy = make_policy(CHEETAH)
    tensors = {k: v.contiguous() for k, v in policy.state_dict().items()}
    tensors["mean_net.0.weight"] = torch.zeros(3, 3)
    save_file(tensors, str(tmp_path / "shape.safetensors"), metadata={"prefine": policy.meta.to_json()})
    return (tmp_path / "shape.safetensors").read_bytes()


def _non_finite(tmp_path) -> bytes:
    from safetensors.torch import save_file

    policy = make_policy(CHEETAH)
    tensors = {k: v.contiguous().clone() for k, v in policy.state_dict().items()}
    tensors["log_std"][0] = float("nan")
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata={"prefine": policy.meta.to_json()})
    return (tmp_path / "nan.safetensors").read_bytes()


def _no_metadata(tmp_path) -> bytes:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    return (tmp_path / "plain.safetensors").read_bytes()


def _bad_metadata(tmp_path) -> bytes:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "meta.safetensors"), metadata={"prefine": "{not json"})
    return (tmp_path / "meta.safetensors").read_bytes()


BROKEN_CHECKPOINTS = {
    "random bytes": (lambda tmp: os.urandom(4096), "not a readable safetensors policy"),
    "truncated": (lambda tmp: _valid_bytes(tmp)[: len(_valid_bytes(tmp)) // 2], "not a readable safetensors policy"),
    "empty": (lambda tmp: b"", "not a readable safetensors policy|empty"),
    "wrong shape": (_wrong_shape, "does not match its metadata's sizes"),
    "non-finite": (_non_finite, "non-finite"),
    "no metadata": (_no_metadata, "no PREFINE metadata"),
    "bad metadata": (_bad_metadata, "invalid metadata"),
}


@pytest.mark.parametrize("kind", BROKEN_CHECKPOINTS)
def test_broken_checkpoint_is_refused_by_the_library_and_the_upload(kind, ws, tmp_path):
    from prefine_core import transfer
    from prefine_core.policy import CheckpointError, load_policy

    make, message = BROKEN_CHECKPOINTS[kind]
    path = tmp_path / "broken.safetensors"
    path.write_bytes(make(tmp_path))
    with pytest.raises(CheckpointError, match=message):
        load_policy(path)
    before = snapshot(ws)
    with pytest.raises(ValueError, match="is not a usable policy"):
        transfer.import_upload(ws, "broken.safetensors", path.read_bytes() or b"\0", CHEETAH)
    assert snapshot(ws) == before


def test_wrong_task_checkpoint_is_refused_where_the_task_is_known(ws, tmp_path):
    from prefine_core import launcher
    from prefine_core.policy import CheckpointError, load_policy, save_policy

    path = save_policy(make_policy(HOPPER), tmp_path / "hopper.safetensors")
    with pytest.raises(CheckpointError, match=f"is a policy for {HOPPER}, not for {CHEETAH}"):
        load_policy(path, task_id=CHEETAH)
    hopper_id = ws.store.add_policy("hopper", path, HOPPER, "imported")
    runs = len(ws.store.list_runs())
    with pytest.raises(ValueError, match=f"is a policy for {HOPPER}, not {CHEETAH}; pick a policy for {CHEETAH}"):
        launcher.launch_finetune(ws, CHEETAH, hopper_id, {})
    assert len(ws.store.list_runs()) == runs


def test_a_policy_whose_checkpoint_is_missing_is_refused_before_a_job_starts(ws, tmp_path):
    """A policy imported from an export made without checkpoints names a file that is not here: a fine-tune or a
    comparison of it started a process that failed with "no policy file"."""
    from prefine_core import comparison, launcher

    gone = ws.store.add_policy("gone", tmp_path / "gone.safetensors", CHEETAH, "imported")
    reference = ws.store.list_policies(CHEETAH, kind="reference")[0].id
    runs = len(ws.store.list_runs())
    with pytest.raises(ValueError, match=f"gone \\(policy {gone}\\) has no checkpoint here"):
        launcher.launch_finetune(ws, CHEETAH, gone, {})
    with pytest.raises(ValueError, match=f"gone \\(policy {gone}\\) has no checkpoint here"):
        comparison.launch_comparison(ws, CHEETAH, comparison.comparison_config(reference, gone))
    assert len(ws.store.list_runs()) == runs


def test_a_policy_whose_checkpoint_was_damaged_since_is_refused_before_a_job_starts(ws, tmp_path):
    """A checkpoint whose weights became NaN passed the launch checks; the compare process then failed with
    "policy.safetensors holds non-finite values", not saying whether A or B was broken."""
    from prefine_core import comparison, launcher
    from prefine_core.policy import save_policy

    broken = make_policy(CHEETAH)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    path = tmp_path / "run" / "policy.safetensors"
    save_policy(broken, path)
    damaged = ws.store.add_policy("damaged", path, CHEETAH, "finetuned")
    reference = ws.store.list_policies(CHEETAH, kind="reference")[0].id
    runs = len(ws.store.list_runs())
    with pytest.raises(ValueError, match=f"damaged \\(policy {damaged}\\) cannot be loaded: .*non-finite.*pick another"):
        comparison.launch_comparison(ws, CHEETAH, comparison.comparison_config(reference, damaged))
    with pytest.raises(ValueError, match=f"damaged \\(policy {damaged}\\) cannot be loaded"):
        launcher.launch_finetune(ws, CHEETAH, damaged, {})
    assert len(ws.store.list_runs()) == runs
    ws.store.delete_policy(damaged)  # the module's workspace, for the tests after this one


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickle_disguised_as_a_checkpoint_never_runs(how, ws, tmp_path):
    from prefine_core import transfer
    from prefine_core.policy import CheckpointError, load_policy

    marker = tmp_path / "executed"
    evil = tmp_path / "policy.safetensors"
    if how == "pickle":
        evil.write_bytes(pickle.dumps({"state_dict": Payload(marker)}))
    else:
        torch.save({"weights": Payload(marker)}, evil)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_policy(evil)
    before = snapshot(ws)
    with pytest.raises(ValueError, match="not a usable policy"):
        transfer.import_upload(ws, "policy.safetensors", evil.read_bytes(), CHEETAH)
    result = cli("info", "--policy", evil)
    assert result.returncode == 2 and "not a readable safetensors policy" in result.stderr
    assert not marker.exists(), "the pickle payload ran"
    assert snapshot(ws) == before


def test_policy_upload_with_an_unknown_task_or_wrong_sizes_is_refused(ws, tmp_path):
    from prefine_core import transfer
    from prefine_core.policy import PolicyMeta, TanhGaussianPolicy, save_policy

    unknown = save_policy(TanhGaussianPolicy(PolicyMeta(task_id="SafetyNope-v9", obs_dim=5, act_dim=2)),
                          tmp_path / "nope.safetensors")
    sizes = save_policy(TanhGaussianPolicy(PolicyMeta(task_id=CHEETAH, obs_dim=5, act_dim=2)), tmp_path / "small.safetensors")
    before = snapshot(ws)
    with pytest.raises(ValueError, match="unknown task id 'SafetyNope-v9'"):
        transfer.import_upload(ws, "nope.safetensors", unknown.read_bytes(), CHEETAH)
    with pytest.raises(ValueError, match="does not fit"):
        transfer.import_upload(ws, "small.safetensors", sizes.read_bytes(), CHEETAH)
    assert snapshot(ws) == before


@pytest.mark.parametrize("name", ["../../../../tmp/escape.safetensors", "/etc/escape.safetensors",
                                  "..\\..\\escape.safetensors", "sub/../../escape.safetensors"])
def test_upload_file_names_cannot_escape_the_workspace(name, ws, tmp_path):
    from prefine_core import transfer
    from prefine_core.policy import save_policy

    data = save_policy(make_policy(CHEETAH, name=name), tmp_path / "new.safetensors").read_bytes()  # not one it has
    message = transfer.import_upload(ws, name, data, CHEETAH)
    assert f"{name} was added" in message
    added = ws.store.list_policies()[-1]
    assert Path(added.path).resolve().is_relative_to(ws.policies_dir.resolve())
    assert not Path("/etc/escape.safetensors").exists() and not Path("/tmp/escape.safetensors").exists()
    assert not (ws.root.parent / "escape.safetensors").exists()


@pytest.mark.parametrize("name", ["..", "a\x00b.safetensors", "notes.txt", "policy.pkl", "policy.pt"])
def test_upload_names_of_the_wrong_kind_are_refused(name, ws, tmp_path):
    from prefine_core import transfer

    before = snapshot(ws)
    with pytest.raises(ValueError, match="is not a file PREFINE Studio can import"):  # refused by its kind, not later
        transfer.import_upload(ws, name, _valid_bytes(tmp_path), CHEETAH)
    assert snapshot(ws) == before


# -- HDF5 datasets ----------------------------------------------------------------------------------

def _hdf5(path: Path, n: int = 50, obs: int = 17, act: int = 6, **override) -> Path:
    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(n, obs)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(n, act)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32), "costs": np.zeros(n, np.float32),
            "terminals": np.zeros(n, bool), "timeouts": np.eye(1, n, n - 1, dtype=bool)[0]}
    data.update(override)
    with h5py.File(path, "w") as handle:
        for key, value in data.items():
            if value is not None:
                handle[key] = value
    return path


def _truncated_hdf5(path: Path) -> Path:
    _hdf5(path, n=2000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


BROKEN_HDF5 = {
    "not hdf5": (lambda p: (p.write_bytes(b"observations,actions\n1,2\n"), p)[1], "not a readable HDF5 file|not an HDF5 file"),
    "truncated": (_truncated_hdf5, "not a readable HDF5 file|could not be read"),
    "missing dataset": (lambda p: _hdf5(p, costs=None), r"lacks dataset\(s\) \['costs'\]"),
    "length mismatch": (lambda p: _hdf5(p, rewards=np.zeros(7, np.float32)), "rewards has 7 rows|has 50 rows, rewards has 7"),
    "nan rewards": (lambda p: _hdf5(p, rewards=np.full(50, np.nan, np.float32)), "rewards holds non-finite values"),
    "actions out of range": (lambda p: _hdf5(p, actions=np.full((50, 6), 5.0, np.float32)), r"outside \[-1, 1\]"),
    "wrong obs size": (lambda p: _hdf5(p, obs=11), "observations of size 11"),
    "3-d rewards": (lambda p: _hdf5(p, rewards=np.zeros((50, 2, 2), np.float32)), "rewards must be 1-D"),
    "rewards as text": (lambda p: _hdf5(p, rewards=np.array([b"x"] * 50)), r"dataset\(s\) \['rewards'\] hold \|S1 values, not real numbers"),
    "3-d observations": (lambda p: _hdf5(p, observations=np.zeros((50, 4, 7), np.float32)), r"observations of shape \(50, 4, 7\)"),
}


@pytest.mark.parametrize("kind", BROKEN_HDF5)
def test_malformed_hdf5_is_rejected_everywhere_and_changes_nothing(kind, ws, tmp_path):
    from prefine_core import transfer
    from prefine_core.datasets import import_hdf5

    make, message = BROKEN_HDF5[kind]
    path = make(tmp_path / "data.hdf5")
    before = snapshot(ws)
    with pytest.raises(ValueError, match=message):
        import_hdf5(ws, path, CHEETAH)
    with pytest.raises(ValueError, match=message):
        transfer.import_upload(ws, "data.hdf5", path.read_bytes(), CHEETAH)
    assert snapshot(ws) == before


def test_malformed_hdf5_through_the_cli(ws, tmp_path):
    path = _hdf5(tmp_path / "data.hdf5", costs=None)
    before = snapshot(ws)
    result = cli("import", path, "--task", CHEETAH, "--workspace", ws.root, "--json")
    assert result.returncode == 2 and "lacks dataset(s) ['costs']" in result.stderr
    assert json.loads(result.stdout)["error"]
    assert snapshot(ws) == before


def test_unknown_task_ids_are_refused(ws, tmp_path):
    from prefine_core.envs import SafetyTask, UnknownTaskError
    from prefine_core.datasets import import_hdf5

    with pytest.raises(UnknownTaskError, match="unknown task id 'SafetyCheetah-v1'; nearest"):
        SafetyTask("SafetyCheetah-v1")
    before = snapshot(ws)
    with pytest.raises(ValueError, match="unknown task id"):
        import_hdf5(ws, _hdf5(tmp_path / "d.hdf5"), "NotATask-v0")
    for args in (("pairs", "--task", "NotATask-v0", "--workspace", ws.root),
                 ("pretrain", "--task", "NotATask-v0", "--steps", "64", "--out", tmp_path / "x.safetensors")):
        result = cli(*args)
        assert result.returncode == 2 and "NotATask-v0" in result.stderr, result.stderr[-500:]
    assert snapshot(ws) == before


# -- export bundles (JSONL + npz + safetensors) ----------------------------------------------------

def _pickled_npz(path: Path, marker: Path) -> None:
    np.savez(path, obs=np.array([Payload(marker)], dtype=object))


def _narrow_first_clip(folder: Path) -> None:
    """The first clip of the bundle with its observations cut to 5 numbers each (a clip of no task's shape)."""
    path = next((folder / "arrays").iterdir())
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["obs"] = arrays["obs"][:, :5]
    np.savez(path, **arrays)


BROKEN_BUNDLES = {
    "bad json line": (lambda f, tmp: (f / "labels.jsonl").write_text("{\"id\": 1,\n"), "labels.jsonl line 1 is not valid JSON"),
    "json nested too deeply": (lambda f, tmp: (f / "labels.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n"),
                               "labels.jsonl line 1 is JSON nested too deeply to read"),
    "binary manifest": (lambda f, tmp: (f / "manifest.json").write_bytes(b"\xff\xfe\x00junk"), "manifest.json is not text"),
    "missing field": (lambda f, tmp: rewrite_jsonl(f / "pairs.jsonl", lambda rows: [{k: v for k, v in r.items() if k != "reason"} for r in rows]),
                      r"pairs.jsonl line 1 lacks field\(s\) \['reason'\]"),
    "partial": (lambda f, tmp: rewrite_jsonl(f / "labels.jsonl", lambda rows: rows[:-1]), "the export is partial"),
    "dangling pair": (lambda f, tmp: rewrite_jsonl(f / "labels.jsonl", lambda rows: [dict(rows[0], pair_id=999), *rows[1:]]),
                      "pair_id 999, which is not in the export"),
    "bad choice": (lambda f, tmp: rewrite_jsonl(f / "labels.jsonl", lambda rows: [dict(rows[0], choice="<b>left</b>"), *rows[1:]]),
                   "has choice"),
    "missing array": (lambda f, tmp: next((f / "arrays").iterdir()).unlink(), "which is missing"),
    "no manifest": (lambda f, tmp: (f / "manifest.json").unlink(), "the export has no manifest.json"),
    "no labels file": (lambda f, tmp: (f / "labels.jsonl").unlink(), "^labels.jsonl is missing from the export$"),
    "wrong format": (lambda f, tmp: (f / "manifest.json").write_text(json.dumps({"format": "other/9"})), "not a PREFINE export: its manifest.json says format 'other/9', where an export of PREFINE Studio says 'prefine-export/1'"),
    "no format": (lambda f, tmp: (f / "manifest.json").write_text("{}"), "not a PREFINE export: its manifest.json names no format"),
    "corrupt array": (lambda f, tmp: next((f / "arrays").iterdir()).write_bytes(b"PK\x03\x04garbage"), "not a readable trajectory file"),
    "wrong observation size": (lambda f, tmp: _narrow_first_clip(f), r"has observations of size 5 and actions of size 6; "
                               r"SafetyHalfCheetahVelocity-v1 has 17 and 6"),
    "unknown task": (lambda f, tmp: rewrite_jsonl(f / "trajectories.jsonl", lambda rows: [dict(r, task_id="Nope-v0") for r in rows]),
                     "Nope-v0"),
}


@pytest.mark.parametrize("kind", BROKEN_BUNDLES)
def test_malformed_bundle_is_rejected_and_changes_nothing(kind, ws, bundle, tmp_path):
    from prefine_core.exchange import import_bundle

    break_it, message = BROKEN_BUNDLES[kind]
    break_it(bundle, tmp_path)
    before = snapshot(ws)
    with pytest.raises(ValueError, match=message):
        import_bundle(ws, bundle)
    assert snapshot(ws) == before


def test_pickled_array_in_a_bundle_never_runs(ws, bundle, tmp_path):
    from prefine_core.exchange import import_bundle

    marker = tmp_path / "executed"
    target = next((bundle / "arrays").iterdir())
    target.unlink()
    _pickled_npz(target, marker)
    before = snapshot(ws)
    with pytest.raises(ValueError, match="not a readable trajectory file"):
        import_bundle(ws, bundle)
    assert not marker.exists(), "the pickle payload ran"
    assert snapshot(ws) == before


def test_bundle_cannot_point_outside_itself(ws, bundle, tmp_path):
    """A bundle's file names are relative to it: a policy 'file' of /etc/passwd or ../secret must not be
    copied into the workspace (and exported again: that would read any file on the server)."""
    from prefine_core.exchange import import_bundle

    secret = tmp_path / "secret.safetensors"
    secret.write_text("server secret")
    for file in (str(secret), "../secret.safetensors"):
        rewrite_jsonl(bundle / "policies.jsonl", lambda rows: [dict(r, file=file) for r in rows])
        before = snapshot(ws)
        with pytest.raises(ValueError, match="outside the export|not a readable safetensors policy"):
            import_bundle(ws, bundle)
        assert snapshot(ws) == before
    outside = tmp_path / "outside.npz"
    shutil.copyfile(next((bundle / "arrays").iterdir()), outside)
    rewrite_jsonl(bundle / "policies.jsonl", lambda rows: [dict(r, file=None) for r in rows])
    rewrite_jsonl(bundle / "trajectories.jsonl", lambda rows: [dict(rows[0], file="../outside.npz"), *rows[1:]])
    with pytest.raises(ValueError, match="outside the export"):
        import_bundle(ws, bundle)
    assert snapshot(ws) == before


def test_bundle_policy_that_is_not_a_checkpoint_is_rejected(ws, bundle):
    from prefine_core.exchange import import_bundle

    rows = [json.loads(line) for line in (bundle / "policies.jsonl").read_text().splitlines()]
    (bundle / rows[0]["file"]).write_bytes(b"#!/bin/sh\necho not a policy\n")
    before = snapshot(ws)
    with pytest.raises(ValueError, match="not a readable safetensors policy"):
        import_bundle(ws, bundle)
    assert snapshot(ws) == before


def test_export_never_copies_a_non_policy_file(ws, tmp_path):
    """A policy row whose path names some other file (a foreign bundle imported with file=null) is never copied; the
    export is refused by the policy's name (an import would refuse it), and nothing is left behind."""
    from prefine_core.exchange import export_bundle

    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0")
    foreign = ws.store.add_policy("foreign", secret, CHEETAH, "imported")
    try:
        with pytest.raises(ValueError, match=f"policy {foreign} comes without its checkpoint and names the file "
                                             f".*passwd, which is not a policy.*nothing was exported"):
            export_bundle(ws, tmp_path / "out", CHEETAH)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"], "no export, whole or partial"
    finally:
        ws.store.delete_policy(foreign)  # the module's workspace, for the tests after this one


# -- zip uploads --------------------------------------------------------------------------------------

def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["../escape.txt", "/tmp/prefine-escape.txt", "ok/../../escape.txt"])
def test_zip_with_path_traversal_is_refused_before_unpacking(member, ws):
    from prefine_core import transfer

    before = snapshot(ws)
    with pytest.raises(ValueError, match="unsafe path"):
        transfer.import_upload(ws, "bundle.zip", _zip({"manifest.json": b"{}", member: b"x"}), CHEETAH)
    assert not Path("/tmp/prefine-escape.txt").exists() and not (ws.root / "escape.txt").exists()
    assert not (ws.exports_dir.parent / "escape.txt").exists()
    assert snapshot(ws) == before


def test_oversize_and_broken_zips_are_refused(ws, monkeypatch):
    from prefine_core import transfer

    before = snapshot(ws)
    with pytest.raises(ValueError, match="not a readable zip"):
        transfer.import_upload(ws, "bundle.zip", b"PK\x03\x04 truncated", CHEETAH)
    with pytest.raises(ValueError, match="holds 0 manifest.json"):
        transfer.import_upload(ws, "bundle.zip", _zip({"a.txt": b"x"}), CHEETAH)
    damaged = bytearray(_zip({"manifest.json": b"{}", "labels.jsonl": b'{"pair_id": 1}' * 20}))
    damaged[damaged.index(b'{"pair_id"') + 3] ^= 0xFF  # one byte flipped in transit: a bad CRC, found while unpacking
    with pytest.raises(ValueError, match="the archive is damaged and cannot be unpacked .*Bad CRC-32 for file 'labels"):
        transfer.import_upload(ws, "bundle.zip", bytes(damaged), CHEETAH)
    monkeypatch.setattr(transfer, "MAX_UNPACKED", 1000)  # a zip bomb, scaled down: sizes are checked before unpacking
    with pytest.raises(ValueError, match="unpacks to more than"):
        transfer.import_upload(ws, "bundle.zip", _zip({"manifest.json": b"{}", "big.bin": b"\0" * 5000}), CHEETAH)
    assert snapshot(ws) == before


def test_cli_import_refuses_a_pipe_a_device_and_oversize_files_without_reading_them_whole(ws, tmp_path):
    """``import`` read a file whole before looking at it: a pipe named x.zip waited forever for a writer, a .zip link
    to /dev/zero filled the memory, and 3 GB of zeros named .zip took 20 s and 3 GB to be called not a zip."""
    from prefine_core import transfer

    before = snapshot(ws)
    os.mkfifo(tmp_path / "pipe.zip")
    (tmp_path / "zero.zip").symlink_to("/dev/zero")
    for name, size in (("zeros.zip", 512 * 1024**2), ("huge.safetensors", transfer.MAX_POLICY_BYTES + 1)):
        with open(tmp_path / name, "wb") as handle:
            handle.truncate(size)  # sparse: no disk spent
    for name, said in (("pipe.zip", "is not a regular file or folder"), ("zero.zip", "is not a regular file or folder"),
                       ("zeros.zip", "not a readable zip archive"), ("huge.safetensors", "more than any policy")):
        result = cli("import", tmp_path / name, "--workspace", ws.root)
        assert result.returncode == 2 and said in result.stderr, (name, result.stderr)
    assert snapshot(ws) == before


def test_upload_size_is_capped_by_the_server():
    """Oversize uploads are stopped by Streamlit's own limit (the browser test uploads past a lowered one)."""
    import tomllib

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert 0 < config["server"]["maxUploadSize"] <= 200


# -- form values and store arguments ---------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"steps": 0}, r"steps must be in \[1, 1000000\]"), ({"steps": 2.5}, "steps must be a whole number"),
    ({"beta": float("nan")}, "beta must be a finite number"), ({"learning_rate": 5.0}, "learning_rate must be in"),
    ({"select": "best"}, "select must be one of"), ({"steps": "100; rm -rf /"}, "steps must be a whole number"),
    ({"surprise": 1}, r"unknown config fields \['surprise'\]"),
])
def test_out_of_range_form_values_are_refused_before_a_run_starts(values, message, ws):
    from prefine_core import launcher
    from prefine_core.prefine import PrefineConfig

    before = snapshot(ws)
    with pytest.raises(ValueError, match=message):
        launcher.launch_finetune(ws, CHEETAH, ws.store.list_policies(CHEETAH)[0].id, {**PrefineConfig().to_dict(), **values})
    assert snapshot(ws) == before


def test_out_of_range_values_through_the_cli(ws):
    result = cli("pairs", "--task", CHEETAH, "--n", "-3", "--workspace", ws.root)
    assert result.returncode == 2 and "--n" in result.stderr
    result = cli("label-synthetic", "--mistake-rate", "1.5", "--workspace", ws.root)
    assert result.returncode == 2 and "--mistake-rate" in result.stderr


def test_names_written_with_zero_width_joiners_are_names():
    """A Persian name is written with the zero-width non-joiner, an emoji sequence with the joiner: both were refused
    as control characters."""
    from prefine_core.labelling import check_annotator

    for name in ("\u0645\u06cc\u200c\u0646\u0627", "\U0001f469\u200d\U0001f4bb dev"):  # a Persian name, 👩‍💻 dev
        assert check_annotator(name) == name


def test_a_name_with_a_zero_width_joiner_labels(ws):
    pair_id = ws.store.list_pairs()[0].id
    ws.store.add_label(pair_id, "\u0645\u06cc\u200c\u0646\u0627", "left")
    assert [h.annotator for h in ws.store.label_history()][-1] == "\u0645\u06cc\u200c\u0646\u0627"


@pytest.mark.parametrize("call, message", [
    (lambda s, p: s.add_label(p, "ann", "maybe"), "choice must be one of"),
    (lambda s, p: s.add_label(p, "ann", "left", seconds=-1), "seconds must be a finite number"),
    (lambda s, p: s.add_label(p, "ann", "left", seconds=float("inf")), "seconds must be a finite number"),
    (lambda s, p: s.add_label(10**9, "ann", "left"), "does not exist"),
    (lambda s, p: s.add_label(p, "", "left"), "annotator must be a non-empty string"),
    (lambda s, p: s.add_label(p, "x" * 65, "left"), "at most 64 allowed"),
    (lambda s, p: s.add_label(p, "a\x1b[31mb", "left"), "control characters"),
    (lambda s, p: s.add_label(p, "ann\u202egnp.exe", "left"), "control characters"),  # a bidi override: spoofs text
    (lambda s, p: s.add_label(True, "ann", "left"), "positive integer id"),
])
def test_bad_label_arguments_write_nothing(call, message, ws):
    pair_id = ws.store.list_pairs()[0].id
    before = snapshot(ws)
    with pytest.raises(ValueError, match=message):
        call(ws.store, pair_id)
    assert snapshot(ws) == before


# -- the app: markup in names, unknown tasks --------------------------------------------------------

MARKUP = '<img src=x onerror=alert(1)>**b** [l](javascript:alert(1))'  # under the 64-character limit


def test_annotator_name_with_markup_is_shown_as_text(ws, monkeypatch):
    from streamlit.testing.v1 import AppTest

    clips = ws.store.list_trajectories()
    video = ws.videos_dir / "markup-pair.mp4"  # a choice waits for a video
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    ws.store.add_pair(clips[0].id, clips[3].id, "random", 0.0, "a pair for the markup test", video_path=str(video))
    monkeypatch.setenv("PREFINE_WORKSPACE", str(ws.root))
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/label.py").run()
    at.text_input(key="annotator").input(MARKUP).run()
    assert not at.exception, at.exception
    assert any(t.value == f"Labelling as: {MARKUP}" for t in at.text)  # st.text: never markdown, never HTML
    for element in (*at.markdown, *at.caption, *at.error, *at.info, *at.success):
        assert "<img" not in element.value, element.value
    choice_button(at).click().run()
    assert not at.exception, at.exception
    labels = ws.store.effective_labels(CHEETAH)
    assert (labels.annotator == MARKUP).sum() == 1  # stored verbatim, attributed to exactly this name
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    assert not any("<img" in m.value for m in at.markdown)


def test_unknown_task_in_a_session_falls_back_to_a_known_one(ws, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PREFINE_WORKSPACE", str(ws.root))
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["task_id"] = "NotATask-v0"
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["task_id"] == CHEETAH


def test_a_config_file_nested_too_deeply_is_refused_by_name():
    """A crafted config (``[[[[…]]]]``) exhausted the JSON decoder's stack: a RecursionError traceback, exit 1."""
    from prefine_core.prefine import PrefineConfig

    with pytest.raises(ValueError, match="config is JSON nested too deeply to read"):
        PrefineConfig.from_json("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("field, message", [("steps", r"steps must be in \[1, 1000000\], got a number of 401 digits"),
                                            ("learning_rate", r"learning_rate must be in \[1e-07, 1.0\], got a number of 401 digits")])
def test_a_config_file_with_a_number_past_any_float_is_refused_by_name(field, message):
    """``{"steps": 1000…0}`` (hundreds of digits) in a config file raised OverflowError: int too large for a float."""
    from prefine_core.prefine import PrefineConfig

    with pytest.raises(ValueError, match=message):
        PrefineConfig.from_json(json.dumps({field: 10**400}))


@pytest.mark.parametrize("content", [b"this is a text file, not a database\n", b"SQLite format 3\x00" + b"\x00" * 80])
def test_a_workspace_whose_database_file_is_not_a_store_is_refused_and_left_as_it_is(content, tmp_path, monkeypatch):
    """A prefine.db replaced by another file, or truncated, gave sqlite3's traceback on every command."""
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "prefine.db").write_bytes(content)
    with pytest.raises(ValueError, match="prefine.db is not a readable PREFINE store"):
        Workspace.open(tmp_path / "ws", shipped=None)
    assert (tmp_path / "ws" / "prefine.db").read_bytes() == content
    result = cli("policies", "--workspace", tmp_path / "ws", "--json")
    assert result.returncode == 2 and "is not a readable PREFINE store" in json.loads(result.stdout)["error"]



# -- policy files whose metadata no network fits, through the CLI -------------------------------------

def _policy_claiming(path: Path, **claims) -> Path:
    """A cheetah policy file whose metadata says ``claims`` instead (its tensors unchanged)."""
    from safetensors.torch import save_file

    policy = make_policy(CHEETAH)
    meta = {**json.loads(policy.meta.to_json()), **claims}
    save_file({k: v.contiguous() for k, v in policy.state_dict().items()}, str(path), metadata={"prefine": json.dumps(meta)})
    return path


def _cli_refusal(capsys, *argv) -> str:
    """Run the CLI in this process with ``--json``; assert it refused with status 2 in one line, no traceback; return
    what it said."""
    from prefine_core.cli import main

    code = main([*map(str, argv), "--json"])
    out, err = capsys.readouterr()
    said = json.loads(out)["error"]
    assert code == 2 and f"error: {said}" in err.splitlines() and "Traceback" not in err
    return said


@pytest.fixture
def new_workspace(tmp_path, monkeypatch) -> Path:
    """Where an import makes a workspace: in folders that are not there yet."""
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    return tmp_path / "new" / "ws"


@pytest.mark.parametrize("claims, says", [
    ({"obs_dim": True}, "obs_dim must be a whole number from 1 to 1000000, got True"),
    ({"obs_dim": 10**30}, "obs_dim must be a whole number from 1 to 1000000"),
    ({"hidden_sizes": [True, 64]}, "hidden_sizes must be whole numbers from 1 to 1000000, got (True, 64)"),
    ({"hidden_sizes": [10**30, 64]}, "hidden_sizes must be whole numbers from 1 to 1000000"),
], ids=["bool-obs", "huge-obs", "bool-hidden", "huge-hidden"])
def test_policy_metadata_with_bool_or_huge_sizes_is_refused_by_the_cli(claims, says, tmp_path, new_workspace, capsys):
    """`info` (and every command that loads a policy) ended in a TypeError or OverflowError traceback, exit 1; an
    import of the file into a new workspace left that workspace behind."""
    path = _policy_claiming(tmp_path / "bad.safetensors", **claims)
    said = _cli_refusal(capsys, "info", "--policy", path)
    assert said.startswith(f"bad.safetensors has invalid metadata: {says}"), said
    said = _cli_refusal(capsys, "import", path, "--workspace", new_workspace)
    assert said.startswith(f"bad.safetensors is not a usable policy: it has invalid metadata: {says}"), said
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("stop", [RuntimeError("unexpected"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_an_import_that_fails_unexpectedly_leaves_no_new_workspace(stop, tmp_path, new_workspace, monkeypatch, capsys):
    """Only a refusal (ValueError, OSError) took away the workspace an import had made; another error, or Ctrl-C,
    left it behind, empty."""
    from prefine_core import transfer
    from prefine_core.cli import main
    from prefine_core.policy import save_policy

    def fail(*_args, **_kwargs):
        raise stop

    monkeypatch.setattr(transfer, "register_policy", fail)
    argv = ["import", str(save_policy(make_policy(CHEETAH), tmp_path / "p.safetensors")), "--workspace", str(new_workspace)]
    if isinstance(stop, KeyboardInterrupt):
        assert main(argv) == 130 and "interrupted" in capsys.readouterr().err
    else:
        with pytest.raises(RuntimeError, match="unexpected"):
            main(argv)
    assert not (tmp_path / "new").exists()


def test_an_import_that_fails_keeps_a_new_workspace_another_command_wrote_to_meanwhile(tmp_path, new_workspace,
                                                                                        monkeypatch, capsys):
    """A junk import into a new workspace removed the folder when it failed, with the clips a ``pairs --collect`` into
    it had saved meanwhile (and said saved)."""
    from prefine_core import transfer
    from prefine_core.cli import main
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import save_policy
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    def another_command_writes_then_this_one_fails(*_args, **_kwargs):
        other = Workspace.open(new_workspace)
        with SafetyTask(CHEETAH) as task:
            other.store.add_trajectory(collect(make_policy(CHEETAH), task, seed=0, max_steps=5), None, "pool",
                                       other.trajectories_dir)
        raise ValueError("not a usable policy")

    monkeypatch.setattr(transfer, "register_policy", another_command_writes_then_this_one_fails)
    argv = ["import", str(save_policy(make_policy(CHEETAH), tmp_path / "p.safetensors")), "--workspace", str(new_workspace)]
    assert main(argv) == 2 and "not a usable policy" in capsys.readouterr().err
    assert Workspace.open(new_workspace).store.counts()["trajectories"] == 1


@pytest.mark.parametrize("command", [["info"], ["rollout"], ["pretrain", "--task", HOPPER, "--steps", "1", "--out", "{out}"]],
                         ids=["info", "rollout", "pretrain-init"])
def test_a_policy_whose_network_does_not_fit_the_task_it_names_is_refused_by_every_command(command, tmp_path, capsys):
    """Metadata naming Hopper over a cheetah's network: `info` printed it (exit 0), `pretrain --init` failed in
    load_state_dict (a size-mismatch traceback), and `rollout` said "policy for SafetyHopperVelocity-v1 (obs 17, act 6)
    does not fit SafetyHopperVelocity-v1 (obs 11, act 3)"."""
    path = _policy_claiming(tmp_path / "wrongtask.safetensors", task_id=HOPPER)
    argv = [arg.format(out=tmp_path / "p.safetensors") for arg in command]
    flag = "--init" if command[0] == "pretrain" else "--policy"
    said = _cli_refusal(capsys, *argv, flag, path)
    assert said == (f"wrongtask.safetensors does not fit the task it names: {HOPPER}'s observations have 11 numbers "
                    "and actions 3, but its network takes 17 and gives 6")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrongtask.safetensors"]
