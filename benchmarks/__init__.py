"""healcat benchmarks: `make bench` (not part of CI). Each prints figures and a same-run baseline."""
