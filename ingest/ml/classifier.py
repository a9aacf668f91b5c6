"""Object classifier (star / galaxy / QSO) over SDSS ugriz magnitudes: an MLP with a softmax head.

Inputs are the same features as the photo-z model (:func:`ingest.ml.photoz.features`: r and the
four adjacent colours, mag). Classes are integers ``0 .. n_classes-1``; the caller keeps the
names. Knows torch and numpy only.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from . import common
from .common import fit_early_stopping, inference_device, mixed_precision, split_indices


#: The joint check's margin (:func:`ingest.ml.common.input_distribution`): tighter than photo-z's, as
#: here it costs nothing held out. Over seeds 0-2 the held-out objects refused were the box's alone
#: (5, 5 and 9 of 2,000) at 1.5 as at 2; of 200,000 draws uniform in photo-z's old min/max box, of
#: the 4,700-5,700 inside this box the joint check refused 540-620 at 1.5 and 1-5 at 2.
DISTANCE_MARGIN = 1.5


class ObjectClassifier(nn.Module):
    """Standardised features -> MLP -> class logits ``[N, n_classes]``."""

    def __init__(self, n_features: int = 5, n_classes: int = 3, hidden: int = 128, depth: int = 3,
                 input_range: list[list[float]] | None = None, input_distribution: dict | None = None) -> None:
        super().__init__()
        # input_range, input_distribution: the training features' box and joint distribution, one
        # Gaussian per class (common.input_range, common.input_distribution), for common.outside_training
        self.hparams = dict(n_features=n_features, n_classes=n_classes, hidden=hidden, depth=depth,
                            input_range=input_range, input_distribution=input_distribution)
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.x_mean) / self.x_std).float()


def train(x: np.ndarray, y: np.ndarray, *, n_classes: int, seed: int = 0, epochs: int = 300,
          batch_size: int = 256, lr: float = 2e-3, weight_decay: float = 1e-4, patience: int = 40,
          device: str | torch.device = "cpu", class_names: Sequence[str] | None = None,
          **hparams: int) -> tuple[ObjectClassifier, dict[str, Any]]:
    """Fit on features ``[N, F]`` and integer classes ``[N]``; the same seeded split as photo-z.
    The guard (``input_range``, ``input_distribution``: a Gaussian per class, named by ``class_names``)
    is fitted on the rows it trains on.

    Returns the model (eval mode) and a report with the held-out objects it refuses
    (:func:`ingest.ml.common.outside_training`) and, over the rest, accuracy, the per-class recall and
    precision, and the confusion matrix (rows: true class, columns: predicted).
    """
    torch.manual_seed(seed)
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    test, val, fit = split_indices(len(y), seed)
    dev = torch.device(device)
    names = np.asarray(class_names if class_names is not None else range(n_classes))
    seen = np.delete(np.arange(len(y)), test)
    model = ObjectClassifier(n_features=x.shape[1], n_classes=n_classes,
                             input_range=common.input_range(x[seen], common.BOX_PAD_JOINT),
                             input_distribution=common.input_distribution(x[seen], names[y[seen]],
                                                                          margin=DISTANCE_MARGIN), **hparams)
    model.x_mean.copy_(torch.from_numpy(x[fit].mean(0)))
    model.x_std.copy_(torch.from_numpy(x[fit].std(0) + 1e-6))
    model.to(dev)
    xf, yf = torch.from_numpy(x[fit]).to(dev), torch.from_numpy(y[fit]).to(dev)
    xv, yv = torch.from_numpy(x[val]).to(dev), torch.from_numpy(y[val]).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    best, epoch = fit_early_stopping(model, opt, lambda m, xb, yb: loss_fn(m(xb), yb), (xf, yf), (xv, yv),
                                     epochs=epochs, batch_size=batch_size, patience=patience, seed=seed)
    why = common.outside_training(x[test], model.hparams, tuple(f"feature {j}" for j in range(x.shape[1])))
    answered = test if why is None else test[np.equal(why, None)]
    pred = predict(model, x[answered], device=dev).argmax(1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y[answered], pred), 1)
    report = dict(
        n_train=len(fit), n_val=len(val), n_test=len(test), n_test_refused=len(test) - len(answered),
        n_test_refused_by_class=np.bincount(y[np.setdiff1d(test, answered)], minlength=n_classes).tolist(),
        accuracy=float(np.trace(confusion) / max(len(answered), 1)),
        recall=(np.diag(confusion) / np.maximum(confusion.sum(1), 1)).tolist(),
        precision=(np.diag(confusion) / np.maximum(confusion.sum(0), 1)).tolist(),
        confusion=confusion.tolist(), val_loss=best, seed=seed, epochs=epochs, epochs_run=epoch,
    )
    return model, report


@torch.inference_mode()
def predict(model: ObjectClassifier, x: np.ndarray, *, batch_size: int = 65536,
            device: str | torch.device | None = None) -> np.ndarray:
    """Class probabilities ``[N, n_classes]`` float32 (bfloat16 autocast on CUDA only)."""
    dev = inference_device(device)
    model.to(dev).eval()
    net = common.scripted(model) if dev.type == "cpu" else model  # on CUDA, eager in bfloat16 autocast
    parts = []
    for xb in torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).split(batch_size):
        xb = xb.to(dev)
        with mixed_precision(dev):
            logits = net(xb)
        parts.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(parts).numpy() if parts else np.zeros((0, model.hparams["n_classes"]), np.float32)


def to_bytes(model: ObjectClassifier) -> bytes:
    """Deterministic weight bytes (:func:`ingest.ml.common.to_bytes`)."""
    return common.to_bytes(model)


def load(path: str, map_location: str | torch.device | None = None) -> ObjectClassifier:
    return common.load(ObjectClassifier, path, map_location)
