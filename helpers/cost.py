"""What a model costs to run: multiply-accumulates, parameters and CPU latency.

Part 3 of the notebook compares masked models (zeros still stored and multiplied) with models
whose zeroed filters were removed. MACs and parameters are counted by Torch-Pruning's
``count_ops_and_params`` (a maintained counter that walks the model with forward hooks), not by
code of this course. Latency is measured with ``torch.utils.benchmark.Timer``, which warms up,
repeats until a minimum run time is reached and reports the median, on each model as one would
deploy it for CPU inference (TorchScript, frozen and optimized: :func:`measure_latency`).

Example:
    >>> from helpers.models import SmallCNN
    >>> macs, params = count_macs(SmallCNN())
    >>> int(macs), params
    (11021322, 620362)
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn
from tqdm.auto import tqdm

from .evaluate import test_model
from .models import copy_model

__all__ = ["count_macs", "measure_latency", "cost_rows", "format_cost_table", "INPUT_SHAPE"]

#: One CINIC-10 image as the model takes it: ``(channels, height, width)``.
INPUT_SHAPE = (3, 32, 32)


def _plain(model: nn.Module) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def count_macs(model: nn.Module) -> tuple[float, int]:
    """``(MACs, parameters)`` of one forward pass of a single 32x32 image.

    Counted by ``torch_pruning.utils.count_ops_and_params`` on the CPU. Masked zeros count
    like any weight (they are still multiplied); a model whose filters were removed counts
    only what is left. A copy is counted: ``model`` is not modified.
    """
    import torch_pruning as tp  # noqa: PLC0415 - about 1 s of imports: only part 3 pays it

    model = copy_model(_plain(model)).eval()  # the counter deep-copies, which a pruned model allows only this way
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    macs, params = tp.utils.count_ops_and_params(model, torch.zeros(1, *INPUT_SHAPE, device=device))
    return float(macs), int(params)


def measure_latency(model: nn.Module, batch_size: int = 1, threads: int | None = None,
                    min_run_time: float = 0.3, optimize: bool = True) -> float:
    """Median CPU seconds of one forward pass over a batch of ``batch_size`` images.

    The input is laid out as :func:`helpers.test_model` gives it to every model of this course:
    ``(B, 3, 32, 32)`` float32 in channels-last memory (the ``(B, 32, 32, 3)`` pixels permuted,
    see :func:`helpers._batches.to_model_input`). By default the model is timed as one would deploy
    it for CPU inference: traced to TorchScript, frozen (weights become constants; a pruning mask
    is applied once) and passed through ``torch.jit.optimize_for_inference``, which fuses each
    convolution with its ReLU and packs the weights for oneDNN. Eager PyTorch runs every ReLU and
    pooling as a separate pass over memory, whose cost falls only with the number of channels,
    not with the MACs; the optimized graph is what shows what removing filters buys. Every model
    is timed the same way.

    Args:
        model: any traceable model taking ``(B, 3, 32, 32)`` float32; a copy is measured (on the
            CPU, in eval mode, under ``torch.inference_mode``): ``model`` itself is not changed.
        batch_size: images per forward pass (1: one image at a time, as a phone would).
        threads: torch CPU threads during the measurement (default: torch's current setting);
            fix it when comparing models, so that they are measured alike.
        min_run_time: seconds of repeated runs after a warm-up (``Timer.blocked_autorange``).
        optimize: ``False`` times the eager model as it is (for comparison).

    Returns:
        Seconds per forward pass (median of the timed blocks).

    Raises:
        ValueError: a bad argument, or a model that cannot be traced (then ``optimize=False``
        times it eagerly).
    """
    # importing torch.utils.benchmark looks for a CUDA toolkit and logs a warning on CPU-only machines: quieted
    # here, when it is first needed, rather than for every process that imports helpers
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark  # noqa: PLC0415

    model = _plain(model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    if not min_run_time > 0:
        raise ValueError(f"min_run_time must be > 0 seconds, got {min_run_time!r}")
    model = copy_model(model).cpu().eval()  # the model itself stays where and as it is
    channels, height, width = INPUT_SHAPE
    x = torch.randn(batch_size, height, width, channels).permute(0, 3, 1, 2)  # as to_model_input lays it out
    with torch.inference_mode():
        if optimize:
            model = _optimized(model, x)
        for _ in range(3):  # warm-up: first calls allocate and pick kernels
            model(x)
        timer = benchmark.Timer("model(x)", globals={"model": model, "x": x},
                                num_threads=threads or torch.get_num_threads())
        return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def _optimized(model: nn.Module, example: torch.Tensor):
    """``model`` traced on ``example``, frozen and optimized for CPU inference (TorchScript).

    Recent torch releases mark TorchScript deprecated in favour of ``torch.compile``, which needs a
    C++ compiler on the machine and tens of seconds per model; TorchScript still runs and takes well
    under a second, so its deprecation warnings are silenced here.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))
    except Exception as exc:  # noqa: BLE001 - any tracing failure: say what to do
        raise ValueError(f"the model could not be traced for optimized timing ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); time it with optimize=False") from None


def cost_rows(models: dict, test_data, batch_sizes: tuple[int, ...] = (1, 256), threads: int | None = None,
              min_run_time: float = 0.3, progress: bool = True) -> list[dict]:
    """Accuracy, MACs, parameters and latency of each named model, for :func:`format_cost_table` and plots.

    Args:
        models: ``{name: (kind, target, model)}``; ``kind`` groups the points of a plot
            (``"pretrained"``, ``"unstructured (masked)"``, ...), ``target`` is the pruning fraction.
        test_data: ``[images, labels]`` for :func:`helpers.test_model`.
        batch_sizes: the batch sizes to time, each a column ``latency_<b>`` in seconds.
        threads: CPU threads for every timing (default: torch's current setting), the same for all.

    Returns:
        One dict per model: ``name, kind, target, accuracy, macs, params, latency_<b>...``.
    """

    threads = threads or torch.get_num_threads()
    rows = []
    for name, (kind, target, model) in tqdm(models.items(), desc="measuring", disable=not progress, leave=False):
        macs, params = count_macs(model)
        row = {"name": name, "kind": kind, "target": target, "macs": macs, "params": params,
               "accuracy": test_model(model, test_data, verbose=False)}
        for b in batch_sizes:
            row[f"latency_{b}"] = measure_latency(model, b, threads=threads, min_run_time=min_run_time)
        rows.append(row)
    return rows


def format_cost_table(rows: list[dict]) -> str:
    """The rows of :func:`cost_rows` as a text table; ratios are to the first row (the pretrained model)."""
    if not rows:
        return "(no models measured)"
    lat = [k for k in rows[0] if k.startswith("latency_")]
    head = f"{'model':<28}{'accuracy':>9}{'MMACs':>8}{'params':>9}" + "".join(
        f"{'ms @' + k[8:]:>11}{'speed-up':>9}" for k in lat) + f"{'MACs cut':>9}"
    lines = [head, "-" * len(head)]
    base = rows[0]
    for r in rows:
        cells = "".join(f"{r[k] * 1e3:>11.3f}{base[k] / r[k]:>8.2f}x" for k in lat)
        lines.append(f"{r['name']:<28}{r['accuracy']:>9.4f}{r['macs'] / 1e6:>8.2f}{r['params']:>9,}"
                     f"{cells}{base['macs'] / r['macs']:>8.2f}x")
    return "\n".join(lines)
