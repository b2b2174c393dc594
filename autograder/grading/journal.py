"""The durable record of every submission graded, for crash-safe resume.

``<out>/journal.jsonl`` gets one JSON line per finished submission (its grade, notes, timings
and the SHA-256 of the executed notebook kept in ``<out>/executed/``), flushed and fsync'd
before the next job is reported, so a grader killed at any moment (``kill -9``, power loss)
loses only the submissions still in flight. A line that was cut off by the crash is ignored.

Each line carries a *key*: the SHA-256 of everything the grade depends on (the notebook's
bytes, the model checkpoint, the grading images, the source notebook and the grading
settings). Running the same command again reuses a line whose key still matches and whose
executed notebook is still there and unchanged, so only new or changed submissions run.

Runs in the grader's process.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict
from pathlib import Path

from .results import CheckResult, StudentGrade

__all__ = ["Journal", "file_sha256", "grade_key"]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def grade_key(notebook_sha: str, run_key: str) -> str:
    """The key of one submission: its notebook's SHA-256 combined with the run's."""
    return hashlib.sha256(f"{notebook_sha}:{run_key}".encode()).hexdigest()


class Journal:
    """Append-only, fsync'd JSON lines of finished grades. Thread-safe.

    Example::

        journal = Journal(out / "journal.jsonl")
        journal.add(grade, key)                  # durable when it returns
        journal.reuse("s1", key, out / "executed")  # the StudentGrade, or None
    """

    def __init__(self, path: Path, fresh: bool = False):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        if fresh and self.path.exists():
            self.path.unlink()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    self._entries[entry["student_id"]] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut off by a crash
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, grade: StudentGrade, key: str) -> None:
        """Record ``grade`` durably (written, flushed and fsync'd before returning)."""
        entry = {"student_id": grade.student_id, "key": key, "status": grade.status,
                 "checks": [asdict(c) for c in grade.checks], "notes": grade.notes, "timings": grade.timings,
                 "figures": grade.figures, "executed": grade.executed.name if grade.executed else None,
                 "executed_sha256": file_sha256(grade.executed) if grade.executed else None}
        line = json.dumps(entry) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._entries[grade.student_id] = entry

    def reuse(self, student_id: str, key: str, executed_dir: Path) -> StudentGrade | None:
        """The recorded grade of ``student_id`` if its key matches and its executed notebook is intact."""
        entry = self._entries.get(student_id)
        if entry is None or entry.get("key") != key:
            return None
        executed = None
        if entry.get("executed"):
            executed = Path(executed_dir) / entry["executed"]
            if not executed.is_file() or file_sha256(executed) != entry.get("executed_sha256"):
                return None
        checks = [CheckResult(**c) for c in entry["checks"]]
        return StudentGrade(student_id, entry["status"], checks, list(entry["notes"]), executed=executed,
                            timings=dict(entry.get("timings") or {}), figures=dict(entry.get("figures") or {}))

    def close(self) -> None:
        with self._lock:
            self._fh.close()
