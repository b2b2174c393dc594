"""Kernels forked warm by the fork server: isolation, environment, limits, clean-up.

Every test runs real Jupyter kernels through :func:`autograder.runner.execute.run_notebook`, the
function the grader uses, and compares with a kernel spawned the usual way where it matters.
"""

from __future__ import annotations

import ctypes
import os
import time

import nbformat
import pytest

from autograder.grading.local import PRELOAD
from autograder.grading.notebook_job import job_environment
from autograder.runner.execute import MAX_CELL_OUTPUT_CHARS, STOPPED_HERE, run_notebook
from autograder.runner.kernels import ForkServer

pytestmark = pytest.mark.slow  # real kernels, forked from a server that imports torch


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ForkServer.for_threads(1, tmp_path_factory.mktemp("server") / "kernels.log", preload=PRELOAD)
    yield srv
    srv.close()


def run(tmp_path, name, sources, server=None, timeout=60.0, threads=1):
    job = tmp_path / name
    job.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, job / "nb.ipynb")
    status = run_notebook(job / "nb.ipynb", job / "out.ipynb", job_environment(job, threads, None),
                          cell_timeout=timeout, timeout=timeout, server=server)
    executed = nbformat.read(job / "out.ipynb", as_version=4)
    texts = ["".join(o.get("text", "") or o.get("ename", "") for o in c.outputs) for c in executed.cells]
    return status, texts, job


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_forked_kernel_has_its_job_environment(tmp_path, server):
    status, texts, job = run(tmp_path, "env", [
        "import os, sys, torch\n"
        "print(os.getcwd()); print(os.environ['CINIC10_ROOT']); print(torch.get_num_threads())\n"
        "print(sys.path[0] == '', 'torch' in sys.modules, os.environ['CINIC10_EVAL_PER_CLASS'])"], server, threads=2)
    assert status["status"] == "ok"
    # The server was started for 1 thread; the job's OMP_NUM_THREADS=2 must win, as in a spawned kernel.
    # The notebook's test_data (evaluation_data) is the grading data's whole test split: the grader's images.
    assert texts[0].split() == [str(job), str(job / "data.npz"), "2", "True", "True", "all"]


def test_forked_kernel_imports_like_a_spawned_one(tmp_path, server):
    # The server imported `autograder`, which marks rfc3987_syntax absent for the grader itself.
    status, texts, _ = run(tmp_path, "imports", ["import sys\nprint(sys.modules.get('rfc3987_syntax', 'absent'))"],
                           server)
    assert status["status"] == "ok" and texts[0].strip() == "absent"


def test_a_forked_kernel_has_what_an_optimiser_imports_already(tmp_path, server):
    # torch.optim imports torch._dynamo (1.5 s) at its first optimiser: the server did that once.
    status, texts, _ = run(tmp_path, "dynamo", [
        "import sys\nprint('torch._dynamo' in sys.modules)",
        "import torch\nopt = torch.optim.Adam([torch.zeros(2, requires_grad=True)])\nprint('made')"], server)
    assert status["status"] == "ok" and texts == ["True\n", "made\n"]


def test_what_one_notebook_changes_never_reaches_the_next(tmp_path, server):
    status, _, _ = run(tmp_path, "first", [
        "import helpers, os\nhelpers.test_model = None\nos.environ['LEAK'] = '1'\nMARKER = 1"], server)
    assert status["status"] == "ok"
    status, texts, _ = run(tmp_path, "second", [
        "import helpers, os\nprint(helpers.test_model is None, 'LEAK' in os.environ, 'MARKER' in globals())"],
        server)
    assert texts[0].split() == ["False", "False", "False"]


def test_children_of_a_notebook_die_with_it(tmp_path, server):
    status, texts, _ = run(tmp_path, "children", [
        "import subprocess\nchild = subprocess.Popen(['sleep', '300'])\nprint(child.pid)"], server)
    assert status["status"] == "ok"
    pid = int(texts[0])
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def test_subprocess_wait_works_in_a_forked_kernel(tmp_path, server):
    # The server reaps its kernels from a SIGCHLD handler; the kernels must not inherit it.
    status, texts, _ = run(tmp_path, "wait", ["import subprocess\nprint(subprocess.run(['true']).returncode)"],
                           server)
    assert status["status"] == "ok" and texts[0].strip() == "0"


