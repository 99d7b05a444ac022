"""Export labels with their trajectories and provenance to an open format, and import them back (an offline
dataset in the DSRL / D4RL HDF5 layout is imported by :mod:`prefine_core.datasets`).

**Export format ``prefine-export/1``** — a folder (plain files, no pickle anywhere):

* ``manifest.json``      ``{"format": "prefine-export/1", "created_at", "task_id", "counts"}``
* ``policies.jsonl``     one policy per line: id, name, task_id, kind, parent_id, provenance, file
                         (``policies/<id>.safetensors`` if the checkpoint was included, else null), path
* ``trajectories.jsonl`` id, task_id, policy_id, source, seed, start, length, total_return,
                         total_cost, fell, terminated, truncated (these as the arrays say), temperature, file
                         (``arrays/<id>.npz``)
* ``pairs.jsonl``        id, task_id, left_id, right_id, strategy, score, reason, video (``videos/<id>.mp4`` if
                         the pair's video was included, else null; absent in exports made before videos travelled)
* ``labels.jsonl``       every label row ever written, oldest first: id, pair_id, annotator, choice
                         (left | right | equal | cant_tell | skip | retract), seconds, supersedes_id,
                         created_at (ISO 8601, UTC)
* ``arrays/<id>.npz``    the arrays of one trajectory: obs (T, obs_dim), actions (T, act_dim) in
                         [-1, 1], rewards (T,), costs (T,), terminated, truncated, task_id, seed
                         (-1 = none), start, and ``constraint/<name>`` (T,) per constraint
* ``policies/<id>.safetensors`` the checkpoints (safetensors + JSON metadata), if included
* ``videos/<id>.mp4``    a pair's rendered video (H.264 MP4) with its cost-free twin ``videos/<id>-plain.mp4``, if
                         included: an import installs them for a pair it adds, or one here without a video, so the
                         pair can be labelled where its clips cannot be replayed (a replay on another machine or
                         software build drifts from the stored actions)

Ids are the exporting store's; an import gives everything new ids and keeps the references. An import
merges: what the workspace already holds (the same clip arrays, the same pair of clips, the same label:
annotator, choice and instant) is not added again, so exports of several annotators' workspaces, or an
export brought back where it came from, add only what is new and no pair counts twice. A pair deleted in the
workspace (the store keeps its two clips' ids) stays deleted: an export made before the deletion does not bring it,
nor its labels, back, unless the import is asked to restore deleted pairs.

An import (of a bundle, or of an HDF5 file) checks everything before it writes anything, writes
all rows in one transaction, and writes array files to fresh names that are removed again if
anything fails: a malformed or partial file is rejected with a message saying what is wrong, and
the store is unchanged. A pair's video is copied to a temporary name before that transaction (a copy inside it would
hold the store's write lock, and labellers' writes would wait) and moved to its place after the rows are committed,
before the pair's row names it: a crash between leaves the pair to be rendered again, never a row naming a missing
file nor a file under a pair id that may be given again. Copies the import did not use are removed.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from prefine_core.entry import parse_json
from prefine_core.files import temp_name, write_text_atomic
from prefine_core.envs import task_sizes, validate_task_id
from prefine_core.policy import CheckpointError, read_meta
from prefine_core.rollout import Trajectory, load_trajectory, save_trajectory
from prefine_core.store import LABEL_CHOICES, MAX_ID, POLICY_KINDS, RETRACT, PairRecord, is_id
from prefine_core.store.api import IMPORT_LOCK
from prefine_core.store.schema import utcnow
from prefine_core.workspace import Workspace, plain_video_path

FORMAT = "prefine-export/1"
#: The largest pair video file an export carries and an import takes (a pair of 200-step clips rendered at the app's
#: 256 px is 0.13 MB on PointCircle to 0.5 MB on HalfCheetah, and about as much again for its cost-free twin).
MAX_VIDEO_BYTES = 200 * 1024**2
_FIELDS = {
    "policies": ("id", "name", "task_id", "kind", "parent_id", "provenance", "file", "path"),
    "trajectories": ("id", "task_id", "policy_id", "source", "seed", "start", "length", "temperature", "file"),
    "pairs": ("id", "task_id", "left_id", "right_id", "strategy", "score", "reason"),
    "labels": ("id", "pair_id", "annotator", "choice", "seconds", "supersedes_id", "created_at"),
}
#: What each field a row's value is checked as where it is read (see :func:`_check_field`): ``id`` a positive
#: integer id (a reference to another row, or the row's own), ``steps`` a whole number of steps (checked against the
#: arrays too), ``text`` a string, ``number`` an int or a float, ``object`` a JSON object; ``?`` allows null. Other
#: fields are checked where they are used (kind, choice, created_at) or not used (seed, start: the arrays hold them).
_KINDS = {
    "policies": {"id": "id", "parent_id": "id?", "name": "text", "task_id": "text", "kind": "text",
                 "provenance": "object?", "file": "text?", "path": "text"},
    "trajectories": {"id": "id", "policy_id": "id?", "task_id": "text", "source": "text", "temperature": "number?",
                     "file": "text", "length": "steps"},
    "pairs": {"id": "id", "left_id": "id", "right_id": "id", "task_id": "text", "strategy": "text", "score": "number",
              "reason": "text", "video": "text?"},
    "labels": {"id": "id", "pair_id": "id", "supersedes_id": "id?", "annotator": "text", "seconds": "number?"},
}
#: Fields that exports gained after the format was first written: an older export's rows lack them, read as null.
_ADDED_LATER = {"pairs": ("video",)}
_KIND_SAID = {"id": "a positive integer id", "steps": "a whole number of steps", "text": "a string", "number": "a number",
             "object": "a JSON object"}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            try:  # a number past any float (a row edited by hand) would be written as Infinity, which is not JSON
                handle.write(json.dumps(row, default=str, sort_keys=True, allow_nan=False) + "\n")
            except ValueError:
                fields = [key for key in sorted(row) if not _is_json(row[key])]
                raise ValueError(f"{path.stem} row {row.get('id')} holds a number that is not finite in "
                                 f"{', '.join(fields)} (edited by hand?)") from None


def _is_json(value) -> bool:
    """Whether ``value`` can be written as JSON: no NaN or infinity anywhere in it."""
    try:
        json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return False
    return True


def _is_policy(path: str) -> bool:
    """Whether ``path`` is a readable checkpoint: only those are copied into an export, never another file."""
    try:
        read_meta(path)
    except CheckpointError:
        return False
    return True


def export_bundle(ws: Workspace, out: str | os.PathLike, task_id: str | None = None,
                  include_policies: bool = True, include_videos: bool = True) -> dict:
    """Write the labels, pairs, trajectories, policies and the pairs' rendered videos (of ``task_id``, or all) to folder
    ``out``, all or nothing:
    written into a hidden folder inside it, checked as an import checks an export, then moved up, the manifest last
    (an export without its manifest is no export to an import). A store whose rows or files an import would refuse
    (damaged since they were written) is refused here, by name, and nothing is left behind. ``out`` may be a folder
    that is there and empty (a mount point, a link to one, ``.``): it is kept as it is, its permissions too."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"export folder {out} is a file")
    if out.exists() and (held := sorted(p.name for p in out.iterdir())):
        left = [name for name in held if name.startswith(".export.partial-")]  # hidden: `ls` shows nothing
        raise ValueError(f"export folder {out} is not empty" + (
            f" (it holds {', '.join(left)}, left by an export that was stopped: remove it)" if left else ""))
    if not out.parent.is_dir():
        raise ValueError(f"no folder {out.parent} to write the export {out.name} in")
    made = not out.exists()
    try:
        out.mkdir(exist_ok=not made)  # one this call makes is its own (two exports at once: the second is refused)
    except FileExistsError:
        raise ValueError(f"export folder {out} is not empty") from None
    except OSError as exc:
        raise ValueError(f"export folder {out} cannot be written ({exc.strerror or exc})") from None
    moved: list[Path] = []
    try:
        partial = Path(tempfile.mkdtemp(prefix=".export.partial-", dir=out))
    except OSError as exc:
        if made:
            out.rmdir()
        raise ValueError(f"export folder {out} cannot be written ({exc.strerror or exc})") from None
    try:
        try:
            result = _write_bundle(ws, partial, task_id, include_policies, include_videos)
        except ValueError as exc:
            raise ValueError(f"{exc}; nothing was exported") from None
        try:
            _check_bundle(partial)
        except ValueError as exc:
            raise ValueError(f"the store holds what an import of this export would refuse ({exc}); nothing was "
                             "exported") from None
        for entry in sorted(partial.iterdir(), key=lambda p: p.name == "manifest.json"):  # the manifest last
            os.replace(entry, out / entry.name)
            moved.append(out / entry.name)
        partial.rmdir()
    except BaseException:
        # only what this export wrote goes (the folder may hold what another writer put there meanwhile), and a
        # failure to clean up never hides why the export failed
        shutil.rmtree(partial, ignore_errors=True)
        for entry in moved:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if nothing else came into it
        raise
    return {**result, "folder": str(out)}


