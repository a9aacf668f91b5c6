"""Object classifier (star / galaxy / QSO) over SDSS ugriz magnitudes: an MLP with a softmax head.

Inputs are the same features as the photo-z model (:func:`ingest.ml.photoz.features`: r and the
four adjacent colours, mag). Classes are integers ``0 .. n_classes-1``; the caller keeps the
names. Knows torch and numpy only.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from . import common
from .common import fit_early_stopping, inference_device, mixed_precision, split_indices


class ObjectClassifier(nn.Module):
    """Standardised features -> MLP -> class logits ``[N, n_classes]``."""

    def __init__(self, n_features: int = 5, n_classes: int = 3, hidden: int = 128, depth: int = 3,
                 input_range: list[list[float]] | None = None) -> None:
        super().__init__()
        # input_range: the training features' ranges (common.input_range), for common.outside_range
        self.hparams = dict(n_features=n_features, n_classes=n_classes, hidden=hidden, depth=depth,
                            input_range=input_range)
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
          device: str | torch.device = "cpu", **hparams: int) -> tuple[ObjectClassifier, dict[str, Any]]:
    """Fit on features ``[N, F]`` and integer classes ``[N]``; the same seeded split as photo-z.

    Returns the model (eval mode) and a report with held-out accuracy, the per-class recall and
    precision, and the confusion matrix (rows: true class, columns: predicted).
    """
    torch.manual_seed(seed)
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    test, val, fit = split_indices(len(y), seed)
    dev = torch.device(device)
    model = ObjectClassifier(n_features=x.shape[1], n_classes=n_classes, input_range=common.input_range(x),
                             **hparams)
    model.x_mean.copy_(torch.from_numpy(x[fit].mean(0)))
    model.x_std.copy_(torch.from_numpy(x[fit].std(0) + 1e-6))
    model.to(dev)
    xf, yf = torch.from_numpy(x[fit]).to(dev), torch.from_numpy(y[fit]).to(dev)
    xv, yv = torch.from_numpy(x[val]).to(dev), torch.from_numpy(y[val]).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    best, epoch = fit_early_stopping(model, opt, lambda m, xb, yb: loss_fn(m(xb), yb), (xf, yf), (xv, yv),
                                     epochs=epochs, batch_size=batch_size, patience=patience, seed=seed)
    pred = predict(model, x[test], device=dev).argmax(1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y[test], pred), 1)
    report = dict(
        n_train=len(fit), n_val=len(val), n_test=len(test), accuracy=float(np.trace(confusion) / len(test)),
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
