"""E-FID: the Frechet distance between ground truth's and a method's expression-coefficient distributions.

Set-level, as papers report it: each side is a Gaussian fitted to every valid frame of every scored test
clip (the method: of every sample), and

    E-FID = ||mu_gt - mu_m||^2 + tr(S_gt + S_m - 2 (S_gt S_m)^(1/2))

with the matrix square root from scipy.linalg.sqrtm, its real part taken, as pytorch-fid's
calculate_frechet_distance does. It is computed in ksdiff's coefficient space (PROTOCOL.efid_space), so
its values are not comparable with E-FID tables computed on Deep3DFaceRecon's coefficients.

The moments are accumulated clip by clip (``Moments``: frame count, sum, sum of outer products), so a
shard's table carries only K + K^2 numbers per side whatever its clip count, and shards add up exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance of two Gaussians (pytorch-fid's arithmetic, in float64)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched shapes: mu {mu1.shape} {mu2.shape}, sigma {sigma1.shape} {sigma2.shape}")
    if np.array_equal(mu1, mu2) and np.array_equal(sigma1, sigma2):
        # exactly 0 by definition; sqrtm's rounding would print as -0.000000000000004829 (ground truth's E-FID)
        return 0.0
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        # a singular product (e.g. a static face: zero covariance): pytorch-fid's remedy, eps on the diagonal
        offset = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@dataclass
class Moments:
    """Running frame count, sum and sum of outer products of K-dim coefficient frames."""

    n: int = 0
    total: np.ndarray | None = None
    outer: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or not len(x):
            return
        if self.total is None:
            self.total, self.outer = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
        if x.shape[1] != len(self.total):
            raise ValueError(f"coefficient dimension {x.shape[1]} differs from the {len(self.total)} seen before")
        self.n += len(x)
        self.total += x.sum(0)
        self.outer += x.T @ x

    def merge(self, other: "Moments") -> "Moments":
        if other.n == 0:
            return self
        if self.n == 0:
            return Moments(other.n, other.total.copy(), other.outer.copy())
        return Moments(self.n + other.n, self.total + other.total, self.outer + other.outer)

    def gaussian(self, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(mean, covariance with ``ddof``: 1 as numpy.cov and pytorch-fid, 0 as StyleGAN-V's FVD)."""
        if self.n < 2:
            raise ValueError(f"{self.n} frame(s): a covariance needs at least 2")
        mu = self.total / self.n
        return mu, (self.outer - self.n * np.outer(mu, mu)) / (self.n - ddof)

    def to_attrs(self) -> dict:
        return {"n": int(self.n), "sum": [] if self.total is None else self.total.tolist(),
                "outer": [] if self.outer is None else self.outer.tolist()}

    @classmethod
    def from_attrs(cls, d: dict | None) -> "Moments":
        if not d or not d.get("n"):
            return cls()
        return cls(int(d["n"]), np.asarray(d["sum"], dtype=np.float64), np.asarray(d["outer"], dtype=np.float64))


def efid(gt: Moments, method: Moments) -> tuple[float, str]:
    """(E-FID, '') or (NaN, why it is undefined)."""
    if gt.n < 2 or method.n < 2:
        return float("nan"), f"too few frames for a covariance (ground truth {gt.n}, method {method.n})"
    if len(gt.total) != len(method.total):
        return float("nan"), f"coefficient spaces differ ({len(gt.total)} vs {len(method.total)} dimensions)"
    (m1, s1), (m2, s2) = gt.gaussian(), method.gaussian()
    return frechet_distance(m1, s1, m2, s2), ""
