"""Notebook conveniences: start-up in Colab or Jupyter, a size table, an interactive slider.

The start-up cell of the assignment calls :func:`setup`. In Google Colab it mounts Google
Drive and points the data cache and the model at a course folder there, so downloads and
models survive the session; in JupyterLab or Notebook 7 it changes nothing. Locations come
from environment variables (``CINIC10_ROOT``, ``CINIC10_CACHE``, ``PRUNING_MODEL``,
``PRUNING_COURSE_DIR``), never from paths written in the notebook.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from torch import nn

from .config import (
    COLAB_COURSE_DIR,
    COLAB_MOUNT,
    ENV_CACHE,
    ENV_COURSE_DIR,
    ENV_MODEL,
    ENV_ROOT,
    default_cache_dir,
    default_model_path,
)
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


def setup(verbose: bool = True) -> dict:
    """Prepare the notebook's environment and report where data and model come from.

    Side effects in Colab only: mounts Google Drive at ``/content/drive`` and sets
    ``CINIC10_CACHE`` and ``PRUNING_MODEL`` (unless already set) to a course folder in
    Drive (``$PRUNING_COURSE_DIR``, default ``MyDrive/pruning-course``), creating it.

    Returns:
        dict with ``in_colab``, ``data_root`` (the ``CINIC10_ROOT`` value or ``None`` for
        the cache default), ``cache_dir`` and ``model_path``.
    """
    colab = in_colab()
    if colab:
        from google.colab import drive  # only importable in Colab
        drive.mount(COLAB_MOUNT)
        course = Path(os.environ.get(ENV_COURSE_DIR, COLAB_COURSE_DIR))
        course.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault(ENV_CACHE, str(course / "cache"))
        os.environ.setdefault(ENV_MODEL, str(course / "pruning-model.pt"))
    info = {"in_colab": colab, "data_root": os.environ.get(ENV_ROOT), "cache_dir": default_cache_dir(),
            "model_path": default_model_path()}
    if verbose:
        where = "Google Colab" if colab else "Jupyter"
        print(f"Running in {where}.")
        print(f"  data:  {info['data_root'] or info['cache_dir'] / 'CINIC-10'}  (set {ENV_ROOT} to change)")
        print(f"  model: {info['model_path']}  (set {ENV_MODEL} to change)")
    return info


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
    from .models import copy_model

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
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        show(start)
        return None
    slider = widgets.FloatSlider(value=start, min=0.0, max=0.95, step=0.05, description="prune",
                                 continuous_update=False, readout_format=".2f")
    out = widgets.interactive_output(show, {"amount": slider})
    box = widgets.VBox([slider, out])
    display(box)
    return box
