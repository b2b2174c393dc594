"""Pairs of submissions worth comparing: the code students wrote, and what a shared notebook leaves behind.

**Code.** Each student's solution cells (every code cell, when a notebook lost nbgrader's metadata) are
fingerprinted with copydetect's winnowing (:class:`copydetect.CodeFingerprint`: tokens, with names, strings and
comments filtered out, hashed in k-grams and winnowed; Schleimer, Wilkerson and Aiken, SIGMOD 2003). The release
notebook's code is boilerplate (its fingerprints are dropped), and so is any fingerprint that more than
:attr:`SimilarityConfig.common_fraction` of the class shares (MOSS's ``-m``: a passage in many programs is the
course's idiom, not one pair's). A pair's score is the larger of copydetect's two similarities (the part of each
program's remaining fingerprinted tokens that the other shares).

**Traces** (:mod:`~autograder.classreport.traces`): cells the release does not have whose ids both notebooks carry;
outputs of a cell that differ across the class and that only these two share; the same order of execution
counts, when it is not a plain run from the top.

A pair is listed when its score reaches :attr:`SimilarityConfig.threshold` with at least
:attr:`SimilarityConfig.min_tokens` shared tokens, or when they share an added cell's id or two cells' outputs.
The calibration of the defaults is in ``docs/instructors.md`` (and ``benchmarks/similarity.py``).
Nothing here is a verdict: the report says "worth comparing".

Runs anywhere (no torch).
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from copydetect import CodeFingerprint, compare_files
from copydetect.utils import get_token_coverage, highlight_overlap
from markupsafe import escape

from .record import ClassRecord
from .settings import SimilarityConfig

__all__ = ["SimilarityConfig", "Pair", "similar_pairs", "student_code", "write_pairs_csv", "highlighted"]


@dataclass
class Pair:
    """Two students worth comparing, and why."""

    a: str
    b: str
    score: float
    tokens: int
    shares: list[str] = field(default_factory=list)
    slices: tuple | None = field(default=None, repr=False)  # copydetect's (slices of a, slices of b)
    code: tuple[str, str] = ("", "")


def student_code(traces: dict) -> str:
    """The code one student wrote, as compared: the solution cells, or every code cell when none is marked."""
    cells = traces.get("cells") or []
    marked = [c for c in cells if c.get("solution")]
    return "\n\n".join(c.get("source", "") for c in (marked or cells)).strip() + "\n"


def _fingerprint(code: str, cfg: SimilarityConfig, boilerplate=None) -> CodeFingerprint:
    logging.getLogger().disabled, was = True, logging.getLogger().disabled  # copydetect warns through the root
    try:
        return CodeFingerprint("notebook.py", cfg.noise, cfg.guarantee - cfg.noise + 1, boilerplate=boilerplate,
                               fp=io.StringIO(code), language="python")
    finally:
        logging.getLogger().disabled = was


def _drop(fp: CodeFingerprint, common: set) -> None:
    """Remove ``common`` fingerprints from ``fp`` (its documented attributes), as copydetect drops boilerplate."""
    fp.hashes = fp.hashes - common
    for h in common:
        fp.hash_idx.pop(h, None)
    fp.token_coverage = get_token_coverage(fp.hash_idx, fp.k, len(fp.filtered_code))


_WORDS = {"ids": "{} added cell{} with the same id",
          "outputs": "the same output in {} cell{} whose output differs across the class",
          "order": "the same execution order"}


def _trace_evidence(record: ClassRecord) -> dict[tuple[str, str], dict[str, int]]:
    """``{(a, b): {"ids" | "outputs" | "order": how many}}`` from the notebooks' traces."""
    release_ids = set(record.release.get("cell_ids") or [])
    by_id, by_output, by_order = defaultdict(set), defaultdict(set), defaultdict(set)
    distinct = defaultdict(set)
    for s in record.students:
        traces = s.traces or {}
        for cid in set(traces.get("ids") or []) - release_ids:
            by_id[cid].add(s.student_id)
        cells = traces.get("cells") or []
        for c in cells:
            if c.get("outputs"):
                by_output[(c["key"], c["outputs"])].add(s.student_id)
                distinct[c["key"]].add(c["outputs"])
        counts = [c.get("count") for c in cells]
        ran = [n for n in counts if n is not None]
        if len(ran) >= 3 and ran != list(range(1, len(ran) + 1)):
            by_order[tuple(counts)].add(s.student_id)
    found: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for ids in by_id.values():
        if len(ids) <= 3:
            for a, b in combinations(sorted(ids), 2):
                found[(a, b)]["ids"] += 1
    for (key, _), ids in by_output.items():
        if len(ids) == 2 and len(distinct[key]) >= 3:  # this cell's outputs differ across the class
            a, b = sorted(ids)
            found[(a, b)]["outputs"] += 1
    for ids in by_order.values():
        if len(ids) <= 3:
            for a, b in combinations(sorted(ids), 2):
                found[(a, b)]["order"] += 1
    return {pair: dict(what) for pair, what in found.items()}


