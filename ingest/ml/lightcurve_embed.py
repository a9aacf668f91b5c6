"""Light-curve + metadata embeddings trained contrastively (AstroM3 / CLIP idea).

Two encoders map one star's two views into a shared space: a small transformer over irregularly
sampled multi-band epochs (tokens of time, magnitude, error and band) and an MLP over catalogue
metadata (period, mean magnitudes, amplitudes, ...). A symmetric InfoNCE loss pulls a star's two
views together and pushes other stars' apart; no labels are used. A star's embedding is the
concatenation of its two L2-normalised views, itself normalised (cosine / inner product search).

Inputs (numpy): a light curve is a ``[n, 4]`` float array of rows (time_day, mag, mag_err,
band index < ``n_bands``); metadata is a ``[N, M]`` float array with NaN for "not measured".
Magnitudes are per-survey (EROS-2 B/R, SDSS ugriz AB); only offsets from a star's per-band median
enter the network, so zero points matter only through the metadata.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from . import common

MAX_TOKENS = 64  # epochs kept per star (seeded random subset when a star has more)
PERIODS_DAY = np.geomspace(0.2, 2000.0, 12)  # time encodings sin/cos(2 pi t / P)
N_HARMONICS = 3  # phase encodings sin/cos(2 pi k phase), k = 1..3


def tokenize(light_curves: list[np.ndarray], period_day: np.ndarray, *, seed: int = 0,
             max_tokens: int = MAX_TOKENS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded token arrays for a batch of light curves.

    Returns ``values`` ``[N, L, 6]`` (time since first epoch in days, phase in [0, 1) folded on
    the star's catalogue ``period_day``, mag minus that band's median, mag_err, the band's median
    mag, log10 period; phase and period are 0 where the period is unknown), ``band`` ``[N, L]``
    int64 and ``mask`` ``[N, L]`` bool (True = real token). The light-curve view is thus the
    folded curve with its period, as variable-star catalogues present it.
    Stars with more than ``max_tokens`` epochs keep a random subset drawn from ``seed``.
    """
    rng = np.random.default_rng(seed)
    n = len(light_curves)
    values = np.zeros((n, max_tokens, 6), dtype=np.float32)
    period_day = np.asarray(period_day, dtype=np.float64)
    if period_day.shape != (n,):
        raise ValueError(f"period_day has shape {period_day.shape}, expected ({n},)")
    band = np.zeros((n, max_tokens), dtype=np.int64)
    mask = np.zeros((n, max_tokens), dtype=bool)
    for i, lc in enumerate(light_curves):
        lc = np.asarray(lc, dtype=np.float64)
        if lc.ndim != 2 or lc.shape[1] != 4 or len(lc) == 0:
            raise ValueError(f"light curve {i}: expected a non-empty [n, 4] array, got shape {lc.shape}")
        b = lc[:, 3].astype(np.int64)
        level = np.empty(len(lc))
        for k in np.unique(b):
            level[b == k] = np.median(lc[b == k, 1])
        keep = np.sort(rng.choice(len(lc), max_tokens, replace=False)) if len(lc) > max_tokens else np.arange(len(lc))
        m = len(keep)
        t = lc[keep, 0] - lc[:, 0].min()
        p = period_day[i]
        known = bool(np.isfinite(p) and p > 0)
        phase = np.mod(t / p, 1.0) if known else np.zeros(m)
        values[i, :m] = np.stack([t, phase, lc[keep, 1] - level[keep], lc[keep, 2], level[keep],
                                  np.full(m, np.log10(p) if known else 0.0)], axis=1)
        band[i, :m], mask[i, :m] = b[keep], True
    return values, band, mask


