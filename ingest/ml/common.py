"""What every model in ``ingest/ml`` shares: the seeded split, early-stopped training, the device,
TorchScript for inference, deterministic weight bytes."""
from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

#: A magnitude outside (MAG_MIN, MAG_MAX) is a catalogue's sentinel (SDSS -9999, 99), not a measurement.
MAG_MIN, MAG_MAX = 0.0, 40.0


def split_indices(n: int, seed: int, test_fraction: float = 0.2,
                  val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(test, validation, fit) row indices: a seeded permutation; ``test_fraction`` held out, then
    ``val_fraction`` of the rest for early stopping."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * (n - n_test)))
    return perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]


class EarlyStopping:
    """Keeps a model's weights at its best validation loss and says when ``patience`` epochs have
    passed without a better one."""

    def __init__(self, model: nn.Module, patience: int) -> None:
        self.model, self.patience = model, patience
        self.best, self.best_state, self.since = float("inf"), None, 0

    def stop(self, val_loss: float) -> bool:
        """Record one epoch's validation loss; True when training should stop."""
        if val_loss < self.best:
            self.best, self.since = val_loss, 0
            self.best_state = {k: t.detach().clone() for k, t in self.model.state_dict().items()}
        else:
            self.since += 1
        return self.since >= self.patience

    def restore(self) -> float:
        """Load the best weights, leave the model in eval mode; returns the best validation loss."""
        if self.best_state is None:
            raise RuntimeError("the validation loss was never finite; check the inputs")
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        return self.best


def fit_early_stopping(model: nn.Module, opt: torch.optim.Optimizer,
                       loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
                       fit: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor], *,
                       epochs: int, batch_size: int, patience: int, seed: int) -> tuple[float, int]:
    """Seeded minibatch training under a cosine learning-rate schedule, stopped ``patience`` epochs
    after the best validation loss, whose weights are kept (the model is left in eval mode).

    ``loss(model, x, y)`` is a scalar tensor; ``fit`` and ``val`` are (x, y) on the model's device.
    Returns the best validation loss and the number of epochs run.
    """
    (xf, yf), (xv, yv) = fit, val
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    stopper, epoch = EarlyStopping(model, patience), 0
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in torch.randperm(len(xf), generator=gen).to(xf.device).split(batch_size):
            opt.zero_grad(set_to_none=True)
            loss(model, xf[idx], yf[idx]).backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            v = float(loss(model, xv, yv))
        if stopper.stop(v):
            break
    return stopper.restore(), epoch


