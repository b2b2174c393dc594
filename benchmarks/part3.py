"""``make bench`` step ``part3``: what filter removal buys on the CPU, and what fine-tuning recovers.

Latency: the pretrained model and the reference solution's model with 50% of the filters removed,
timed alternately in several rounds with ``helpers.measure_latency`` (``torch.utils.benchmark``,
fixed threads, channels-last input as ``test_model`` gives it), at batch 1 and 256; the figure of
merit is (latency speed-up) / (MAC reduction), from the median times, with the range of the
ratios of the single rounds (the two models timed back to back) beside it.
Recovery: the reference fine-tuning (one epoch of the training split, ``helpers.fine_tune``
defaults) of the 50%-removed model and the 90% unstructured model, on the generated data with the
demo's model and, when present, on the real sample with a model trained on it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

ROUNDS = 9
BATCHES = (1, 256)


def _latency(models: dict, threads: int) -> dict:
    """``{(name, batch): [seconds per round]}``, the models timed one after the other in every round."""
    from helpers.cost import measure_latency
    times = {(name, b): [] for name in models for b in BATCHES}
    for i in range(ROUNDS):  # alternate the models (and their order) so that drifts of the machine hit both alike
        for b in BATCHES:
            for name, model in (list(models.items()) if i % 2 == 0 else list(models.items())[::-1]):
                times[(name, b)].append(measure_latency(model, b, threads=threads, min_run_time=0.5))
    return times


def _recovery(model, data) -> dict:
    from autograder.grading import reference
    from helpers import copy_model, test_model
    from helpers.finetune import fine_tune
    test, train = [data["X_test"], data["y_test"]], [data["X_train"], data["y_train"]]
    starts = {"structured 50% removed": reference.remove_filters(reference.prune_structured(model, 0.5)),
              "unstructured 90% masked": reference.prune_unstructured(model, 0.9)}
    out = {"unpruned": round(test_model(model, test, verbose=False), 4)}
    for name, start in starts.items():
        tuned = fine_tune(copy_model(start), train, progress=False)
        out[name] = {"before": round(test_model(start, test, verbose=False), 4),
                     "after": round(test_model(tuned, test, verbose=False), 4)}
    return out


def bench_part3(work: Path, model_path: Path, real_sample: Path) -> dict:
    from autograder.grading import reference
    from helpers import get_CINIC10_data, load_model, save_model
    from helpers.cost import count_macs
    from helpers.train import train_model
    model = load_model(model_path)
    removed = reference.remove_filters(reference.prune_structured(model, 0.5))
    macs = count_macs(model)[0], count_macs(removed)[0]
    out = {"macs": {"pretrained": macs[0], "removed_50": macs[1]}, "mac_reduction": round(macs[0] / macs[1], 3),
           "rounds": ROUNDS, "layout": "channels-last input, as test_model gives it", "latency_s": {},
           "speedup": {}, "speedup_per_mac_reduction": {}, "per_round_range": {}}
    for threads in sorted({1, torch.get_num_threads()}):
        lat = _latency({"pretrained": model, "removed": removed}, threads)
        for b in BATCHES:
            key = f"batch {b}, {threads} thread{'s' if threads > 1 else ''}"
            pre, rem = lat[("pretrained", b)], lat[("removed", b)]
            paired = sorted(p / r / (macs[0] / macs[1]) for p, r in zip(pre, rem))  # one ratio per round
            speedup = statistics.median(pre) / statistics.median(rem)
            out["latency_s"][key] = {"pretrained": statistics.median(pre), "removed": statistics.median(rem)}
            out["speedup"][key] = round(speedup, 3)
            out["speedup_per_mac_reduction"][key] = round(speedup / out["mac_reduction"], 3)
            out["per_round_range"][key] = [round(paired[0], 3), round(paired[-1], 3)]
    out["recovery_generated"] = _recovery(model, get_CINIC10_data("synthetic", progress=False))
    if real_sample.is_file():
        data = get_CINIC10_data(str(real_sample), cache_dir=work / "p3-cache", progress=False)
        real = save_model(train_model(data, progress=False), work / "p3-real-model.pt")
        out["recovery_real_sample"] = _recovery(load_model(real), data)
    return out
