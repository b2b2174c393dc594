"""Benchmarks of the course package (``make bench``): evaluation, data loading, grading,
the student notebook, grading memory. Writes ``benchmarks/results.json`` and
``benchmarks/RESULTS.md``. Benchmarks are not tests: nothing here asserts a time.

Every comparison is measured side by side in the same run; times are medians over repeats
with their spread (min-max).

    python -m benchmarks.run [--only eval,data,grading,notebook,student_time,reference_run,memory,allocator,part3,
                                     cluster,cluster_class,cluster_cpu,contention] [--images 90000] [--rounds 3]
                                     [--eval-rounds 7]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.census import bench_cluster_cpu
from benchmarks.cluster import CLASS_COPIES, bench_cluster, bench_contention
from benchmarks.part3 import bench_part3
from benchmarks.reference_run import bench_reference_run
from benchmarks.student_time import bench_student_time

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks"
LOGS = OUT / "logs"
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "CINIC-10-sample.tar.gz"


def timed(fn, repeats=3):
    """Run ``fn`` ``repeats`` times; return (median seconds, min, max, last result)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times), result


def spread(t):
    return {"median_s": round(t[0], 4), "min_s": round(t[1], 4), "max_s": round(t[2], 4)}


def venv_env():
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


# ---------------------------------------------------------------------------------------------
#: Images per paired slice of the evaluation benchmark (history.md item 22: 10,000-image
#: slices, about 2 s per side, left a +-8% spread between rounds of the same code).
EVAL_SLICE_IMAGES = 2_000


