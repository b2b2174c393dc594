"""Notebook conveniences: start-up in Colab or Jupyter, a size table, an interactive slider.

The start-up cell of the assignment calls :func:`setup` with the paths of the notebook's one
unlocked paths cell (``DATA_PATH``, ``MODEL_PATH``; ``None`` means the defaults) and the model's
URL and checksum that the instructor's release baked in. In Google Colab it mounts Google
Drive and keeps the data cache and the model in a course folder there, so downloads survive
the session. Environment variables set before Jupyter started (``CINIC10_ROOT``,
``CINIC10_CACHE``, ``PRUNING_MODEL``, ``PRUNING_COURSE_DIR``) win over the paths cell.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import nn

from ._locate import SetupError, find_model
from .config import (
    COLAB_COURSE_DIR,
    COLAB_MOUNT,
    ENV_CACHE,
    ENV_COURSE_DIR,
    ENV_MODEL,
    ENV_ROOT,
    default_cache_dir,
)
from .models import copy_model
from .sparsity import global_sparsity, model_size

__all__ = ["in_colab", "setup", "size_table", "pruning_slider"]


def in_colab() -> bool:
    """True inside Google Colab (the ``google.colab`` package is importable)."""
    if "google.colab" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):  # a 'google' namespace without 'colab'
        return False


def setup(data_path: str | os.PathLike | None = None, model_path: str | os.PathLike | None = None,
          model_url: str | None = None, model_sha256: str | None = None, verbose: bool = True) -> dict:
    """Prepare the notebook's environment, find (or fetch) the model, report where things come from.

    Args:
        data_path: ``DATA_PATH`` of the paths cell: a CINIC-10 folder or ``CINIC-10.tar.gz`` (or
            ``None``: the default of :func:`helpers.get_CINIC10_data`). Sets ``CINIC10_ROOT``
            for this kernel unless that variable was already set when Jupyter started (the
            autograder sets it; a note says it wins).
        model_path, model_url, model_sha256: how to find the pretrained model; see
            :func:`helpers._locate.find_model` for the order of places tried.
        verbose: print where data and model come from.

    Side effects in Colab only: mounts Google Drive at ``/content/drive``, creates the course
    folder there (``$PRUNING_COURSE_DIR``, default ``MyDrive/pruning-course``) and points
    ``CINIC10_CACHE`` at it (unless set), so downloads survive the session; the model is looked
    for and downloaded there too.

    Returns:
        dict with ``in_colab``, ``data_root`` (the ``CINIC10_ROOT`` value or ``None`` for the
        cache default), ``cache_dir`` and ``model_path`` (an existing file).

    Raises:
        helpers._locate.SetupError: with one sentence saying what to do.
    """
    colab = in_colab()
    search, download_to = (), None
    if colab:
        from google.colab import drive  # noqa: PLC0415 - only importable in Colab
        drive.mount(COLAB_MOUNT)
        course = Path(os.environ.get(ENV_COURSE_DIR, COLAB_COURSE_DIR))
        course.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault(ENV_CACHE, str(course / "cache"))
        search, download_to = (course,), course
    notes = []
    if data_path is not None:
        if os.environ.get(ENV_ROOT) and os.environ[ENV_ROOT] != str(data_path):
            notes.append(f"note: {ENV_ROOT} is set to {os.environ[ENV_ROOT]}; DATA_PATH is not used")
        elif not Path(data_path).expanduser().exists():
            raise SetupError(f"DATA_PATH is {str(data_path)!r}, which does not exist: fix DATA_PATH in the paths "
                             "cell (or set it to None to download the dataset), then run both cells again.")
        else:
            os.environ[ENV_ROOT] = str(Path(data_path).expanduser())
    if model_path is not None and os.environ.get(ENV_MODEL):
        notes.append(f"note: {ENV_MODEL} is set to {os.environ[ENV_MODEL]}; MODEL_PATH is not used")
    model = find_model(model_path, model_url, model_sha256, here=Path.cwd(), search=search,
                       download_to=download_to, progress=verbose)
    info = {"in_colab": colab, "data_root": os.environ.get(ENV_ROOT), "cache_dir": default_cache_dir(),
            "model_path": model}
    if verbose:
        print(f"Running in {'Google Colab' if colab else 'Jupyter'}.")
        print(f"  data:  {info['data_root'] or info['cache_dir'] / 'CINIC-10'}")
        print(f"  model: {model}")
        print(f"  {_versions()}  (copy this line into any question about the set-up)")
        for note in notes:
            print(note)
    return info


def _versions() -> str:
    """One line for support questions: the versions that matter and where the work runs."""
    try:
        ours = version("pruning-course-helpers")
    except PackageNotFoundError:  # run from a checkout of the course repository
        ours = "from source"
    if torch.cuda.is_available():
        where = f"GPU ({torch.cuda.get_device_name(0)})"
    else:
        where = f"CPU ({torch.get_num_threads()} threads; a GPU is faster)"
    return f"helpers {ours}, torch {torch.__version__}, Python {platform.python_version()}; computing on the {where}"


def size_table(models: dict[str, nn.Module]) -> str:
    """A text table of sparsity and storage, dense vs sparse, for each labelled model."""
    lines = [f"{'model':<22}{'sparsity':>9}{'nonzero':>10}{'dense KiB':>11}{'sparse KiB':>12}"]
    for label, model in models.items():
        size = model_size(model)
        lines.append(f"{label:<22}{global_sparsity(model):>9.3f}{size['nonzero']:>10,}"
                     f"{size['dense_bytes'] / 1024:>11.1f}{size['sparse_bytes'] / 1024:>12.1f}")
    return "\n".join(lines)


def pruning_slider(model: nn.Module, test_data, prune_fn, evaluate, start: float = 0.5):
    """An ipywidgets slider that prunes a copy of ``model`` to the chosen sparsity and tests it.

    ``prune_fn(model, amount)`` must return a pruned copy; ``evaluate(model, test_data)``
    returns the accuracy. Without ipywidgets, or without a widget front end (nbconvert,
    autograding), the widget degrades to one printed result at ``start``; it never raises.

    Returns:
        The widget, or ``None`` when ipywidgets is unavailable.
    """
    def show(amount: float) -> None:
        try:
            pruned = prune_fn(copy_model(model), amount)  # a copy: `model` survives any prune_fn
            acc = evaluate(pruned, test_data)
            print(f"amount {amount:.2f}: sparsity {global_sparsity(pruned):.3f}, accuracy {acc:.4f}")
        except NotImplementedError:
            print("Implement prune_unstructured above first, then move the slider.")
        except Exception as exc:  # show the student's error without breaking the notebook
            print(f"pruning failed: {type(exc).__name__}: {exc}")

    try:
        import ipywidgets as widgets  # noqa: PLC0415 - only the slider needs it; it may be missing
        from IPython.display import display  # noqa: PLC0415
    except ImportError:
        show(start)
        return None
    slider = widgets.FloatSlider(value=start, min=0.0, max=0.95, step=0.05, description="prune",
                                 continuous_update=False, readout_format=".2f")
    out = widgets.interactive_output(show, {"amount": slider})
    box = widgets.VBox([slider, out])
    display(box)
    return box