def _write_bundle(ws: Workspace, out: Path, task_id: str | None, include_policies: bool, include_videos: bool) -> dict:
    """:func:`export_bundle`'s files, written into the empty folder ``out``."""
    store = ws.store
    pairs = store.list_pairs(task_id)
    trajectories = store.list_trajectories(task_id)
    labels = [h for h in store.label_history(task_id)]
    policies = store.list_policies(task_id)
    (out / "arrays").mkdir(parents=True, exist_ok=True)
    policy_rows = []
    for p in policies:
        row = {k: v for k, v in asdict(p).items() if k != "created_at"}
        row["file"] = None
        if include_policies and _is_policy(p.path):
            (out / "policies").mkdir(exist_ok=True)
            shutil.copyfile(p.path, out / "policies" / f"{p.id}.safetensors")
            row["file"] = f"policies/{p.id}.safetensors"
        policy_rows.append(row)
    trajectory_rows = []
    for t in trajectories:
        clip = store.clip_arrays(t)  # its file removed or cut short since: said with the clip's id
        save_trajectory(clip, out / "arrays", str(t.id))
        row = {k: v for k, v in asdict(t).items() if k not in ("path", "video_path", "created_at")}
        # What the row copies from the arrays is written from them, the truth (an import computes it from them too): a
        # column edited by hand ('lots' in a return, read as NaN) refused the whole export.
        trajectory_rows.append(dict(row, seed=clip.seed, start=clip.start, length=clip.length,
                                    total_return=clip.total_return, total_cost=clip.total_cost, fell=clip.fell,
                                    terminated=bool(clip.terminated), truncated=bool(clip.truncated),
                                    file=f"arrays/{t.id}.npz"))
    pair_rows = []
    for p in pairs:
        row = {k: v for k, v in asdict(p).items() if k not in ("video_path", "created_at")}
        row["video"] = None
        if include_videos and _exportable_video(p):
            (out / "videos").mkdir(exist_ok=True)
            row["video"] = f"videos/{p.id}.mp4"
            shutil.copyfile(p.video_path, out / row["video"])
            shutil.copyfile(plain_video_path(p.video_path), plain_video_path(out / row["video"]))
        pair_rows.append(row)
    label_rows = [dict(asdict(h), created_at=h.created_at.isoformat() if h.created_at else None) for h in labels]
    for name, rows in (("policies", policy_rows), ("trajectories", trajectory_rows), ("pairs", pair_rows),
                       ("labels", label_rows)):
        _write_jsonl(out / f"{name}.jsonl", rows)
    counts = {"policies": len(policy_rows), "trajectories": len(trajectory_rows), "pairs": len(pair_rows),
              "labels": len(label_rows)}
    manifest = {"format": FORMAT, "created_at": utcnow().isoformat(), "task_id": task_id, "counts": counts}
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2))
    return {"folder": str(out), **counts, "videos": sum(row["video"] is not None for row in pair_rows)}


