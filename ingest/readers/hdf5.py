"""HDF5 tables (h5py): a compound dataset, or a pandas "fixed"-format frame (``block*_items`` /
``block*_values``), read ``chunk_rows`` rows at a time."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from astropy.table import Table

from catalog.errors import IngestError
from ingest.readers import Chunks, ReadOptions, RowCount, register


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise IngestError(f"{path}: not an HDF5 file: {exc}") from exc


def _table(fh: h5py.File, path: Path, options: ReadOptions):
    """(node, pandas blocks or None for a compound dataset, row count) of the table the options name."""
    node = fh.get(options.dataset)
    if node is None:
        raise IngestError(f"{path}: no dataset or group {options.dataset!r} (top level: {', '.join(fh)})")
    if isinstance(node, h5py.Dataset) and node.dtype.names:
        return node, None, node.shape[0]
    if isinstance(node, h5py.Group) and "block0_values" in node:
        blocks = _pandas_blocks(node, path)
        return node, blocks, blocks[0][1].shape[0]
    raise IngestError(f"{path}: {options.dataset!r} is neither a table (compound dataset) "
                      "nor a pandas fixed-format frame")


def count_hdf5(path: Path, options: ReadOptions) -> RowCount:
    with _open(path) as fh:
        return RowCount(_table(fh, path, options)[2])


@register("hdf5", count=count_hdf5)
def read_hdf5(path: Path, options: ReadOptions) -> Chunks:
    with _open(path) as fh:
        node, blocks, n_rows = _table(fh, path, options)
        for first in range(0, n_rows, options.chunk_rows):
            stop = min(first + options.chunk_rows, n_rows)
            if blocks is None:
                table = Table(node[first:stop])
            else:
                table = Table()
                for names, values in blocks:
                    part = values[first:stop]
                    for j, name in enumerate(names):
                        table[name] = part[:, j]
            yield first + 1, table


def _pandas_blocks(group: h5py.Group, path: Path) -> list[tuple[list[str], h5py.Dataset]]:
    blocks, k = [], 0
    while f"block{k}_values" in group:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(group[f"block{k}_items"])]
        values = group[f"block{k}_values"]
        if values.ndim != 2 or values.shape[1] != len(names):
            raise IngestError(f"{path}: pandas block {k} has shape {values.shape} for {len(names)} columns")
        blocks.append((names, values))
        k += 1
    if len({b[1].shape[0] for b in blocks}) != 1:
        raise IngestError(f"{path}: pandas blocks of different lengths")
    return blocks
