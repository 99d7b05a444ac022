"""Where the files a row names live, kept so that a workspace can be moved or copied whole.

A store opened for a workspace keeps the path of every file inside the workspace's parent folder — the
workspace itself, and the shipped policies beside it under ``data/`` — relative to the workspace root,
and hands records out with absolute paths again. Moving the folder that holds both (renaming the
checkout, copying ``data/`` to another machine) then keeps every row valid. Other paths, and every path
of a store opened without a root, are kept as given.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

#: Record fields that name a file.
PATH_FIELDS = ("path", "video_path", "log_path")


class FilePaths:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = None if root is None else Path(root).resolve()
        # where a row's video may lie: the workspace's videos folder, by its own path or, a link to another disk, by
        # the one it resolves to (rows keep resolved paths); as strings ending in a separator, compared per row read
        self._videos = () if self.root is None else tuple(
            {os.path.join(str(self.root), "videos", ""), os.path.join(str((self.root / "videos").resolve()), "")})

    @property
    def home(self) -> Path | None:
        """The folder inside which paths are stored relative (the workspace's parent)."""
        return None if self.root is None else self.root.parent

    def to_row(self, path: str | os.PathLike | None) -> str | None:
        """The form a path is stored in."""
        if path is None or self.root is None:
            return None if path is None else str(path)
        resolved = Path(path).resolve()
        return os.path.relpath(resolved, self.root) if resolved.is_relative_to(self.home) else str(resolved)

    def from_row(self, stored: str | None) -> str | None:
        """The absolute path of a stored one (absolute ones, and all without a root, unchanged)."""
        if stored is None or self.root is None or os.path.isabs(stored):
            return stored
        return os.path.normpath(self.root / stored)

    def located(self, record):
        """``record`` (a frozen dataclass) with its path fields made absolute; a video path that is not an mp4 file in
        the workspace's ``videos`` folder as None, so that a row edited to name another file (a checkpoint,
        /etc/passwd) never sends that file to a browser."""
        fields = {name: self.from_row(getattr(record, name)) for name in PATH_FIELDS if hasattr(record, name)}
        if fields.get("video_path") and self._videos:  # strings, not resolve(): this runs for every row read
            video = os.path.normpath(fields["video_path"])
            if not (video.endswith(".mp4") and video.startswith(self._videos)):
                fields["video_path"] = None
        return dataclasses.replace(record, **fields) if fields else record
