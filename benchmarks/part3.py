"""``make bench`` step ``part3``: what filter removal buys on the CPU, and what fine-tuning recovers.

Latency: the pretrained model and the reference solution's model with 50% of the filters removed,
timed alternately in several rounds with ``helpers.measure_latency`` (``torch.utils.benchmark``,
fixed threads, channels-last input as ``test_model`` gives it, the model traced, frozen and optimized
for inference, its default; also eagerly, for comparison), at batch 1 and 256; the figure of
merit is (latency speed-up) / (MAC reduction), from the median times, with the range of the
ratios of the single rounds (the two models timed back to back) beside it.
Recovery: the reference fine-tuning (one epoch of the training split, ``helpers.fine_tune``
defaults) of the 50%-removed model and the 90% unstructured model, on the generated data with the
demo's model and, when present, on the real sample with a model trained on it. On the same models,
the grader's test-split check on fine-tuning runs of known split (:func:`_split_calibration`).
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import torch

ROUNDS = 9
BATCHES = (1, 256)


#: ``measure_latency``'s ``optimize`` per reported way of running (the key's suffix): its default (TorchScript,
#: frozen, optimized for inference), and the eager model, for comparison.
MODES = {"": True, ", eager": False}


def _latency(models: dict, threads: int, optimize: bool) -> dict:
    """``{(name, batch): [seconds per round]}``, the models timed one after the other in every round."""
    from helpers.cost import measure_latency
    times = {(name, b): [] for name in models for b in BATCHES}
    for i in range(ROUNDS):  # alternate the models (and their order) so that drifts of the machine hit both alike
        for b in BATCHES:
            for name, model in (list(models.items()) if i % 2 == 0 else list(models.items())[::-1]):
                times[(name, b)].append(measure_latency(model, b, threads=threads, min_run_time=0.5,
                                                        optimize=optimize))
    return times


def _recovery(model, data) -> dict:
    from autograder.grading import solutions
    from helpers import copy_model, test_model
    from helpers.finetune import fine_tune
    test, train = [data["X_test"], data["y_test"]], [data["X_train"], data["y_train"]]
    starts = {"structured 50% removed": solutions.remove_filters(solutions.prune_structured(model, 0.5)),
              "unstructured 90% masked": solutions.prune_unstructured(model, 0.9)}
    out = {"unpruned": round(test_model(model, test, verbose=False), 4)}
    for name, start in starts.items():
        tuned = fine_tune(copy_model(start), train, progress=False)
        out[name] = {"before": round(test_model(start, test, verbose=False), 4),
                     "after": round(test_model(tuned, test, verbose=False), 4)}
    return out


#: How students might fine-tune besides the notebook's call: fine_tune keyword arguments per variant.
SPLIT_VARIANTS = {"notebook's call": {}, "seed 3": {"seed": 3}, "lr 1e-3": {"lr": 1e-3}, "batch 64": {"batch_size": 64},
                  "2 epochs, seed 5": {"epochs": 2, "seed": 5}, "lr 1e-4, seed 7": {"lr": 1e-4, "seed": 7}}


def _split_calibration(model, data: dict, grader_device: str = "cpu") -> dict:
    """The grader's test-split check (:mod:`autograder.grading.trained_split`) on fine-tuning runs of known split.

    On the grading subset of ``data`` (100 images per class and split, the grader's default), each
    part-3 starting model is fine-tuned on the training and on the test split with every
    :data:`SPLIT_VARIANTS`; for each run, the cosine similarities with the grader's own runs on the
    two splits. Reported: runs whose own split was the closer by more than the margin, and the
    smallest such lead over all runs. The runs use ``fine_tune``'s default device (CUDA when available),
    the grader's replays ``grader_device``.
    """
    import numpy as np

    from autograder.grading import solutions, trained_split
    from autograder.grading.measure import ReferenceMeasurements, model_digest, model_from_state
    from helpers import copy_model
    from helpers.finetune import fine_tune
    from helpers.models import model_config, plain_state_dict
    sub = {k: np.asarray(v)[_stratified(data["y_" + k[2:]], 100)] for k, v in data.items()}
    arch, config = model_config(model)
    ref = ReferenceMeasurements(model=model, arch=arch, config=config, test_data=[sub["X_test"], sub["y_test"]],
                                device=grader_device, accuracy={}, train_data=[sub["X_train"], sub["y_train"]])
    starts = {"structured": (solutions.remove_filters(solutions.prune_structured(model, 0.5)), False),
              "unstructured": (solutions.prune_unstructured(model, 0.9), True)}
    runs = []
    for kind, (start, masked) in starts.items():
        plain = model_from_state(plain_state_dict(start), ref)[0] if masked else start  # as the grader rebuilds it
        for name in trained_split.SPLITS:
            for variant, kwargs in SPLIT_VARIANTS.items():
                tuned = fine_tune(copy_model(start), [sub[f"X_{name}"], sub[f"y_{name}"]], progress=False, **kwargs)
                sims = trained_split.split_similarity(ref, plain, model_digest(plain), tuned, masked)
                other = "train" if name == "test" else "test"
                runs.append({"kind": kind, "split": name, "variant": variant, "cos_train": round(sims["train"], 3),
                             "cos_test": round(sims["test"], 3), "lead": round(sims[name] - sims[other], 3),
                             "flagged": trained_split.trained_on_test(sims)})
    right = [r for r in runs if r["flagged"] == (r["split"] == "test")]
    return {"runs": runs, "right": len(right), "total": len(runs), "smallest_lead": min(r["lead"] for r in runs),
            "margin": trained_split.TEST_SPLIT_MARGIN}


def _stratified(labels, per_class: int):
    import numpy as np
    labels = np.asarray(labels)
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))


def bench_part3(work: Path, model_path: Path, real_sample: Path) -> dict:
    from autograder.grading import solutions
    from autograder.train import train_model
    from helpers import get_CINIC10_data, load_model
    from helpers.cost import count_macs
    from helpers.models import save_model
    model = load_model(model_path)
    removed = solutions.remove_filters(solutions.prune_structured(model, 0.5))
    macs = count_macs(model)[0], count_macs(removed)[0]
    out = {"macs": {"pretrained": macs[0], "removed_50": macs[1]}, "mac_reduction": round(macs[0] / macs[1], 3),
           "rounds": ROUNDS, "latency_s": {},
           "layout": "channels-last input as test_model gives it; TorchScript, frozen and optimized for inference "
                     "(measure_latency's default) unless eager",
           "speedup": {}, "speedup_per_mac_reduction": {}, "per_round_range": {}}
    for (suffix, optimize), threads in itertools.product(MODES.items(), sorted({1, torch.get_num_threads()})):
        lat = _latency({"pretrained": model, "removed": removed}, threads, optimize)
        for b in BATCHES:
            key = f"batch {b}, {threads} thread{'s' if threads > 1 else ''}{suffix}"
            pre, rem = lat[("pretrained", b)], lat[("removed", b)]
            paired = sorted(p / r / (macs[0] / macs[1]) for p, r in zip(pre, rem))  # one ratio per round
            speedup = statistics.median(pre) / statistics.median(rem)
            out["latency_s"][key] = {"pretrained": statistics.median(pre), "removed": statistics.median(rem)}
            out["speedup"][key] = round(speedup, 3)
            out["speedup_per_mac_reduction"][key] = round(speedup / out["mac_reduction"], 3)
            out["per_round_range"][key] = [round(paired[0], 3), round(paired[-1], 3)]
    generated = get_CINIC10_data("synthetic", progress=False)
    out["recovery_generated"] = _recovery(model, generated)
    out["split_generated"] = _split_calibration(model, generated)
    if real_sample.is_file():
        data = get_CINIC10_data(str(real_sample), cache_dir=work / "p3-cache", progress=False)
        real = load_model(save_model(train_model(data, progress=False), work / "p3-real-model.pt"))
        out["recovery_real_sample"] = _recovery(real, data)
        out["split_real_sample"] = _split_calibration(real, data)
    return out