def _not_a_video(path: Path) -> str | None:
    """Why the file at ``path`` is no pair video an import may install, or None. It would be sent to browsers from the
    workspace's videos: it must be a regular file, an MP4 (ISO BMFF: its first box is ``ftyp``), and not over
    :data:`MAX_VIDEO_BYTES`."""
    if not path.is_file():
        return "is missing or not a regular file"
    if (size := path.stat().st_size) > MAX_VIDEO_BYTES:
        return f"is {size / 1024**2:.0f} MB, over the {MAX_VIDEO_BYTES // 1024**2} MB a pair's video may be"
    with open(path, "rb") as handle:
        if handle.read(8)[4:8] != b"ftyp":
            return "is not an MP4 video (it does not begin with an MP4 header)"
    return None


def _exportable_video(pair: PairRecord) -> bool:
    """Whether the pair's video goes into an export: rendered, and both files there and such as an import takes. One
    damaged since (cut short by hand, say) is left out rather than refusing the whole export: the pair travels without
    it, as before exports carried videos, and is rendered again where it is imported."""
    return pair.video_ready and not any(_not_a_video(Path(path))
                                        for path in (pair.video_path, plain_video_path(pair.video_path)))


def _shown(value) -> str:
    """``value`` as a message quotes it: its repr, cut short (a row may hold a list of a million numbers)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_field(what: str, key: str, value, kind: str) -> None:
    """Refuse ``value`` of field ``key`` unless it is of ``kind`` (see :data:`_KINDS`); the message names ``what``
    (``"pairs.jsonl line 3"``) and the field. An id must be an int (not a bool, a float or ``"1"``: it is looked up
    among the export's ids) from 1 to the largest a SQL INTEGER column holds."""
    nullable, kind = kind.endswith("?"), kind.rstrip("?")
    if value is None and nullable:
        return
    if kind == "id":
        ok = is_id(value)
    elif kind == "steps":  # "10" said "holds 10 steps …, trajectories.jsonl says 10"
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, {"text": str, "object": dict}[kind])
    if not ok:
        said = _KIND_SAID[kind] + (" or null" if nullable else "")
        if kind == "id" and isinstance(value, int) and not isinstance(value, bool):
            said += f" (1 to {MAX_ID})"
        raise ValueError(f"{what}: {key} must be {said}, got {_shown(value)}")


def _read_jsonl(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.jsonl"
    if not path.is_file():
        raise ValueError(f"{path.name} is missing from the export")  # not its folder: for a zip, a temporary one
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:  # said without the file's name
        raise ValueError(f"{path.name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); "
                         "an export's rows are UTF-8 JSON lines") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row = parse_json(f"{path.name} line {number}", line)
        missing = [k for k in _FIELDS[name] if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"{path.name} line {number} lacks field(s) {missing}")
        for key in _ADDED_LATER.get(name, ()):
            row.setdefault(key, None)
        for key, kind in _KINDS[name].items():
            _check_field(f"{path.name} line {number}", key, row[key], kind)
        rows.append(row)
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):  # each is an integer already (_check_field)
        raise ValueError(f"{path.name}: ids must be unique integers")
    return rows


def _member(folder: Path, name, what: str) -> Path:
    """The file a bundle row names, which must lie inside the bundle (no absolute path, no ``..`` out of it)."""
    path = (folder / str(name)).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ValueError(f"{what} names file {name!r}, which lies outside the export folder")
    if not path.exists():
        raise ValueError(f"{what} names file {name}, which is missing")
    if not path.is_file():  # a folder, or a pipe that a read would wait on forever
        raise ValueError(f"{what} names {name}, which is not a regular file")
    return path


