"""``--cluster slurm`` without a cluster: its settings, where its files go, and the workers' memory in a job."""

from __future__ import annotations

import dask
import pytest

from autograder.cluster import ClusterError
from autograder.cluster.jobqueue import _folder, _job_settings
from autograder.config import GradeConfig, local_workers
from autograder.runner.limits import default_memory_limit, machine_memory


def _cfg(tmp_path, out="out", **kw):
    (tmp_path / "subs").mkdir(exist_ok=True)
    (tmp_path / "model.pt").write_bytes(b"")
    return GradeConfig(submissions=tmp_path / "subs", data_root="synthetic", model=tmp_path / "model.pt",
                       out=tmp_path / out, cluster="slurm", **kw)


def test_slurm_is_a_cluster_and_its_workers_and_wait_are_checked(tmp_path):
    assert local_workers("slurm") is None and _cfg(tmp_path).workers == 2
    with pytest.raises(ValueError, match="a batch scheduler \\(slurm, pbs"):
        local_workers("slrum")
    with pytest.raises(ValueError, match="--workers must be at least 1, got 0"):
        _cfg(tmp_path, workers=0)
    with pytest.raises(ValueError, match="--worker-wait must be a positive number of seconds"):
        _cfg(tmp_path, worker_wait=0)


def test_without_dasks_jobqueue_settings_the_message_says_which_file(tmp_path):
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ClusterError, match="jobqueue.slurm.cores or jobqueue.slurm.memory; write them in "
                                               "~/.config/dask/jobqueue.yaml"):
            _job_settings("slurm")
    with dask.config.set({"jobqueue.slurm.cores": 1, "jobqueue.slurm.memory": "4GB"}):
        assert _job_settings("slurm")["cores"] == 1


def test_the_certificate_folder_is_one_a_job_script_can_name(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    assert _folder("slurm", cfg, {}) == cfg.out / "cluster"
    assert _folder("slurm", cfg, {"shared-temp-directory": str(tmp_path / "shared")}) == tmp_path / "shared"
    spaced = _cfg(tmp_path, out="my out")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _folder("slurm", spaced, {}) == tmp_path / "home" / ".cache" / "pruning-course" / "cluster"
    monkeypatch.setenv("HOME", str(tmp_path / "a home"))
    with pytest.raises(ClusterError, match=r"\(spaces or shell characters\); set jobqueue.slurm.shared-temp-directory"):
        _folder("slurm", spaced, {})


def test_in_a_slurm_job_the_memory_is_the_jobs(monkeypatch):
    monkeypatch.delenv("SLURM_MEM_PER_NODE", raising=False)
    whole = machine_memory()
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "6144")
    assert machine_memory() == min(whole, 6 * 1024**3)
    assert default_memory_limit(1) == max(1024**3, int(min(whole, 6 * 1024**3) * 0.75))
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "0")  # a job that asked for no memory: the machine's
    assert machine_memory() == whole


def test_a_grader_without_memory_limit_lets_each_worker_take_its_own(tmp_path):
    assert not _cfg(tmp_path).memory_limit_given
    assert _cfg(tmp_path, memory_limit=2 * 1024**3).memory_limit_given
