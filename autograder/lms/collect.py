"""Reading a class's submissions in whatever layout they come: which layout it is, and one entry per student.

:func:`collect` takes a folder or a ``.zip`` and tries the LMSs' downloads first (their file names are
unmistakable: nbgrader's exchange, Moodle, Canvas), then nbgrader's ``submitted/`` folder and a folder of
notebooks; an archive of a single folder is read inside that folder. The notebooks chosen are taken from
the folder as they are, or extracted from the archive into the run's own folder.

Runs in the grader's process.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ASSIGNMENT
from . import canvas, folders, moodle
from .entries import Collected
from .listing import Listing, ListingError

__all__ = ["collect", "LAYOUTS"]

#: What :func:`collect` recognises, for messages.
LAYOUTS = ("a Canvas 'Download Submissions' zip", "a Moodle 'Download all submissions' zip (in folders or not)",
           "nbgrader's exchange inbound folder", f"nbgrader's submitted/<student_id>/{ASSIGNMENT}/ folder",
           "a folder of notebooks named after their students")


def _notebooks(names) -> int:
    return sum(str(n).lower().endswith(".ipynb") for n in names)


def _read(listing: Listing) -> Collected | None:
    top = listing.top_folder()
    for reader in (folders.read_inbound, moodle.read_download, canvas.read_download):
        for prefix in ("", top) if top else ("",):
            found = reader(listing, prefix)
            # an LMS's names explain most notebooks of its download; a stray match in a folder does not
            if found is not None and _notebooks(e.notebook for e in found.entries if e.notebook) >= \
                    _notebooks(found.ignored):
                return found
    for prefix in (top, "") if top else ("",):
        for reader in (folders.read_submitted, folders.read_notebooks):
            found = reader(listing, prefix)
            if found is not None and not any(e.name == ASSIGNMENT for e in found.entries):  # that is no student
                return found
    return None


def collect(source: Path, work: Path) -> Collected:
    """The students of ``source`` (a folder or a ``.zip``), their notebooks on disk (an archive's extracted below
    ``work``). Raises :class:`~autograder.lms.listing.ListingError` when it is none of :data:`LAYOUTS`."""
    listing = Listing.of(source)
    found = _read(listing)
    if found is None:
        shown = ", ".join(sorted(listing.files)[:5]) or "no files"
        raise ListingError(f"no submissions in {source} ({shown}): expected {'; or '.join(LAYOUTS)}")
    for entry in found.entries:
        if entry.notebook is not None:
            entry.notebook = listing.materialize(entry.notebook.as_posix(), work)
    return found
