"""Finding the pretrained model a student's notebook loads: given, found, or downloaded and checked.

The notebook's set-up cell calls :func:`helpers.notebook.setup`, which calls :func:`find_model`.
Places are tried in this order; the first that has the file wins:

1. ``$PRUNING_MODEL`` when set (whoever started Jupyter chose it: the autograder sets it for
   every graded notebook, so a path a student wrote cannot change what is graded);
2. ``model_path``, the ``MODEL_PATH`` of the notebook's paths cell;
3. ``pruning-model.pt`` in the notebook's folder (the student bundle puts it there);
4. ``pruning-model.pt`` in ``search`` folders (in Colab: the course folder in Google Drive);
5. ``pruning-model.pt`` in the cache folder (:func:`helpers.config.default_model_path`);
6. downloaded from ``model_url`` into ``download_to`` (Drive in Colab, else the cache).

Every file but the first is checked against ``sha256`` when one is given (the release bakes
the model's digest into the notebook), so a stale or foreign file is named, not silently used.
Every failure raises :class:`SetupError` whose message is one sentence saying what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import ENV_MODEL, MODEL_FILE, default_cache_dir
from .download import DownloadError, download_file, sha256sum

__all__ = ["SetupError", "find_model"]


class SetupError(RuntimeError):
    """The notebook cannot start: the message says, in one sentence, what the student should do."""


def _checked(path: Path, sha256: str | None, how: str) -> Path:
    if sha256 and sha256sum(path) != sha256.lower():
        raise SetupError(f"{path} ({how}) is not the course's pretrained model (its SHA-256 differs): "
                         "delete it or point MODEL_PATH in the paths cell at the file from your course bundle, "
                         "then run the set-up cell again.")
    return path


def find_model(model_path: str | os.PathLike | None = None, model_url: str | None = None,
               sha256: str | None = None, here: str | os.PathLike = ".",
               search: tuple[str | os.PathLike, ...] = (), download_to: str | os.PathLike | None = None,
               progress: bool = True) -> Path:
    """Return the path of the pretrained model, downloading it when it is nowhere to be found.

    Args:
        model_path: the file the student named (``MODEL_PATH``), or ``None``.
        model_url: where the release says the model can be downloaded (``http(s)://`` or ``file://``).
        sha256: the model's expected hex SHA-256, or ``None`` to accept any file.
        here: the notebook's folder (a kernel's working folder in Jupyter).
        search: further folders that may hold ``pruning-model.pt``.
        download_to: folder for the download (default: the cache folder).
        progress: show a progress bar while downloading.

    Raises:
        SetupError: the named file is missing, a found file fails the checksum, the download
            fails, or no place has the model and there is no URL.

    Example:
        >>> import tempfile, torch
        >>> folder = Path(tempfile.mkdtemp())
        >>> torch.save({}, folder / "pruning-model.pt")
        >>> find_model(here=folder) == folder / "pruning-model.pt"
        True
    """
    env = os.environ.get(ENV_MODEL)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise SetupError(f"{ENV_MODEL} is set to {path}, which is not a file: fix or unset it "
                             "(then restart the kernel).")
        return path
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise SetupError(f"MODEL_PATH is {str(path)!r}, which is not a file: fix MODEL_PATH in the paths "
                             "cell (or set it to None to use the course's model), then run both cells again.")
        return _checked(path, sha256, "MODEL_PATH")
    places = [Path(here), *map(Path, search), default_cache_dir()]
    for folder in places:
        path = folder.expanduser() / MODEL_FILE
        if path.is_file():
            return _checked(path, sha256, "found")
    if not model_url:
        raise SetupError(f"No pretrained model found (looked for {MODEL_FILE} in "
                         f"{', '.join(str(p) for p in places)}): put the {MODEL_FILE} of your course bundle next "
                         "to this notebook, or set MODEL_PATH in the paths cell, then run the set-up cell again.")
    dest = Path(download_to or default_cache_dir()).expanduser() / MODEL_FILE
    try:
        return download_file(model_url, dest, sha256=sha256, progress=progress)
    except DownloadError as exc:
        place = f"in {download_to}" if download_to else "next to this notebook"
        if "checksum mismatch" in str(exc):  # the address answers, with another file (a sharing page's HTML, say)
            raise SetupError(f"The pretrained model could not be downloaded ({exc}): the address {model_url} gives "
                             "another file than the course's model; tell your instructor, and meanwhile put the "
                             f"{MODEL_FILE} of your course bundle {place}.") from None
        raise SetupError(f"The pretrained model could not be downloaded ({exc}): check your internet "
                         f"connection and run the set-up cell again, or put {MODEL_FILE} {place}.") from None
