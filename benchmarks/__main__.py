"""Run every benchmark: python -m benchmarks [NAME ...].

One that fails (an exception, or a SystemExit with a message) is reported with its traceback and
the rest still run; the exit status is then 1, and the last line names those that failed. Each
starts from the environment the command was given: the catalog one chose (HEALCAT_HOME, set by
default) is not the next one's.
"""

import os
import sys
import traceback

from benchmarks import (bench_cone, bench_floats, bench_inference, bench_ingest, bench_mixture, bench_releases, bench_scs,
                        bench_similarity, bench_workers, bench_xmatch)

BENCHMARKS = {"cone": bench_cone.main, "regions": bench_cone.regions, "scs": bench_scs.main,
              "similarity": bench_similarity.main, "xmatch": bench_xmatch.main, "ingest": bench_ingest.main,
              "workers": bench_workers.main, "inference": bench_inference.main, "releases": bench_releases.main,
              "diff": bench_releases.diff, "mixture": bench_mixture.main,
              "floats": bench_floats.main}


def run(names: list[str]) -> list[str]:
    """Run the benchmarks named, in order; returns those that failed."""
    failed = []
    for name in names:
        given = dict(os.environ)
        try:
            BENCHMARKS[name]()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - one benchmark's failure must not stop the others
            if isinstance(exc, SystemExit) and exc.code in (None, 0):
                continue
            traceback.print_exc()
            print(f"benchmark {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
        finally:
            os.environ.clear()
            os.environ.update(given)
    return failed


if __name__ == "__main__":
    unknown = [name for name in sys.argv[1:] if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"no benchmark {', '.join(unknown)}; the benchmarks: {', '.join(BENCHMARKS)}")
    if failed := run(sys.argv[1:] or list(BENCHMARKS)):
        sys.exit(f"benchmarks failed: {', '.join(failed)}")
