"""What a student stores as a number: a Python number, a numpy scalar or a one-number tensor are all numbers.

``(w == 0).float().mean()`` gives a 0-d tensor and ``np.mean`` a numpy float; a student rightly expects either to
count as the number it holds. The notebook's visible checks and the grader's export read stored values through
:func:`as_number`, so both accept the same values and refuse the same ones.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["as_number", "number_text"]


def as_number(value) -> float | None:
    """``value`` as a float when it is one real number (a Python ``int``/``float``, a numpy scalar, a tensor or array
    holding a single number), else ``None`` (``True``/``False``, ``nan``, text, a list, a tensor of several numbers).

    >>> import numpy as np, torch
    >>> as_number(0.1), as_number(np.float32(0.5)), as_number(torch.tensor(0.25)), as_number(torch.tensor([0.75]))
    (0.1, 0.5, 0.25, 0.75)
    >>> as_number(True), as_number("0.1"), as_number(float("nan")), as_number(torch.tensor([0.1, 0.2]))
    (None, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if not isinstance(value, numbers.Real):
        numel = getattr(value, "numel", None) or getattr(value, "size", None)
        try:
            count = numel() if callable(numel) else numel
            kind = str(getattr(value, "dtype", "bool"))
            if count != 1 or kind.startswith(("torch.bool", "bool")):
                return None
            value = value.item()
        except Exception:  # noqa: BLE001 - anything a student stored
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
    number = float(value)
    return number if math.isfinite(number) else None


def number_text(value) -> str:
    """How a message shows a stored value: its number when it is one (``0.1000``), else its ``repr``."""
    number = as_number(value)
    return f"{number:.4f}" if number is not None else repr(value)
