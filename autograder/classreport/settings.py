"""How the pairs worth comparing are found: :class:`SimilarityConfig` (light: grading's config imports it).

Runs anywhere (plain values).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SimilarityConfig"]


@dataclass(frozen=True)
class SimilarityConfig:
    """How pairs are found (see the module's docstring; the defaults are calibrated in ``benchmarks/similarity.py``).

    Attributes:
        noise: k, the length in filtered characters of the k-grams hashed (copydetect's noise threshold); shorter
            shared runs are never seen.
        guarantee: shared runs at least this long are always seen (sets the winnowing window, ``guarantee - noise
            + 1``).
        threshold: the score, in [0, 1], from which a pair is listed on its code.
        min_tokens: the filtered characters a pair must share, besides the score (a short program is not listed
            for one shared line).
        common_fraction: a fingerprint more than this fraction of the class has (and more than ``common_min``
            students) is the course's idiom and is not compared.
        common_min: see ``common_fraction``.
    """

    noise: int = 25
    guarantee: int = 30
    threshold: float = 0.5
    min_tokens: int = 150
    common_fraction: float = 0.2
    common_min: int = 3

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"the similarity threshold must be in (0, 1], got {self.threshold}")
        if self.noise < 1 or self.guarantee < self.noise:
            raise ValueError(f"noise {self.noise} and guarantee {self.guarantee}: need 1 <= noise <= guarantee")
