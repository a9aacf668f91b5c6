"""Stellar mass from multi-band photometry and redshift: a small network with a Gaussian output.

Trained against the consensus (median) of several SED-fitting codes' masses for the same galaxies
(CANDELS GOODS-S workshop; Pacifici et al. 2023), so it learns an amortised SED fit: fast, with a
per-galaxy uncertainty, and never better than the codes' own disagreement.

Units: magnitudes are AB (mag), NaN where a band has no measurement; ``z`` is the (spectroscopic
or best photometric) redshift; masses are log10(M* / Msun).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from . import common

H0_KM_S_MPC, OMEGA_M = 70.0, 0.3  # flat LambdaCDM used only to turn apparent into absolute magnitudes
C_KM_S = 299792.458
SIGMA_FLOOR_DEX = 0.02


def distance_modulus(z: np.ndarray) -> np.ndarray:
    """Distance modulus (mag) for flat LambdaCDM (H0 = 70, Om = 0.3), trapezoid integral in 1+z."""
    z = np.asarray(z, dtype=np.float64)
    grid = np.linspace(0.0, max(float(np.max(z)), 1e-3), 4096)
    inv_e = 1.0 / np.sqrt(OMEGA_M * (1 + grid) ** 3 + 1 - OMEGA_M)
    comoving = np.concatenate([[0.0], np.cumsum(0.5 * (inv_e[1:] + inv_e[:-1]) * np.diff(grid))])
    d_l_mpc = (1 + z) * C_KM_S / H0_KM_S_MPC * np.interp(z, grid, comoving)
    return 5.0 * np.log10(d_l_mpc * 1e6 / 10.0)


def features(mag_ab: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Network inputs ``[N, 2B + 2]`` float32 from AB magnitudes ``[N, B]`` (NaN = no data) and z.

    Per band: the magnitude minus the distance modulus (a K-uncorrected absolute magnitude; mass
    tracks it), zero where missing, and a 0/1 missing flag; then z and log10(1 + z).
    """
    m = np.asarray(mag_ab, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    if m.ndim != 2 or len(m) != len(z):
        raise ValueError(f"stellar_mass.features: mag_ab {m.shape} and z {z.shape} do not match")
    if not np.all(np.isfinite(z) & (z > 0)):
        raise ValueError(f"stellar_mass.features: z must be finite and > 0, first bad row "
                         f"{int(np.flatnonzero(~(np.isfinite(z) & (z > 0)))[0])}")
    missing = ~np.isfinite(m)
    absolute = np.where(missing, 0.0, m - distance_modulus(z)[:, None] + 2.5 * np.log10(1 + z)[:, None])
    return np.concatenate([absolute, missing.astype(np.float64), z[:, None], np.log10(1 + z)[:, None]],
                          axis=1).astype(np.float32)


Z_COLUMN = slice(-2, -1)  # :func:`features`' redshift column


class MassNet(nn.Module):
    """MLP -> Gaussian (mean, sigma) over log10 M*; input and target scaling kept as buffers."""

    def __init__(self, n_features: int, hidden: int = 64, depth: int = 2, dropout: float = 0.1,
                 z_range: list[list[float]] | None = None) -> None:
        super().__init__()
        # z_range: the training redshifts' range (common.input_range), for common.outside_range
        self.hparams = dict(n_features=n_features, hidden=hidden, depth=depth, dropout=dropout, z_range=z_range)
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        self.register_buffer("y_loc", torch.zeros(()))
        self.register_buffer("y_scale", torch.ones(()))
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU(), nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, sigma)`` ``[N]`` each, log10 Msun and dex."""
        mu, s = self.net((x - self.x_mean) / self.x_std).unbind(1)
        return self.y_loc + self.y_scale * mu, self.y_scale * nn.functional.softplus(s) + SIGMA_FLOOR_DEX


def gaussian_nll(mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (nats)."""
    return (torch.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2).mean() + 0.5 * math.log(2 * math.pi)


def train(x_features: np.ndarray, log_mass: np.ndarray, *, seed: int = 0, epochs: int = 300,
          lr: float = 3e-3, weight_decay: float = 1e-3, batch_size: int = 64,
          **hparams: Any) -> MassNet:
    """Fit a :class:`MassNet` on :func:`features` rows and target masses (log10 Msun); eval mode."""
    x = np.asarray(x_features, dtype=np.float32)
    y = np.asarray(log_mass, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"stellar_mass.train: non-finite target at rows {np.flatnonzero(~np.isfinite(y))[:5].tolist()}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MassNet(x.shape[1], z_range=common.input_range(x[:, Z_COLUMN]), **hparams)
    model.x_mean.copy_(torch.from_numpy(x.mean(0)))
    model.x_std.copy_(torch.from_numpy(x.std(0) + 1e-3))
    model.y_loc.fill_(float(y.mean()))
    model.y_scale.fill_(float(y.std()))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(batch_size):
            opt.zero_grad(set_to_none=True)
            gaussian_nll(*model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


@torch.inference_mode()
def predict(model: MassNet, x_features: np.ndarray) -> dict[str, np.ndarray]:
    """``log_mass`` and ``log_mass_sigma`` (log10 Msun, dex) ``[N]`` float64, and ``refused``: why a
    row's redshift is outside those the model was trained on (:func:`ingest.ml.common.outside_range`)."""
    mu, sigma = model.eval()(torch.as_tensor(np.asarray(x_features, dtype=np.float32)))
    return dict(log_mass=mu.double().numpy(), log_mass_sigma=sigma.double().numpy(),
                refused=common.outside_range(np.asarray(x_features)[:, Z_COLUMN], model.hparams.get("z_range"), ("z",)))


def code_scatter(code_log_mass: np.ndarray) -> np.ndarray:
    """Per-galaxy median absolute deviation among codes ``[N]`` (dex), NaN-aware."""
    c = np.asarray(code_log_mass, dtype=np.float64)
    return np.nanmedian(np.abs(c - np.nanmedian(c, axis=1, keepdims=True)), axis=1)


def cross_validate(x_features: np.ndarray, log_mass: np.ndarray, *, folds: int = 5, seed: int = 0,
                   **train_kwargs: Any) -> dict[str, Any]:
    """K-fold held-out predictions for every galaxy and summary errors (dex).

    Returns ``log_mass``, ``log_mass_sigma`` ``[N]`` (each from the fold that did not see it),
    ``median_abs_error``, ``nmad`` (1.4826 x median |residual - median|), ``rms``, ``bias`` and
    ``coverage_1sigma`` (fraction of |residual| < predicted sigma).
    """
    y = np.asarray(log_mass, dtype=np.float64)
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    mu, sigma = np.empty_like(y), np.empty_like(y)
    for k in range(folds):
        model = train(x_features[fold != k], y[fold != k], seed=seed + k, **train_kwargs)
        out = predict(model, x_features[fold == k])
        mu[fold == k], sigma[fold == k] = out["log_mass"], out["log_mass_sigma"]
    r = mu - y
    return dict(log_mass=mu, log_mass_sigma=sigma, median_abs_error=float(np.median(np.abs(r))),
                nmad=float(1.4826 * np.median(np.abs(r - np.median(r)))), rms=float(np.sqrt(np.mean(r * r))),
                bias=float(np.median(r)), coverage_1sigma=float(np.mean(np.abs(r) < sigma)))


to_bytes = common.to_bytes


def load(path: str, map_location: str | torch.device | None = None) -> MassNet:
    """A :class:`MassNet` from a file of :func:`to_bytes` output, in eval mode."""
    return common.load(MassNet, path, map_location)
