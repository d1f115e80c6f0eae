"""The standard normal pieces the latent codec needs, in numpy only.

`normal_cdf` is a logistic-polynomial approximation (max error about 1.4e-4). Its only jobs are
to be deterministic and non-decreasing, since it only shapes integer frequencies that coder and
decoder compute identically; its small error costs a little rate, never correctness.
Bucket edges and centres use the standard library's exact inverse CDF, once per bucket count.
"""
from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import numpy as np

_STANDARD = NormalDist()


def normal_cdf(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), -40.0, 40.0)
    # Both coefficients are positive, so the argument and hence the result are non-decreasing in x.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-(1.5976 * x + 0.070566 * x * x * x)))


@lru_cache(maxsize=None)
def bucket_edges(bucket_bits: int) -> np.ndarray:
    """The 2^n + 1 edges of equal-mass buckets under N(0, 1), with -inf and +inf at the ends."""
    n = 1 << bucket_bits
    inner = [_STANDARD.inv_cdf(j / n) for j in range(1, n)]
    edges = np.array([-np.inf, *inner, np.inf])
    edges.setflags(write=False)
    return edges


@lru_cache(maxsize=None)
def bucket_centres(bucket_bits: int) -> np.ndarray:
    """The latent value that stands for each bucket: the prior's median within it."""
    n = 1 << bucket_bits
    centres = np.array([_STANDARD.inv_cdf((j + 0.5) / n) for j in range(n)])
    centres.setflags(write=False)
    return centres