def _check_bundle(folder: Path) -> tuple[dict, dict[str, list[dict]], dict[int, Trajectory]]:
    """Everything an import needs, read from ``folder`` and fully checked: the manifest, the rows of each ``.jsonl``
    (label times parsed into UTC datetimes, the form the store keeps) and each clip's arrays by trajectory id. Raises
    ValueError saying what is wrong."""
    manifest = _check_manifest(folder)
    rows = {name: _read_jsonl(folder, name) for name in _FIELDS}
    _check_counts(manifest, rows)
    _check_policies(folder, rows["policies"])
    arrays = _check_trajectories(folder, rows)
    _check_pairs(folder, rows["pairs"], arrays)
    _check_labels(rows)
    return manifest, rows, arrays


def _check_manifest(folder: Path) -> dict:
    """The bundle's ``manifest.json``, refused unless it says PREFINE's export format."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError("the export has no manifest.json; it is not a PREFINE export")
    manifest = parse_json("manifest.json", manifest_path.read_bytes())
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        said = manifest.get("format") if isinstance(manifest, dict) else None
        raise ValueError("this is not a PREFINE export: its manifest.json "
                         + (f"says format {said!r}" if said is not None else "names no format")
                         + f", where an export of PREFINE Studio says {FORMAT!r} (export it again from the Data page "
                           "or with `python -m prefine_core export`)")
    return manifest


def _check_counts(manifest: dict, rows: dict[str, list[dict]]) -> None:
    """Refuse a bundle whose files hold other row counts than its manifest says (an export cut short)."""
    counts = manifest.get("counts")
    if counts is not None and not isinstance(counts, dict):
        raise ValueError(f"manifest.json: counts must be a JSON object of row counts such as "
                         f"{{\"labels\": 5}}, got {_shown(counts)}")
    for name, expected in (counts or {}).items():
        if name in rows and (isinstance(expected, bool) or not isinstance(expected, int) or expected < 0):
            raise ValueError(f"manifest.json: counts.{name} must be a whole number of rows, got {_shown(expected)}")
        if name in rows and len(rows[name]) != expected:
            raise ValueError(f"{name}.jsonl has {len(rows[name])} rows, the manifest says {expected}: the export is partial")


def _check_policies(folder: Path, policies: list[dict]) -> None:
    """Each policy row: a known kind, a parent before it in the export, and a checkpoint (carried, or named where it
    exists) of the row's task."""
    policy_ids = {p["id"] for p in policies}
    for p in policies:
        if p["kind"] not in POLICY_KINDS:
            raise ValueError(f"policies.jsonl: policy {p['id']} has kind {p['kind']!r}, expected one of {POLICY_KINDS}")
        if p["parent_id"] is not None and p["parent_id"] not in policy_ids:
            raise ValueError(f"policies.jsonl: policy {p['id']} has parent_id {p['parent_id']}, which is not in the export")
        if p["parent_id"] is not None and p["parent_id"] >= p["id"]:  # a store adds a parent before its children
            raise ValueError(f"policies.jsonl: policy {p['id']} has parent_id {p['parent_id']}, which is not a policy "
                             "before it (a policy cannot descend from itself or a later one)")
        if p["file"] is not None:  # a real checkpoint of the row's task, or refused
            meta = read_meta(_member(folder, p["file"], f"policies.jsonl: policy {p['id']}"))
            if meta.task_id != p["task_id"]:
                raise ValueError(f"policies.jsonl: policy {p['id']} says task {p['task_id']}, but its checkpoint "
                                 f"{p['file']} is a policy for {meta.task_id}")
        elif Path(str(p["path"])).exists():  # an export without checkpoints names files by path: a file there must
            _check_named_policy(p)            # be that task's policy (a row once registered /etc/passwd as one)


def _check_trajectories(folder: Path, rows: dict[str, list[dict]]) -> dict[int, Trajectory]:
    """Each clip's arrays by trajectory id, read and checked against its row, its policy and its task's sizes; every
    task id the rows name is a known one."""
    policy_tasks = {p["id"]: p["task_id"] for p in rows["policies"]}
    arrays: dict[int, Trajectory] = {}
    for t in rows["trajectories"]:
        if t["policy_id"] is not None and t["policy_id"] not in policy_tasks:
            raise ValueError(f"trajectories.jsonl: trajectory {t['id']} has policy_id {t['policy_id']}, which is not in the export")
        trajectory = load_trajectory(_member(folder, t["file"], f"trajectories.jsonl: trajectory {t['id']}"))
        if trajectory.length != t["length"] or trajectory.task_id != t["task_id"]:
            raise ValueError(f"{t['file']} holds {trajectory.length} steps of {trajectory.task_id}, "
                             f"trajectories.jsonl says {t['length']} of {t['task_id']}")
        if t["policy_id"] is not None and policy_tasks[t["policy_id"]] != trajectory.task_id:
            raise ValueError(f"trajectories.jsonl: trajectory {t['id']} is of {trajectory.task_id}, but its policy_id "
                             f"{t['policy_id']} is a policy for {policy_tasks[t['policy_id']]}")
        arrays[t["id"]] = trajectory
    for task_id in sorted({str(r["task_id"]) for name in ("policies", "trajectories", "pairs") for r in rows[name]}):
        validate_task_id(task_id)
    sizes = {task_id: task_sizes(task_id) for task_id in {t.task_id for t in arrays.values()}}
    for t in rows["trajectories"]:
        clip = arrays[t["id"]]
        check_sizes(t["file"], clip.task_id, sizes[clip.task_id], clip.obs, clip.actions)
    files: dict[str, int] = {}
    for t in rows["trajectories"]:  # the same clip twice would be added twice
        if (first := files.setdefault(t["file"], t["id"])) != t["id"]:
            raise ValueError(f"trajectories.jsonl: trajectories {first} and {t['id']} are the same file, {t['file']}")
    return arrays


