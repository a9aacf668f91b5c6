"""What every model in ``ingest/ml`` shares: the seeded split, the device, deterministic weight bytes."""
from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn


def split_indices(n: int, seed: int, test_fraction: float = 0.2,
                  val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(test, validation, fit) row indices: a seeded permutation; ``test_fraction`` held out, then
    ``val_fraction`` of the rest for early stopping."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * (n - n_test)))
    return perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]


def best_device() -> torch.device:
    """``cuda`` if available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    """A ``cls`` from a file of :func:`to_bytes` output (``weights_only=True``), in eval mode."""
    blob = torch.load(path, map_location=map_location, weights_only=True)
    model = cls(**blob["hparams"])
    model.load_state_dict(blob["state_dict"])
    return model.to(map_location or "cpu").eval()
