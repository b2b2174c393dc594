"""The files of a download, a folder or a ``.zip``, by relative path, and the notebooks chosen from it on disk.

Reading a layout needs only the names (and times) of the files; only the notebooks that are graded are then
read, or extracted from the archive into the run's own folder. Extraction takes regular files only, refuses
names that would leave the folder (absolute, ``..``), and stops at :data:`MAX_NOTEBOOK_BYTES` per file.

Runs in the grader's process.
"""

from __future__ import annotations

import os
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .entries import JUNK

__all__ = ["Listing", "ListingError", "MAX_NOTEBOOK_BYTES"]

#: The largest notebook taken from a download (the grader refuses larger ones anyway).
MAX_NOTEBOOK_BYTES = 50_000_000


class ListingError(ValueError):
    """A download that cannot be read (not a folder or a zip, a damaged zip); the message says why."""


def _clean(name: str) -> str | None:
    """``name`` (an archive member) as a safe relative path with ``/``, or ``None`` when it is not one."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts) or ":" in path.parts[0]:
        return None
    return path.as_posix()


def _junk(rel: str) -> bool:
    return any(JUNK.match(part) for part in rel.split("/"))


@dataclass
class Listing:
    """The files of a download: ``files`` maps each relative path (``/``-separated) to its modification time.

    Attributes:
        source: the folder or the ``.zip``.
        files: every regular file, by relative path, with its modification time (seconds since the epoch).
        junk: files every download carries that are nobody's (``__MACOSX/``, ``.DS_Store``, checkpoints).
        dirs: every folder, empty ones included (a student's folder with nothing in it), by relative path.
    """

    source: Path
    files: dict[str, float]
    junk: list[str] = field(default_factory=list)
    dirs: set[str] = field(default_factory=set)

    @property
    def is_archive(self) -> bool:
        return self.source.is_file()

    @classmethod
    def of(cls, source: Path) -> Listing:
        """The files of ``source``, a folder or a ``.zip``; :class:`ListingError` for anything else."""
        source = Path(source)
        files: dict[str, float] = {}
        folders: set[str] = set()
        if source.is_dir():
            for top, dirs, names in os.walk(source):
                dirs.sort()
                folders.update((Path(top) / d).relative_to(source).as_posix() for d in dirs)
                for name in names:
                    path = Path(top) / name
                    info = path.lstat()
                    if stat.S_ISREG(info.st_mode):
                        files[path.relative_to(source).as_posix()] = info.st_mtime
        elif source.is_file() and zipfile.is_zipfile(source):
            try:
                with zipfile.ZipFile(source) as archive:
                    for info in archive.infolist():
                        rel = _clean(info.filename)
                        if rel is not None and info.is_dir():
                            folders.add(rel)
                        if rel is None or info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                            continue
                        files[rel] = time.mktime((*info.date_time, 0, 0, -1))
            except (zipfile.BadZipFile, OSError) as exc:
                raise ListingError(f"{source} is a damaged zip archive ({exc})") from None
        elif source.is_file():
            raise ListingError(f"{source} is not a zip archive: give the folder of submissions or the LMS's .zip")
        else:
            raise ListingError(f"{source} does not exist")
        junk = sorted(rel for rel in files if _junk(rel))
        return cls(source, {rel: t for rel, t in files.items() if rel not in junk}, junk,
                   {d for d in folders if not _junk(d)})

    def under(self, prefix: str) -> dict[str, float]:
        """The files below the folder ``prefix`` (``""``: all), by their path relative to it."""
        if not prefix:
            return dict(self.files)
        cut = prefix.rstrip("/") + "/"
        return {rel[len(cut):]: t for rel, t in self.files.items() if rel.startswith(cut)}

    def dirs_under(self, prefix: str) -> set[str]:
        """The folders below the folder ``prefix`` (``""``: all), by their path relative to it."""
        if not prefix:
            return set(self.dirs)
        cut = prefix.rstrip("/") + "/"
        return {d[len(cut):] for d in self.dirs if d.startswith(cut)}

    def top_folder(self) -> str | None:
        """The one folder every file lies in, if there is one (an archive of a folder)."""
        tops = {rel.split("/", 1)[0] for rel in self.files}
        if len(tops) == 1 and all("/" in rel for rel in self.files):
            return tops.pop()
        return None

    def materialize(self, rel: str, work: Path) -> Path:
        """The file ``rel`` on disk: in the folder itself, or extracted from the archive below ``work`` (its time
        kept). Extraction stops just past :data:`MAX_NOTEBOOK_BYTES`, whatever the archive claims: the grader then
        refuses the file as too large."""
        if not self.is_archive:
            return self.source / rel
        dest = Path(work) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(self.source) as archive, open(dest, "wb") as out:
            info = next(i for i in archive.infolist() if _clean(i.filename) == rel)
            with archive.open(info) as src:
                while out.tell() <= MAX_NOTEBOOK_BYTES and (chunk := src.read(1 << 20)):
                    out.write(chunk)
        os.utime(dest, (self.files[rel], self.files[rel]))
        return dest