def _check_pairs(folder: Path, pairs: list[dict], arrays: dict[int, Trajectory]) -> None:
    """Each pair: two different clips of the export, of the pair's task, shown by no other pair, and a video (if it
    carries one) that is its own."""
    shown: dict[tuple[int, int], int] = {}
    videos: dict[str, int] = {}
    for p in pairs:
        for side in ("left_id", "right_id"):
            if p[side] not in arrays:
                raise ValueError(f"pairs.jsonl: pair {p['id']} has {side} {p[side]}, which is not in the export")
        if p["left_id"] == p["right_id"]:
            raise ValueError(f"pairs.jsonl: pair {p['id']} shows trajectory {p['left_id']} on both sides")
        clip_tasks = {arrays[p["left_id"]].task_id, arrays[p["right_id"]].task_id}
        if clip_tasks != {p["task_id"]}:
            raise ValueError(f"pairs.jsonl: pair {p['id']} says task {p['task_id']}, but its clips are of "
                             f"{', '.join(sorted(clip_tasks))}")
        if (first := shown.setdefault((p["left_id"], p["right_id"]), p["id"])) != p["id"]:
            raise ValueError(f"pairs.jsonl: pairs {first} and {p['id']} show the same two clips; a fine-tune would "
                             "count that pair's labels twice")
        if p["video"] is not None:
            _check_pair_video(folder, p)
            for name in (p["video"], plain_video_path(p["video"]).as_posix()):  # one pair would show another's clips
                key = os.path.normcase(os.path.normpath(name))
                if (first := videos.setdefault(key, p["id"])) != p["id"]:
                    raise ValueError(f"pairs.jsonl: pairs {first} and {p['id']} both name the video file {name}; "
                                     "each pair's video shows its own two clips")


#: How far ahead of this machine's clock a label's time may be (the machine that gave it may run ahead).
CLOCK_SLACK = timedelta(days=1)


def _check_labels(rows: dict[str, list[dict]]) -> None:
    """Each label: a pair of the export, a known choice, a time that has been (parsed into UTC, in place), and a label
    it replaces that comes before it."""
    pair_ids = {p["id"] for p in rows["pairs"]}
    seen: set[int] = set()
    for label in rows["labels"]:
        if label["pair_id"] not in pair_ids:
            raise ValueError(f"labels.jsonl: label {label['id']} has pair_id {label['pair_id']}, which is not in the export")
        if label["choice"] not in (*LABEL_CHOICES, RETRACT):
            raise ValueError(f"labels.jsonl: label {label['id']} has choice {label['choice']!r}")
        try:  # the instant it was given: part of what makes it the same label in another store
            label["created_at"] = _utc(label["created_at"])
        except OverflowError:  # 0001-01-01T00:00+05:00 was said to be "not an ISO 8601 time"
            raise ValueError(f"labels.jsonl: label {label['id']} has created_at {label['created_at']!r}, which in "
                             "UTC falls outside the years 1 to 9999") from None
        except (TypeError, ValueError):
            raise ValueError(f"labels.jsonl: label {label['id']} has created_at {label['created_at']!r}, "
                             "not an ISO 8601 time") from None
        if label["created_at"] > (latest := utcnow() + CLOCK_SLACK):  # 9999-12-31 was imported as given
            raise ValueError(f"labels.jsonl: label {label['id']} has created_at {label['created_at']:%Y-%m-%d %H:%M} "
                             f"UTC, after {latest:%Y-%m-%d %H:%M} UTC (now, and a day for another machine's clock): "
                             "a label cannot have been given yet; correct its time")
        if label["supersedes_id"] is not None and label["supersedes_id"] not in seen:
            raise ValueError(f"labels.jsonl: label {label['id']} supersedes {label['supersedes_id']}, which does not come before it")
        seen.add(label["id"])


def _check_pair_video(folder: Path, row: dict) -> None:
    """Refuse a pair row whose video, or the cost-free twin beside it, is not a file of the bundle that an import may
    install (:func:`_not_a_video`)."""
    twin = plain_video_path(row["video"]).as_posix()
    for said, name in (("", row["video"]), (" (the cost-free twin of its video)", twin)):
        what = f"pairs.jsonl: pair {row['id']}{said}"
        if problem := _not_a_video(_member(folder, name, what)):
            raise ValueError(f"{what}: {name} {problem}; export it again from a workspace where the pair's video "
                             "plays, or set the pair's video to null to import the pair without it")