def test_an_endless_notebook_times_out_and_is_killed(tmp_path, server):
    start = time.perf_counter()
    status, texts, _ = run(tmp_path, "loop", ["import os\nprint(os.getpid(), flush=True)", "while True:\n    pass"],
                           server, timeout=4)
    assert status["status"] == "timeout"
    assert time.perf_counter() - start < 120, "stopped by the 4 s limit, not left running"
    time.sleep(0.5)
    assert not alive(int(texts[0]))


def test_a_notebook_that_exits_reports_a_dead_kernel(tmp_path, server):
    status, _, job = run(tmp_path, "exit", ["print(1)", "import os\nos._exit(3)", "print(2)"], server)
    assert status["status"].startswith("error: the kernel died")
    # The cell it died in is marked whether or not its start reached the grader before the kernel went.
    marked = [c.metadata.get(STOPPED_HERE, False) for c in nbformat.read(job / "out.ipynb", as_version=4).cells]
    assert marked == [False, True, False]


def test_only_the_run_marks_where_it_stopped(tmp_path, server):
    job = tmp_path / "forged"
    job.mkdir()
    cells = [nbformat.v4.new_code_cell("print(1)"), nbformat.v4.new_code_cell("print(2)")]
    cells[0].metadata[STOPPED_HERE] = True  # a submission claiming a stop cannot keep the claim
    nbformat.write(nbformat.v4.new_notebook(cells=cells), job / "nb.ipynb")
    status = run_notebook(job / "nb.ipynb", job / "out.ipynb", job_environment(job, 1, None), cell_timeout=60,
                          timeout=60, server=server)
    assert status["status"] == "ok"
    assert not any(STOPPED_HERE in c.metadata for c in nbformat.read(job / "out.ipynb", as_version=4).cells)


def test_flooding_output_is_cut_while_it_arrives(tmp_path, server):
    status, texts, _ = run(tmp_path, "flood", ["for i in range(100_000):\n    print('x' * 40)", "print('after')"],
                           server)
    assert status["status"] == "ok"
    assert len(texts[0]) < 2 * MAX_CELL_OUTPUT_CHARS
    assert "text output truncated by the autograder" in texts[0]
    assert texts[1].strip() == "after"


def test_figures_are_kept(tmp_path, server):
    job_status, _, job = run(tmp_path, "figure", [
        "import matplotlib.pyplot as plt\n%matplotlib inline", "plt.plot([1, 2])\nplt.show()"], server)
    executed = nbformat.read(job / "out.ipynb", as_version=4)
    assert job_status["status"] == "ok"
    assert any("image/png" in o.get("data", {}) for o in executed.cells[1].outputs)


def test_spawned_kernel_gives_the_same_result(tmp_path, server):
    cells = ["import torch\ntorch.manual_seed(0)\nprint(float(torch.randn(3).sum()))"]
    _, forked, _ = run(tmp_path, "forked", cells, server)
    status, spawned, _ = run(tmp_path, "spawned", cells, None)
    assert status["status"] == "ok" and forked == spawned


def _set_subreaper(flag: int) -> None:
    """``prctl(PR_SET_CHILD_SUBREAPER)``: orphans below this process come to it, not to pid 1."""
    ctypes.CDLL(None, use_errno=True).prctl(36, flag, 0, 0, 0)