def bench_eval(n_images: int, rounds: int, device: str = "cpu") -> dict:
    """``test_model`` vs a bare ``model(x)`` loop over pre-normalized input, both on ``device``.

    First the bare loop's best batch size: the first 20,000 images (30,000 on CUDA) twice, each
    slice of 2,000 (10,000) images timed at every size back to back; the lowest total wins.
    Then ``rounds`` rounds over all images in slices of 2,000 (or the batch size if larger),
    each slice timed for the bare
    loop (at that size) and ``test_model`` back to back, the order alternating; a round's
    ratio is its summed bare time over its summed ``test_model`` time, and the median over
    rounds is reported, so neither side gains from being measured at a quieter moment.
    Finally one ``test_model`` call over the whole split, for its images per second.
    On CUDA the bare loop's input is already on the GPU and each timing ends with a
    synchronize; ``test_model`` starts from the uint8 arrays in host memory, as students call it.
    """
    from helpers import SmallCNN, test_model
    from helpers._speed.allocator import steady_allocator
    from helpers.batches import to_model_input
    from helpers.synthetic import make_synthetic

    # The allocator settings test_model applies on its first call, applied before either side
    # is measured: both run under the same malloc thresholds (helpers/_speed/allocator.py).
    mmap_threshold = steady_allocator()
    per_class = n_images // 10
    data = make_synthetic({"train": 1, "val": 1, "test": per_class})
    X, y = data["X_test"], data["y_test"]
    torch.manual_seed(0)
    model = SmallCNN().eval().to(device)
    pre = torch.cat([to_model_input(X[i:i + 5000], device) for i in range(0, len(X), 5000)])
    cuda = torch.device(device).type == "cuda"

    def seconds(fn, *args):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(*args)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def bare(bs, n=len(pre), start=0):
        with torch.inference_mode():
            for i in range(start, n, bs):
                model(pre[i:min(i + bs, n)]).argmax(1)

    quiet = functools.partial(test_model, verbose=False, device=device)

    def ours():
        quiet(model, [X, y])

    if cuda:  # warm-up: cuDNN picks its kernels per shape on first use
        for bs in (500, 1000, 2000, 5000, 10000):
            bare(bs, min(len(pre), 2 * bs))
        ours()
    sizes = (500, 1000, 2000, 5000, 10000) if cuda else (100, 200, 500, 1000, 2000)
    # The scan is paired like the rounds below: every slice of max(sizes) images is timed at
    # each size back to back, the order of sizes rotating from slice to slice.
    by_size = {bs: 0.0 for bs in sizes}
    step = max(sizes)
    scan = max(step, min(len(pre) // step * step, 20_000 if not cuda else 30_000))
    for p in range(2):
        for k, lo in enumerate(range(0, scan, step)):
            shift = (k + p) % len(sizes)
            for bs in sizes[shift:] + sizes[:shift]:
                by_size[bs] += seconds(bare, bs, lo + step, lo)
    best_bs = min(sizes, key=lambda bs: by_size[bs])
    print(f"bare loop by batch size ({scan:,} images, twice): " + ", ".join(
        f"{bs}: {2 * scan / t:,.0f}" for bs, t in by_size.items()) + " img/s", flush=True)
    # Paired in short slices: on a shared 2-core machine the speed drifts by 10-20% within
    # seconds, so each slice of `chunk` images (about 0.4 s per side on a 2-core CPU) is timed for
    # both sides back to back (order alternating) and a round sums its slices over the whole
    # split. test_model's fixed cost per call (argument checks, buffers) is counted every slice.
    chunk = min(len(X), max(EVAL_SLICE_IMAGES, best_bs))
    bare_times, ours_times, ratios = [], [], []
    for r in range(rounds):
        bare_s = ours_s = 0.0
        for k, lo in enumerate(range(0, len(X), chunk)):
            hi = min(lo + chunk, len(X))
            part = [X[lo:hi], y[lo:hi]]
            if (r + k) % 2:
                ours_s += seconds(quiet, model, part)
                bare_s += seconds(bare, best_bs, hi, lo)
            else:
                bare_s += seconds(bare, best_bs, hi, lo)
                ours_s += seconds(quiet, model, part)
        bare_times.append(bare_s)
        ours_times.append(ours_s)
        ratios.append(bare_s / ours_s)
        print(f"round {r + 1}/{rounds}: bare (batch {best_bs}) {len(X) / bare_s:,.0f} img/s, "
              f"test_model {len(X) / ours_s:,.0f} img/s, ratio {ratios[-1]:.3f}", flush=True)
    whole = seconds(ours)

    def stats(times):
        return statistics.median(times), min(times), max(times), None

    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "images": len(X),
        "malloc_mmap_threshold_bytes": mmap_threshold,
        "rounds": len(ratios),
        "slice_images": chunk,
        "bare_best_batch_size": best_bs,
        "bare_images_per_s": round(len(X) / statistics.median(bare_times)),
        "bare": spread(stats(bare_times)),
        "bare_scan_images": scan,
        "bare_scan_passes": 2,
        "bare_by_batch_size": {bs: round(2 * scan / t) for bs, t in by_size.items()},
        "test_model_images_per_s": round(len(X) / statistics.median(ours_times)),
        "test_model": spread(stats(ours_times)),
        "test_model_whole_split_s": round(whole, 3),
        "test_model_whole_split_images_per_s": round(len(X) / whole),
        "ratio_per_round": [round(x, 3) for x in ratios],
        "ratio": round(statistics.median(ratios), 3),
        "target_ratio": 0.95,
    }


# ---------------------------------------------------------------------------------------------
def _write_pngs(args):
    from PIL import Image
    paths, images = args
    for p, img in zip(paths, images):
        Image.fromarray(img).save(p)


def write_cinic_folder(root: Path, per_class: int) -> int:
    from helpers.config import CINIC10
    from helpers.synthetic import make_synthetic
    data = make_synthetic({"train": per_class, "val": per_class, "test": per_class})
    jobs = []
    for split, folder in CINIC10.splits.items():
        X, y = data[f"X_{split}"], data[f"y_{split}"]
        for c, name in enumerate(CINIC10.classes):
            d = root / folder / name
            d.mkdir(parents=True, exist_ok=True)
            idx = np.flatnonzero(y == c)
            paths = [d / f"{name}-{i:05d}.png" for i in range(len(idx))]
            jobs.append((paths, X[idx]))
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_pngs, jobs))
    return sum(len(p) for p, _ in jobs)