def _check_named_policy(row: dict) -> None:
    """Refuse a policy row without a checkpoint whose path names a file that is not a policy of the row's task (a
    path that exists nowhere here is registered as missing, as a policy whose file was not exported)."""
    try:
        meta = read_meta(row["path"])
    except (OSError, ValueError) as exc:
        raise ValueError(f"policies.jsonl: policy {row['id']} comes without its checkpoint and names the file "
                         f"{row['path']}, which is not a policy: {exc}") from None
    if meta.task_id != row["task_id"]:
        raise ValueError(f"policies.jsonl: policy {row['id']} says task {row['task_id']}, but the file it names, "
                         f"{row['path']}, is a policy for {meta.task_id}")


def check_sizes(what: str, task_id: str, sizes: tuple[int, int], observations: np.ndarray, actions: np.ndarray) -> None:
    """Refuse arrays that cannot be ``task_id``'s (a fine-tune on them would fail, or learn from nonsense)."""
    if observations.ndim != 2 or actions.ndim != 2:
        raise ValueError(f"{what} has observations of shape {observations.shape} and actions of shape "
                         f"{actions.shape}; both must be (steps, size)")
    found = (observations.shape[-1], actions.shape[-1])
    if found != sizes:
        raise ValueError(f"{what} has observations of size {found[0]} and actions of size {found[1]}; "
                         f"{task_id} has {sizes[0]} and {sizes[1]}")


def _utc(text: str) -> datetime:
    """An ISO 8601 time as the store keeps it: UTC without a zone (a time given with a zone is converted, not cut)."""
    instant = datetime.fromisoformat(text)
    return instant if instant.tzinfo is None else instant.astimezone(timezone.utc).replace(tzinfo=None)


def _label_key(annotator: str, choice: str, created_at) -> tuple:
    """A label is the same label in two stores when its annotator, choice and the instant it was given are."""
    return annotator, choice, created_at.isoformat() if isinstance(created_at, datetime) else created_at


def _same_arrays(a: Trajectory, b: Trajectory) -> bool:
    return (a.task_id == b.task_id and a.obs.shape == b.obs.shape and a.actions.shape == b.actions.shape
            and np.array_equal(a.obs, b.obs) and np.array_equal(a.actions, b.actions))


class ClipsHere:
    """The workspace's clips of some tasks, found by their window (task, seed, start, length) and then their arrays:
    an imported clip that is one of them is the same clip, not a new one."""

    def __init__(self, store, task_ids):
        self.store, self.by_window = store, {}
        for task_id in task_ids:
            for record in store.list_trajectories(task_id):
                self.by_window.setdefault((record.task_id, record.seed, record.start, record.length), []).append(record.id)

    def find(self, clip: Trajectory) -> int | None:
        """The id of the clip here with ``clip``'s window and arrays, if any."""
        for candidate in self.by_window.get((clip.task_id, clip.seed, clip.start, clip.length), []):
            if _same_arrays(clip, self.store.get_trajectory(candidate)):
                return candidate
        return None


@dataclass
class _Merge:
    """How a bundle lands in a workspace that may hold part of it already: what is mapped onto rows here, and
    what is new. Clips are the same clip when their arrays are; pairs when they show the same two clips in the same
    order; labels by :func:`_label_key`."""
    policies: dict[int, int] = field(default_factory=dict)
    """Export policy id -> this store's policy, for the policies that are here already (same file or same path)."""
    trajectories: dict[int, int] = field(default_factory=dict)
    pairs: dict[int, int] = field(default_factory=dict)
    deleted_here: set[int] = field(default_factory=set)
    """Export pair ids of pairs a person deleted here since (left out, with their labels)."""
    without_video: set[int] = field(default_factory=set)
    """Export pair ids of pairs here that have no video ready (imported without one, their clips perhaps not
    replayable here): the export's video, if it carries one, is installed for them."""
    new_labels: list[dict] = field(default_factory=list)
    labels_here: int = 0
    labels_on_deleted: int = 0

    def wants_video(self, row: dict) -> bool:
        """Whether the import installs the video of the export's pair ``row``: it carries one, and the pair is new
        here, or here without a video of its own (a pair here with its video keeps it)."""
        return row["video"] is not None and row["id"] not in self.deleted_here and (
            row["id"] not in self.pairs or row["id"] in self.without_video)

    def anything_new(self, rows: dict[str, list[dict]]) -> bool:
        return bool(self.new_labels) or any(map(self.wants_video, rows["pairs"])) or any(
            len(rows[name]) > len(mapped) for name, mapped in (
                ("policies", self.policies), ("trajectories", self.trajectories),
                ("pairs", self.pairs.keys() | self.deleted_here)))


def _policy_here(ws: Workspace, folder: Path, row: dict):
    """The policy here that a bundle's policy row is: the same bytes when the checkpoint came with it; else the same
    path, or, for a policy shipped with PREFINE Studio, the shipped policy of that name, task and kind here (an export
    made with ``--no-policies`` in another checkout names the shipped files by that checkout's paths). None if none."""
    if row["file"] is not None:
        return ws.policy_with_bytes(row["task_id"], (folder / row["file"]).read_bytes())
    here = ws.store.list_policies(row["task_id"])
    shipped = bool((row["provenance"] or {}).get("shipped"))
    return next((q for q in here if q.path == str(row["path"])), None) or next(
        (q for q in here if shipped and q.provenance.get("shipped") and (q.name, q.kind) == (row["name"], row["kind"])),
        None)