class LightCurveEncoder(nn.Module):
    """Transformer over (time and phase encodings, mag offset, error, band) tokens, masked mean pooling."""

    def __init__(self, n_bands: int, d_model: int = 32, depth: int = 2, heads: int = 4, out_dim: int = 32) -> None:
        super().__init__()
        self.register_buffer("omega", torch.tensor(2 * math.pi / PERIODS_DAY, dtype=torch.float32))
        self.inp = nn.Linear(2 * len(PERIODS_DAY) + 2 * N_HARMONICS + 4, d_model)
        self.band = nn.Embedding(n_bands, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout=0.0, batch_first=True)
        self.body = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, out_dim)

    def forward(self, values: torch.Tensor, band: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = values[..., :1] * self.omega
        fold = 2 * math.pi * values[..., 1:2] * torch.arange(1, N_HARMONICS + 1, dtype=values.dtype)
        feats = torch.cat([t.sin(), t.cos(), fold.sin(), fold.cos(), values[..., 2:3],
                           torch.log10(values[..., 3:4] + 1e-3), (values[..., 4:5] - 18.0) / 2.0,
                           values[..., 5:6]], -1)
        h = self.body(self.inp(feats) + self.band(band), src_key_padding_mask=~mask)
        w = mask.unsqueeze(-1).float()
        return self.out((h * w).sum(1) / w.sum(1).clamp_min(1.0))


class MetaEncoder(nn.Module):
    """MLP over standardised metadata (NaN -> 0) and its missing-value flags."""

    def __init__(self, n_meta: int, hidden: int = 64, out_dim: int = 32) -> None:
        super().__init__()
        self.register_buffer("m_mean", torch.zeros(n_meta))
        self.register_buffer("m_std", torch.ones(n_meta))
        self.net = nn.Sequential(nn.Linear(2 * n_meta, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, out_dim))

    def forward(self, meta: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(meta)
        z = torch.where(missing, torch.zeros_like(meta), (meta - self.m_mean) / self.m_std)
        return self.net(torch.cat([z, missing.float()], -1))


class LightCurveCLIP(nn.Module):
    """The two encoders and a learnable temperature; optional linear head for the supervised baseline."""

    def __init__(self, n_bands: int, n_meta: int, n_classes: int = 0, d_model: int = 32, out_dim: int = 32) -> None:
        super().__init__()
        self.hparams = dict(n_bands=n_bands, n_meta=n_meta, n_classes=n_classes, d_model=d_model, out_dim=out_dim)
        self.lc = LightCurveEncoder(n_bands, d_model=d_model, out_dim=out_dim)
        self.meta = MetaEncoder(n_meta, out_dim=out_dim)
        self.log_temp = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.head = nn.Linear(2 * out_dim, n_classes) if n_classes else None

    def views(self, values, band, mask, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised light-curve and metadata views ``[N, out_dim]`` each."""
        return (nn.functional.normalize(self.lc(values, band, mask), dim=1),
                nn.functional.normalize(self.meta(meta), dim=1))

    def embed(self, values, band, mask, meta) -> torch.Tensor:
        """The star's embedding ``[N, 2 * out_dim]``: both views concatenated, unit norm."""
        return nn.functional.normalize(torch.cat(self.views(values, band, mask, meta), 1), dim=1)

    def clip_loss(self, values, band, mask, meta) -> torch.Tensor:
        a, b = self.views(values, band, mask, meta)
        logits = self.log_temp.clamp(max=math.log(100.0)).exp() * a @ b.T
        target = torch.arange(len(a))
        return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))

    def class_loss(self, values, band, mask, meta, labels: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([self.lc(values, band, mask), self.meta(meta)], 1)
        return nn.functional.cross_entropy(self.head(pooled), labels)


def _tensors(light_curves, period_day, meta, seed):
    values, band, mask = tokenize(light_curves, period_day, seed=seed)
    return (torch.from_numpy(values), torch.from_numpy(band), torch.from_numpy(mask),
            torch.as_tensor(np.asarray(meta, dtype=np.float32)))


def train(light_curves: list[np.ndarray], period_day: np.ndarray, meta: np.ndarray, *, n_bands: int,
          labels: np.ndarray | None = None,
          seed: int = 0, epochs: int = 12, batch_size: int = 128, lr: float = 2e-3,
          **hparams: Any) -> LightCurveCLIP:
    """Contrastive training (``labels=None``) or the supervised baseline (integer ``labels``).

    Both use the same encoders, optimiser and epochs. Each epoch redraws which epochs of long light
    curves are kept (augmentation). Returns the model in eval mode.
    """
    meta = np.asarray(meta, dtype=np.float64)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n_classes = 0 if labels is None else int(np.max(labels)) + 1
    model = LightCurveCLIP(n_bands, meta.shape[1], n_classes=n_classes, **hparams)
    finite = np.isfinite(meta)
    count = np.maximum(finite.sum(0), 1)
    mean = np.where(finite, meta, 0.0).sum(0) / count
    std = np.sqrt(np.where(finite, (meta - mean) ** 2, 0.0).sum(0) / count)
    model.meta.m_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
    model.meta.m_std.copy_(torch.as_tensor(np.where(std > 0, std, 1.0), dtype=torch.float32))
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    model.train()
    for epoch in range(epochs):
        values, band, mask, m = _tensors(light_curves, period_day, meta, seed * 1000 + epoch)
        for idx in torch.randperm(len(m), generator=gen).split(batch_size):
            if len(idx) < 2:
                continue
            opt.zero_grad(set_to_none=True)
            args = (values[idx], band[idx], mask[idx], m[idx])
            loss = model.clip_loss(*args) if y is None else model.class_loss(*args, y[idx])
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


@torch.inference_mode()
def embed(model: LightCurveCLIP, light_curves: list[np.ndarray], period_day: np.ndarray, meta: np.ndarray, *,
          seed: int = 0, batch_size: int = 512) -> np.ndarray:
    """Embeddings ``[N, 2 * out_dim]`` float32, unit norm (the token subset is fixed by ``seed``)."""
    values, band, mask, m = _tensors(light_curves, period_day, meta, seed)
    return torch.cat([model.embed(*(t[i:i + batch_size] for t in (values, band, mask, m)))
                      for i in range(0, len(m), batch_size)]).numpy()


@torch.inference_mode()
def view_agreement(model: LightCurveCLIP, light_curves: list[np.ndarray], period_day: np.ndarray,
                   meta: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Cosine similarity ``[N]`` of each star's light-curve and metadata views, in [-1, 1]: low when
    a curve does not look like what its catalogue entry (period, magnitudes) says."""
    a, b = model.views(*_tensors(light_curves, period_day, meta, seed))
    return (a * b).sum(1).numpy()


@torch.inference_mode()
def classify(model: LightCurveCLIP, light_curves: list[np.ndarray], period_day: np.ndarray, meta: np.ndarray, *,
             seed: int = 0) -> np.ndarray:
    """Predicted class indices ``[N]`` from a supervised-baseline model."""
    values, band, mask, m = _tensors(light_curves, period_day, meta, seed)
    return model.head(torch.cat([model.lc(values, band, mask), model.meta(m)], 1)).argmax(1).numpy()


def knn_classify(train_emb: np.ndarray, train_labels: np.ndarray, query_emb: np.ndarray, k: int = 10) -> np.ndarray:
    """Cosine k-nearest-neighbour vote (ties to the nearer neighbours), labels ``[M]``."""
    sims = np.asarray(query_emb) @ np.asarray(train_emb).T
    nearest = np.argsort(-sims, axis=1)[:, :k]
    labels = np.asarray(train_labels)
    classes = np.unique(labels)
    weights = np.take_along_axis(sims, nearest, 1) + 1.0  # in [0, 2]: nearer votes weigh more
    votes = np.stack([((labels[nearest] == c) * weights).sum(1) for c in classes], 1)
    return classes[votes.argmax(1)]


to_bytes = common.to_bytes


def load(path: str, map_location: str | torch.device | None = None) -> LightCurveCLIP:
    """A :class:`LightCurveCLIP` from a file of :func:`to_bytes` output, in eval mode."""
    return common.load(LightCurveCLIP, path, map_location)