def _rss_of_loaded(folder: str, cache: str) -> dict:
    """Run in a child: load the cached set, touch every image, report resident memory."""
    code = f"""
import json, numpy as np
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
from helpers import get_CINIC10_data
before = rss()
d = get_CINIC10_data({folder!r}, cache_dir={cache!r}, progress=False)
total = 0
nbytes = 0
for k, v in d.items():
    total += int(np.asarray(v).sum() % 7)
    nbytes += v.nbytes
print(json.dumps({{"rss_increase_bytes": rss() - before, "uint8_bytes": nbytes}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_data(n_images: int, work: Path) -> dict:
    from torch.utils.data import ConcatDataset, DataLoader
    from torchvision import datasets, transforms

    from helpers import get_CINIC10_data
    folder = work / "cinic-like"
    per_class = n_images // 30
    start = time.perf_counter()
    count = write_cinic_folder(folder, per_class)
    write_s = time.perf_counter() - start
    cache = work / "cache"

    first = timed(lambda: get_CINIC10_data(folder, cache_dir=cache, refresh=True, progress=False), 1)
    reload = timed(lambda: get_CINIC10_data(folder, cache_dir=cache, progress=False), 5)

    def imagefolder_pass():
        tf = transforms.ToTensor()
        sets = ConcatDataset([datasets.ImageFolder(folder / s, transform=tf) for s in ("train", "valid", "test")])
        n = 0
        for xb, _ in DataLoader(sets, batch_size=256, num_workers=os.cpu_count() or 1):
            n += len(xb)
        return n

    imf = timed(imagefolder_pass, 1)
    mem = _rss_of_loaded(str(folder), str(cache))
    return {
        "images": count, "png_write_s": round(write_s, 1),
        "first_load": spread(first), "first_load_images_per_s": round(count / first[0]),
        "cached_reload": spread(reload),
        "imagefolder_pass": spread(imf), "imagefolder_images": imf[3],
        "reload_speedup_vs_imagefolder": round(imf[0] / reload[0], 1), "target_speedup": 20,
        "resident_bytes": mem["rss_increase_bytes"], "uint8_bytes": mem["uint8_bytes"],
        "resident_ratio": round(mem["rss_increase_bytes"] / mem["uint8_bytes"], 3), "target_resident_ratio": 1.1,
    }


# ---------------------------------------------------------------------------------------------
BENCH_STUDENTS = {"s1": "reference", "s2": "correct_manual_topk", "s3": "correct_relative_amounts",
                  "s4": "reference", "s5": "correct_manual_topk", "s6": "correct_relative_amounts",
                  "s7": "reference", "s8": "correct_manual_topk"}


def _class(dest: Path, suffix: str = ""):
    import nbformat

    from autograder.samples import RELEASE_NOTEBOOK, build_notebook, load_samples
    samples = {s.name: s for s in load_samples()}
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    for sid, name in BENCH_STUDENTS.items():
        (dest / f"{sid}{suffix}" / "pruning").mkdir(parents=True, exist_ok=True)
        nbformat.write(build_notebook(samples[name], release), dest / f"{sid}{suffix}" / "pruning" / "pruning.ipynb")


def _plain_nbgrader(course: Path, submitted: Path, data_npz: Path, model: Path) -> tuple[float, dict]:
    """Sequential `nbgrader autograde` of the same submissions, with the same data and model.

    ``generate_assignment`` (the release step) is not timed; ``autograde`` is.
    """
    (course / "source" / "pruning").mkdir(parents=True)
    shutil.copy(REPO / "assignment" / "source" / "pruning" / "pruning.ipynb", course / "source" / "pruning")
    shutil.copy(REPO / "assignment" / "nbgrader_config.py", course)
    shutil.copytree(submitted, course / "submitted")
    env = venv_env()
    env.update({"CINIC10_ROOT": str(data_npz), "PRUNING_MODEL": str(model), "MPLBACKEND": "Agg",
                "CINIC10_CACHE": str(course / "cache")})
    env.pop("PRUNING_EXPORT_DIR", None)
    nbg = str(Path(sys.executable).parent / "nbgrader")
    subprocess.run([nbg, "generate_assignment", "pruning", "--force"], cwd=course, env=env, check=True,
                   capture_output=True)
    start = time.perf_counter()
    lines = []  # nbgrader's log, each line with its second since the start: kept to explain slow runs
    with subprocess.Popen([nbg, "autograde", "pruning", "--force"], cwd=course, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        for line in proc.stdout:
            lines.append(f"{time.perf_counter() - start:7.1f} {line}")
    seconds = time.perf_counter() - start
    LOGS.mkdir(exist_ok=True)
    (LOGS / f"{course.name}.log").write_text(f"{seconds:.1f} s\n" + "".join(lines))
    if proc.returncode != 0:
        raise RuntimeError("".join(lines[-30:]))
    from nbgrader.api import Gradebook

    from autograder.grading.parts import CHECKS
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sid in BENCH_STUDENTS:
            scores[sid] = sum(gb.find_grade(g, "pruning", "pruning", sid).score for g in CHECKS)
    return seconds, scores


#: The student's own computation: the two cells they write (their sweeps).
STUDENT_CELLS = ("prune_unstructured", "prune_structured", "remove_filters", "finetune")


def grade_command(submitted: Path, data_npz: Path, model: Path, out: Path, *extra: str) -> list[str]:
    """``python -m autograder grade`` of the bench's class, with its data file and model, into ``out``."""
    return [sys.executable, "-m", "autograder", "grade", str(submitted), "--data-root", str(data_npz),
            "--model", str(model), "--out", str(out), "--per-class", "100", *extra]


