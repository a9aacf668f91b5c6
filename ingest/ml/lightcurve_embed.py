"""Light-curve + metadata embeddings trained contrastively (AstroM3 / CLIP idea).

Two encoders map one star's two views into a shared space: a light-curve encoder over irregularly
sampled multi-band epochs and an MLP over catalogue metadata (period, mean magnitudes, amplitudes,
...). The light-curve encoder has two branches that both fold the curve on the catalogue period:
a small transformer over epoch tokens (time, phase, magnitude, error, band) and an MLP over each
band's Fourier decomposition of the folded curve (amplitude A1, ratios A_k/A1 and phase
differences phi_k1 = phi_k - k phi_1 for k = 2..4, residual scatter; the classical variable-star
features, invariant to the arbitrary phase origin). Pretraining uses no labels: a symmetric
InfoNCE loss pulls a star's light-curve and metadata views together (CLIP), and two more pull
together two augmented copies of the same view (SimCLR: different random subsets of the epochs;
Gaussian noise on the standardised metadata), so each view also keeps what the other cannot
predict. :func:`finetune` then adapts a copy with class labels (AstroM3 fine-tunes after CLIP
pretraining too): a supervised contrastive loss plus an additive angular margin loss against one
learned direction per class (ArcFace), which pulls each class into a tight cone on the sphere, the
shape a nearest-neighbour search reads best. A star's embedding is the concatenation of its two
L2-normalised views, itself normalised (cosine / inner product search).

Inputs (numpy): a light curve is a ``[n, 4]`` float array of rows (time_day, mag, mag_err,
band index < ``n_bands``); metadata is a ``[N, M]`` float array with NaN for "not measured".
Magnitudes are per-survey (EROS-2 B/R, SDSS ugriz AB); only offsets from a star's per-band median
enter the transformer, so zero points matter only through the metadata.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from . import common

MAX_TOKENS = 64  # epochs kept per star (seeded random subset when a star has more)
PERIODS_DAY = np.geomspace(0.2, 2000.0, 12)  # time encodings sin/cos(2 pi t / P)
N_HARMONICS = 3  # phase encodings sin/cos(2 pi k phase), k = 1..3
N_FOURIER = 4  # harmonics of the per-band Fourier fit of the folded curve
MIN_FOURIER_EPOCHS = 3 * N_FOURIER  # a band with fewer epochs has no Fourier features (NaN)
FOURIER_FEATURES = 2 + 3 * (N_FOURIER - 1)  # log A1, log rms; per k >= 2: log(A_k/A1), sin, cos phi_k1
AUGMENT_FRACTION = 0.75  # training views fit the Fourier series to this random fraction of epochs
AUGMENT_COPIES = 4  # ... drawn this many times per star (once per training: the fits are the slow part)
META_NOISE = 0.1  # training views add this much Gaussian noise to the metadata [its std]
SUPCON_TEMPERATURE = 0.1  # of the label-aware contrastive fine-tuning
MARGIN_SCALE = 30.0  # ArcFace (Deng et al. 2019) logit scale s of the fine-tuning's margin loss ...
ANGULAR_MARGIN_RAD = 0.3  # ... and its additive angular margin m [rad]


class Batch(NamedTuple):
    """A batch of stars as tensors: transformer tokens, Fourier features, metadata."""

    values: torch.Tensor  # [N, L, 6] float32, see _tokens()
    band: torch.Tensor  # [N, L] int64
    mask: torch.Tensor  # [N, L] bool, True = real token
    fourier: torch.Tensor  # [N, n_bands * FOURIER_FEATURES] float32, NaN = band missing
    meta: torch.Tensor  # [N, M] float32, NaN = not measured

    def rows(self, idx: torch.Tensor | slice) -> Batch:
        """The same stars' rows ``idx`` of every field."""
        return self._make(t[idx] for t in self)

    def to(self, device: torch.device) -> Batch:
        """Every field on ``device``."""
        return self._make(t.to(device, non_blocking=True) for t in self)


