"""A float32 column's numbers as the decimals a text format writes (``ingest.cells.shortest_decimals``) against
numpy's own route to the same numbers (each float32 to its shortest ``str``, parsed back as a float64).

Inputs: the SDSS DR14 sample's positions, ugriz magnitudes and redshifts (``../shared/data``), as float32 (as a FITS
'E' column holds them), tiled to ``BENCH_FLOATS_N`` numbers (default 1,000,000). Timed, alternately for
``BENCH_FLOATS_ROUNDS`` rounds (default 3): the vectorized bisection over significant digits, and
``values.astype(str).astype(float64)``. Checked after every pair: the same float64s, bit for bit. Printed: the
median and range of each, numbers per second, and baseline / current.

    python -m benchmarks floats
"""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np

from catalog.settings import from_env
from ingest import cells
from ingest.mapping import data_dir

N = from_env("BENCH_FLOATS_N", 1, int, "numbers") or 1_000_000
ROUNDS = from_env("BENCH_FLOATS_ROUNDS", 1, int, "rounds") or 3
COLUMNS = ("ra", "dec", "u", "g", "r", "i", "z", "redshift")


def _inputs() -> np.ndarray:
    from astropy.table import Table

    (path,) = (data_dir() / "sdss_dr14_skyserver_10k").glob("*.csv")
    table = Table.read(path, format="ascii.csv")
    values = np.concatenate([np.asarray(table[c], dtype=np.float32) for c in COLUMNS])
    return np.resize(values, N)


def main() -> None:
    values = _inputs()
    widened = values.astype(np.float64)
    timings: dict[str, list[float]] = {"current": [], "baseline": []}
    for _ in range(ROUNDS):
        start = time.perf_counter()
        current = cells.shortest_decimals(widened, values.dtype)
        timings["current"].append(time.perf_counter() - start)
        start = time.perf_counter()
        baseline = values.astype(str).astype(np.float64)
        timings["baseline"].append(time.perf_counter() - start)
        if not np.array_equal(current.view(np.int64), baseline.view(np.int64)):
            raise SystemExit(f"shortest_decimals differs from str at {np.flatnonzero(current != baseline)[:5]}")
    print(f"floats: {N:,} float32 numbers (SDSS DR14 {', '.join(COLUMNS)}), {ROUNDS} rounds; "
          f"{platform.machine()}, numpy {np.__version__}")
    for name, label in (("current", "shortest_decimals (vectorized)"), ("baseline", "astype(str).astype(float64)")):
        t = timings[name]
        print(f"  {label}: median {statistics.median(t):.3f} s ({min(t):.3f}-{max(t):.3f}), "
              f"{N / statistics.median(t):,.0f} numbers/s")
    print(f"  baseline / current: {statistics.median(timings['baseline']) / statistics.median(timings['current']):.2f}x")