def similar_pairs(record: ClassRecord, cfg: SimilarityConfig = SimilarityConfig()) -> list[Pair]:
    """The pairs of ``record``'s students worth comparing, highest score first."""
    students = [s for s in record.students if s.traces.get("cells")]
    release = "\n\n".join(record.release.get("code") or [])
    boilerplate = np.array(sorted(_fingerprint(release, cfg).hashes)) if release.strip() else None
    prints = {s.student_id: _fingerprint(student_code(s.traces), cfg, boilerplate) for s in students}
    df: dict[int, list[str]] = defaultdict(list)
    for sid, fp in prints.items():
        for h in fp.hashes:
            df[h].append(sid)
    limit = max(cfg.common_min, cfg.common_fraction * len(prints))
    common = {h for h, ids in df.items() if len(ids) > limit}
    for fp in prints.values():
        _drop(fp, common)
    candidates = {tuple(sorted(p)) for h, ids in df.items() if h not in common for p in combinations(ids, 2)}
    evidence = _trace_evidence(record)
    pairs = []
    for a, b in sorted(candidates | set(evidence)):
        tokens, sims, slices = (0, (0.0, 0.0), None)
        if a in prints and b in prints:
            tokens, sims, slices = compare_files(prints[a], prints[b])
        score = float(max(sims))
        traces = evidence.get((a, b), {})
        shares = [_WORDS[k].format(n, "" if n == 1 else "s") for k, n in traces.items()]
        listed_on_code = score >= cfg.threshold and tokens >= cfg.min_tokens
        if listed_on_code:
            shares.insert(0, f"{score:.0%} of the code written (the release's and the class's common code set aside)")
        if listed_on_code or traces.get("ids", 0) >= 1 or traces.get("outputs", 0) >= 2:  # or one shared file
            code = (prints[a].raw_code, prints[b].raw_code) if a in prints and b in prints else ("", "")
            pairs.append(Pair(a, b, round(score, 4), int(tokens), shares, slices if tokens else None, code))
    return sorted(pairs, key=lambda p: (-p.score, p.a, p.b))


def highlighted(pair: Pair, side: int, context: int = 4) -> str:
    """One side's code as HTML, the passages shared with the other side in ``<mark>``, far lines elided."""
    code = pair.code[side]
    if pair.slices is None or not len(pair.slices[side][0]):
        return str(escape(code))
    doc, _ = highlight_overlap(code, pair.slices[side], "<mark>", "</mark>", truncate=context, escape_html=True)
    return doc


def write_pairs_csv(path: Path, pairs: list[Pair]) -> Path:
    """``similar-pairs.csv``: ``student_a, student_b, score, shared_tokens, shares`` (what they share, ``; ``)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_a", "student_b", "score", "shared_tokens", "shares"])
        for p in pairs:
            writer.writerow([p.a, p.b, f"{p.score:.4f}", p.tokens, "; ".join(p.shares)])
    return path