class _Epochs(NamedTuple):
    """All stars' epochs concatenated, star by star (float64 except the indices)."""

    star: np.ndarray  # [E] int64, index into the light curves
    time_day: np.ndarray  # [E] since the star's first epoch
    mag: np.ndarray  # [E] minus the median of the star's epochs in that band
    level: np.ndarray  # [E] that median magnitude
    err: np.ndarray  # [E]
    band: np.ndarray  # [E] int64
    period_day: np.ndarray  # [N] NaN where unknown (not positive or not finite)
    start: np.ndarray  # [N + 1] first epoch of each star (and the end)


def _group_starts(key: np.ndarray, n: int) -> np.ndarray:
    """Offsets ``[n + 1]`` of groups ``0..n-1`` in an array sorted by ``key``."""
    return np.concatenate([[0], np.cumsum(np.bincount(key, minlength=n))])


def _epochs(light_curves: list[np.ndarray], period_day: np.ndarray) -> _Epochs:
    period_day = np.asarray(period_day, dtype=np.float64)
    n = len(light_curves)
    if period_day.shape != (n,):
        raise ValueError(f"period_day has shape {period_day.shape}, expected ({n},)")
    for i, lc in enumerate(light_curves):
        if np.ndim(lc) != 2 or np.shape(lc)[1] != 4 or len(lc) == 0:
            raise ValueError(f"light curve {i}: expected a non-empty [n, 4] array, got shape {np.shape(lc)}")
    lc = np.concatenate(light_curves).astype(np.float64)
    star = np.repeat(np.arange(n), [len(c) for c in light_curves])
    start = _group_starts(star, n)
    band = lc[:, 3].astype(np.int64)
    # Median per (star, band): sort by group then magnitude, average the middle one or two.
    group = star * (band.max() + 1) + band
    order = np.lexsort((lc[:, 1], group))
    g_sorted, m_sorted = group[order], lc[order, 1]
    first = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    count = np.diff(np.r_[first, len(order)])
    median = 0.5 * (m_sorted[first + (count - 1) // 2] + m_sorted[first + count // 2])
    level = np.empty(len(lc))
    level[order] = np.repeat(median, count)
    t0 = np.minimum.reduceat(lc[:, 0], start[:-1])
    known = np.isfinite(period_day) & (period_day > 0)
    return _Epochs(star, lc[:, 0] - t0[star], lc[:, 1] - level, level, lc[:, 2], band,
                   np.where(known, period_day, np.nan), start)


def _tokens(e: _Epochs, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded token arrays for a batch of light curves.

    Returns ``values`` ``[N, L, 6]`` (time since first epoch in days, phase in [0, 1) folded on
    the star's catalogue ``period_day``, mag minus that band's median, mag_err, the band's median
    mag, log10 period; phase and period are 0 where the period is unknown), ``band`` ``[N, L]``
    int64 and ``mask`` ``[N, L]`` bool (True = real token), L = MAX_TOKENS.
    Stars with more than MAX_TOKENS epochs keep a random subset drawn from ``rng``.
    """
    n = len(e.period_day)
    order = np.lexsort((rng.random(len(e.star)), e.star))  # star by star, in random order
    slot = np.arange(len(order)) - e.start[e.star[order]]
    keep, slot = order[slot < MAX_TOKENS], slot[slot < MAX_TOKENS]
    row = e.star[keep]
    p = e.period_day[row]
    known = np.isfinite(p)
    values = np.zeros((n, MAX_TOKENS, 6), dtype=np.float32)
    values[row, slot] = np.stack([e.time_day[keep], np.where(known, np.mod(e.time_day[keep] / p, 1.0), 0.0),
                                  e.mag[keep], e.err[keep], e.level[keep],
                                  np.where(known, np.log10(p), 0.0)], axis=1)
    band = np.zeros((n, MAX_TOKENS), dtype=np.int64)
    mask = np.zeros((n, MAX_TOKENS), dtype=bool)
    band[row, slot], mask[row, slot] = e.band[keep], True
    return values, band, mask


def _fourier(e: _Epochs, n_bands: int, rng: np.random.Generator | None, fraction: float = 1.0) -> np.ndarray:
    """Per-band Fourier decomposition of each curve folded on its period: ``[N, n_bands, FOURIER_FEATURES]``.

    Per band, mag = a0 + sum_k A_k cos(2 pi k phase + phi_k), k = 1..N_FOURIER, by least squares
    weighted by 1/mag_err; features log10 A1 [mag], log10 of the residual rms [mag], and for
    k >= 2 log10(A_k / A1), sin and cos of phi_k1 = phi_k - k phi_1. NaN for a band with fewer
    than MIN_FOURIER_EPOCHS epochs and for every band when the period is unknown. With ``rng``,
    each band is fitted to a random ``fraction`` of its epochs (training augmentation).
    """
    n = len(e.period_day)
    use = np.isfinite(e.period_day[e.star])
    if rng is not None:
        use &= rng.random(len(e.star)) < fraction
    star, band, mag = e.star[use], e.band[use], e.mag[use]
    group = star * n_bands + band
    n_groups = n * n_bands
    k = np.arange(1, N_FOURIER + 1)
    arg = (2 * np.pi * np.mod(e.time_day[use] / e.period_day[star], 1.0)) * k[:, None]
    # The design matrix one basis function per row (each row contiguous), and each row times the weight.
    design = np.concatenate([np.ones((1, len(star))), np.cos(arg), np.sin(arg)])
    weighted = np.maximum(e.err[use], 1e-3) ** -2.0 * design
    size = len(design)
    # Weighted normal equations of every (star, band) at once: sums over each group's epochs.
    normal = np.empty((n_groups, size, size))
    for a in range(size):
        for b in range(a, size):
            normal[:, a, b] = normal[:, b, a] = np.bincount(group, weighted[a] * design[b], n_groups)
    rhs = np.stack([np.bincount(group, weighted[a] * mag, n_groups) for a in range(size)], axis=1)
    count = np.bincount(group, minlength=n_groups)
    ok = count >= MIN_FOURIER_EPOCHS
    coef = np.zeros((n_groups, size))
    coef[ok] = np.linalg.solve(normal[ok] + 1e-9 * np.eye(size), rhs[ok][:, :, None])[:, :, 0]
    resid = mag - np.einsum("ij,ij->i", design.T, coef[group])
    rms = np.sqrt(np.bincount(group, resid ** 2, n_groups) / np.maximum(count, 1)) + 1e-4
    c, s = coef[:, 1:1 + N_FOURIER], coef[:, 1 + N_FOURIER:]
    amp = np.hypot(c, s) + 1e-4
    phi = np.arctan2(-s, c)  # A cos(x + phi) = A cos(phi) cos(x) - A sin(phi) sin(x)
    dphi = phi[:, 1:] - k[1:] * phi[:, :1]
    out = np.concatenate([np.log10(amp[:, :1]), np.log10(rms)[:, None], np.log10(amp[:, 1:] / amp[:, :1]),
                          np.sin(dphi), np.cos(dphi)], axis=1)
    out[~ok] = np.nan
    return out.reshape(n, n_bands, FOURIER_FEATURES).astype(np.float32)


class Standardise(nn.Module):
    """Standardised features (NaN -> 0) beside their missing-value flags: ``[N, 2 F]``."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, x: np.ndarray) -> None:
        """Mean and std of each column over its finite values."""
        x = np.asarray(x, dtype=np.float64)
        finite = np.isfinite(x)
        count = np.maximum(finite.sum(0), 1)
        mean = np.where(finite, x, 0.0).sum(0) / count
        std = np.sqrt(np.where(finite, (x - mean) ** 2, 0.0).sum(0) / count)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.where(std > 0, std, 1.0), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(x)
        return torch.cat([torch.where(missing, torch.zeros_like(x), (x - self.mean) / self.std), missing.float()], -1)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


class LightCurveEncoder(nn.Module):
    """Transformer over (time and phase encodings, mag offset, error, band) tokens, masked mean
    pooling, plus an MLP over the standardised Fourier features; the two branches are summed."""

    def __init__(self, n_bands: int, d_model: int = 32, depth: int = 2, heads: int = 4, out_dim: int = 32) -> None:
        super().__init__()
        self.register_buffer("omega", torch.tensor(2 * math.pi / PERIODS_DAY, dtype=torch.float32))
        self.inp = nn.Linear(2 * len(PERIODS_DAY) + 2 * N_HARMONICS + 4, d_model)
        self.band = nn.Embedding(n_bands, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout=0.0, batch_first=True)
        self.body = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, out_dim)
        self.fourier_scale = Standardise(n_bands * FOURIER_FEATURES)
        self.fourier = _mlp(2 * n_bands * FOURIER_FEATURES, 64, out_dim)

    def forward(self, x: Batch) -> torch.Tensor:
        values, mask = x.values, x.mask
        t = values[..., :1] * self.omega
        fold = 2 * math.pi * values[..., 1:2] * torch.arange(1, N_HARMONICS + 1, dtype=values.dtype, device=values.device)
        feats = torch.cat([t.sin(), t.cos(), fold.sin(), fold.cos(), values[..., 2:3],
                           torch.log10(values[..., 3:4] + 1e-3), (values[..., 4:5] - 18.0) / 2.0,
                           values[..., 5:6]], -1)
        h = self.body(self.inp(feats) + self.band(x.band), src_key_padding_mask=~mask)
        w = mask.unsqueeze(-1).float()
        return self.out((h * w).sum(1) / w.sum(1).clamp_min(1.0)) + self.fourier(self.fourier_scale(x.fourier))


class MetaEncoder(nn.Module):
    """MLP over standardised metadata (NaN -> 0) and its missing-value flags."""

    def __init__(self, n_meta: int, hidden: int = 64, out_dim: int = 32) -> None:
        super().__init__()
        self.scale = Standardise(n_meta)
        self.net = _mlp(2 * n_meta, hidden, out_dim)

    def forward(self, meta: torch.Tensor) -> torch.Tensor:
        return self.net(self.scale(meta))


def _unit_directions(n: int, dim: int) -> nn.Parameter:
    """``n`` random unit vectors: their length sets how far an optimiser step turns them."""
    return nn.Parameter(nn.functional.normalize(torch.randn(n, dim), dim=1))


class LightCurveCLIP(nn.Module):
    """The two encoders and a learnable temperature; optional linear head for the supervised baseline,
    optional class directions (``n_proxies``) for the margin loss of :func:`finetune`."""

    def __init__(self, n_bands: int, n_meta: int, n_classes: int = 0, d_model: int = 32, out_dim: int = 32,
                 n_proxies: int = 0) -> None:
        super().__init__()
        self.hparams = dict(n_bands=n_bands, n_meta=n_meta, n_classes=n_classes, d_model=d_model, out_dim=out_dim,
                            n_proxies=n_proxies)
        self.lc = LightCurveEncoder(n_bands, d_model=d_model, out_dim=out_dim)
        self.meta = MetaEncoder(n_meta, out_dim=out_dim)
        self.log_temp = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.head = nn.Linear(2 * out_dim, n_classes) if n_classes else None
        self.proxies = _unit_directions(n_proxies, 2 * out_dim) if n_proxies else None

    def with_proxies(self, z: torch.Tensor, labels: torch.Tensor, n_proxies: int) -> LightCurveCLIP:
        """A copy with ``n_proxies`` class directions, each starting at the mean direction of its
        class's embeddings ``z`` (``labels``), where the classes already sit, so that the margin loss
        tightens them instead of first dragging them towards random directions; a class with no
        rows starts at a random direction (drawn from torch's global RNG)."""
        model = copy.deepcopy(self)
        model.hparams["n_proxies"] = n_proxies
        sums = torch.zeros(n_proxies, z.shape[1]).index_add_(0, labels, z)
        model.proxies = _unit_directions(n_proxies, z.shape[1])
        with torch.no_grad():
            seen = sums.norm(dim=1) > 0
            model.proxies[seen] = nn.functional.normalize(sums[seen], dim=1)
        return model

    def views(self, x: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised light-curve and metadata views ``[N, out_dim]`` each."""
        return nn.functional.normalize(self.lc(x), dim=1), nn.functional.normalize(self.meta(x.meta), dim=1)

    def embed(self, x: Batch) -> torch.Tensor:
        """The star's embedding ``[N, 2 * out_dim]``: both views concatenated, unit norm."""
        return self.join(*self.views(x))

    @staticmethod
    def join(lc_view: torch.Tensor, meta_view: torch.Tensor) -> torch.Tensor:
        """The embedding of two unit views: concatenated, unit norm."""
        return nn.functional.normalize(torch.cat([lc_view, meta_view], 1), dim=1)

    def info_nce(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE: row i of ``a`` and of ``b`` are the positive pair, the other rows negatives."""
        logits = self.log_temp.clamp(max=math.log(100.0)).exp() * a @ b.T
        target = torch.arange(len(a), device=a.device)
        return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))

    def contrastive_loss(self, x1: Batch, x2: Batch) -> torch.Tensor:
        """Cross-modal InfoNCE on the first copy plus within-modality InfoNCE between two augmented copies."""
        lc1, meta1 = self.views(x1)
        lc2, meta2 = self.views(x2)
        return self.info_nce(lc1, meta1) + self.info_nce(lc1, lc2) + self.info_nce(meta1, meta2)

    def logits(self, x: Batch) -> torch.Tensor:
        return self.head(torch.cat([self.lc(x), self.meta(x.meta)], 1))

    def class_loss(self, x1: Batch, x2: Batch, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the supervised baseline, averaged over the two augmented copies."""
        return 0.5 * (nn.functional.cross_entropy(self.logits(x1), labels)
                      + nn.functional.cross_entropy(self.logits(x2), labels))

    def margin_loss(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """ArcFace: cross-entropy over scaled cosines between embeddings ``z`` and the class
        directions, the true class's angle widened by ``ANGULAR_MARGIN_RAD`` (so a star must sit
        well inside its class's cone, not just nearer it than to the others)."""
        cos = (z @ nn.functional.normalize(self.proxies, dim=1).T).clamp(-1 + 1e-6, 1 - 1e-6)
        true = nn.functional.one_hot(labels, len(self.proxies)).bool()
        logits = torch.where(true, torch.cos(torch.acos(cos) + ANGULAR_MARGIN_RAD), cos)
        return nn.functional.cross_entropy(MARGIN_SCALE * logits, labels)

    def label_contrastive_loss(self, x1: Batch, x2: Batch, labels: torch.Tensor) -> torch.Tensor:
        """Supervised contrastive loss (Khosla et al. 2020) on the embeddings of both augmented
        copies, every other star of the same class a positive, plus :meth:`margin_loss` on both
        copies, plus :meth:`contrastive_loss`."""
        z = torch.cat([self.embed(x1), self.embed(x2)])
        y = torch.cat([labels, labels])
        logits = (z @ z.T / SUPCON_TEMPERATURE).fill_diagonal_(-torch.inf)
        positive = (y[:, None] == y[None, :]).fill_diagonal_(False)
        log_prob = logits.log_softmax(1).masked_fill(~positive, 0.0)
        supcon = -(log_prob.sum(1) / positive.sum(1).clamp_min(1)).mean()
        return supcon + self.margin_loss(z, y) + self.contrastive_loss(x1, x2)


def batch(light_curves: list[np.ndarray], period_day: np.ndarray, meta: np.ndarray, n_bands: int, *,
          seed: int = 0) -> Batch:
    """Tensors of a set of stars (token subsets drawn from ``seed``)."""
    e = _epochs(light_curves, period_day)
    return _batch(e, _fourier(e, n_bands, None), meta, np.random.default_rng(seed))


def _batch(e: _Epochs, fourier: np.ndarray, meta: np.ndarray, rng: np.random.Generator) -> Batch:
    values, band, mask = _tokens(e, rng)
    return Batch(torch.from_numpy(values), torch.from_numpy(band), torch.from_numpy(mask),
                 torch.from_numpy(fourier.reshape(len(fourier), -1)), torch.as_tensor(np.asarray(meta, dtype=np.float32)))


def _noisy(x: Batch, std: torch.Tensor, gen: torch.Generator) -> Batch:
    """``x`` with Gaussian noise of ``META_NOISE`` x each column's std on the metadata."""
    return x._replace(meta=x.meta + META_NOISE * std * torch.randn(x.meta.shape, generator=gen))


def train(light_curves: list[np.ndarray], period_day: np.ndarray, meta: np.ndarray, *, n_bands: int,
          labels: np.ndarray | None = None, init: LightCurveCLIP | None = None, seed: int = 0,
          epochs: int = 40, patience: int = 6, batch_size: int = 128, lr: float = 2e-3,
          val_fraction: float = 0.1, **hparams: Any) -> LightCurveCLIP:
    """Contrastive training (``labels=None``), the supervised baseline (integer ``labels``), or
    label-aware contrastive fine-tuning of a contrastive model ``init`` (``labels`` and ``init``;
    see :func:`finetune`).

    All use the same encoders, optimiser, augmentations and stopping rule: a seeded
    ``val_fraction`` of the stars is set aside, training runs up to ``epochs`` epochs and stops
    ``patience`` epochs after the best validation loss, whose weights are kept. Each epoch draws two
    augmented copies of every training star (other epoch subsets, Fourier fits to other epoch
    subsets, metadata noise). Returns the model in eval mode (``init`` itself is left unchanged).
    """
    period_day, meta = np.asarray(period_day, dtype=np.float64), np.asarray(meta, dtype=np.float64)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    _, val, fit = common.split_indices(len(light_curves), seed, test_fraction=0.0, val_fraction=val_fraction)
    e_fit, e_val = (_epochs([light_curves[i] for i in idx], period_day[idx]) for idx in (fit, val))
    rng = np.random.default_rng(seed)
    n_classes = 0 if labels is None else int(np.max(labels)) + 1
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    fourier_fit = _fourier(e_fit, n_bands, None)
    if init is None:
        model = LightCurveCLIP(n_bands, meta.shape[1], n_classes=n_classes, **hparams)
        model.meta.scale.fit(meta[fit])
        model.lc.fourier_scale.fit(fourier_fit.reshape(len(fit), -1))
    else:  # its standardisations stay those of its own training stars
        z, _ = _embed_and_agreement(init, _batch(e_fit, fourier_fit, meta[fit], np.random.default_rng(seed)))
        model = init.with_proxies(torch.from_numpy(z), y[fit], n_classes)

    def loss(x1: Batch, x2: Batch, idx: np.ndarray) -> torch.Tensor:
        if y is None:
            return model.contrastive_loss(x1, x2)
        if init is None:
            return model.class_loss(x1, x2, y[idx])
        return model.label_contrastive_loss(x1, x2, y[idx])

    def augmenter(e: _Epochs, m: np.ndarray) -> Callable[[], list[Batch]]:
        """Draws two augmented copies of every star: new epoch subsets for the transformer, and
        one of AUGMENT_COPIES Fourier fits each to a random AUGMENT_FRACTION of the epochs."""
        pool = np.stack([_fourier(e, n_bands, rng, AUGMENT_FRACTION) for _ in range(AUGMENT_COPIES)])
        rows = np.arange(len(m))
        return lambda: [_batch(e, pool[rng.integers(AUGMENT_COPIES, size=len(m)), rows], m, rng) for _ in (0, 1)]

    # The validation loss is on fixed augmented copies, so epochs compare like with like.
    v1, v2 = (_noisy(v, model.meta.scale.std, gen) for v in augmenter(e_val, meta[val])())
    draw = augmenter(e_fit, meta[fit])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    stopper = common.EarlyStopping(model, patience)
    for epoch in range(epochs):
        model.train()
        copies = draw()
        for idx in torch.randperm(len(fit), generator=gen).split(batch_size):
            if len(idx) < 2:
                continue
            opt.zero_grad(set_to_none=True)
            x1, x2 = (_noisy(v.rows(idx), model.meta.scale.std, gen) for v in copies)
            loss(x1, x2, fit[idx.numpy()]).backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            if stopper.stop(float(loss(v1, v2, val))):
                break
    stopper.restore()
    model.epochs_run = epoch + 1
    return model.eval()


def finetune(model: LightCurveCLIP, light_curves: list[np.ndarray], period_day: np.ndarray, meta: np.ndarray,
             labels: np.ndarray, *, seed: int = 0, epochs: int = 20, patience: int = 4,
             lr: float = 5e-4) -> LightCurveCLIP:
    """A copy of contrastive ``model`` fine-tuned with its training stars' class ``labels`` (as AstroM3
    fine-tunes after CLIP pretraining): :meth:`LightCurveCLIP.label_contrastive_loss` (supervised
    contrastive + ArcFace margin against learned class directions + the pretraining's losses; the
    directions start at each class's mean embedding by ``model``), a smaller learning rate, the same
    augmentations and early stopping as :func:`train`. Its embeddings have seen labels; ``model``'s
    have not."""
    return train(light_curves, period_day, meta, n_bands=model.hparams["n_bands"], labels=labels, init=model,
                 seed=seed, epochs=epochs, patience=patience, lr=lr)


@torch.inference_mode()
def _per_batch(fn: Callable[[Batch], torch.Tensor], model: LightCurveCLIP, x: Batch, batch_size: int) -> np.ndarray:
    """``fn`` over the stars ``x`` in batches on the model's device (in :func:`common.mixed_precision`),
    concatenated on the CPU."""
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(x.meta), batch_size):
        with common.mixed_precision(dev):
            out.append(fn(x.rows(slice(i, i + batch_size)).to(dev)).cpu())
    return torch.cat(out).numpy()


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Rows of ``v`` as float32 unit vectors (normalised again: bfloat16 keeps ~3 digits of the norm)."""
    return nn.functional.normalize(v.float(), dim=1)


def embed(model: LightCurveCLIP, light_curves: list[np.ndarray], period_day: np.ndarray, meta: np.ndarray, *,
          seed: int = 0, batch_size: int = 512) -> np.ndarray:
    """Embeddings ``[N, 2 * out_dim]`` float32, unit norm (the token subset is fixed by ``seed``)."""
    return embed_and_agreement(model, light_curves, period_day, meta, seed=seed, batch_size=batch_size)[0]


def embed_and_agreement(model: LightCurveCLIP, light_curves: list[np.ndarray], period_day: np.ndarray,
                        meta: np.ndarray, *, seed: int = 0, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed`'s embeddings and, from the same pass, the cosine similarity ``[N]`` of each
    star's light-curve and metadata views, in [-1, 1]: low when a curve does not look like what its
    catalogue entry (period, magnitudes) says."""
    return _embed_and_agreement(model, batch(light_curves, period_day, meta, model.hparams["n_bands"], seed=seed),
                                batch_size)


def _embed_and_agreement(model: LightCurveCLIP, x: Batch, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed_and_agreement` of the stars' tensors ``x``."""
    def both(rows: Batch) -> torch.Tensor:
        a, b = map(_unit, model.views(rows))
        return torch.cat([model.join(a, b), (a * b).sum(1, keepdim=True)], 1)
    out = _per_batch(both, model, x, batch_size)
    return out[:, :-1], out[:, -1]


def classify(model: LightCurveCLIP, light_curves: list[np.ndarray], period_day: np.ndarray, meta: np.ndarray, *,
             seed: int = 0, batch_size: int = 512) -> np.ndarray:
    """Predicted class indices ``[N]`` from a supervised-baseline model."""
    x = batch(light_curves, period_day, meta, model.hparams["n_bands"], seed=seed)
    return _per_batch(lambda b: model.logits(b).argmax(1), model, x, batch_size)


def _vote(sims: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Each row's label by a k-nearest-neighbour vote over cosine similarities ``sims`` ``[M, N]``,
    a neighbour weighing 1 + its similarity (nearer votes weigh more)."""
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    classes = np.unique(labels)
    weights = np.take_along_axis(sims, nearest, 1) + 1.0
    votes = np.stack([((labels[nearest] == c) * weights).sum(1) for c in classes], 1)
    return classes[votes.argmax(1)]


#: Neighbours in :func:`knn_classify` (fixed, as in the k-NN evaluation of DINO, Caron et al. 2021).
#: Not chosen by leave-one-out on the training stars: their fine-tuned embeddings sit deeper in
#: their class's cone than a new star's (the fine-tuning pulled them there), so leave-one-out
#: favoured k = 10 at four of six seeds, and at every seed k = 20 classified as many held-out
#: stars as its choice or up to 6 more (README.md, the model card of ``lightcurve-clip``).
KNN_K = 20


def knn_classify(train_emb: np.ndarray, train_labels: np.ndarray, query_emb: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Cosine k-nearest-neighbour vote (nearer neighbours weigh more), labels ``[M]``."""
    return _vote(np.asarray(query_emb) @ np.asarray(train_emb).T, np.asarray(train_labels), k)


to_bytes = common.to_bytes


def load(path: str, map_location: str | torch.device | None = None) -> LightCurveCLIP:
    """A :class:`LightCurveCLIP` from a file of :func:`to_bytes` output, in eval mode."""
    return common.load(LightCurveCLIP, path, map_location)
