"""Run every benchmark: python -m benchmarks [NAME ...]."""

import sys

from benchmarks import (bench_cone, bench_inference, bench_ingest, bench_releases, bench_similarity, bench_workers,
                        bench_xmatch)

BENCHMARKS = {"cone": bench_cone.main, "regions": bench_cone.regions, "similarity": bench_similarity.main,
              "xmatch": bench_xmatch.main, "ingest": bench_ingest.main, "workers": bench_workers.main,
              "inference": bench_inference.main, "releases": bench_releases.main}

if __name__ == "__main__":
    unknown = [name for name in sys.argv[1:] if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"no benchmark {', '.join(unknown)}; the benchmarks: {', '.join(BENCHMARKS)}")
    for name in sys.argv[1:] or list(BENCHMARKS):
        BENCHMARKS[name]()
