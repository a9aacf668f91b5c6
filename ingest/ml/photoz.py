"""Photometric-redshift mixture density network over SDSS ugriz magnitudes.

Inputs are SDSS asinh magnitudes (~AB, mag) in band order u, g, r, i, z; redshift
``z`` is dimensionless. The network predicts a K-component Gaussian mixture
p(z | photometry) (GalaxiesML / PICZL style) and exposes a low-dimensional
embedding of each galaxy for similarity search.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from . import common, metrics
from .common import MAG_MAX, MAG_MIN, fit_early_stopping, inference_device, mixed_precision, split_indices

SIGMA_FLOOR = 1e-3  # minimum component sigma, redshift units
# A redshift is not negative: p(z) is the stored mixture truncated at z = 0 and renormalised (the
# mass a component puts below 0 goes to the rest), in the point estimate, the moments, the PIT and
# SQL's photoz_pdf / photoz_interval alike; the stored pdf_* are the network's untruncated mixture.
Z_MIN = 0.0


def valid_rows(mags: np.ndarray) -> np.ndarray:
    """Boolean mask ``[N]``: True where all five magnitudes are finite and in (0, 40) mag."""
    m = np.asarray(mags, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.all(np.isfinite(m) & (m > MAG_MIN) & (m < MAG_MAX), axis=1)


def features(mags: np.ndarray) -> np.ndarray:
    """Network inputs ``[N, 5]`` float32 from ugriz magnitudes ``[N, 5]`` (mag).

    Columns: r, u-g, g-r, r-i, i-z (all mag; extra redundant colours such as u-r
    or g-i did not improve NMAD). Invalid rows propagate their garbage values;
    filter with :func:`valid_rows` first.
    """
    u, g, r, i, z = np.asarray(mags, dtype=np.float64).T
    return np.stack([r, u - g, g - r, r - i, i - z], axis=1).astype(np.float32)


N_FEATURES = 5
FEATURE_NAMES = ("r", "u-g", "g-r", "r-i", "i-z")  # :func:`features`' columns


class PhotoZMDN(nn.Module):
    """MLP trunk -> ``embed_dim`` embedding -> K-component Gaussian mixture over z.

    Feature standardisation (``x_mean``, ``x_std``) and target scaling (``z_loc``,
    ``z_scale``) are buffers fitted on the training split, so the model takes raw
    :func:`features` output.
    """

    def __init__(self, n_features: int = N_FEATURES, hidden: int = 128, depth: int = 3,
                 embed_dim: int = 16, n_components: int = 5, input_range: list[list[float]] | None = None,
                 input_distribution: dict | None = None, sigma_scale: float = 1.0) -> None:
        super().__init__()
        # input_range, input_distribution: the training features' box and joint distribution
        # (common.input_range, common.input_distribution), for common.outside_training; sigma_scale:
        # the recalibration every component's sigma is multiplied by (fit_sigma_scale; 1 in training
        # and for weights saved before it)
        self.hparams = dict(n_features=n_features, hidden=hidden, depth=depth, embed_dim=embed_dim,
                            n_components=n_components, input_range=input_range,
                            input_distribution=input_distribution, sigma_scale=sigma_scale)
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        self.register_buffer("z_loc", torch.zeros(()))
        self.register_buffer("z_scale", torch.ones(()))
        self.sigma_floor = SIGMA_FLOOR  # an attribute, not the global: TorchScript reads no float globals
        self.z_min = Z_MIN
        self.sigma_scale = float(sigma_scale)  # an attribute read by TorchScript too: set before scripting
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers += [nn.Linear(width, embed_dim), nn.SiLU()]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(embed_dim, 3 * n_components)

    @torch.jit.export
    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding layer's activations ``[N, embed_dim]`` (unnormalised) from features ``[N, F]``."""
        return self.trunk((x - self.x_mean) / self.x_std)

    def _mixture(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, b, c = self.head(h).chunk(3, dim=1)
        mu = self.z_loc + self.z_scale * b
        sigma = (self.z_scale * nn.functional.softplus(c) + self.sigma_floor) * self.sigma_scale
        return a, mu, sigma

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture ``(logits, mu, sigma)``, each ``[N, K]``; mu and sigma in redshift units."""
        return self._mixture(self.hidden(x))

    @torch.jit.export
    def summary(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`predict`'s outputs from :meth:`hidden`'s activations ``h`` (float32: the output
        layer and what follows run in float32 whatever the trunk ran in)."""
        logits, mu, sigma = self._mixture(h)
        w = torch.softmax(logits, dim=1)
        mean, var = _truncated_moments(w, mu, sigma, self.z_min)
        below = (w * torch.special.ndtr((self.z_min - mu) / sigma)).sum(1)  # the mass the truncation drops
        sd = var.clamp_min(0).sqrt()
        q = _mixture_quantiles(w, mu, sigma, self.z_min, below, mean, sd)
        return {"z_point": q[:, 1], "z_p16": q[:, 0], "z_p84": q[:, 2], "z_mean": mean, "z_sigma": sd,
                "below_z_min": below, "weights": w, "means": mu, "sigmas": sigma,
                "embedding": nn.functional.normalize(h, dim=1)}


def mixture_nll(logits: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``z`` ``[N]`` under the mixture."""
    comp = torch.distributions.Normal(mu, sigma).log_prob(z[:, None])
    return -torch.logsumexp(torch.log_softmax(logits, dim=1) + comp, dim=1).mean()


def train(mags: np.ndarray, z: np.ndarray, **options: Any) -> tuple[PhotoZMDN, dict[str, Any]]:
    """Fit a :class:`PhotoZMDN` on ugriz magnitudes ``[N, 5]`` (mag) and spec-z ``[N]``: rows with
    invalid photometry are dropped (and their ``groups``, if given), then :func:`train_features` on
    :func:`features`."""
    ok = valid_rows(mags)
    if options.get("groups") is not None:
        options["groups"] = np.asarray(options["groups"])[ok]
    model, report = train_features(features(np.asarray(mags)[ok]), np.asarray(z, dtype=np.float64)[ok], **options)
    report["n_dropped"] += int((~ok).sum())
    return model, report


#: Folds of the cross-validated PIT that ``healcat train photoz`` records (:func:`train_features`'s
#: ``cv_folds``): every galaxy predicted by a model that did not train on it, so the histogram holds
#: all of them (a bin's Poisson scatter ~4.5% for SDSS's 4,998, against ~10% for the 1,000 held out).
CV_FOLDS = 5


def fold_indices(n: int, seed: int, folds: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(test, validation, fit) row indices of each of ``folds`` folds: fold 0 is
    :func:`~ingest.ml.common.split_indices`' split (the held-out 20% and its validation slice), the
    rest of the seeded permutation cut into ``folds - 1`` test sets; a fold's validation slice is 10%
    of the rows after its test set in the permutation (wrapping round), its fit rows the others."""
    test, val, fit = split_indices(n, seed)
    perm = np.concatenate([test, val, fit])  # split_indices' permutation
    out = [(test, val, fit)]
    for part in np.array_split(np.arange(len(test), n), folds - 1):
        rest = np.concatenate([perm[part[-1] + 1:], perm[:part[0]]])
        n_val = int(round(0.1 * len(rest)))
        out.append((perm[part], rest[:n_val], rest[n_val:]))
    return out


def group_fold_indices(groups: np.ndarray, seed: int, folds: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(test, validation, fit) row indices of ``folds`` folds whose test sets are whole groups (the rows'
    sky regions): the groups in a seeded order, cut where their rows' running count nearest reaches
    each fold's share, so no group is both held out and trained on; a fold's validation slice is a
    seeded 10% of its other rows (early stopping and the sigmas' scale), its fit rows the rest."""
    rng = np.random.default_rng(seed)
    labels, index, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    order = rng.permutation(len(labels))
    ends = np.cumsum(counts[order])
    cuts = [0, *(int(np.abs(ends - k * ends[-1] / folds).argmin()) + 1 for k in range(1, folds)), len(labels)]
    fold_of = np.empty(len(labels), dtype=np.int64)
    for f in range(folds):
        fold_of[order[cuts[f]:cuts[f + 1]]] = f
    row_fold = fold_of[index]
    out = []
    for f in range(folds):
        rest = rng.permutation(np.flatnonzero(row_fold != f))
        n_val = int(round(0.1 * len(rest)))
        out.append((np.flatnonzero(row_fold == f), rest[:n_val], rest[n_val:]))
    return out


def train_features(x: np.ndarray, z: np.ndarray, *, seed: int = 0, epochs: int = 400,
                   device: str | torch.device = "cpu", batch_size: int = 512, lr: float = 2e-3,
                   patience: int = 60, recalibrate: bool = True, cv_folds: int = 0,
                   groups: np.ndarray | None = None, **hparams: int) -> tuple[PhotoZMDN, dict[str, Any]]:
    """Fit a :class:`PhotoZMDN` on any photometric features ``[N, F]`` and spec-z ``[N]``.

    Non-finite rows are dropped; z is clipped at >= 0. A
    seeded permutation holds out 20% as test; 10% of the rest is a validation
    slice for early stopping (best validation NLL weights are kept) and, with ``recalibrate``, for
    the one factor on all mixture sigmas (:func:`fit_sigma_scale`, kept in the model). Returns the
    model (on ``device``, eval mode) and a report of plain floats/ints with test
    metrics (see :mod:`ingest.ml.metrics`). ``cv_folds`` > 1 adds the same metrics cross-validated
    over all rows (``*_cv``, :func:`fold_indices`; fold 0 is the returned model), at the cost of
    ``cv_folds - 1`` more trainings; with ``groups`` (a label per row: its sky region) too, cross-validated
    over folds of whole groups (``*_sky_cv``, :func:`group_fold_indices`: no galaxy predicted by a model
    that trained on a galaxy of its region), at the cost of ``cv_folds`` more.
    """
    x, z = np.asarray(x, dtype=np.float32), np.asarray(z, dtype=np.float64)
    ok = np.isfinite(x).all(1) & np.isfinite(z)
    x_all = x[ok]
    z_all = np.clip(z[ok], 0.0, None).astype(np.float32)
    options = dict(seed=seed, epochs=epochs, device=torch.device(device), batch_size=batch_size, lr=lr,
                   patience=patience, recalibrate=recalibrate)
    splits = fold_indices(len(z_all), seed, cv_folds) if cv_folds > 1 else [split_indices(len(z_all), seed)]
    test, val, fit = splits[0]
    model, best, epoch = _fit_split(x_all, z_all, test, val, fit, **options, **hparams)
    metrics_test, answered = _held_out(model, x_all[test], z_all[test], options["device"])
    report = dict(n_train=len(fit), n_val=len(val), n_test=len(test), n_dropped=int((~ok).sum()), **metrics_test,
                  val_nll=best, sigma_scale=model.sigma_scale, seed=seed, epochs=epochs, epochs_run=epoch)
    if cv_folds > 1:
        report.update(cv_folds=cv_folds, **_cross_validated("cv", x_all, z_all, splits[1:], [answered], options, hparams))
        if groups is not None:
            groups = np.asarray(groups)[ok]
            report.update(sky_cv_groups=int(len(np.unique(groups))), **_cross_validated(
                "sky_cv", x_all, z_all, group_fold_indices(groups, seed, cv_folds), [], options, hparams))
    return model, report


def _cross_validated(suffix: str, x_all: np.ndarray, z_all: np.ndarray, splits: list, parts: list[dict],
                     options: dict, hparams: dict) -> dict[str, Any]:
    """The held-out metrics over every row, each fold's test rows predicted by a model fitted on its fit
    rows (``parts``: folds already predicted, their :func:`_held_out` answers), keyed ``NAME_{suffix}``."""
    for test_f, val_f, fit_f in splits:
        model_f = _fit_split(x_all, z_all, test_f, val_f, fit_f, **options, **hparams)[0]
        parts = [*parts, _held_out(model_f, x_all[test_f], z_all[test_f], options["device"])[1]]
    pit, z_point, z_true = (np.concatenate([p[k] for p in parts]) for k in ("pit", "z_point", "z"))
    return {f"n_{suffix}": len(z_all), f"n_{suffix}_refused": len(z_all) - len(pit),
            f"nmad_{suffix}": metrics.nmad(z_point, z_true), f"bias_{suffix}": metrics.bias(z_point, z_true),
            f"outlier_fraction_{suffix}": metrics.outlier_fraction(z_point, z_true),
            f"pit_{suffix}_max_dev": metrics.pit_max_deviation(pit),
            f"pit_{suffix}_histogram": metrics.pit_histogram(pit).tolist(),
            f"interval_68_coverage_{suffix}": metrics.interval_coverage(pit)}


def _fit_split(x_all: np.ndarray, z_all: np.ndarray, test: np.ndarray, val: np.ndarray, fit: np.ndarray, *,
               seed: int, epochs: int, device: torch.device, batch_size: int, lr: float, patience: int,
               recalibrate: bool, **hparams: int) -> tuple[PhotoZMDN, float, int]:
    """A :class:`PhotoZMDN` fitted on rows ``fit``, early-stopped on ``val`` (``test`` is kept from
    its input guard), then with ``recalibrate`` its sigmas' scale fitted on ``val``
    (:func:`fit_sigma_scale`); returns it (eval mode), its best validation loss (before the scale)
    and the epochs run."""
    torch.manual_seed(seed)
    seen = np.delete(x_all, test, axis=0)  # the guard knows the rows the model learnt from, not the test's
    model = PhotoZMDN(n_features=x_all.shape[1], input_range=common.input_range(seen, common.BOX_PAD_JOINT),
                      input_distribution=common.input_distribution(seen), **hparams)
    model.x_mean.copy_(torch.from_numpy(x_all[fit].mean(0)))
    model.x_std.copy_(torch.from_numpy(x_all[fit].std(0) + 1e-6))
    model.z_loc.fill_(float(z_all[fit].mean()))
    model.z_scale.fill_(float(z_all[fit].std()))
    model.to(device)
    xf, zf = (torch.from_numpy(a[fit]).to(device) for a in (x_all, z_all))
    xv, zv = (torch.from_numpy(a[val]).to(device) for a in (x_all, z_all))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, epoch = fit_early_stopping(model, opt, lambda m, xb, zb: mixture_nll(*m(xb), zb), (xf, zf), (xv, zv),
                                     epochs=epochs, batch_size=batch_size, patience=patience, seed=seed)
    if recalibrate:
        set_sigma_scale(model, fit_sigma_scale(model, x_all[val], z_all[val]))
    return model, best, epoch


#: The factors :func:`fit_sigma_scale` tries: 0.5 to 2, log-spaced 0.25% apart.
SIGMA_SCALES = np.exp(np.linspace(np.log(0.5), np.log(2.0), 556))


@torch.no_grad()
def fit_sigma_scale(model: PhotoZMDN, x: np.ndarray, z: np.ndarray) -> float:
    """The one factor on every component's sigma (of :data:`SIGMA_SCALES`) that minimises the mean
    negative log-likelihood of spec-z ``z`` ``[N]`` under ``model``'s mixtures for features ``x``
    ``[N, F]``: a post-hoc recalibration fitted on the validation galaxies (never the test's).

    The network's sigmas, early-stopped on the same galaxies' likelihood, came out slightly narrow:
    over 5-fold cross-validation (seeds 0-5, ~30,000 galaxies) both PIT tails held ~11% more than
    their tenth and the fitted factors were 1.0-1.2 (README, photoz-sdss model card)."""
    model.eval()
    logits, mu, sigma = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(model.z_loc.device))
    logw = torch.log_softmax(logits.double(), dim=1).cpu()
    mu, sigma = mu.double().cpu(), sigma.double().cpu() / model.sigma_scale  # the network's own sigmas
    zt = torch.as_tensor(np.asarray(z, dtype=np.float64))[:, None]
    nll = []
    for scales in torch.from_numpy(SIGMA_SCALES).split(32):  # [32, N, K] at a time
        lp = torch.distributions.Normal(mu, sigma * scales[:, None, None]).log_prob(zt)
        nll.append(-torch.logsumexp(logw + lp, dim=2).mean(1))
    return float(SIGMA_SCALES[int(torch.cat(nll).argmin())])


def set_sigma_scale(model: PhotoZMDN, scale: float) -> None:
    """Make ``model``'s sigmas the network's times ``scale`` (kept in its ``hparams``, so saved with
    its weights); before :func:`~ingest.ml.common.scripted` compiles it, which copies the value."""
    if "_scripted" in model.__dict__:
        raise RuntimeError("set the sigma scale before the model is scripted")
    model.sigma_scale = model.hparams["sigma_scale"] = float(scale)


def _held_out(model: PhotoZMDN, x: np.ndarray, z: np.ndarray, device: torch.device | None
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Held-out metrics (:mod:`ingest.ml.metrics`) of ``model`` on features ``x`` ``[N, F]`` and spec-z
    ``z`` ``[N]``, over the galaxies it answers (not those :func:`refused`: ``n_test_outside_training``
    and ``n_test_below_z_min``), and those galaxies' ``pit``, ``z_point`` and ``z``."""
    outside = common.outside_training(x, model.hparams, tuple(f"feature {j}" for j in range(x.shape[1])))
    out = predict(model, x, device=device)  # once: each row's outputs are its own, whatever the batch
    why = common.first_reason(outside, mostly_below_z_min(out["below_z_min"]))
    kept = np.ones(len(x), dtype=bool) if why is None else np.equal(why, None)
    n_outside = 0 if outside is None else int(np.not_equal(outside, None).sum())
    out = {k: v[kept] for k, v in out.items()}
    zt = np.asarray(z)[kept]
    pit = metrics.pit_gmm(out["weights"], out["means"], out["sigmas"], zt, lower=Z_MIN)
    return dict(
        n_test_outside_training=n_outside, n_test_below_z_min=len(x) - int(kept.sum()) - n_outside,
        nmad=metrics.nmad(out["z_point"], zt), bias=metrics.bias(out["z_point"], zt),
        outlier_fraction=metrics.outlier_fraction(out["z_point"], zt),
        nmad_mean=metrics.nmad(out["z_mean"], zt),
        crps=float(metrics.crps_gmm(out["weights"], out["means"], out["sigmas"], zt).mean()),
        pit_max_dev=metrics.pit_max_deviation(pit), pit_histogram=metrics.pit_histogram(pit).tolist(),
        interval_68_coverage=metrics.interval_coverage(pit),  # spec-z inside [value_p16, value_p84]
    ), dict(pit=pit, z_point=out["z_point"], z=zt)


def _truncated_moments(w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                       z_min: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance ``[N]`` of the mixture truncated at ``z_min`` (:data:`Z_MIN`; each component a truncated
    normal: mean mu + sigma lambda, variance sigma^2 (1 + alpha lambda - lambda^2), lambda the inverse
    Mills ratio at alpha = (z_min - mu) / sigma, reweighted by the mass it keeps)."""
    alpha = (z_min - mu) / sigma
    kept = torch.special.ndtr(-alpha)
    # phi(alpha) / kept, computed as exp(log phi - log kept): finite where a component lies far below 0
    lam = torch.exp(-0.5 * alpha ** 2 - 0.9189385332046727 - torch.special.log_ndtr(-alpha))
    m = mu + sigma * lam
    v = sigma ** 2 * (1 + alpha * lam - lam ** 2)
    wk = w * kept
    wk = wk / wk.sum(1, keepdim=True).clamp_min(1e-30)
    mean = (wk * m).sum(1)
    return mean, (wk * (v + m ** 2)).sum(1) - mean ** 2


def _mixture_quantiles(w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, z_min: float,
                       below: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    """The 16th, 50th and 84th percentiles ``[N, 3]`` of the mixture truncated at ``z_min`` (:data:`Z_MIN`), as
    SQL's ``mixture_interval(..., 0.68, 0)`` and ``photoz_interval`` define them: the z where the untruncated
    CDF reaches F(z_min) (``below``) + (1 - F(z_min)) q (redshift units).

    Newton's method kept inside a bracket (Numerical Recipes' ``rtsafe``), on the 3N roots at once, from a
    normal's percentiles with the truncated mixture's ``mean`` and standard deviation ``sd``: each bracket
    starts at +-6 sigma of the outermost components (cut at z_min) and shrinks to the side of each step's
    CDF; a step is halving instead where Newton's would leave the bracket or shrink it by less than half.
    A root is done when its step is under 1e-5 (Newton's error after such a step is its square's order:
    within 6e-7 of a float8 bisection on 98,304 SDSS roots), and later steps compute only the roots not
    done: of those, 54% went on after the second step, 14% after the third, 1% after the sixth; at most
    40 (halving alone leaves any bracket narrower than 16 under 1.5e-11 wide). Where p(z) is nearly flat
    (below ~1e-3) float32's CDF, good to ~1e-7, leaves the percentile uncertain by ~1e-7 / p(z) (on random
    hard mixtures 0.8% of p84s differ by more than 2e-6 from a float8 bisection's, up to 8e-4, their CDFs
    within 1e-6), and where the CDF is flat at exactly q (a gap between modes holding no mass) any z in the
    gap is the percentile: this takes one, SQL's bisection may take another."""
    n = mu.shape[0]
    q = torch.tensor([0.16, 0.5, 0.84], dtype=w.dtype, device=w.device)
    target = (below[:, None] + (1 - below[:, None]) * q).reshape(-1)
    lo = (mu - 6 * sigma).min(1).values.clamp_min(z_min).repeat_interleave(3)
    hi = torch.maximum((mu + 6 * sigma).max(1).values.repeat_interleave(3), lo)
    w3, mu3, sigma3 = (t.repeat_interleave(3, dim=0) for t in (w, mu, sigma))
    # first guess: a normal's percentiles with the truncated mixture's mean and standard deviation
    z = torch.minimum(torch.maximum((mean[:, None] + sd[:, None] * torch.tensor(
        [-0.9944578832097535, 0.0, 0.9944578832097535], dtype=w.dtype, device=w.device)).reshape(-1), lo), hi)
    last = hi - lo  # each root's last step (rtsafe compares a Newton step with the one before)
    active = torch.arange(3 * n, device=w.device)
    for _ in range(40):
        za = z[active]
        u = (za[:, None] - mu3[active]) / sigma3[active]
        wa = w3[active]
        f = (wa * torch.special.ndtr(u)).sum(1) - target[active]
        density = (wa / sigma3[active] * torch.exp(-0.5 * u * u)).sum(1) * 0.3989422804014327
        loa, hia = torch.where(f < 0, za, lo[active]), torch.where(f < 0, hi[active], za)
        newton = za - f / density
        halve = ~((newton >= loa) & (newton <= hia)) | (2 * f.abs() > last[active].abs() * density)
        step = torch.where(halve, za - 0.5 * (loa + hia), f / density)
        z[active], lo[active], hi[active], last[active] = za - step, loa, hia, step
        active = active[step.abs() >= 1e-5]
        if active.numel() == 0:
            break
    return z.reshape(n, 3)


@torch.inference_mode()
def predict(model: PhotoZMDN, x_features: np.ndarray, *, batch_size: int = 65536,
            device: str | torch.device | None = None) -> dict[str, np.ndarray]:
    """Predict mixtures for :func:`features` rows ``[N, F]``.

    Returns float32 arrays: ``z_point`` (point estimate = mixture median, which
    gave NMAD at least as good as the mean or mode on SDSS DR14), ``z_p16`` and ``z_p84`` (the
    16th and 84th percentiles: the central 68% credible interval), ``z_mean``
    and ``z_sigma`` (mixture mean and std), ``below_z_min`` (the untruncated mixture's mass below
    z = 0), ``weights``/``means``/``sigmas`` ``[N, K]``
    and ``embedding`` ``[N, embed_dim]`` (L2-normalised). Batched; bfloat16
    autocast is used on CUDA only. The model is moved to ``device`` (default
    :func:`best_device`).
    """
    dev = inference_device(device)
    model.to(dev).eval()
    net = common.scripted(model) if dev.type == "cpu" else model  # on CUDA, eager in bfloat16 autocast
    parts: dict[str, list[torch.Tensor]] = {}
    x_all = torch.from_numpy(np.ascontiguousarray(x_features, dtype=np.float32))
    for xb in x_all.split(batch_size):
        with mixed_precision(dev):
            h = net.hidden(xb.to(dev))
        for k, t in net.summary(h.float()).items():
            parts.setdefault(k, []).append(t.cpu())
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


#: A galaxy whose p(z) (the untruncated mixture) has more than this below z = 0 gets no photo-z: the
#: network's answer is then "not a galaxy at z >= 0", and the truncated rest is no redshift.
MAX_BELOW_Z_MIN = 0.5


def mostly_below_z_min(below_z_min: np.ndarray) -> np.ndarray | None:
    """Why a galaxy gets no photo-z from its mixture's mass below z = 0 (:func:`predict`'s
    ``below_z_min``, ``[N]``): more than :data:`MAX_BELOW_Z_MIN` of it; None where not, or for the batch."""
    rows = np.flatnonzero(np.asarray(below_z_min) > MAX_BELOW_Z_MIN)
    if not len(rows):
        return None
    why = np.full(len(below_z_min), None, dtype=object)
    for i in rows:
        why[i] = (f"not a galaxy at z >= 0: {100 * float(below_z_min[i]):.4g}% of its p(z) lies below z = 0 "
                  f"(more than {100 * MAX_BELOW_Z_MIN:g}%)")
    return why


def refused(model: PhotoZMDN, x_features: np.ndarray, out: dict[str, np.ndarray] | None = None,
            device: str | torch.device | None = None) -> np.ndarray | None:
    """Why ``model`` gives each of :func:`features`' rows ``[N, F]`` no photo-z: outside what it was
    trained on (:func:`ingest.ml.common.outside_training`: a column outside the box, or r and the
    colours together unlike the training galaxies'), else :func:`mostly_below_z_min` of its
    :func:`predict` output ``out`` (computed here if not given); None where it answers, or for the
    batch when it answers all."""
    if out is None:
        out = predict(model, x_features, device=device)
    return common.first_reason(common.outside_training(x_features, model.hparams, FEATURE_NAMES),
                               mostly_below_z_min(out["below_z_min"]))


def to_bytes(model: PhotoZMDN) -> bytes:
    """Deterministic weight bytes (:func:`ingest.ml.common.to_bytes`)."""
    return common.to_bytes(model)


def load(path: str, map_location: str | torch.device | None = None) -> PhotoZMDN:
    """Load a model from a file of :func:`to_bytes` output; returns it in eval mode."""
    return common.load(PhotoZMDN, path, map_location)