def _plan_merge(ws: Workspace, folder: Path, rows: dict[str, list[dict]], arrays: dict[int, Trajectory],
                restore_deleted: bool = False) -> _Merge:
    """Map the bundle onto what the workspace holds, leaving out the pairs deleted here since (unless
    ``restore_deleted``); refuse, before anything is written, a pair on which an annotator's history here and in the
    bundle went separate ways (which label would stand is then unknowable)."""
    store, merge = ws.store, _Merge()
    for p in rows["policies"]:
        if (here := _policy_here(ws, folder, p)) is not None:
            merge.policies[p["id"]] = here.id
    here = ClipsHere(store, {t["task_id"] for t in rows["trajectories"]})
    for t in rows["trajectories"]:
        if (found := here.find(arrays[t["id"]])) is not None:
            merge.trajectories[t["id"]] = found
    pair_tasks = {p["task_id"] for p in rows["pairs"]}
    local_pairs = {(p.left_id, p.right_id): p for task_id in pair_tasks for p in store.list_pairs(task_id)}
    deleted = set() if restore_deleted else {sides for task_id in pair_tasks for sides in store.deleted_pairs(task_id)}
    for p in rows["pairs"]:
        sides = (merge.trajectories.get(p["left_id"]), merge.trajectories.get(p["right_id"]))
        if sides in local_pairs:
            merge.pairs[p["id"]] = local_pairs[sides].id
            if not local_pairs[sides].video_ready:
                merge.without_video.add(p["id"])
        elif sides in deleted:
            merge.deleted_here.add(p["id"])
    history: dict[tuple[int, str], list[tuple]] = {}
    for h in store.label_history():
        history.setdefault((h.pair_id, h.annotator), []).append(_label_key(h.annotator, h.choice, h.created_at))
    theirs: dict[tuple[int, str], list[dict]] = {}
    for label in rows["labels"]:
        theirs.setdefault((label["pair_id"], label["annotator"]), []).append(label)
    everywhere = {key for keys in history.values() for key in keys}
    for (pair_id, annotator), labels in theirs.items():
        if pair_id in merge.deleted_here:
            merge.labels_on_deleted += len(labels)
            continue
        keys = [_label_key(annotator, label["choice"], label["created_at"]) for label in labels]
        if pair_id not in merge.pairs and everywhere.intersection(keys):
            raise ValueError(f"pair {pair_id} of the export is not here, but {annotator}'s labels on it are, on "
                             "another pair (its clips differ from those here): importing it would count them twice, "
                             "so nothing was added")
        mine = history.get((merge.pairs[pair_id], annotator), []) if pair_id in merge.pairs else []
        if set(keys) <= set(mine):
            merge.labels_here += len(labels)
        elif keys[:len(mine)] == mine:  # the bundle carries this history on: its later labels are new
            merge.labels_here += len(mine)
            merge.new_labels += labels[len(mine):]
        else:
            raise ValueError(f"pair {pair_id} of the export was labelled by {annotator} here and in the export, "
                             "differently; which label stands would be a guess, so nothing was added")
    merge.new_labels.sort(key=lambda label: label["id"])
    return merge


