"""Files that cross the browser: export downloads and uploads to import, checked where they enter.

An upload is recognised by its name and its first bytes, never trusted: a zip is an export bundle
(:func:`prefine_core.exchange.import_bundle`, members checked against path tricks and size), an
HDF5 file is an offline dataset (:func:`prefine_core.datasets.import_hdf5`), a ``.safetensors`` file
is a policy (loaded and checked before it is registered). Anything else, or a broken file, raises a
ValueError saying what to upload instead; the store is unchanged.
"""
from __future__ import annotations

import contextlib
import io
import secrets
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from prefine_core.entry import counted
from prefine_core.files import atomic_path
from prefine_core.store import PolicyRecord
from prefine_core.workspace import Workspace

MAX_UNPACKED = 2 * 1024**3
#: The largest policy file taken (a network of this app's sizes is a few MB; 2 × 512 units, 1 MB).
MAX_POLICY_BYTES = 100 * 1024**2
ACCEPTED = ("zip", "h5", "hdf5", "safetensors")
_WHAT = "PREFINE Studio imports a .zip it exported, a .hdf5 offline dataset or a .safetensors policy"


def export_zip(ws: Workspace, task_id: str | None, include_videos: bool = True) -> bytes:
    """The export bundle of ``task_id`` (all tasks if None) as zip bytes."""
    buffer = io.BytesIO()
    _write_export_zip(ws, task_id, buffer, include_videos)
    return buffer.getvalue()


#: How long a download prepared for a session that has ended stays under ``exports/downloads``.
DOWNLOAD_KEPT_S = 24 * 3600.0


def prepare_download(ws: Workspace, task_id: str | None, include_videos: bool = True,
                     replacing: Path | None = None) -> Path:
    """The export of ``task_id`` as a zip file under ``exports/downloads``, for a download button that reads it when
    clicked: a page keeps its path, not its bytes, which it held for as long as the session lasted (an export with
    its videos is about 0.7 MB a HalfCheetah pair). ``replacing``, the file the same session prepared before, is
    removed, and so is any file there older than :data:`DOWNLOAD_KEPT_S` (its session has long ended)."""
    folder = ws.exports_dir / "downloads"
    folder.mkdir(exist_ok=True)
    cutoff = time.time() - DOWNLOAD_KEPT_S
    for old in folder.glob("*.zip"):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another session's call
            if old == replacing or old.stat().st_mtime < cutoff:
                old.unlink()
    path = folder / f"prefine-{task_id or 'all-tasks'}-{secrets.token_hex(4)}.zip"
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        _write_export_zip(ws, task_id, handle, include_videos)
    return path


def _write_export_zip(ws: Workspace, task_id: str | None, target: BinaryIO, include_videos: bool) -> None:
    """Write the export bundle as a zip into ``target``; its pairs' videos are stored as they are (H.264 does not
    deflate: compressing them again would only cost time)."""
    from prefine_core.exchange import export_bundle

    with tempfile.TemporaryDirectory(dir=ws.exports_dir) as tmp:
        folder = Path(tmp) / "bundle"
        export_bundle(ws, folder, task_id, include_videos=include_videos)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix(),
                                  zipfile.ZIP_STORED if path.suffix == ".mp4" else zipfile.ZIP_DEFLATED)


def _unpack(data: bytes | Path, target: Path) -> Path:
    """Unpack the zip ``data`` (its bytes, or its file: read as the archive asks, never whole) into ``target``."""
    try:
        archive = zipfile.ZipFile(data if isinstance(data, Path) else io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError(f"the file is not a readable zip archive; {_WHAT}") from None
    with archive:
        members = archive.infolist()
        if sum(m.file_size for m in members) > MAX_UNPACKED:
            raise ValueError("the archive unpacks to more than 2 GB; export fewer tasks at a time, or without the "
                             "pairs' videos, or to a folder (`./studio cli export --out DIR`) and import that folder "
                             "(`./studio cli import DIR`), which has no size limit")
        for member in members:
            name = Path(member.filename)
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"the archive holds an unsafe path {member.filename!r}; it was not made by PREFINE Studio")
        try:
            archive.extractall(target)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:  # damaged in transit, say
            raise ValueError(f"the archive is damaged and cannot be unpacked ({exc}); {_WHAT}") from None
    manifests = list(target.rglob("manifest.json"))
    if len(manifests) != 1:
        raise ValueError(f"the archive holds {len(manifests)} manifest.json files, expected one; {_WHAT}")
    return manifests[0].parent


def _imported(filename: str, task_id: str, policy: PolicyRecord, added: bool) -> str:
    said = f"{filename} {'was added' if added else 'is already in the workspace'} as {policy.name} (policy {policy.id})"
    if policy.task_id != task_id:
        said += f", a policy for {policy.task_id}, not {task_id} — switch the task in the sidebar to use it"
    return said if added else f"{said}; nothing new was added"


def register_policy(ws: Workspace, filename: str, data: bytes) -> tuple[PolicyRecord, bool]:
    """Check an uploaded policy file and register it, once: the same bytes again give the policy they already are.
    Returns (the policy, whether it was added now); a file that is not a usable policy raises a ValueError that
    names it by ``filename``."""
    from prefine_core.policy import CheckpointError, load_policy

    with tempfile.TemporaryDirectory(dir=ws.exports_dir) as tmp:  # checked before anything reaches the policies
        upload = Path(tmp) / "upload.safetensors"
        upload.write_bytes(data)
        try:
            policy = load_policy(upload)  # its task known here, and its sizes that task's
        except ValueError as exc:
            reason = f"it {exc.problem}" if isinstance(exc, CheckpointError) and exc.problem else str(exc)
            raise ValueError(f"{filename} is not a usable policy: {reason}") from None
    meta = policy.meta
    known = ws.policy_with_bytes(meta.task_id, data)
    if known is not None:
        return known, False
    name = Path(filename).name
    shown = f"{meta.name} from {name}" if meta.name else Path(name).stem  # the file's name tells imports apart
    target, wrote = ws.keep_imported_policy(data)  # two imports of one new file at once: one file and one row
    try:
        policy_id = ws.store.add_policy(shown, target, meta.task_id, "imported",
                                        provenance={"uploaded_as": filename, **meta.provenance})
    except BaseException:
        if wrote:
            target.unlink(missing_ok=True)
        raise
    return ws.store.get_policy(policy_id), True


