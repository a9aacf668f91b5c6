"""Run every benchmark: python -m benchmarks [NAME ...]."""

import sys

from benchmarks import bench_cone

BENCHMARKS = {"cone": bench_cone.main, "regions": bench_cone.regions}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHMARKS):
        BENCHMARKS[name]()
