"""Measurements shared by one grading run.

Grading a submission measures models on the grading data (accuracies, and the fine-tuning replays
of part 3: :mod:`autograder.grading.trained_split`), once per model and grading run
(:meth:`autograder.grading.measure.ReferenceMeasurements.once`). Local grading keeps them in one process for all
its jobs; on a cluster each worker would measure for itself every model it has not seen. A
:class:`SchedulerStore` keeps them in the scheduler's metadata instead, under one name per grading
run and kind of device (a GPU may round differently from a CPU), so that what one worker or the
grader measured, no other measures again.

Values are what :meth:`~autograder.grading.measure.ReferenceMeasurements.once` computes (floats, tensors),
stored as ``torch.save`` bytes and read back with ``weights_only=True``. The store only saves
time: when the scheduler cannot answer, :meth:`~SchedulerStore.get` says it has nothing and the
worker measures for itself. Kernels never reach it (the sandbox has no network); only the grader's
trusted code on the workers reads and writes it.

The grader's measurements of the reference solution itself (:class:`~autograder.grading.measure.Measurements`)
go to the workers the same way, as JSON in a Dask ``Variable`` that the workers wait on
(:func:`publish_measurements`, :func:`receive_measurements`): tasks are sent before the reference
is built, so their notebooks run while it is.

Runs in the grader's process and in every Dask worker.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

from distributed import Variable

__all__ = ["SchedulerStore", "drop_run", "publish_measurements", "receive_measurements", "forget_measurements",
           "RECEIVE_TIMEOUT"]

#: Seconds a worker waits for the grader's measurements of the reference (built while the first
#: notebooks run, about 10 s on a CPU) before its grades fail with that reason.
RECEIVE_TIMEOUT = 1800

_log = logging.getLogger(__name__)


def _name(key) -> str:
    """The metadata name of a :meth:`Reference.once` key (a digest, or a tuple of plain values)."""
    return "|".join(map(str, key)) if isinstance(key, tuple) else str(key)


class SchedulerStore:
    """``get`` / ``put`` of one grading run's measurements in the Dask scheduler's metadata.

    ``client``: returns the ``distributed.Client`` to use (in a worker: ``distributed.get_client``);
    ``namespace``: the metadata path of this run and kind of device, e.g. ``["pgrade-<run>", "cpu"]``.

    Example (with a running scheduler)::

        store = SchedulerStore(lambda: client, ["pgrade-1a2b", "cpu"])
        store.put("digest", 0.61)
        store.get("digest")          # 0.61, in any process of the cluster
        store.get("other")           # None
    """

    def __init__(self, client: Callable, namespace: list[str]):
        if not namespace or not all(isinstance(n, str) and n for n in namespace):
            raise ValueError(f"namespace must be a non-empty list of non-empty strings, got {namespace!r}")
        self._client, self.namespace = client, list(namespace)

    def get(self, key):
        """The value put under ``key`` by any process of this run, or ``None`` (none, or no answer)."""
        import torch  # noqa: PLC0415 - not at import: the command line imports this before the cluster starts
        try:
            data = self._client().get_metadata([*self.namespace, _name(key)], default=None)
        except Exception as exc:  # noqa: BLE001 - only saves time: measure here instead
            _log.warning("the shared measurements could not be read (%s: %s); measuring here", type(exc).__name__, exc)
            return None
        if not isinstance(data, bytes):
            return None
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - damaged: measure here instead
            return None

    def put(self, key, value) -> None:
        """Share ``value`` (a float or a tensor) under ``key``; a scheduler that cannot take it is ignored."""
        import torch  # noqa: PLC0415 - as in get
        buffer = io.BytesIO()
        torch.save(value.detach().cpu() if isinstance(value, torch.Tensor) else value, buffer)
        try:
            self._client().set_metadata([*self.namespace, _name(key)], buffer.getvalue())
        except Exception as exc:  # noqa: BLE001 - only saves time for the other workers
            _log.warning("a measurement could not be shared (%s: %s)", type(exc).__name__, exc)


def drop_run(client, run: str) -> bool:
    """Forget grading run ``run``'s measurements in the scheduler's metadata (the run's entry becomes an
    empty dict); returns whether there were any. Only the client's own metadata calls: the scheduler runs no
    code of this course (a stock ``dask scheduler``)."""
    had = bool(client.get_metadata([run], default=None))
    client.set_metadata([run], {})
    return had


def _variable(client, run: str):
    return Variable(f"{run}-reference", client=client)


def publish_measurements(client, run: str, measured=None, error: str | None = None) -> None:
    """Give the workers of grading run ``run`` the grader's
    :class:`~autograder.grading.measure.Measurements` (or, with ``error``, why there are none), as JSON
    (plain data: nothing in it runs code) in a Dask ``Variable``."""
    if error is not None:
        payload = {"error": error}
    else:
        payload = {"device": measured.device,
                   "accuracy": {p: [[t, a] for t, a in acc.items()] for p, acc in measured.accuracy.items()},
                   "digests": {p: [[t, d] for t, d in dg.items()] for p, dg in measured.digests.items()}}
    _variable(client, run).set(json.dumps(payload))


def receive_measurements(client, run: str, timeout: float = RECEIVE_TIMEOUT):
    """The measurements :func:`publish_measurements` gave run ``run``, waiting until there are some; raises
    ``RuntimeError`` with the grader's reason when it had none, ``TimeoutError`` after ``timeout`` s."""
    from autograder.grading.measure import Measurements  # noqa: PLC0415 - torch: on the workers, not at import
    payload = json.loads(_variable(client, run).get(timeout=timeout))
    if "error" in payload:
        raise RuntimeError(f"the grader could not measure the reference solution: {payload['error']}")
    return Measurements(payload["device"],
                        {p: {float(t): float(a) for t, a in v} for p, v in payload["accuracy"].items()},
                        {p: {float(t): str(d) for t, d in v} for p, v in payload["digests"].items()})


def forget_measurements(client, run: str) -> None:
    """Delete run ``run``'s published measurements from the scheduler."""
    _variable(client, run).delete()
