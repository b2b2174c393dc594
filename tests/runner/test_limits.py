"""The limits of a job slot's kernels: which mechanism is chosen and what it says, rlimits set by real kernels on
themselves (forked and spawned), the statuses that name them, cgroup v2 delegation on an emulated tree, and the
job folder taken back from a notebook.
"""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import nbformat
import pytest

from autograder.grading.notebook_job import job_environment, limit_status, memory_stop
from autograder.runner import cgroups, limits
from autograder.runner.cgroups import DELEGATE_COMMAND, CgroupUnavailable, SlotCgroup
from autograder.runner.execute import run_notebook
from autograder.runner.kernels import ForkServer
from autograder.runner.limits import ADDRESS_SPACE_SLACK, KernelRlimits, choose_limits
from autograder.runner.provisioning import ForkedKernelManager, SandboxedKernelManager
from autograder.runner.sandbox import Sandbox, sandbox_support
from autograder.runner.slots import Slot, reclaim

GIB = 1024**3


def _no_cgroups(monkeypatch):
    def refuse(name, memory, pids, proc=None):
        raise CgroupUnavailable("cannot create cgroup /sys/fs/cgroup/x: Permission denied")
    monkeypatch.setattr(limits.SlotCgroup, "create", refuse)


def test_without_cgroups_kernels_get_rlimits_and_the_lines_say_how_to_get_more(monkeypatch):
    _no_cgroups(monkeypatch)
    made, rlimits, force = choose_limits(["a", "b"], 2 * GIB, 200, 670, sandboxed=True, cuda=False)
    assert made == [None, None]
    assert rlimits == KernelRlimits(2 * GIB + ADDRESS_SPACE_SLACK, 200, 670)
    first, note = force.lines()
    assert first == ("limits (rlimits): memory 2 GiB per notebook (address space of each kernel process beyond its "
                     "own when it starts, plus 1 GiB for what it reserves and does not use); 200 processes and "
                     "threads (per notebook, counted in its sandbox); 670 s of CPU time per kernel process")
    assert "Permission denied" in note and f"{DELEGATE_COMMAND} python -m autograder grade" in note
    assert force.as_dict()["mechanism"] == "rlimits" and force.as_dict()["memory"] == 2 * GIB


def test_on_a_gpu_without_cgroups_memory_has_no_limit_and_says_why(monkeypatch):
    _no_cgroups(monkeypatch)
    _, rlimits, force = choose_limits(["a"], 2 * GIB, 200, 670, sandboxed=True, cuda=True)
    assert rlimits.memory is None and rlimits.processes == 200
    assert force.lines()[0].startswith("limits (rlimits): memory: no limit (kernels use CUDA, which an "
                                       "address-space limit would break)")


def test_without_the_sandbox_nothing_is_limited_and_the_warning_says_so():
    made, rlimits, force = choose_limits(["a"], GIB, 64, 100, sandboxed=False, cuda=False)
    assert made == [None] and rlimits is None
    assert force.lines() == ["warning: no memory, process or CPU-time limits (--no-sandbox)"]


def test_with_cgroups_only_cpu_time_is_an_rlimit(monkeypatch):
    fake = SlotCgroup(GIB, 64, {"": Path("/sys/fs/cgroup/x")}, 2)
    monkeypatch.setattr(limits.SlotCgroup, "create", lambda name, memory, pids, proc=None: fake)
    made, rlimits, force = choose_limits(["a"], GIB, 64, 100, sandboxed=True, cuda=False)
    assert made == [fake] and rlimits == KernelRlimits(cpu_seconds=100)
    assert force.lines() == ["limits (cgroup v2): memory 1 GiB per notebook (resident memory of its processes "
                             "together, beyond the warm kernel's); 64 processes and threads (per notebook, counted "
                             "by its job slot's cgroup); 100 s of CPU time per kernel process"]


def test_cpu_time_is_the_share_of_cores_for_the_whole_timeout_and_a_tenth_more():
    assert limits.cpu_seconds(600, 1) == 670 and limits.cpu_seconds(300, 2) == 670


