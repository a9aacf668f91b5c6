"""Run every benchmark: python -m benchmarks [NAME ...]."""

import sys

from benchmarks import bench_cone, bench_xmatch

BENCHMARKS = {"cone": bench_cone.main, "xmatch": bench_xmatch.main}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHMARKS):
        BENCHMARKS[name]()