def import_policy(ws: Workspace, filename: str, data: bytes, task_id: str) -> str:
    """:func:`register_policy`, said in words under the name the user gave the file, and whether it fits ``task_id``."""
    return _imported(filename, task_id, *register_policy(ws, filename, data))


def too_big_for_a_policy(filename: str, size: int) -> str:
    """The refusal of a .safetensors file over :data:`MAX_POLICY_BYTES`."""
    return (f"{filename} is {size / 1024**2:,.0f} MB, more than any policy this app makes (at most "
            f"{MAX_POLICY_BYTES // 1024**2} MB are taken); give the .safetensors file of a policy")


def import_zip(ws: Workspace, filename: str, data: bytes | Path, restore_deleted: bool = False) -> dict:
    """Import an export bundle that arrived as a zip (:func:`export_zip`'s download; its bytes, or its file); returns
    the counts of :func:`prefine_core.exchange.import_bundle`."""
    from prefine_core.exchange import import_bundle

    with tempfile.TemporaryDirectory(dir=ws.exports_dir) as tmp:
        try:
            return import_bundle(ws, _unpack(data, Path(tmp)), restore_deleted)
        except ValueError as exc:
            raise ValueError(f"{filename}: {exc}") from None


def _bundle_said(filename: str, counts: dict, task_id: str) -> str:
    """What an imported export added, in words: counts, the tasks it went into (pointing at the sidebar when that is
    not the task on screen), and the labels that were here already."""
    here, deleted = counts["labels_already_here"], counts["pairs_deleted_here"]
    left_out = (f"{counted(deleted, 'pair')} deleted here since {'was' if deleted == 1 else 'were'} left out, with "
                f"{counted(counts['labels_on_deleted_pairs'], 'label row')} (tick “Restore pairs deleted here” to add "
                "them back)") if deleted else ""
    rows = any(counts[k] for k in ("policies", "trajectories", "pairs", "labels"))
    mended = counts["videos_for_pairs_here"]  # pairs here without a video got the export's
    if not rows and not mended:
        return (f"nothing new in {filename}: everything in it is already in the workspace (imported before, or "
                f"exported from here){', or was deleted here: ' + left_out if deleted else ''}; nothing was added")
    videos = counts["videos"] - mended  # the new pairs that came ready to label, without rendering
    with_videos = f" ({videos} with {'its video' if videos == 1 else 'their videos'})" if videos else ""
    parts = [f"{counted(counts['pairs'], 'pair')}{with_videos}, {counted(counts['labels'], 'label row')}, "
             f"{counted(counts['trajectories'], 'clip')} and {counted(counts['policies'], 'policy', 'policies')}"
             ] if rows else []
    if mended:
        parts.append(f"videos for {counted(mended, 'pair')} that were here without one")
    said = "imported " + ", and ".join(parts)
    if counts["tasks"]:
        said += f" into {', '.join(counts['tasks'])}"
    if elsewhere := [t for t in counts["tasks"] if t != task_id]:
        said += f"; pick {'it' if len(elsewhere) == 1 else 'those'} in the sidebar to see them"
    if here:
        said += f"; {counted(here, 'label row')} already here {'was' if here == 1 else 'were'} not added again"
    if deleted:
        said += f"; {left_out}"
    return said


def import_upload(ws: Workspace, filename: str, data: bytes, task_id: str, restore_deleted: bool = False) -> str:
    """Import one uploaded file (``restore_deleted``: an export's pairs deleted here since are added back); returns
    what was added, in words."""
    from prefine_core.datasets import HDF5_SIGNATURE, import_hdf5

    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in ACCEPTED or "\0" in filename:
        raise ValueError(f"{filename} is not a file PREFINE Studio can import; {_WHAT}")
    if not data:
        raise ValueError(f"{filename} is empty; {_WHAT}")
    if suffix == "safetensors" and len(data) > MAX_POLICY_BYTES:
        raise ValueError(too_big_for_a_policy(filename, len(data)))
    if suffix == "safetensors":
        return import_policy(ws, filename, data, task_id)
    if suffix == "zip":
        return _bundle_said(filename, import_zip(ws, filename, data, restore_deleted), task_id)
    with tempfile.TemporaryDirectory(dir=ws.exports_dir) as tmp:
        if not data.startswith(HDF5_SIGNATURE):
            raise ValueError(f"{filename} is not an HDF5 file (its first bytes are wrong); {_WHAT}")
        path = Path(tmp) / Path(filename).name
        path.write_bytes(data)
        try:
            counts = import_hdf5(ws, path, task_id)
        except (OSError, KeyError) as exc:
            raise ValueError(f"{filename} could not be read as a DSRL/D4RL dataset: {exc}") from None
        clips, episodes, here = counts["clips"], counts["episodes"], counts["clips_already_here"]
        if not clips and here:
            return (f"nothing new in {filename}: all {here} of its clips are already in the workspace (imported "
                    "before with this clip length); nothing was added")
        return (f"imported {counted(clips, 'clip')} from {counted(episodes, 'episode')} "
                f"as {counts['source']}")