class _EmulatedCgroupV2:
    """A cgroup v2 tree in a folder, with the kernel's rule that matters here: ``cgroup.subtree_control`` of a
    cgroup that holds processes refuses controllers (``EBUSY``); writing a pid into ``cgroup.procs`` moves it."""

    def __init__(self, root: Path, own: str, procs: list[int]):
        self.root, self.own = root, root / own.strip("/")
        self.own.mkdir(parents=True)
        (self.own / "cgroup.controllers").write_text("cpu memory pids\n")
        (self.own / "cgroup.subtree_control").write_text("")
        (self.own / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))
        self.proc = root / "proc"
        self.proc.mkdir()
        (self.proc / "mounts").write_text(f"cgroup2 {root} cgroup2 rw,nosuid 0 0\n")
        (self.proc / "cgroup").write_text(f"0::{own}\n")
        self.real_write = Path.write_text

    def write_text(self, path: Path, text: str, *args, **kwargs):
        if not str(path).startswith(str(self.root)):
            return self.real_write(path, text, *args, **kwargs)
        if path.name == "cgroup.subtree_control" and (path.parent / "cgroup.procs").read_text().split():
            raise OSError(errno.EBUSY, "Device or resource busy")
        if path.name == "cgroup.procs":
            for cg in self.root.rglob("cgroup.procs"):
                self.real_write(cg, "".join(f"{p}\n" for p in cg.read_text().split() if p != text.strip()))
            return self.real_write(path, path.read_text() + f"{text.strip()}\n") if path.exists() else \
                self.real_write(path, f"{text.strip()}\n")
        return self.real_write(path, text, *args, **kwargs)