def _ended(pid: int) -> bool:
    """Whether ``pid`` has exited: reaped here when it came to this process (a subreaper), else gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not alive(pid)
    return done == pid


@pytest.mark.parametrize("under_subreaper", [False, True], ids=["init-reaps", "subreaper-reaps"])
def test_the_kernels_go_when_the_server_stops(tmp_path, under_subreaper):
    """Closed right after a spawn, before ipykernel's parent poller starts; under a subreaper
    (a container's init, systemd --user) an orphan's parent is not pid 1, which that poller misses."""
    if under_subreaper:
        _set_subreaper(1)
    try:
        srv = ForkServer.for_threads(1, tmp_path / "kernels.log")
        job = tmp_path / "job"
        job.mkdir()
        argv = ["--HistoryManager.hist_file=:memory:", "-f", str(job / "conn.json")]
        pid = srv.spawn(argv, job_environment(job, 1, None), job, job / "kernel.log")
        assert alive(pid)
        srv.close()
        deadline = time.monotonic() + 10
        while not _ended(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ended(pid), "a kernel must not outlive its server"
    finally:
        if under_subreaper:
            _set_subreaper(0)


def test_a_dead_server_falls_back_to_spawning(tmp_path):
    srv = ForkServer.for_threads(1, tmp_path / "kernels.log")
    srv.close()
    status, texts, _ = run(tmp_path, "fallback", ["print(6 * 7)"], srv)
    assert status["status"] == "ok" and texts[0].strip() == "42"


def test_the_first_output_of_every_kernel_arrives(tmp_path, server):
    # The client counts a kernel as ready once IOPub delivered the end of a kernel_info request;
    # were it early, the first cell's output (or its end) would be lost and the cell time out.
    for i in range(8):
        status, texts, _ = run(tmp_path, f"first{i}", ["print('first', flush=True)", "print('second')"], server,
                               timeout=20)
        assert status["status"] == "ok"
        assert texts == ["first\n", "second\n"]


def test_waiting_for_a_kernel_that_died_raises(tmp_path, server):
    import asyncio
    import signal

    from autograder.runner.provisioning import ForkedKernelManager, PromptKernelClient

    async def start_then_kill():
        km = ForkedKernelManager.for_server(server, log=tmp_path / "kernel.log")
        await km.start_kernel(cwd=str(tmp_path), env=job_environment(tmp_path, 1, None))
        os.kill(km.provisioner.pid, signal.SIGKILL)
        kc = km.client()
        assert isinstance(kc, PromptKernelClient)
        kc.start_channels()
        try:
            with pytest.raises(RuntimeError, match="died|respond"):
                await kc.wait_for_ready(timeout=10)
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    asyncio.run(start_then_kill())


def _missed_wakeup(channel_class, timeout: float):
    """Deliver a message to a channel waiting in ``get_msg`` while its wake-up is consumed.

    The message arrives while the event loop is not running and, before the loop runs again,
    the socket's events are read elsewhere; that resets the socket's edge-triggered file
    descriptor, as happened to nbclient after widget cells. Returns (message type or the
    exception's name, seconds from the loop's next turn to the answer).
    """
    import asyncio

    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    async def run():
        ctx = zmq.asyncio.Context()
        mine, theirs = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        try:
            port = mine.bind_to_random_port("tcp://127.0.0.1")
            theirs.connect(f"tcp://127.0.0.1:{port}")
            session = Session()
            waiting = asyncio.ensure_future(channel_class(mine, session).get_msg(timeout=timeout))
            await asyncio.sleep(0.1)  # the wait is registered with the loop
            session.send(zmq.Socket.shadow(theirs.underlying), "execute_reply", {"status": "ok"})
            time.sleep(0.2)  # the message arrives while the loop is not running
            zmq.Socket.shadow(mine.underlying).getsockopt(zmq.EVENTS)  # the edge is consumed
            start = time.monotonic()
            try:
                got = (await waiting)["msg_type"]
            except Exception as exc:  # noqa: BLE001 - reported to the test
                got = type(exc).__name__
            return got, time.monotonic() - start
        finally:
            mine.close(0)
            theirs.close(0)
            ctx.term()

    return asyncio.run(run())


def test_sliced_channel_reads_a_message_whose_wakeup_was_missed():
    from autograder.runner.channels import POLL_SLICE, SlicedChannel
    got, seconds = _missed_wakeup(SlicedChannel, timeout=30)
    assert got == "execute_reply"
    # a missed wake-up costs one slice; without slicing the reply waits for the whole timeout
    assert POLL_SLICE < 30 / 2 and seconds < 30 / 2, f"took {seconds:.2f} s"


def test_sliced_channel_keeps_the_timeout_contract():
    import asyncio
    from queue import Empty

    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    from autograder.runner.channels import SlicedChannel

    async def wait(timeout):
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.PAIR)
        sock.bind_to_random_port("tcp://127.0.0.1")
        start = time.monotonic()
        try:
            await SlicedChannel(sock, Session()).get_msg(timeout=timeout)
        except Empty:
            return time.monotonic() - start
        finally:
            sock.close(0)
            ctx.term()
        return None

    for timeout in (0, 0.2, 1.2):
        seconds = asyncio.run(wait(timeout))
        # never early; late only by scheduling (generous: a busy machine must not fail this)
        assert seconds is not None and timeout - 0.01 <= seconds < timeout + 10, (timeout, seconds)
