"""Photometric-redshift quality metrics (pure numpy).

All redshifts are dimensionless. Point-estimate metrics use the normalised
residual ``dz = (z_phot - z_spec) / (1 + z_spec)``. Gaussian-mixture inputs are
``weights``, ``means``, ``sigmas`` of shape ``[N, K]`` (weights sum to 1 per row).
"""
from __future__ import annotations

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, elementwise (exact via ``math.erf``)."""
    return 0.5 * (1.0 + _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)).astype(np.float64))


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    """Standard normal PDF, elementwise."""
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def delta_z(z_phot: np.ndarray, z_spec: np.ndarray) -> np.ndarray:
    """Normalised residual ``(z_phot - z_spec) / (1 + z_spec)``."""
    z_spec = np.asarray(z_spec, dtype=np.float64)
    return (np.asarray(z_phot, dtype=np.float64) - z_spec) / (1.0 + z_spec)


def nmad(z_phot: np.ndarray, z_spec: np.ndarray) -> float:
    """Normalised median absolute deviation ``1.4826 * median(|dz - median(dz)|)``."""
    dz = delta_z(z_phot, z_spec)
    return float(1.4826 * np.median(np.abs(dz - np.median(dz))))


def bias(z_phot: np.ndarray, z_spec: np.ndarray) -> float:
    """Median of ``dz``."""
    return float(np.median(delta_z(z_phot, z_spec)))


def outlier_fraction(z_phot: np.ndarray, z_spec: np.ndarray, threshold: float = 0.15) -> float:
    """Fraction of objects with ``|dz| > threshold`` (default 0.15)."""
    return float(np.mean(np.abs(delta_z(z_phot, z_spec)) > threshold))


def _a(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``E|X|`` for ``X ~ N(mu, var)``: ``2 s phi(mu/s) + mu (2 Phi(mu/s) - 1)``."""
    s = np.sqrt(var)
    t = mu / s
    return 2.0 * s * _norm_pdf(t) + mu * (2.0 * _norm_cdf(t) - 1.0)


def crps_gmm(weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Per-object CRPS of a Gaussian mixture against truth ``z`` (closed form, Grimit et al. 2006).

    ``CRPS = sum_i w_i A(z - m_i, s_i^2) - 1/2 sum_ij w_i w_j A(m_i - m_j, s_i^2 + s_j^2)``.
    Returns shape ``[N]`` in redshift units.
    """
    w, m, s = (np.asarray(a, dtype=np.float64) for a in (weights, means, sigmas))
    zc = np.asarray(z, dtype=np.float64)[:, None]
    term1 = np.sum(w * _a(zc - m, s * s), axis=1)
    pair = _a(m[:, :, None] - m[:, None, :], s[:, :, None] ** 2 + s[:, None, :] ** 2)
    term2 = 0.5 * np.einsum("ni,nj,nij->n", w, w, pair)
    return term1 - term2


def pit_gmm(weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray, z: np.ndarray,
            lower: float | None = None) -> np.ndarray:
    """Probability integral transform: mixture CDF evaluated at truth ``z``, shape ``[N]`` in [0, 1];
    ``lower``: of the mixture truncated there, ``(F(z) - F(lower)) / (1 - F(lower))``."""
    w, m, s = (np.asarray(a, dtype=np.float64) for a in (weights, means, sigmas))
    def cdf(x):
        return np.sum(w * _norm_cdf((np.asarray(x, dtype=np.float64)[..., None] - m) / s), axis=1)
    if lower is None:
        return cdf(z)
    below = cdf(np.full(len(w), lower))
    return (cdf(z) - below) / np.maximum(1.0 - below, 1e-300)


def pit_histogram(pit: np.ndarray, bins: int = 10) -> np.ndarray:
    """Counts of PIT values in ``bins`` equal bins over [0, 1] (flat for calibrated PDFs)."""
    return np.histogram(np.clip(pit, 0.0, 1.0), bins=bins, range=(0.0, 1.0))[0]


def interval_coverage(pit: np.ndarray, level: float = 0.68) -> float:
    """The fraction of true values inside their central ``level`` credible interval (the 16th to 84th
    percentile at 0.68): their PIT within ``(1 -+ level) / 2``; ``level`` itself where calibrated."""
    return float(np.mean(np.abs(np.asarray(pit) - 0.5) <= level / 2))


def pit_max_deviation(pit: np.ndarray, bins: int = 10) -> float:
    """Max relative deviation ``max_b |n_b / (N / bins) - 1|`` of a PIT histogram from flat."""
    return float(np.max(np.abs(pit_histogram(pit, bins) / (len(pit) / bins) - 1.0)))
