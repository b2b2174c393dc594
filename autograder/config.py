"""The one configuration object of a grading run, with every tolerance documented.

Runs in the grader's process.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .classreport.settings import SimilarityConfig
from .runner.limits import default_memory_limit

__all__ = ["GradeConfig", "DemoConfig", "ReleaseConfig", "TrainConfig", "REPO_ROOT", "SOURCE_NOTEBOOK", "ASSIGNMENT",
           "NOTEBOOK", "DISPLAY_CELLS", "local_workers", "JOBQUEUE_KINDS"]

#: The repository holding ``helpers/``, ``autograder/`` and ``assignment/``.
REPO_ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "pruning"
NOTEBOOK = "pruning"
#: The instructor's source notebook: solutions, hidden-test regions and point values.
SOURCE_NOTEBOOK = REPO_ROOT / "assignment" / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
#: Statuses ``--regrade-status`` can name (the part of a row's status before any colon).
REGRADE_STATUSES = ("ok", "error", "timeout")
#: Instructor cells of the notebook that only display (plots, the slider); skipped in lean grading.
DISPLAY_CELLS = ("part1_plots", "slider", "part2_plots", "cost_table")


@dataclass
class GradeConfig:
    """Settings of ``python -m autograder grade``.

    Attributes:
        submissions: the class's submissions, a folder or a ``.zip`` in any layout :mod:`autograder.lms` reads
            (a Canvas or Moodle download, nbgrader's ``submitted/`` or exchange inbound folder, a folder of
            notebooks).
        data_root: grading data (CINIC-10 folder or archive, ``.npz`` or ``synthetic``).
        model: the pretrained checkpoint every student prunes.
        out: output folder (``grades.csv``, ``feedback/``, ``course/`` with the gradebook).
        jobs: submissions graded at once, each in its own kernel.
        timeout: seconds a whole notebook may run; a submission over it gets status ``timeout``.
        cell_timeout: seconds one cell may run (default: ``timeout``).
        per_class: test images per class of the fixed stratified grading subset.
        device: where the grader measures accuracy (``None``: CUDA when available).
        sparsity_tol: allowed distance of the global unstructured sparsity from the target
            (0.005 by the assignment's rules; the exact solution is within 1 / number of weights).
        accuracy_band: allowed distance of a student model's accuracy, measured by the grader,
            from the reference solution's accuracy at the same target. The grader measures both
            on the same device in the same process, so a correct solution differs only through
            ties in magnitude (identical weights give identical logits). 0.02 absolute leaves
            room for those and for CPU/GPU kernels while every known mistake misses it by far
            (see the fixture tests and docs/design.md).
        claim_tol: allowed distance between the accuracy a student stored and the accuracy the
            grader measures for that model; both run on the same images, so only device
            rounding separates them.
        full_notebook: run every cell as students see it. By default (lean) the display-only
            cells are skipped and check cells run only their hidden regions: neither affects
            a score (the hidden checks recompute everything the visible ones check), and
            together they cost about a quarter of a notebook's run time.
        warm_kernels: fork each notebook's kernel from a server that has already imported
            torch and ipykernel (:mod:`autograder.runner.kernels`); ``False`` spawns every kernel
            the usual way (slower by about 3 seconds of CPU per notebook; same scores).
        sandbox: run every kernel in a bubblewrap sandbox (:mod:`autograder.runner.sandbox`); ``False``
            (``--no-sandbox``) runs kernels as the grader's own user with all its rights, and
            every row's notes say ``not sandboxed``.
        memory_limit: bytes of memory a notebook's kernel and its children may use beyond the
            preloaded libraries (``None``: :func:`~autograder.runner.limits.default_memory_limit`, three
            quarters of the machine's memory shared by the job slots).
        pids_limit: processes and threads one job slot may have at once.
        regrade: ``True``: grade every submission again instead of reusing the journal's grades of
            submissions whose notebook, model, data and settings are unchanged; a tuple of student ids:
            grade those again and reuse the rest (``--regrade alice,bob``).
        regrade_status: grade again the students whose journaled status is one of these (``error``
            matches every ``error: ...``; ``--regrade-status error,timeout``) and reuse the rest.
        threads: CPU threads each notebook's kernel (and the grader's own measurements) may use
            (``None``: the machine's cores divided by ``jobs``; on a cluster worker, its cores divided
            by its Dask threads).
        cluster: grade on Dask workers instead of local job slots (:mod:`autograder.cluster`): a
            scheduler's address (``tcp://host:8786``), or ``local:N`` for a cluster of N worker
            processes on this machine (then ``jobs`` is N). ``None``: local ``--jobs`` slots.
        roster: the class list (a Canvas gradebook export, a Moodle grading worksheet, or ``id,name,email``):
            every student of it gets a row (``no submission`` when they handed in nothing) and their name.
        similarity_threshold: the code-similarity score (0 to 1) from which the class report lists a pair as
            worth comparing (:class:`autograder.classreport.similarity.SimilarityConfig`).
        workers: with ``cluster`` a batch scheduler (``slurm``, :data:`JOBQUEUE_KINDS`): how many worker jobs to
            submit (each as Dask's ``jobqueue.<scheduler>`` configuration says: queue, cores, memory, walltime).
        worker_wait: seconds to wait for the first worker of a batch scheduler (its queue may hold the jobs).
        memory_limit_given: whether ``memory_limit`` was given (a cluster's workers otherwise each take
            :func:`~autograder.runner.limits.default_memory_limit` of their own machine, or of their job).
    """

    submissions: Path
    data_root: str
    model: Path
    out: Path
    jobs: int = 1
    timeout: float = 600.0
    cell_timeout: float | None = None
    per_class: int = 100
    device: str | None = None
    sparsity_tol: float = 0.005
    accuracy_band: float = 0.02
    claim_tol: float = 0.005
    full_notebook: bool = False
    warm_kernels: bool = True
    sandbox: bool = True
    memory_limit: int | None = None
    pids_limit: int = 512
    regrade: bool | tuple[str, ...] = False
    regrade_status: tuple[str, ...] = ()
    threads: int | None = None
    cluster: str | None = None
    roster: Path | None = None
    similarity_threshold: float = SimilarityConfig.threshold
    workers: int = 2
    worker_wait: float = 900.0
    memory_limit_given: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        # Absolute: notebooks run in their own working folders.
        self.submissions = Path(self.submissions).expanduser().resolve()
        self.model = Path(self.model).expanduser().resolve()
        self.out = Path(self.out).expanduser().resolve()
        if self.data_root != "synthetic" and Path(self.data_root).expanduser().exists():
            self.data_root = str(Path(self.data_root).expanduser().resolve())
        if self.cluster is not None:
            self.cluster = self.cluster.strip()
            local = local_workers(self.cluster)
            if local is not None:
                self.jobs = local
        if self.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {self.jobs}")
        if isinstance(self.regrade, str):
            self.regrade = tuple(s.strip() for s in self.regrade.split(",") if s.strip()) or True
        if isinstance(self.regrade_status, str):
            self.regrade_status = tuple(s.strip() for s in self.regrade_status.split(",") if s.strip())
        unknown = [s for s in self.regrade_status if s not in REGRADE_STATUSES]
        if unknown:
            raise ValueError(f"--regrade-status takes {', '.join(REGRADE_STATUSES)} (comma-separated), "
                             f"got {unknown[0]!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {self.threads}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.cell_timeout is not None and not (math.isfinite(self.cell_timeout) and self.cell_timeout > 0):
            raise ValueError(f"--cell-timeout must be a positive number of seconds, got {self.cell_timeout}")
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.per_class < 1:
            raise ValueError(f"--per-class must be at least 1, got {self.per_class}")
        if not self.submissions.exists():
            raise FileNotFoundError(f"the submissions folder or zip {self.submissions} does not exist: give the "
                                    "folder of submissions or the LMS's download (.zip)")
        if self.roster is not None:
            self.roster = Path(self.roster).expanduser().resolve()
            if not self.roster.is_file():
                raise FileNotFoundError(f"--roster {self.roster} does not exist")
        if not self.model.is_file():
            raise FileNotFoundError(f"model checkpoint {self.model} does not exist")
        if self.cell_timeout is None:
            self.cell_timeout = self.timeout
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if not (math.isfinite(self.worker_wait) and self.worker_wait > 0):
            raise ValueError(f"--worker-wait must be a positive number of seconds, got {self.worker_wait}")
        self.memory_limit_given = self.memory_limit is not None
        if self.memory_limit is None:
            self.memory_limit = default_memory_limit(self.jobs)
        if self.memory_limit < 64 * 1024**2:
            raise ValueError(f"--memory-limit must be at least 64 MiB, got {self.memory_limit} bytes")
        SimilarityConfig(threshold=self.similarity_threshold)  # a ValueError naming the allowed range
        if self.pids_limit < 32:
            raise ValueError(f"--pids-limit must be at least 32 (a kernel has about 20 threads), got {self.pids_limit}")

    def must_regrade(self, student_id: str, status: str) -> bool:
        """Must ``student_id``, whose journaled grade has ``status``, be graded again (``--regrade``)?"""
        if self.regrade is True or (self.regrade and student_id in self.regrade):
            return True
        return status.split(":", 1)[0].strip() in self.regrade_status

    def run_settings(self) -> dict:
        """The settings a grade depends on (part of each submission's journal key)."""
        return {"per_class": self.per_class, "device": self.device, "timeout": self.timeout,
                "cell_timeout": self.cell_timeout, "sparsity_tol": self.sparsity_tol,
                "accuracy_band": self.accuracy_band, "claim_tol": self.claim_tol,
                "full_notebook": self.full_notebook, "sandbox": self.sandbox, "memory_limit": self.memory_limit,
                "pids_limit": self.pids_limit}

    @property
    def threads_per_job(self) -> int:
        """CPU threads each job's kernel (and the grader's own evaluation) may use."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.jobs)


#: The batch schedulers ``--cluster`` starts workers on through dask-jobqueue (its cluster class of each).
JOBQUEUE_KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
                  "htcondor": "HTCondorCluster", "oar": "OARCluster"}


def local_workers(cluster: str) -> int | None:
    """N of ``local:N`` (``ValueError`` if N is not a positive whole number); ``None`` for a scheduler address
    or a batch scheduler of :data:`JOBQUEUE_KINDS`.

    >>> local_workers("local:2"), local_workers("tcp://10.0.0.1:8786"), local_workers("slurm")
    (2, None, None)
    """
    if not cluster.startswith("local:"):
        if "://" not in cluster and ":" not in cluster and cluster not in JOBQUEUE_KINDS:
            raise ValueError(f"--cluster must be a scheduler address like tcp://host:8786, local:N or a batch "
                             f"scheduler ({', '.join(JOBQUEUE_KINDS)}), got {cluster!r}")
        return None
    n = cluster[len("local:"):]
    if not n.isdigit() or int(n) < 1:
        raise ValueError(f"--cluster local:N needs N workers, a whole number of at least 1; got {cluster!r}")
    return int(n)


@dataclass
class DemoConfig:
    """Settings of ``python -m autograder demo`` (:func:`autograder.demo.main`).

    Attributes:
        out: folder for everything the demo writes (model, release, submissions, grading).
        data_root: dataset; the generated one by default (works offline), a CINIC-10 folder
            or archive works too.
        jobs: submissions graded at once.
        per_class: test images per class of the grading subset.
        timeout: seconds a whole sample notebook may run.
    """

    out: Path = Path("demo-output")
    data_root: str = "synthetic"
    jobs: int = 2
    per_class: int = 100
    timeout: float = 600.0

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {self.jobs}")


@dataclass
class ReleaseConfig:
    """Settings of ``python -m autograder release`` (:func:`autograder.release.release`).

    Attributes:
        out: the student bundle folder (replaced).
        model: the pretrained checkpoint students prune, trained on CINIC-10 (``None``: only with
            ``--allow-generated-model``, the demo's reference model in ``demo-output/``, trained on the
            generated dataset if absent; fine for trying the bundle, not for a class).
        helpers_url: where Colab installs ``helpers`` from: a direct http(s) link ending in the wheel's
            file name (:func:`~autograder.release.check_helpers_url`); baked into the notebook.
            JupyterLab installs the wheel next to it.
        model_url: where the notebook downloads the model when no copy is found; baked in.
    """

    out: Path = Path("dist/student")
    model: Path | None = None
    helpers_url: str | None = None
    model_url: str | None = None


@dataclass
class TrainConfig:
    """Hyper-parameters of the reference model, ``python -m autograder train`` (:func:`autograder.train.train_model`;
    the defaults reach >= 50% on real CINIC images).

    Attributes:
        epochs: passes over the training split.
        batch_size: images per step.
        lr: Adam learning rate, decayed by cosine annealing to 0.
        weight_decay: Adam L2 penalty.
        seed: seeds python, numpy and torch.
        flip: random horizontal flips as augmentation.
    """

    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    seed: int = 0
    flip: bool = True