def _ours(work: Path, submitted: Path, data_npz: Path, model: Path, jobs: int, name: str,
          *extra: str) -> tuple[float, dict, dict]:
    """Our command on the same submissions, data file and model as plain nbgrader.

    Returns wall seconds, scores, and the run's ``timings.json``.
    """
    out = work / name
    env = venv_env()
    start = time.perf_counter()
    subprocess.run(grade_command(submitted, data_npz, model, out, "--jobs", str(jobs), *extra),
                   cwd=REPO, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    with open(out / "grades.csv") as fh:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    return seconds, scores, json.loads((out / "timings.json").read_text())


def _overheads(timings: dict) -> tuple[list[float], float]:
    """Per submission: its time in the grader minus the student's own cells; and the sum of its times."""
    per, total = [], 0.0
    for t in timings["students"].values():
        spent = t["prepare"] + t["kernel"] + t["score"] + t.get("record", 0) + t["feedback"] + t.get("clean", 0)
        per.append(spent - sum(t["cells"].get(c, 0) for c in STUDENT_CELLS))
        total += spent
    return per, total


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and their reaped descendants."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_ticks() -> list[int]:
    """The machine's CPU time counters from ``/proc/stat`` (empty where there is none)."""
    try:
        with open("/proc/stat") as fh:
            return [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return []


def _steal_fraction(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor gave to others (``steal``) between two ``/proc/stat`` reads."""
    if len(before) < 8 or len(after) < 8:
        return 0.0
    delta = [a - b for a, b in zip(after, before)]
    return delta[7] / sum(delta) if sum(delta) else 0.0


def bench_grading(work: Path, model: Path, rounds: int) -> dict:
    """Plain nbgrader vs ours, ``rounds`` times interleaved, the order reversed every other round.

    Besides wall time, each run's CPU seconds (its whole process tree) and the machine's CPU
    steal during it are kept: on a shared virtual machine the wall times of parallel runs swing
    with what other guests do, CPU seconds much less.
    """
    from autograder.grading.batch import grading_subset
    submitted = work / "submitted"
    _class(submitted)
    data_npz = work / "grading.npz"
    np.savez(data_npz, **grading_subset("synthetic", 100))
    n = len(BENCH_STUDENTS)
    runs = {"plain": [], "jobs1": [], "jobs1_nosandbox": [], "jobs2": [], "jobs2_spawn": []}
    cpu = {k: [] for k in runs}
    steal = {k: [] for k in runs}
    overheads, setup, scores = [], [], {}

    def plain(i):
        seconds, scores["plain"] = _plain_nbgrader(work / f"plain{i}", submitted, data_npz, model)
        return seconds

    def jobs1(i):
        seconds, scores["jobs1"], timings = _ours(work, submitted, data_npz, model, 1, f"jobs1-{i}")
        per, spent = _overheads(timings)
        overheads.extend(per)
        setup.append((seconds - spent) / n)
        return seconds

    def jobs1_nosandbox(i):  # the sandbox's own cost: the same run as jobs1 without it
        seconds, scores["jobs1_nosandbox"], _ = _ours(work, submitted, data_npz, model, 1,
                                                            f"jobs1-nosandbox-{i}", "--no-sandbox")
        return seconds

    def jobs2(i):
        seconds, scores["jobs2"], _ = _ours(work, submitted, data_npz, model, 2, f"jobs2-{i}")
        return seconds

    def jobs2_spawn(i):
        seconds, scores["jobs2_spawn"], _ = _ours(work, submitted, data_npz, model, 2, f"jobs2-spawn-{i}",
                                                  "--spawn-kernels")
        return seconds

    configs = {"plain": plain, "jobs1": jobs1, "jobs1_nosandbox": jobs1_nosandbox, "jobs2": jobs2,
               "jobs2_spawn": jobs2_spawn}
    for i in range(rounds):
        for name in (list(configs) if i % 2 == 0 else list(configs)[::-1]):  # drifts hit both ends alike
            before_cpu, before_stat = _children_cpu(), _cpu_ticks()
            runs[name].append(configs[name](i))
            cpu[name].append(_children_cpu() - before_cpu)
            steal[name].append(_steal_fraction(before_stat, _cpu_ticks()))
        print(f"round {i + 1}/{rounds}: " + ", ".join(
            f"{k} {v[-1]:.1f} s ({cpu[k][-1]:.0f} CPU-s, steal {steal[k][-1]:.0%})" for k, v in runs.items()),
            flush=True)
    per_sub = {k: spread((statistics.median(v) / n, min(v) / n, max(v) / n)) for k, v in runs.items()}
    sandbox_cost = [(a - b) / n for a, b in zip(runs["jobs1"], runs["jobs1_nosandbox"])]
    sandbox_cpu = [(a - b) / n for a, b in zip(cpu["jobs1"], cpu["jobs1_nosandbox"])]
    speedups = [p / t for p, t in zip(runs["plain"], runs["jobs2"])]
    return {
        "submissions": n, "rounds": rounds, "seconds_per_submission": per_sub,
        "speedup_jobs2_vs_plain": spread((statistics.median(speedups), min(speedups), max(speedups))),
        "target_speedup": 2.0,
        "fixed_overhead_s_per_submission": spread((statistics.median(overheads), min(overheads), max(overheads))),
        "target_overhead_s": 2.0,
        "run_setup_s_per_submission": spread((statistics.median(setup), min(setup), max(setup))),
        "cpu_seconds_per_submission": {k: spread((statistics.median(v) / n, min(v) / n, max(v) / n))
                                       for k, v in cpu.items()},
        "cpu_steal_fraction": {k: [round(x, 3) for x in v] for k, v in steal.items()},
        "sandbox_cost_s_per_submission": spread((statistics.median(sandbox_cost), min(sandbox_cost),
                                                 max(sandbox_cost))),
        "sandbox_cpu_s_per_submission": spread((statistics.median(sandbox_cpu), min(sandbox_cpu), max(sandbox_cpu))),
        "scores_identical": len({json.dumps(v, sort_keys=True) for v in scores.values()}) == 1,
        "scores": scores,
    }


# ---------------------------------------------------------------------------------------------
def _run_source(data_root: str, model: Path, work: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    from autograder.runner.channels import SteadyKernelManager
    nb = nbformat.read(REPO / "assignment" / "source" / "pruning" / "pruning.ipynb", as_version=4)
    env = venv_env()
    env.update({"CINIC10_ROOT": data_root, "PRUNING_MODEL": str(model), "MPLBACKEND": "Agg",
                "CINIC10_CACHE": str(work / "nb-cache"), "PYTHONPATH": str(REPO)})
    env.pop("PRUNING_EXPORT_DIR", None)
    # First load of a real archive decodes it once; measure the notebook as a student reruns it.
    warm = f"from helpers import get_CINIC10_data; get_CINIC10_data({data_root!r}, progress=False)"
    subprocess.run([sys.executable, "-c", warm], env=env, cwd=REPO, check=True)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1200, kernel_name="python3", kernel_manager_class=SteadyKernelManager,
                   resources={"metadata": {"path": str(work)}}).execute(env=env)
    return time.perf_counter() - start


def bench_notebook(work: Path, model: Path) -> dict:
    from helpers import get_CINIC10_data, save_model
    from helpers.train import train_model
    out = {"generated_s": round(_run_source("synthetic", model, work), 1)}
    if SHARED_SAMPLE.is_file():
        real_model = work / "real-model.pt"
        save_model(train_model(get_CINIC10_data(str(SHARED_SAMPLE), cache_dir=work / "nb-cache" / "arrays",
                                                progress=False), progress=False), real_model)
        out["real_sample_s"] = round(_run_source(str(SHARED_SAMPLE), real_model, work), 1)
    else:
        out["real_sample_s"] = None
        out["real_sample_note"] = f"{SHARED_SAMPLE} not present on this machine"
    return out


def bench_memory(work: Path, model: Path) -> dict:
    import nbformat

    from autograder.samples import RELEASE_NOTEBOOK, build_notebook, load_samples
    sub = work / "one"
    (sub / "s1" / "pruning").mkdir(parents=True)
    ref = next(s for s in load_samples() if s.name == "reference")
    nbformat.write(build_notebook(ref, nbformat.read(RELEASE_NOTEBOOK, as_version=4)),
                   sub / "s1" / "pruning" / "pruning.ipynb")
    code = ("import resource, subprocess, sys, json\n"
            f"subprocess.run([sys.executable, '-m', 'autograder', 'grade', {str(sub)!r}, '--data-root', 'synthetic',"
            f" '--model', {str(model)!r}, '--out', {str(work / 'one-out')!r}],"
            " check=True, capture_output=True)\n"
            "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
            "print(json.dumps({'children_max_rss_bytes': peak}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=venv_env(), capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
def machine() -> dict:
    return {"cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cuda": torch.cuda.is_available(),
            "date": datetime.date.today().isoformat(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


_FAULTS = """
import resource, torch
from helpers import SmallCNN
from helpers._speed.allocator import steady_allocator
from helpers._speed.inference import eval_batch_size
threshold = steady_allocator()
model = SmallCNN().eval()
x = torch.randn(eval_batch_size("cpu"), 3, 32, 32).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    for _ in range(3):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        model(x)
print(threshold, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def bench_allocator() -> dict:
    """Page faults per evaluation batch with the allocator setting, and with glibc's own 128 KiB
    threshold (``MALLOC_MMAP_THRESHOLD_`` set, which turns the setting off); a fresh process each."""
    out = {}
    for name, extra in (("steady", {}), ("glibc_default", {"MALLOC_MMAP_THRESHOLD_": "131072"})):
        env = {k: v for k, v in venv_env().items() if k != "MALLOC_MMAP_THRESHOLD_"}
        env.update(extra, PYTHONPATH=str(REPO))
        done = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
        threshold, faults = done.stdout.split()
        out[name] = {"mmap_threshold": int(threshold), "faults_per_batch": float(faults)}
    return out


def reference_checkpoint(work: Path) -> Path:
    from helpers import get_CINIC10_data, save_model
    from helpers.train import train_model
    demo = REPO / "demo-output" / "reference-model.pt"
    if demo.is_file():
        return demo
    return save_model(train_model(get_CINIC10_data("synthetic"), progress=False), work / "model.pt")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--only",
                        default="eval,data,grading,notebook,student_time,reference_run,memory,allocator,part3,cluster,"
                                "cluster_class,cluster_cpu,contention",
                        help="comma-separated steps; eval_cuda (evaluation on the GPU) is never run by default")
    parser.add_argument("--images", type=int, default=90_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the grading runs")
    parser.add_argument("--eval-rounds", type=int, default=7, help="paired rounds of the evaluation")
    args = parser.parse_args(argv)
    wanted = args.only.split(",")
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["machine"] = machine()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        needs_model = {"grading", "notebook", "student_time", "memory", "part3", "cluster", "cluster_class",
                       "cluster_cpu"}
        model = reference_checkpoint(work) if set(wanted) & needs_model else None
        steps = {"eval": lambda: bench_eval(args.images, args.eval_rounds),
                 "eval_cuda": lambda: bench_eval(args.images, args.eval_rounds, "cuda"),
                 "data": lambda: bench_data(args.images, work),
                 "grading": lambda: bench_grading(work, model, args.rounds),
                 "notebook": lambda: bench_notebook(work, model),
                 "student_time": lambda: bench_student_time(work, model),
                 "reference_run": lambda: bench_reference_run(work, SHARED_SAMPLE),
                 "memory": lambda: bench_memory(work, model),
                 "allocator": bench_allocator,
                 "part3": lambda: bench_part3(work, model, SHARED_SAMPLE),
                 "cluster": lambda: bench_cluster(work, model, args.rounds),
                 # a longer class: does the whole-run ratio tend to the steady one, and the added cost per
                 # submission to the steady one? (--jobs 1 left out: the slowest run, and not compared here)
                 "cluster_class": lambda: bench_cluster(work, model, args.rounds, copies=CLASS_COPIES,
                                                        configs=("local1", "jobs2", "local2")),
                 # CPU seconds per kind of process, less drift-prone than the wall times above
                 "cluster_cpu": lambda: bench_cluster_cpu(work, model, args.rounds),
                 "contention": bench_contention}
        for name in wanted:
            print(f"== {name}", flush=True)
            results[name] = steps[name]()
            if name == "eval_cuda":  # usually measured on another machine than the rest
                results[name]["machine"] = machine()
            print(json.dumps(results[name], indent=1), flush=True)
            results_path.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from benchmarks.report import write_markdown
    write_markdown(results, OUT / "RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
