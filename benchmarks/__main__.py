"""Run every benchmark: python -m benchmarks [NAME ...]."""

import sys

from benchmarks import bench_cone, bench_similarity

BENCHMARKS = {"cone": bench_cone.main, "similarity": bench_similarity.main}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHMARKS):
        BENCHMARKS[name]()
