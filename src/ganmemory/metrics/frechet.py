"""Fréchet distance between Gaussians fitted to feature sets (the formula behind FID).

For features with means mu_1, mu_2 and covariances S_1, S_2::

    FD = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

It is FID only on the FID InceptionV3's pool3 features; on other features (e.g. EfficientNet-
Lite0) it is a different number and is reported under its own name ("FD-EL0").
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import GanMemoryError

# The largest imaginary part of diag(sqrtm(S_1 S_2)) accepted as round-off (pytorch-fid's bound).
MAX_IMAGINARY = 1e-3


def _as_float64(features: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    return np.asarray(features, dtype=np.float64)


def statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] (divisor N - 1) of features [N, D], in float64."""
    f = _as_float64(features)  # [N, D]
    if f.ndim != 2 or f.shape[0] < 2:
        raise GanMemoryError(f"statistics need features [N, D] with N >= 2, got shape {f.shape}")
    mu = f.mean(axis=0)  # [D]
    sigma = np.cov(f, rowvar=False, ddof=1)  # [D, D]
    return mu, np.atleast_2d(sigma)


def _sqrtm_product(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    try:
        from scipy.linalg import LinAlgWarning, sqrtm  # scipy is only needed here
    except ImportError as exc:
        raise GanMemoryError("the Fréchet distance needs scipy: run `pip install scipy`") from exc
    with warnings.catch_warnings():
        # A singular product is expected with fewer samples than dimensions; the caller checks
        # the root itself and retries with eps * I, so scipy's warning would only be noise.
        warnings.simplefilter("ignore", LinAlgWarning)
        return np.asarray(sqrtm(s1 @ s2))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """FD = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)).

    Safeguards, as in the reference implementations: when the square root of the product is not
    finite or does not square back to the product (a singular product, e.g. fewer samples than
    feature dimensions), ``eps * I`` is added to both covariances and the root is taken again;
    imaginary parts from round-off are dropped, and a :class:`FloatingPointError` is raised if
    the diagonal's imaginary part exceeds 1e-3 (the matrices are then not covariances).
    """
    mu1, mu2 = np.atleast_1d(_as_float64(mu1)), np.atleast_1d(_as_float64(mu2))
    s1, s2 = np.atleast_2d(_as_float64(sigma1)), np.atleast_2d(_as_float64(sigma2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise GanMemoryError(f"Fréchet distance needs means [D] and covariances [D, D] of one D; got "
                             f"{mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    diff = mu1 - mu2  # [D]

    product = s1 @ s2
    covmean = _sqrtm_product(s1, s2)
    scale = max(np.linalg.norm(product), 1e-300)
    if (not np.isfinite(covmean).all()
            or np.linalg.norm(covmean @ covmean - product) / scale > 1e-3):
        offset = np.eye(d) * eps
        covmean = _sqrtm_product(s1 + offset, s2 + offset)

    if np.iscomplexobj(covmean):
        worst = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if worst > MAX_IMAGINARY:
            raise FloatingPointError(f"the square root of the covariance product has an imaginary "
                                     f"component {worst:.3g} > {MAX_IMAGINARY}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
