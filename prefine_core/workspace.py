"""A workspace: the folders for arrays, videos, policies, runs and exports, and its preference store.

``Workspace.open()`` uses ``$PREFINE_WORKSPACE`` or ``<repo>/data/workspace``; the store is
``$PREFINE_DB_URL`` or the SQLite file ``<root>/prefine.db``. Opening registers the shipped
policies found under ``<repo>/data/policies/<task_id>/`` (``reference.safetensors`` as kind
``reference``, ``behaviour_*.safetensors`` as ``behaviour``), idempotently, so policies that appear
later (training still running) are picked up by the next open or :meth:`Workspace.register_shipped`.
``$PREFINE_SHIPPED_POLICIES`` points elsewhere, or, set to an empty string, turns this off.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from prefine_core.files import remove_abandoned_writes
from prefine_core.store import NotFound, PolicyRecord, Store
from prefine_core.store.engine import sqlite_url

REPO = Path(__file__).resolve().parent.parent
SHIPPED_POLICIES = REPO / "data" / "policies"


@dataclass
class Workspace:
    root: Path
    store: Store
    shipped: Path | None = None
    """Folder of shipped policies (``<task_id>/*.safetensors``) registered on open and on :meth:`register_shipped`."""

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, db_url: str | None = None,
             shipped: str | os.PathLike | None = "default") -> "Workspace":
        """Open (creating folders) the workspace at ``root``; ``shipped=None`` skips shipped policies."""
        if shipped == "default":
            shipped = os.environ.get("PREFINE_SHIPPED_POLICIES", str(SHIPPED_POLICIES)) or None
        root = cls.folder(root)
        if root.exists() and not root.is_dir():
            raise ValueError(f"workspace {root} exists and is not a folder")
        shared = db_url or os.environ.get("PREFINE_DB_URL")
        store = Store(shared, root=root) if shared else None  # one it cannot use is refused before a folder is made
        root.mkdir(parents=True, exist_ok=True)
        store = store or Store(sqlite_url(root / "prefine.db"), root=root)
        ws = cls(root=root, store=store, shipped=Path(shipped) if shipped is not None else None)
        ws.store.keep_paths_relative()  # rows from before paths were kept relative
        ws.store.prune_receipts()  # receipts of writes a day old: no retry comes that late
        for folder in (ws.trajectories_dir, ws.videos_dir, ws.policies_dir, ws.runs_dir, ws.exports_dir):
            if folder.exists() and not folder.is_dir():  # mkdir would say only "[Errno 17] File exists"
                raise ValueError(f"the workspace {root} holds a file named {folder.name} where its {folder.name} "
                                 "folder should be; move that file away")
            folder.mkdir(exist_ok=True)
            remove_abandoned_writes(folder)  # temp files of writers killed mid-write (older than an hour)
        ws.register_shipped()
        return ws

    @staticmethod
    def folder(root: str | os.PathLike | None = None) -> Path:
        """The workspace folder ``root`` names: itself, else ``$PREFINE_WORKSPACE``, else data/workspace."""
        return Path(root or os.environ.get("PREFINE_WORKSPACE") or REPO / "data" / "workspace").resolve()

    @property
    def trajectories_dir(self) -> Path:
        return self.root / "trajectories"

    @property
    def videos_dir(self) -> Path:
        return self.root / "videos"

    def pair_video_path(self, pair_id: int) -> Path:
        """The pair's video with the cost overlay; :func:`plain_video_path` names its cost-free twin."""
        return self.videos_dir / f"pair-{pair_id}.mp4"

    def register_pair_video(self, pair_id: int) -> bool:
        """Point the pair's row at its video once both files are at :meth:`pair_video_path` (rendered, or installed by
        an import), so that it never names a missing file; returns False, the files removed, for a pair deleted
        meanwhile (Data page), which would leave them orphans."""
        video = self.pair_video_path(pair_id)
        try:
            self.store.set_pair_video(pair_id, video)
        except NotFound:
            for path in (video, plain_video_path(video)):
                path.unlink(missing_ok=True)
            return False
        return True

    def clip_video_path(self, trajectory_id: int) -> Path:
        """One clip's own video with the cost overlay (Data page); its cost-free twin is beside it."""
        return self.videos_dir / f"clip-{trajectory_id}.mp4"

    def delete_pairs(self, pair_ids: list[int]) -> int:
        """:meth:`Store.delete_pairs`, then the pairs' rendered videos (each pair has its own); returns how many
        pairs went. An unknown id deletes nothing, files included. Only the files where this workspace renders a
        pair's video go, never the file a row names: a row edited to name a policy deleted that policy."""
        videos = [self.pair_video_path(pair.id) for pair in map(self.store.get_pair, sorted(set(pair_ids)))]
        deleted = self.store.delete_pairs(pair_ids)
        for video in videos:
            for path in (video, plain_video_path(video)):
                path.unlink(missing_ok=True)
        return deleted

    def delete_policy(self, policy_id: int) -> PolicyRecord:
        """:meth:`Store.delete_policy` (refused while anything uses it), then its file if an upload or import put it
        in this workspace's policies folder and no other policy row names it (a run's checkpoint stays with its run);
        returns what was deleted. A shipped policy is refused: the next open would register it again."""
        policy = self.store.get_policy(policy_id)
        path = Path(policy.path).resolve()
        if self.shipped is not None and path.is_relative_to(self.shipped.resolve()):
            raise ValueError(f"policy {policy.id} ('{policy.name}') is shipped with PREFINE Studio and is registered "
                             "again whenever the workspace opens; it is not deleted")
        self.store.delete_policy(policy.id)
        shared = any(Path(p.path).resolve() == path for p in self.store.list_policies())  # another task's row, say
        if path.is_relative_to(self.policies_dir.resolve()) and not shared:
            path.unlink(missing_ok=True)
        return policy

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    def keep_imported_policy(self, data: bytes) -> tuple[Path, bool]:
        """Write an imported checkpoint's bytes (atomically) where imports keep them: named by their hash, so importing
        the same file twice (two tabs, two app instances, a bundle and an upload) writes one file, and the store keeps
        one row per path. Returns the path and whether this call wrote it (a caller undoing a failed import removes
        only a file it wrote)."""
        from prefine_core.files import atomic_path

        target = self.policies_dir / "imported" / f"{hashlib.sha256(data).hexdigest()[:24]}.safetensors"
        if target.is_file():
            return target, False
        with atomic_path(target) as partial:
            Path(partial).write_bytes(data)
        return target, True

    def runnable_policy(self, policy_id: int, task_id: str) -> PolicyRecord:
        """The policy ``policy_id``, if a job of ``task_id`` can load it; refused by name, before a process starts, if
        it does not exist, is another task's, or its checkpoint is missing (imported from an export made without it)
        or does not load (damaged since: cut short, non-finite weights, metadata of another task)."""
        policy = self.store.get_policy(policy_id)  # "policy_id N does not exist"
        if policy.task_id != task_id:
            raise ValueError(f"{policy.name} (policy {policy.id}) is a policy for {policy.task_id}, not {task_id}; "
                             f"pick a policy for {task_id}")
        if not Path(policy.path).is_file():
            raise ValueError(f"{policy.name} (policy {policy.id}) has no checkpoint here (no file at {policy.path}: "
                             "imported from an export made without checkpoints, or removed since); import it again "
                             "with its checkpoint, or pick another policy")
        from prefine_core.policy import load_policy

        try:  # every run's output is called policy.safetensors: the process's own message would not say which
            load_policy(policy.path, task_id=task_id)
        except ValueError as exc:
            raise ValueError(f"{policy.name} (policy {policy.id}) cannot be loaded: {exc}; pick another policy") from None
        return policy

    def policy_with_bytes(self, task_id: str, data: bytes) -> PolicyRecord | None:
        """The policy of ``task_id`` whose file holds exactly ``data``, whatever it is called (a shipped one too)."""
        for policy in self.store.list_policies(task_id):
            path = Path(policy.path)
            if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
                return policy
        return None

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    def register_shipped(self) -> list[int]:
        """Register every readable shipped checkpoint under ``<shipped>/<task_id>/``; returns their ids.

        Cheap and idempotent: call it whenever new policies may have appeared (pool collection does).
        A file that is not a readable policy (still being written, corrupt) is skipped; it is
        registered on a later call once it is complete.
        """
        from prefine_core.policy import CheckpointError, read_meta

        folder = self.shipped
        if folder is None or not folder.is_dir():
            return []
        ids = []
        for path in sorted(folder.glob("*/*.safetensors")):
            kind = "reference" if path.stem == "reference" else "behaviour" if path.stem.startswith("behaviour") else None
            if kind is None:
                continue
            try:
                meta = read_meta(path)
            except CheckpointError:
                continue
            if meta.task_id != path.parent.name:
                continue
            ids.append(self.store.add_policy(
                name=f"{path.stem} ({meta.task_id})", path=str(path.resolve()), task_id=meta.task_id, kind=kind,
                provenance={"shipped": True, **meta.provenance}))
        return ids


def plain_video_path(video_path: str | Path) -> Path:
    """Where the cost-free rendering of a pair's or a clip's video lives, next to it (for "hide cost" labelling)."""
    path = Path(video_path)
    return path.with_name(f"{path.stem}-plain{path.suffix}")