def best_device() -> torch.device:
    """``cuda`` if available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def inference_device(device: str | torch.device | None) -> torch.device:
    """``device``, else :func:`best_device`."""
    return torch.device(device) if device is not None else best_device()


def mixed_precision(dev: torch.device):
    """bfloat16 autocast on CUDA (tensor cores, half the memory traffic); on the CPU a no-op:
    float32 there is as fast for these small networks and keeps results bit-reproducible."""
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")


_scripting = threading.Lock()


def scripted(model: nn.Module) -> nn.Module:
    """``model`` compiled with TorchScript (``torch.jit.script``), once per model object; it shares
    the model's parameters and buffers (and follows its ``.to()``). Its ``forward`` and exported
    methods compute what the eager ones do, operation for operation.

    A call to a scripted method runs its whole graph without Python's interpreter lock. Eager
    PyTorch releases the lock around each tensor operation and must take it back after, so
    beside threads doing Python work (a run's lanes fetching rows and encoding COPY data) every
    one of a batch's operations may wait for the lock: the photo-z model's ~300 operations per
    batch of 8,192 took 1.7x as long beside a thread holding the lock half the time and 10x
    beside one holding it always; scripted, 1.0x (benchmarks/README.md, inference).
    TorchScript is deprecated in torch 2.x (its warning is silenced here); where scripting
    fails, the eager model, with a warning saying why.
    """
    with _scripting:
        if (done := model.__dict__.get("_scripted")) is None:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
                    done = torch.jit.script(model)
            except Exception as exc:  # noqa: BLE001 - a torch without TorchScript, or a model it cannot compile
                warnings.warn(f"{type(model).__name__} runs eager, not scripted, and slower beside other "
                              f"Python threads: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
                              RuntimeWarning, stacklevel=2)
                done = model
            # in the instance's __dict__, not as a submodule: not in its state_dict, gone with it
            object.__setattr__(model, "_scripted", done)
        return done


def to_bytes(model: nn.Module) -> bytes:
    """state_dict + constructor hyperparameters (``model.hparams``) as a torch.save file's bytes.

    Written to memory, so the archive's internal name is fixed and the same weights always give
    the same bytes (and sha256).
    """
    state = {k: t.detach().cpu() for k, t in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"hparams": dict(model.hparams), "state_dict": state}, buffer)
    return buffer.getvalue()


def load(cls: type[nn.Module], path: str, map_location: str | torch.device | None = None) -> nn.Module:
    """A ``cls`` from a file of :func:`to_bytes` output (``weights_only=True``), in eval mode; a
    file that is not one is a ValueError saying what is wrong with it."""
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch's errors for a file it cannot read are of many kinds
        raise ValueError(f"not a torch weights file (torch.load: {type(exc).__name__})") from None
    missing = [k for k in ("hparams", "state_dict") if not isinstance(blob, dict) or k not in blob]
    if missing:
        raise ValueError(f"a torch file without {' and '.join(map(repr, missing))} (healcat's weights files "
                         "hold 'hparams' and 'state_dict')")
    try:
        model = cls(**blob["hparams"])
    except TypeError as exc:
        raise ValueError(f"its hparams do not fit {cls.__name__}: {exc}") from None
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:  # torch's first line says only "Error(s) in loading state_dict for ...:"
        detail = "; ".join(line.strip() for line in str(exc).strip().splitlines()[1:])
        raise ValueError(f"its state_dict does not fit {cls.__name__}: {detail}") from None
    return model.to(map_location or "cpu").eval()


#: The box of accepted inputs: each column's training values between these percentiles, widened on
#: each side by BOX_PAD of that width. Percentiles, not min/max: a few outlier training rows (a bad
#: band) stretched photo-z's r-i down to -3.33 and gyro's colours to -2.18 with one -1.54 star.
BOX_PERCENTILES = (0.1, 99.9)
BOX_PAD = 0.1
#: The pad of a box of several columns followed by the joint check (ugriz's r and four colours): a
#: row is outside if any one column is, so five columns' 0.1% tails refuse more. With 0.1 the box and
#: the joint check refused 0.1-0.5% of SDSS's held-out galaxies over seeds 0-5; with 0.2, 0-0.3%.
BOX_PAD_JOINT = 0.2
#: The joint check: a row's Mahalanobis distance from the training rows (per group, e.g. class) may
#: be at most DISTANCE_MARGIN x the training rows' DISTANCE_PERCENTILE-th percentile of theirs.
DISTANCE_PERCENTILE = 99.9
DISTANCE_MARGIN = 2.0


def input_range(x: np.ndarray, margin: float = BOX_PAD,
                percentiles: tuple[float, float] = BOX_PERCENTILES) -> list[list[float]]:
    """Each column's ``[lo, hi]`` over training inputs ``x`` ``[N, F]`` (NaN ignored): its
    ``percentiles``, widened on each side by ``margin`` of their distance: the region the model has
    seen, kept with its weights (a constructor argument, so in its ``hparams``) for :func:`outside_range`."""
    lo, hi = _percentile_box(x, percentiles)
    pad = margin * (hi - lo)
    return [[float(a), float(b)] for a, b in zip(lo - pad, hi + pad)]


def _percentile_box(x: np.ndarray, percentiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return tuple(np.nanpercentile(x, percentiles, axis=0))


def input_distribution(x: np.ndarray, groups: np.ndarray | None = None, *,
                       percentile: float = DISTANCE_PERCENTILE, margin: float = DISTANCE_MARGIN) -> dict | None:
    """The training inputs' joint distribution, for :func:`outside_distribution`: a Gaussian (mean
    and whitening matrix, the inverse Cholesky factor of the covariance) per group of rows of ``x``
    ``[N, F]`` (``groups`` ``[N]``, e.g. the classes: one Gaussian each, as stars, galaxies and QSOs
    lie apart; None: one for all), each with its ``limit``: ``margin`` x the ``percentile``-th
    percentile of its rows' Mahalanobis distances. Each is fitted on its rows inside the box of
    :data:`BOX_PERCENTILES` (the outliers the box excludes would widen it). Plain lists and floats,
    kept with the weights like :func:`input_range`; a group with fewer than 2 (F + 1) such rows has
    none (None where no group has one)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    lo, hi = _percentile_box(x, BOX_PERCENTILES)
    core = np.all((x >= lo) & (x <= hi), axis=1)
    groups = np.zeros(len(x), dtype=np.int64) if groups is None else np.asarray(groups)
    components = []
    for name in np.unique(groups).tolist():
        rows = x[core & (groups == name)]
        if len(rows) < 2 * (x.shape[1] + 1):
            continue
        mean = rows.mean(0)
        cov = np.cov(rows, rowvar=False).reshape(x.shape[1], x.shape[1])
        cov[np.diag_indices_from(cov)] += 1e-9 * np.diag(cov) + 1e-12  # a constant column: still invertible
        whiten = np.linalg.inv(np.linalg.cholesky(cov))
        limit = margin * float(np.percentile(_distances(rows, mean, whiten), percentile))
        components.append(dict(group=name, mean=mean.tolist(), whiten=whiten.tolist(), limit=limit))
    return dict(percentile=percentile, margin=margin, components=components) if components else None