def import_bundle(ws: Workspace, folder: str | os.PathLike, restore_deleted: bool = False) -> dict:
    """Import an export made by :func:`export_bundle`, all or nothing, merged into what the workspace holds: what
    is already here (the same clips, pairs and labels, as after exporting from here or importing before) is not
    added again, so no pair counts twice in a fine-tune; another annotator's labels on pairs that are here join
    them. A pair deleted here since the export was made is left out with its labels, unless ``restore_deleted``.
    A pair whose video came with the export gets it, ready to label without rendering: a new pair, and a pair here
    without a video (imported before from an export without videos, its clips perhaps not replayable here); a pair
    here with its video keeps it.
    Returns counts of what was added (all 0 for an export that is here already; ``videos``: the pairs' videos
    installed, ``videos_for_pairs_here`` of them for pairs that were here before), ``labels_already_here``,
    ``pairs_deleted_here`` and ``labels_on_deleted_pairs`` (left out), and the ``tasks`` the export holds."""
    folder = Path(folder)
    _, rows, arrays = _check_bundle(folder)
    added = {"policies": 0, "trajectories": 0, "pairs": 0}
    tasks = sorted({str(r["task_id"]) for name in ("policies", "trajectories", "pairs") for r in rows[name]})
    copied: list[Path] = []
    staged: list[Path] = []  # the videos' temporary copies: those not moved into place are removed at the end
    try:
        # The videos are copied before the write transaction, not in it: large ones would hold the store's write lock
        # while labellers' writes wait. Copied are those of the pairs that a plan made first says want them; the plan
        # made in the transaction decides. A pair that wants one only then (the store changed meanwhile) gets none
        # now: it is rendered here, or gets its video when the export is imported again.
        carried = [p for p in rows["pairs"] if p["video"] is not None]
        ahead = _plan_merge(ws, folder, rows, arrays, restore_deleted) if carried else _Merge()
        copies = _stage_videos(ws, folder, [p for p in carried if ahead.wants_video(p)], staged)
        try:
            with ws.store.batch() as batch:
                # Planned inside the write transaction, one import at a time: the same export imported twice at once
                # (two tabs) was planned against the store as it was before either, and every row came in twice.
                batch.one_at_a_time(IMPORT_LOCK)
                merge = _plan_merge(ws, folder, rows, arrays, restore_deleted)
                left_out = {"labels_already_here": merge.labels_here, "pairs_deleted_here": len(merge.deleted_here),
                            "labels_on_deleted_pairs": merge.labels_on_deleted, "tasks": tasks}
                if not merge.anything_new(rows):  # imported before, or exported from here: a success that adds nothing
                    return {**added, "labels": 0, "videos": 0, "videos_for_pairs_here": 0, **left_out}
                needed_pairs = [p for p in rows["pairs"]
                                if p["id"] not in merge.pairs and p["id"] not in merge.deleted_here]
                policy_map = dict(merge.policies)
                for p in sorted(rows["policies"], key=lambda r: r["id"]):
                    if p["id"] in policy_map:
                        continue
                    path = p["path"]
                    if p["file"] is not None:
                        target, wrote = ws.keep_imported_policy((folder / p["file"]).read_bytes())
                        if wrote:
                            copied.append(target)
                        path = str(target)
                    provenance = dict(p["provenance"] or {}, imported_from=str(folder.resolve()), original_id=p["id"])
                    with _row_said("policies.jsonl: policy", p["id"]):
                        policy_map[p["id"]] = batch.add_policy(p["name"], path, p["task_id"], p["kind"],
                                                               policy_map.get(p["parent_id"]), provenance)
                    added["policies"] += 1
                trajectory_map = dict(merge.trajectories)
                for t in rows["trajectories"]:
                    if t["id"] not in trajectory_map:  # the pool's clips without a pair too
                        with _row_said("trajectories.jsonl: trajectory", t["id"]):
                            trajectory_map[t["id"]] = batch.add_trajectory(
                                arrays[t["id"]], policy_map.get(t["policy_id"]), t["source"], ws.trajectories_dir,
                                temperature=t["temperature"])
                        added["trajectories"] += 1
                pair_map = dict(merge.pairs)
                for p in needed_pairs:
                    with _row_said("pairs.jsonl: pair", p["id"]):
                        pair_map[p["id"]] = batch.add_pair(trajectory_map[p["left_id"]], trajectory_map[p["right_id"]],
                                                           p["strategy"], p["score"], p["reason"])
                    added["pairs"] += 1
                installs = [(pair_map[p["id"]], copies[p["id"]]) for p in rows["pairs"]
                            if merge.wants_video(p) and p["id"] in copies]
                for label in merge.new_labels:
                    with _row_said("labels.jsonl: label", label["id"]):
                        batch.add_label(pair_map[label["pair_id"]], label["annotator"], label["choice"],
                                        label["seconds"], created_at=label["created_at"], allow_retract=True)
        except BaseException:
            for path in copied:
                path.unlink(missing_ok=True)
            raise
        installed = {pair_id for pair_id, files in installs if _install_video(ws, pair_id, files)}
    finally:
        for path in staged:
            path.unlink(missing_ok=True)
    return {**added, "labels": len(merge.new_labels), "videos": len(installed),
            "videos_for_pairs_here": len(installed.intersection(merge.pairs.values())), **left_out}


@contextlib.contextmanager
def _row_said(what: str, row_id: int):
    """The store's refusal of a row's value ("seconds must be …"), said with the export's row it came from."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"{what} {row_id}: {exc}") from None


def _stage_videos(ws: Workspace, folder: Path, rows: list[dict], staged: list[Path]) -> dict[int, tuple[Path, Path]]:
    """Copy the videos of the export's pair ``rows``, each with its cost-free twin, into the workspace's videos folder
    under temporary names (:func:`~prefine_core.files.temp_name`), flushed to disk: {export pair id: (video, twin)}.
    Not under a pair's name: SQLite gives a rolled-back transaction's pair id again, and that pair would show this
    video. Each name joins ``staged`` before its file is made, so that the caller removes it whatever stops the
    import; one that a crash leaves is removed when the workspace opens."""
    copies = {}
    for row in rows:
        video = folder / row["video"]
        for source in (video, plain_video_path(video)):
            staged.append(temp_name(ws.videos_dir / "imported.mp4"))
            with open(source, "rb") as original, open(staged[-1], "xb") as copy:
                shutil.copyfileobj(original, copy)
                copy.flush()
                os.fsync(copy.fileno())
        copies[row["id"]] = (staged[-2], staged[-1])
    return copies


def _install_video(ws: Workspace, pair_id: int, files: tuple[Path, Path]) -> bool:
    """Move a video that :func:`_stage_videos` copied, and its twin, onto pair ``pair_id``'s names once its row is
    committed, then point the row at them (:meth:`Workspace.register_pair_video`: False for a pair deleted
    meanwhile). A crash between leaves the pair to be rendered, never a row naming a missing file."""
    video, twin = files
    target = ws.pair_video_path(pair_id)
    os.replace(twin, plain_video_path(target))
    os.replace(video, target)
    return ws.register_pair_video(pair_id)
