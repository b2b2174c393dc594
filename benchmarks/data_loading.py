"""Benchmark step ``data``: the loader (``get_CINIC10_data``) against torchvision's ``ImageFolder`` on a CINIC-10
folder of generated PNGs, with each one's memory once loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, spread, timed

__all__ = ["bench_data", "write_cinic_folder"]


def _write_pngs(args):
    from PIL import Image
    paths, images = args
    for p, img in zip(paths, images):
        Image.fromarray(img).save(p)


def write_cinic_folder(root: Path, per_class: int) -> int:
    from helpers._synthetic import make_synthetic
    from helpers.config import CINIC10
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