def _distances(x: np.ndarray, mean: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Mahalanobis distances ``[N]`` of rows ``x`` from a Gaussian given by its mean and whitening matrix."""
    return np.sqrt(np.square((x - mean) @ whiten.T).sum(1))


def outside_range(x: np.ndarray, ranges: list[list[float]] | None, names: tuple[str, ...]) -> np.ndarray | None:
    """Why each row of ``x`` ``[N, F]`` is outside ``ranges`` (:func:`input_range`): the first column
    that is, named by ``names``, with its value and the range; None where every column is inside
    (or NaN, which the caller's checks handle). None for the whole batch when all rows are inside
    or the model has no ranges (weights trained before they were kept)."""
    if ranges is None or len(x) == 0:
        return None
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    lo, hi = np.asarray(ranges, dtype=np.float64).T
    out = (x < lo) | (x > hi)
    rows = np.flatnonzero(out.any(axis=1))
    if not len(rows):
        return None
    why = np.full(len(x), None, dtype=object)
    for i in rows:
        j = int(np.argmax(out[i]))
        why[i] = (f"{names[j]} = {x[i, j]:.6g} is outside what the model was trained on "
                  f"({lo[j]:.6g} to {hi[j]:.6g}): no extrapolation")
    return why


def outside_distribution(x: np.ndarray, distribution: dict | None, names: tuple[str, ...]) -> np.ndarray | None:
    """Why each row of ``x`` ``[N, F]`` is unlike the training rows taken together
    (:func:`input_distribution`): farther from every group's Gaussian than its limit, naming the
    nearest group (in units of its limit), the distance and the limit; None where it is near one.
    None for the whole batch when all rows are, or the model keeps no distribution (weights trained
    before it was kept: their per-column :func:`outside_range` alone)."""
    if distribution is None or len(x) == 0:
        return None
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    comps = distribution["components"]
    d = np.stack([_distances(x, np.asarray(c["mean"]), np.asarray(c["whiten"])) for c in comps], axis=1)
    limits = np.array([c["limit"] for c in comps])
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero(np.all(d > limits, axis=1))  # NaN: not refused here (the caller's checks)
    if not len(rows):
        return None
    why = np.full(len(x), None, dtype=object)
    groups = len(comps) > 1
    for i in rows:
        k = int(np.argmin(d[i] / limits))
        whose = f"the nearest, {comps[k]['group']}'s" if groups else "the training rows'"
        why[i] = (f"{', '.join(names)} = {', '.join(f'{v:.4g}' for v in x[i])} together are unlike what the model "
                  f"was trained on: Mahalanobis distance {d[i, k]:.3g} from {whose} mean, beyond their "
                  f"{distribution['percentile']:g}th percentile x {distribution['margin']:g} = {limits[k]:.3g}: "
                  f"no extrapolation")
    return why


def outside_training(x: np.ndarray, hparams: dict, names: tuple[str, ...]) -> np.ndarray | None:
    """Why each row of ``x`` ``[N, F]`` is outside what a model with ``hparams`` was trained on: a
    column outside ``input_range`` (:func:`outside_range`), else the row unlike
    ``input_distribution`` (:func:`outside_distribution`); None where neither, or for the batch."""
    return first_reason(outside_range(x, hparams.get("input_range"), names),
                        outside_distribution(x, hparams.get("input_distribution"), names))


def first_reason(*reasons: np.ndarray | None) -> np.ndarray | None:
    """Per row, the first of several reasons arrays (``[N]`` object, None where a row has none; a
    whole array None where no row has one) that gives one; None when none of them does."""
    given = [r for r in reasons if r is not None]
    if not given:
        return None
    why = given[0].copy()
    for r in given[1:]:
        why = np.where(np.equal(why, None), r, why)
    return why
