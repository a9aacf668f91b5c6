"""Gyrochronology ages: a conditional density of rotation period given colour and age (ChronoFlow idea).

ChronoFlow (Van-Lane et al. 2025) learns p(Prot | colour, age) from open-cluster rotators and
inverts it with Bayes' rule on an age grid. Here the conditional density is a small ensemble of
mixture density networks p(log10 Prot | BP-RP_0, log10 age) with a broad outlier floor, which is
what makes the product over a cluster's members robust to the few stars no smooth sequence explains.

Units: colour ``bprp0_mag`` is de-reddened Gaia (BP-RP) in mag; ``prot_day`` rotation period in
days; ``log_age`` is log10(age / yr). Age priors are flat in log10 age over :data:`LOG_AGE_GRID`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from . import common

LOG_AGE_GRID = np.round(np.arange(6.0, 10.0 + 1e-9, 0.01), 2)  # log10(age / yr), 1 Myr .. 10 Gyr
LOG_PROT_RANGE = (-1.6, 2.7)  # log10(Prot / day) span of the outlier floor (0.025 .. 500 d)
OUTLIER_WEIGHT = 0.03  # weight of the flat outlier density in every likelihood
SIGMA_FLOOR = 0.01  # dex
MEMBERS = 3  # ensemble members averaged in every density


class GyroMDN(nn.Module):
    """An ensemble of ``members`` MLPs over (colour, log age) -> K-component Gaussian mixture over
    log10 Prot (dex); the density is the members' average.

    The members are trained at once (their weights stacked, ``[members, in, out]`` per layer), each
    on its own draws of stars and from its own initialisation; averaging their densities smooths
    the seed-to-seed scatter that the product over a cluster's members otherwise amplifies. Input
    standardisation (``x_mean``, ``x_std``) is fitted on the training set and kept as buffers, so
    the model takes raw ``[bprp0_mag, log_age]`` rows.
    """

    def __init__(self, hidden: int = 48, depth: int = 2, n_components: int = 4, members: int = 1,
                 colour_range: list[list[float]] | None = None) -> None:
        super().__init__()
        # colour_range: the training stars' BP-RP_0 range (common.input_range), for common.outside_range
        self.hparams = dict(hidden=hidden, depth=depth, n_components=n_components, members=members,
                            colour_range=colour_range)
        self.register_buffer("x_mean", torch.zeros(2))
        self.register_buffer("x_std", torch.ones(2))
        widths = [2] + [hidden] * depth + [3 * n_components]
        bounds = [n ** -0.5 for n in widths[:-1]]  # nn.Linear's default initialisation
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(members, a, b).uniform_(-r, r))
                                        for a, b, r in zip(widths[:-1], widths[1:], bounds))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(members, 1, b).uniform_(-r, r))
                                       for b, r in zip(widths[1:], bounds))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture ``(log_weights, mu, sigma)``, each ``[members, N, K]``, in log10 Prot (dex), of rows
        ``x`` ``[N, 2]`` (the same for every member) or ``[members, N, 2]`` (each member its own)."""
        h = ((x - self.x_mean) / self.x_std).expand(self.hparams["members"], -1, -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = torch.tanh(h)
        a, mu, s = h.chunk(3, dim=-1)
        return torch.log_softmax(a, dim=-1), mu, nn.functional.softplus(s) + SIGMA_FLOOR

    def member_log_density(self, x: torch.Tensor, log_prot: torch.Tensor) -> torch.Tensor:
        """Each member's log p(log10 Prot | colour, log age) ``[members, N]``, with the flat outlier floor."""
        logw, mu, sigma = self(x)
        comp = torch.distributions.Normal(mu, sigma).log_prob(log_prot[..., None])
        core = torch.logsumexp(logw + comp, dim=-1) + math.log1p(-OUTLIER_WEIGHT)
        floor = math.log(OUTLIER_WEIGHT / (LOG_PROT_RANGE[1] - LOG_PROT_RANGE[0]))
        return torch.logaddexp(core, torch.full_like(core, floor))

    def log_density(self, x: torch.Tensor, log_prot: torch.Tensor) -> torch.Tensor:
        """log of the members' average density ``[N]`` of rows ``x`` ``[N, 2]``."""
        return torch.logsumexp(self.member_log_density(x, log_prot), dim=0) - math.log(self.hparams["members"])


def valid_rows(bprp0_mag: np.ndarray, prot_day: np.ndarray) -> np.ndarray:
    """True where colour is finite and Prot is finite, positive and inside :data:`LOG_PROT_RANGE`."""
    c = np.asarray(bprp0_mag, dtype=np.float64)
    p = np.asarray(prot_day, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lp = np.log10(p)
        return np.isfinite(c) & np.isfinite(lp) & (lp > LOG_PROT_RANGE[0]) & (lp < LOG_PROT_RANGE[1])


def train(bprp0_mag: np.ndarray, log_age: np.ndarray, prot_day: np.ndarray, *, seed: int = 0,
          population: np.ndarray | None = None, members: int = MEMBERS, steps: int = 1500,
          batch_size: int = 1024, lr: float = 1e-2, age_jitter_dex: float = 0.05,
          **hparams: int) -> tuple[GyroMDN, dict[str, Any]]:
    """Fit p(log10 Prot | colour, log age) on member stars (rows failing :func:`valid_rows` raise).

    Adam with a cosine schedule; each step every ensemble member draws its own ``batch_size``
    stars with replacement and jitters their (few, discrete) cluster ages by ``age_jitter_dex``,
    so the density interpolates between clusters instead of memorising them. With ``population``
    labels, a star is drawn with weight 1/sqrt(members of its population), so rich clusters
    (Praesepe, Pleiades) do not drown the sparse ages between them.
    Returns the model in eval mode and a report (n_train, final mean NLL in dex units).
    """
    ok = valid_rows(bprp0_mag, prot_day) & np.isfinite(log_age)
    if not ok.all():
        bad = np.flatnonzero(~ok)[:5].tolist()
        raise ValueError(f"gyro.train: {int((~ok).sum())} rows with invalid colour/age/Prot, first at {bad}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.tensor(np.stack([bprp0_mag, log_age], axis=1), dtype=torch.float32)
    y = torch.tensor(np.log10(prot_day), dtype=torch.float32)
    model = GyroMDN(members=members, colour_range=common.input_range(bprp0_mag), **hparams)
    model.x_mean.copy_(x.mean(0))
    model.x_std.copy_(x.std(0) + 1e-6)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    jitter = torch.tensor([0.0, age_jitter_dex])
    weight = torch.ones(members, len(y))
    if population is not None:
        _, inverse, counts = np.unique(np.asarray(population), return_inverse=True, return_counts=True)
        weight *= torch.tensor(counts[inverse] ** -0.5, dtype=torch.float32)

    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        idx = torch.multinomial(weight, batch_size, replacement=True, generator=gen)  # [members, batch]
        xj = x[idx] + jitter * torch.randn((*idx.shape, 2), generator=gen)
        loss = -model.member_log_density(xj, y[idx]).mean()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        nll = float(-model.log_density(x, y).mean())
    return model, dict(n_train=int(len(y)), train_nll=nll, steps=steps, members=members, seed=seed)


@torch.inference_mode()
def log_likelihood_grid(model: GyroMDN, bprp0_mag: np.ndarray, prot_day: np.ndarray,
                        grid: np.ndarray = LOG_AGE_GRID, chunk: int = 256) -> np.ndarray:
    """log p(Prot | colour, age) for every star and grid age: ``[N, G]`` float64 (``chunk`` stars at a time)."""
    c = torch.as_tensor(np.asarray(bprp0_mag), dtype=torch.float32)
    lp = torch.as_tensor(np.log10(np.asarray(prot_day, dtype=np.float64)), dtype=torch.float32)
    g = torch.as_tensor(np.asarray(grid), dtype=torch.float32)
    out = np.empty((len(c), len(g)))
    for i in range(0, len(c), chunk):
        cc, ll = c[i:i + chunk], lp[i:i + chunk]
        n, m = len(cc), len(g)
        x = torch.stack([cc[:, None].expand(n, m), g[None, :].expand(n, m)], dim=2).reshape(-1, 2)
        out[i:i + n] = model.log_density(x, ll[:, None].expand(n, m).reshape(-1)).reshape(n, m).double().numpy()
    return out


def summarize(log_post: np.ndarray, grid: np.ndarray = LOG_AGE_GRID) -> dict[str, np.ndarray]:
    """Median and 68% interval (16th, 84th percentile) of posteriors ``[N, G]`` on the grid (log10 yr).

    ``log_post`` is an unnormalised log posterior (flat prior: the log-likelihood itself).
    Percentiles are interpolated on the cumulative distribution.
    """
    lp = np.atleast_2d(log_post)
    p = np.exp(lp - lp.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    out = {}
    for name, q in (("log_age_p16", 0.16), ("log_age_median", 0.5), ("log_age_p84", 0.84)):
        out[name] = np.array([np.interp(q, row, grid) for row in cdf])
    return out


def star_ages(model: GyroMDN, bprp0_mag: np.ndarray, prot_day: np.ndarray,
              grid: np.ndarray = LOG_AGE_GRID) -> dict[str, np.ndarray]:
    """Each star's age posterior summary: ``log_age_median``, ``log_age_p16``, ``log_age_p84`` ``[N]``,
    and ``refused``: why a star's colour is outside the training stars' (:func:`ingest.ml.common.outside_range`)."""
    return {**summarize(log_likelihood_grid(model, bprp0_mag, prot_day, grid), grid),
            "refused": common.outside_range(bprp0_mag, model.hparams.get("colour_range"), ("BP-RP_0",))}


def cluster_age(model: GyroMDN, bprp0_mag: np.ndarray, prot_day: np.ndarray,
                grid: np.ndarray = LOG_AGE_GRID) -> dict[str, float]:
    """One population's age from all its members: the product of member likelihoods on the grid."""
    total = log_likelihood_grid(model, bprp0_mag, prot_day, grid).sum(axis=0)
    return {k: float(v[0]) for k, v in summarize(total[None, :], grid).items()}


def population_age(model: GyroMDN, bprp0_mag: np.ndarray, prot_day: np.ndarray, log_age_true: float) -> dict:
    """A population's age from its members (:func:`cluster_age`) beside its known age: ``n_members``,
    ``log_age_true``, the summary and ``delta_dex`` (estimate minus truth)."""
    est = cluster_age(model, bprp0_mag, prot_day)
    return dict(n_members=len(prot_day), log_age_true=log_age_true, **est,
                delta_dex=est["log_age_median"] - log_age_true)


def leave_one_cluster_out(bprp0_mag: np.ndarray, log_age: np.ndarray, prot_day: np.ndarray,
                          cluster: np.ndarray, population: np.ndarray, *, seed: int = 0,
                          **train_kwargs: Any) -> dict[str, dict]:
    """Hold out each ``cluster`` in turn, train on the rest, and age each of its populations.

    A cluster may hold several populations of different ages (Sco-Cen's subgroups); all of them
    leave the training set together. Returns ``{population: {cluster, n_members, log_age_true,
    log_age_median, log_age_p16, log_age_p84, delta_dex}}``.
    """
    cluster, population = np.asarray(cluster), np.asarray(population)
    out: dict[str, dict] = {}
    for name in sorted(set(cluster.tolist())):
        held = cluster == name
        model, _ = train(bprp0_mag[~held], log_age[~held], prot_day[~held], seed=seed,
                         population=population[~held], **train_kwargs)
        for pop in sorted(set(population[held].tolist())):
            members = held & (population == pop)
            out[pop] = dict(cluster=name, **population_age(model, bprp0_mag[members], prot_day[members],
                                                           float(np.median(log_age[members]))))
    return out


to_bytes = common.to_bytes


def load(path: str, map_location: str | torch.device | None = None) -> GyroMDN:
    """A :class:`GyroMDN` from a file of :func:`to_bytes` output, in eval mode."""
    return common.load(GyroMDN, path, map_location)
