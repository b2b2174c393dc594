"""Jupyter client channels that notice every message within 0.5 s.

jupyter_client's asyncio channels wait for a message with one long ``socket.poll(timeout)``.
pyzmq wakes that wait from the socket's file descriptor, which signals an *edge*: when
something else looks at the socket's events between a message's arrival and the event
loop's turn, no wake-up comes, and the message that has arrived stays unread until the wait
times out. On this project's machine that happened after the notebook's ipywidgets slider
cell: the kernel had replied (its ``execute_reply`` was sitting in the client's shell
socket, checked with gdb) while nbclient waited out its whole cell timeout, 299.7 s in plain
``nbgrader autograde`` (its ``Execute.timeout`` is 300) and 1,200 s in a benchmark run;
nothing failed, the cell just ended at the timeout (benchmarks/history.md items 20 and 24;
upstream: jupyter/nbclient#312).

:class:`SlicedChannel` waits in slices of at most :data:`POLL_SLICE` seconds: every new
``poll`` first checks the socket's events, so a missed wake-up costs at most one slice.
:class:`SteadyKernelClient` uses it for every socket channel, and
:class:`SteadyKernelManager` hands out such clients (pass it to nbclient as
``kernel_manager_class``).

Runs in the grader's process.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

__all__ = ["POLL_SLICE", "SlicedChannel", "SteadyKernelClient", "SteadyKernelManager"]

#: Longest single wait on a socket, in seconds.
POLL_SLICE = 0.5


class SlicedChannel(AsyncZMQSocketChannel):
    """An asyncio socket channel whose ``get_msg`` re-checks the socket every :data:`POLL_SLICE` s.

    Same contract as :meth:`AsyncZMQSocketChannel.get_msg`: the next message, or
    :class:`queue.Empty` once ``timeout`` seconds (``None``: no limit) have passed.
    """

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            left = POLL_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await super().get_msg(timeout=min(POLL_SLICE, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class SteadyKernelClient(AsyncKernelClient):
    """An ``AsyncKernelClient`` whose shell, IOPub, stdin and control channels are :class:`SlicedChannel`."""

    shell_channel_class = Type(SlicedChannel)
    iopub_channel_class = Type(SlicedChannel)
    stdin_channel_class = Type(SlicedChannel)
    control_channel_class = Type(SlicedChannel)


class SteadyKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose clients are :class:`SteadyKernelClient`.

    Example::

        NotebookClient(nb, kernel_name="python3", kernel_manager_class=SteadyKernelManager).execute()
    """

    client_class = DottedObjectName("autograder.runner.channels.SteadyKernelClient")
    client_factory = Type(SteadyKernelClient, klass=AsyncKernelClient)
