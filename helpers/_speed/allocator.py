"""Steady CPU memory for evaluation: keep glibc from handing activations back to the OS.

torch allocates each layer's CPU activations with ``malloc``. glibc serves a block larger
than its *mmap threshold* with a fresh ``mmap`` and unmaps it on ``free``, so the next batch
maps and zero-fills the same pages again. The threshold starts at 128 KiB and glibc raises it
by itself after such a free, but only up to 32 MiB and only if the process happens to free
one in range, so the same batch size ran at different speeds in different Python processes:
with 200-image batches of the course model (26 MB activations) one process took 12,800 page
faults per batch and ran 40% slower than another that took none (measured in the course repository's benchmarks).

:func:`steady_allocator` fixes the mmap threshold at 128 MiB (32 MiB where the C library
refuses more) and the trim threshold at 256 MiB, once per process. Side effect, for the whole
process: freed blocks up to that size are kept for reuse instead of returned to the OS, so
resident memory may stay up to about 256 MiB above what is in use. Elsewhere than Linux with
glibc, or when ``MALLOC_MMAP_THRESHOLD_`` is set in the environment (the user's own choice),
it does nothing. :func:`helpers.test_model` calls it before evaluating on the CPU, and
:func:`helpers.finetune.train_epoch` (so also :func:`helpers.finetune.fine_tune`) before training there.

Setting any of glibc's thresholds (``MALLOC_TRIM_THRESHOLD_``, which Dask's nanny gives every worker
process) also turns the dynamic mmap threshold off, so every activation above 128 KiB is mapped and
unmapped again: one epoch of fine-tuning the course model in a Dask worker took 1.5 s and 337,000 page
faults, against 0.85 s and 2,000 after this function (the course repository's benchmarks).
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["steady_allocator"]

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLDS = (128 << 20, 32 << 20)  # bytes; older glibc caps the threshold at 32 MiB
_TRIM_THRESHOLD = 256 << 20

_threshold: int | None = None


def steady_allocator() -> int:
    """Fix glibc's mmap and trim thresholds for this process (once); return the mmap threshold.

    Returns the threshold set, in bytes (blocks up to that size are reused, not re-mapped), or
    ``0`` where it cannot or should not act (not glibc, ``mallopt`` refused, or
    ``MALLOC_MMAP_THRESHOLD_`` already set). Idempotent and cheap after the first call.
    """
    global _threshold
    if _threshold is None:
        _threshold = _apply()
    return _threshold


def _apply() -> int:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return 0
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return 0
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return 0
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    for size in _MMAP_THRESHOLDS:
        if mallopt(_M_MMAP_THRESHOLD, size) == 1:
            return size if mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1 else 0
    return 0
