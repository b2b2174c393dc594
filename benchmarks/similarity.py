"""Calibration of the pairs worth comparing (:mod:`autograder.classreport.similarity`): how many independent
correct solutions each threshold lists (false positives) and how many copies in disguise it finds.

- Independent: the reference solution and the solutions in ``tests/fixtures/similarity/`` (written
  independently, each correct), every pair of them, in one class.
- Copies: each of them copied with names changed, statements reordered and comments added
  (:func:`autograder.samples.variations.disguise_cells`), one copy per solution in a class with all the
  originals, for several seeds.
- The demo's class: its samples (mistakes share the reference's other cells by construction) and its copied
  pair; only that pair may be listed.

Scores are computed once at threshold ~0 and every threshold is applied to them (the listing's other rules,
``min_tokens`` and the common fingerprints, are as configured). Nothing here times anything.

    python -m benchmarks.similarity [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from itertools import combinations

from autograder.classreport.record import ClassRecord
from autograder.classreport.settings import SimilarityConfig
from autograder.classreport.similarity import similar_pairs
from autograder.demo import DEMO_SAMPLES
from autograder.samples import load_samples
from autograder.samples.corpus import code_cells, independent_solutions, record_of, release_record
from autograder.samples.variations import disguise_cells

__all__ = ["calibrate", "THRESHOLDS"]

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _scores(students, cfg: SimilarityConfig) -> dict[tuple[str, str], tuple[float, int]]:
    record = ClassRecord("pruning", 31.0, [], students, release=release_record())
    low = replace(cfg, threshold=1e-9, min_tokens=0)
    return {(p.a, p.b): (p.score, p.tokens) for p in similar_pairs(record, low)}


def _listed(score_tokens, threshold: float, cfg: SimilarityConfig) -> bool:
    return score_tokens is not None and score_tokens[0] >= threshold and score_tokens[1] >= cfg.min_tokens


def calibrate(seeds: int = 5, cfg: SimilarityConfig = SimilarityConfig()) -> dict:
    """The counts of each kind of pair listed at each of :data:`THRESHOLDS` (and at ``cfg.threshold``)."""
    originals = independent_solutions()
    base = [record_of(s.name, code_cells(s)) for s in originals]
    independent = _scores(base, cfg)
    ind_pairs = list(combinations(sorted(s.name for s in originals), 2))
    copies = []
    for seed in range(1, seeds + 1):
        copied = [record_of(f"{s.name}-copy", disguise_cells(code_cells(s), seed)) for s in originals]
        scores = _scores(base + copied, cfg)
        copies += [scores.get((s.name, f"{s.name}-copy")) for s in originals]
    samples = {s.name: s for s in load_samples()}
    demo = [record_of(n, code_cells(samples[n])) for n in DEMO_SAMPLES]
    demo_scores = _scores(demo, cfg)
    demo_pairs = list(combinations(sorted(r.student_id for r in demo), 2))
    copy_pair = ("copied_manual_topk", "correct_manual_topk")
    thresholds = sorted(set(THRESHOLDS) | {cfg.threshold})
    rows = []
    for t in thresholds:
        rows.append({"threshold": t,
                     "independent_listed": sum(_listed(independent.get(p), t, cfg) for p in ind_pairs),
                     "copies_found": sum(_listed(c, t, cfg) for c in copies),
                     "demo_listed": sorted(f"{a} & {b}" for a, b in demo_pairs
                                           if _listed(demo_scores.get((a, b)), t, cfg))})
    ind_scores = [independent.get(p, (0.0, 0))[0] for p in ind_pairs]
    return {"independent_solutions": len(originals), "independent_pairs": len(ind_pairs), "copies": len(copies),
            "seeds": seeds, "min_tokens": cfg.min_tokens, "common_fraction": cfg.common_fraction,
            "independent_max_score": round(max(ind_scores), 4),
            "copy_min_score": round(min((c or (0.0, 0))[0] for c in copies), 4),
            "copy_scores": sorted(round((c or (0.0, 0))[0], 3) for c in copies),
            "demo_pairs": len(demo_pairs), "demo_copy_pair": " & ".join(copy_pair),
            "demo_scores_top": sorted(((round(v[0], 3), v[1], f"{a} & {b}") for (a, b), v in demo_scores.items()),
                                      reverse=True)[:5],
            "rows": rows, "threshold": cfg.threshold}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.similarity")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(calibrate(args.seeds), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