def test_a_delegated_v2_cgroup_is_freed_of_its_processes_then_limits_its_slots(tmp_path, monkeypatch):
    """In ``systemd-run --user --scope -p Delegate=yes`` the grader and its launcher sit in the scope's own cgroup:
    they move into a leaf, and the slots' cgroups are made beside it with both controllers."""
    tree = _EmulatedCgroupV2(tmp_path / "cg", "/user.slice/user-1000.slice/app.slice/run-u7.scope", [4321, 4322])
    monkeypatch.setattr(cgroups.Path, "write_text", lambda path, text, *a, **k: tree.write_text(path, text, *a, **k))
    slot = SlotCgroup.create("pruning-grader-4321-s0", GIB, 64, proc=tree.proc)
    assert slot.version == 2 and slot.dirs[""] == tree.own / "pruning-grader-4321-s0"
    assert (tree.own / "cgroup.procs").read_text().split() == []
    assert (tree.own / "pruning-grader" / "cgroup.procs").read_text().split() == ["4321", "4322"]
    assert (tree.own / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (slot.dirs[""] / "pids.max").read_text() == "64"
    again = SlotCgroup.create("pruning-grader-4321-s1", GIB, 64, proc=tree.proc)  # already delegated: made at once
    assert again.dirs[""].is_dir()


def test_a_v2_cgroup_without_the_controllers_is_refused_with_its_name(tmp_path):
    tree = _EmulatedCgroupV2(tmp_path / "cg", "/session-3.scope", [1])
    (tree.own / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(CgroupUnavailable, match="session-3.scope does not offer the memory and pids controllers"):
        SlotCgroup.create("s0", GIB, 64, proc=tree.proc)


def test_reclaim_gives_every_mode_back_and_removes_links_without_following_them(tmp_path):
    slot = tmp_path / "s0"
    deep = slot / "job" / "export"
    deep.mkdir(parents=True)
    (deep / "part.pt").write_bytes(b"x")
    outside = tmp_path / "the-graders-file"
    outside.write_text("mine")
    outside.chmod(0o400)
    (deep / "link").symlink_to(outside)
    (slot / "job" / "dirlink").symlink_to(tmp_path)
    for path in (deep / "part.pt", deep, slot / "job", slot):
        path.chmod(0)
    reclaim(slot)
    assert (deep / "part.pt").read_bytes() == b"x" and os.access(deep, os.W_OK | os.X_OK)
    assert not (deep / "link").is_symlink() and not (slot / "job" / "dirlink").exists()
    assert outside.stat().st_mode & 0o777 == 0o400 and tmp_path.exists()


def _notebook(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def _run(tmp_path, name: str, nb, km, stop_when=None) -> dict:
    job = tmp_path / name
    job.mkdir()
    nbformat.write(nb, job / "nb.ipynb")
    return run_notebook(job / "nb.ipynb", job / "out.ipynb", job_environment(job, 1, None), cell_timeout=60,
                        timeout=60, km=km(job), stop_when=stop_when)


_SEEN = ("import json, resource\n"
         "print(json.dumps({n: resource.getrlimit(getattr(resource, n)) for n in "
         "('RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_CPU')}))")


class _Cfg:  # the two settings limit_status and memory_stop read
    memory_limit, pids_limit = 2 * GIB, 64


@pytest.mark.slow
def test_a_forked_kernel_sets_its_limits_before_any_cell_and_a_limit_hit_is_named(tmp_path):
    server = ForkServer.for_threads(1, tmp_path / "kernels.log", preload=("numpy",))
    limits_ = KernelRlimits(memory=2 * GIB, processes=None, cpu_seconds=2)
    try:
        def km(job):
            return ForkedKernelManager.for_server(server, job / "kernel.log", rlimits=limits_)
        nb = _notebook(_SEEN, "hog = bytearray(8 * 1024**3)", "print('not reached')")
        slot = Slot(0, tmp_path, tmp_path / "log", 1, None, None, True, rlimits=limits_)
        done = _run(tmp_path, "memory", nb, km, stop_when=memory_stop(limits_, _Cfg))
        seen = json.loads(done["notebook"].cells[0].outputs[0]["text"])
        assert seen["RLIMIT_CPU"] == [2, 2 + limits.CPU_GRACE]
        assert 2 * GIB < seen["RLIMIT_AS"][0] < 20 * GIB  # the kernel's own size then, plus 2 GiB
        assert done["status"] == "error: memory limit (2 GiB) exceeded"
        assert done["notebook"].cells[2].get("execution_count") is None, "the run stops at the cell that failed"
        status, notes = limit_status(done, {}, {}, slot, _Cfg)
        assert status == done["status"] and notes == ["an allocation in cell 1 went past the memory limit (the "
                                                      "kernel's address space)"]
        busy = _run(tmp_path, "cpu", _notebook("while True:\n    pass"), km)
        assert busy["kernel_exit"] == {"signal": signal.SIGXCPU, "code": None}
        status, _ = limit_status(busy, {}, {}, slot, _Cfg)
        assert status == "error: CPU time limit (2 s of one process) exceeded"
    finally:
        server.close()


@pytest.mark.slow
@pytest.mark.skipif(sandbox_support() is not None, reason=f"no sandbox here: {sandbox_support()}")
def test_a_spawned_sandboxed_kernel_sets_the_same_limits_and_its_end_is_read_through_bubblewrap(tmp_path):
    sandbox = Sandbox.build([], packages=[Path(__file__).resolve().parents[2] / "helpers"])
    limits_ = KernelRlimits(memory=2 * GIB, processes=50, cpu_seconds=2)

    def km(job):
        return SandboxedKernelManager.for_job(job, sandbox, tmp_path, None, limits_, ("numpy",))
    done = _run(tmp_path, "seen", _notebook(_SEEN), km)
    seen = json.loads(done["notebook"].cells[0].outputs[0]["text"])
    assert seen["RLIMIT_NPROC"] == [50, 50] and seen["RLIMIT_CPU"] == [2, 2 + limits.CPU_GRACE]
    assert 2 * GIB < seen["RLIMIT_AS"][0] < 20 * GIB
    busy = _run(tmp_path, "cpu", _notebook("while True:\n    pass"), km)
    assert busy["status"].startswith("error: the kernel died")
    assert busy["kernel_exit"] == {"signal": signal.SIGXCPU, "code": None}


def test_memory_stop_names_the_limit_only_for_an_allocation_that_failed():
    stop = memory_stop(KernelRlimits(memory=GIB), _Cfg)
    failed = nbformat.v4.new_code_cell("x")
    torch_says = "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate"
    failed.outputs = [nbformat.v4.new_output("error", ename="RuntimeError", evalue=torch_says, traceback=[])]
    other = nbformat.v4.new_code_cell("y")
    other.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="memory", traceback=[])]
    assert stop(failed) == "error: memory limit (2 GiB) exceeded" and stop(other) is None
    assert memory_stop(KernelRlimits(cpu_seconds=5), _Cfg) is None and memory_stop(None, _Cfg) is None


def test_rlimit_notes_name_the_cell_of_a_refused_fork():
    nb = _notebook("import os", "os.fork()")
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                  text="fork refused after 61 [Errno 11] Resource temporarily "
                                                       "unavailable\n")]
    nb.cells[1].metadata["nbgrader"] = {"grade_id": "prune_structured"}
    slot = Slot(0, Path("/x"), Path("/x"), 1, None, None, True, rlimits=KernelRlimits(processes=64))
    status, notes = limit_status({"status": "ok", "notebook": nb}, {}, {}, slot, _Cfg)
    assert status == "ok" and notes == ["process limit (64) reached in prune_structured: a fork or thread was refused"]

