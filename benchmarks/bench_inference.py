"""Inference throughput end to end against the model's pure forward pass, on 1 million sources.

The sources are synthetic: each is a real SDSS DR14 spectroscopic galaxy's ugriz (from
`sdss/dr14-skyserver-10k`), resampled with replacement and perturbed by N(0, 0.03 mag) noise per
band, with no position (shard -1) and no spectrum, in the release `bench/sdss-resampled-1m`.
End to end is `run_model` on the photo-z model (timed by `RunResult.run_seconds`): stream the input
query (photometry pivot, class join) with server-side cursors, check the magnitudes, infer, and COPY
the PDFs (prediction) and the 16-d embeddings back, in as many lanes (source_id ranges, each with
a reader and a writer connection) as ``BENCH_INFERENCE_LANES`` says (a comma-separated list: one run
each, e.g. ``1,2,4,8``; default 1 and `default_lanes()` of this machine), each with as many batches
queued ahead of the model and behind it as ``BENCH_INFERENCE_QUEUED`` says (a list too, e.g.
``1,3,1,3``: one run per lanes and depth; default ``ingest.inference.QUEUED``), and with as many torch
threads for the model as ``BENCH_INFERENCE_THREADS`` says (a list too, e.g. ``1,2,1,2``; default 1:
``HEALCAT_INFER_THREADS`` in the run, the same count in its forward baseline). The HNSW index over a new
version's embeddings is built after the last run (CONCURRENTLY, readers unaffected) and reported on
its own. Before them, the object classifier's run (which photo-z requires) is timed and reported on
its own. The baseline is the same photo-z model's `predict` on the same inputs, in memory, in the
same batches, in the same process, on the run's torch threads (the median of three passes); each
run's predictions must be its outputs (value and uncertainty within ``TOLERANCE``, the same sources;
those it refuses or gives no finite output for skipped), or the benchmark fails.
Beside it, what other threads' Python work costs the model: the forward on (up to) 30 batches beside a
thread holding the interpreter lock half the time, as runs call it (TorchScript on the CPU) and
eager (where the model did not script, that is said and only eager is timed); and in each run, the
model's own time (its ``predict`` calls) against its forward alone.

The CPU seconds the run spent, in this process (all its threads) and in the local server's
processes (from /proc: live backends, plus what the postmaster reaped), give the ceiling that the
cores put on the ratio: the run cannot take less wall time than its CPU seconds over the cores,
nor than the busiest server process's (the reader's or the writer's backend: one core each).
``BENCH_INFERENCE_DEVICE`` (``cpu`` or ``cuda``) chooses the model's device; default CUDA where
there is one.
Like the benchmarks on the 10M sky, the embedded server gets shared_buffers 2GB
(`sky10m.serve_from_memory`), as a server sized for its catalog would have.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import sqlalchemy as sa
import torch

from benchmarks import sky10m
from catalog.errors import ConfigurationError
from catalog.settings import from_env, number_at_least
from ingest.ml import common
from ingest.tasks import torch_threads

N_SOURCES = from_env("BENCH_INFERENCE_N", 1, int, "sources") or 1_000_000
#: The model's device, end to end and in the baseline: ``cpu`` or ``cuda`` (default: CUDA where there is one).
DEVICE = os.environ.get("BENCH_INFERENCE_DEVICE")
#: ``0``: no HNSW index build after the run (it is not in end to end; on 10M vectors it outgrows
#: the build's memory and takes hours on disk).
BUILD_INDEX = os.environ.get("BENCH_INFERENCE_INDEX", "1") != "0"
#: The release of N_SOURCES synthetic sources: a catalog keeps one per size, found again by name.
RELEASE = "bench/sdss-resampled-" + ({1_000_000: "1m", 10_000_000: "10m"}.get(N_SOURCES) or f"{N_SOURCES}")
BATCH = 8192
#: A run's stored predictions against the baseline's forward outputs for the same sources
#: (numpy.allclose: rtol, atol); on the CPU they are computed alike and agree to float32 rounding.
TOLERANCE = (1e-4, 1e-5)


def _setup():
    # a catalog of its own: the 10M sky's (var/bench) must hold the sky alone for the Q3C comparisons
    os.environ.setdefault("HEALCAT_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench" / "inference"))
    from catalog import db
    from ingest.registry import train
    from ingest.load import ingest_release

    url = db.database_url()
    db.migrate(url)
    shared_buffers = sky10m.serve_from_memory(db.libpq_url(url))
    engine = db.engine()
    ingest_release("sdss_dr14_skyserver_10k", engine)
    train(engine, "object_class")
    photoz = train(engine, "photoz")
    with engine.begin() as conn:
        if conn.scalar(sa.text("SELECT count(*) FROM healcat.release WHERE name = :r"), {"r": RELEASE}) == 0:
            _synthesize(conn)
    return engine, photoz, shared_buffers


def _synthesize(conn) -> None:
    conn.execute(sa.text("INSERT INTO healcat.survey (name, description) VALUES ('bench', 'synthetic benchmark data') "
                         "ON CONFLICT DO NOTHING"))
    release_id = conn.scalar(sa.text(
        "INSERT INTO healcat.release (survey_id, name, version, source_uri, checksum, mapping, status) "
        "SELECT survey_id, :r, split_part(:r, '/', 2), 'synthesized by benchmarks/bench_inference.py', :r, '{}', "
        "'published' FROM healcat.survey WHERE name = 'bench' RETURNING release_id"), {"r": RELEASE})
    conn.execute(sa.text("SELECT setseed(0.42)"))
    conn.execute(sa.text("""
        CREATE TEMP TABLE galaxy ON COMMIT DROP AS
        SELECT row_number() OVER (ORDER BY s.source_id) AS i, array_agg(p.mag ORDER BY p.band) AS mags,
               array_agg(p.band ORDER BY p.band) AS bands
        FROM healcat.source s JOIN healcat.spec_redshift z USING (shard, source_id)
        JOIN healcat.photometry p USING (shard, source_id)
        JOIN healcat.release r ON r.release_id = s.release_id
        WHERE r.name = 'sdss/dr14-skyserver-10k' AND z.spec_class = 'GALAXY'
        GROUP BY s.source_id HAVING count(*) = 5"""))
    n_gal = conn.scalar(sa.text("SELECT count(*) FROM galaxy"))
    conn.execute(sa.text("""
        INSERT INTO healcat.source (shard, release_id, object_id)
        SELECT -1, :rel, 'bench-' || g FROM generate_series(1, :n) AS g"""), {"rel": release_id, "n": N_SOURCES})
    conn.execute(sa.text("""
        INSERT INTO healcat.photometry (shard, source_id, band, mag, mag_system)
        SELECT s.shard, s.source_id, g.bands[b], g.mags[b] + 0.03 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()), 'AB'
        FROM (SELECT shard, source_id, 1 + floor(random() * :ng)::int AS pick
              FROM healcat.source WHERE release_id = :rel) AS s
        JOIN galaxy g ON g.i = s.pick, generate_series(1, 5) AS b
        ORDER BY s.shard, s.source_id, b"""), {"rel": release_id, "ng": n_gal})  # primary-key order, as ingest writes
    conn.execute(sa.text("ANALYZE healcat.source; ANALYZE healcat.photometry"))


def _postmaster_pid(engine) -> int | None:
    """The server's postmaster, if it runs on this machine where /proc shows it (not in a container)."""
    with engine.connect() as conn:
        backend = conn.scalar(sa.text("SELECT pg_backend_pid()"))
    try:
        stat = Path(f"/proc/{backend}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1]) if "(postgres)" in stat else None


def _server_cpu(postmaster: int) -> dict[int, float]:
    """User + system CPU seconds of each of the postmaster's live children (by pid) and, under the
    postmaster's own pid, of the children it has reaped."""
    cpu = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile: the postmaster's reaped counts have it
            continue
        if int(entry.name) == postmaster:
            cpu[postmaster] = sum(int(f) for f in fields[13:15]) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
        elif int(fields[1]) == postmaster:
            cpu[int(entry.name)] = sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return cpu


class _RunCpu:
    """CPU seconds of this process and of the server, and the WAL the server wrote and the
    checkpoints it began, from a run's start to the start of its index build (``run_model`` builds
    the HNSW index after its transaction commits; that is not timed), and the busiest single server
    process's CPU seconds (a backend runs on one core: the run's reader and writer each have one,
    so neither can take less wall time than its CPU seconds)."""

    def __init__(self, engine, inference, *, build_index: bool) -> None:
        self.engine, self.postmaster, self.inference = engine, _postmaster_pid(engine), inference
        self.build_index, self.build = inference.ensure_embedding_index, build_index

    def _now(self) -> tuple[float, dict[int, float], tuple[int, int]]:
        with self.engine.connect() as conn:  # WAL position (bytes) and checkpoints so far (PostgreSQL 17+)
            checkpoints = ("(SELECT num_timed + num_requested FROM pg_stat_checkpointer)"
                           if conn.connection.driver_connection.info.server_version >= 170000 else "NULL")
            wal = tuple(conn.execute(sa.text(f"SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, {checkpoints}")).one())
        return time.process_time(), _server_cpu(self.postmaster) if self.postmaster else {}, wal

    def __enter__(self):
        def mark_then_build(*args, **kwargs):
            self.end = self._now()
            return self.build_index(*args, **kwargs) if self.build else None

        self.start, self.end = self._now(), None
        self.inference.ensure_embedding_index = mark_then_build
        return self

    def __exit__(self, *exc) -> None:
        self.inference.ensure_embedding_index = self.build_index
        self.end = self.end or self._now()
        self.python_s = self.end[0] - self.start[0]
        spent = {pid: s - self.start[1].get(pid, 0.0) for pid, s in self.end[1].items()}
        self.server_s = sum(spent.values()) if self.postmaster else None
        self.busiest_backend_s = max((s for pid, s in spent.items() if pid != self.postmaster), default=0.0)
        self.wal_mb = (self.end[2][0] - self.start[2][0]) / 2**20
        self.checkpoints = None if self.end[2][1] is None else self.end[2][1] - self.start[2][1]


class _ModelTime:
    """Wall seconds a task's ``predict`` takes inside a run (all lanes: one batch at a time), to set
    beside the same model's forward alone: what the run's other work costs the model."""

    def __init__(self, task) -> None:
        self.task, self.seconds = task, 0.0

    def __enter__(self):
        predict = type(self.task).predict

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return predict(self.task, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        self.task.predict = timed
        return self

    def __exit__(self, *exc) -> None:
        del self.task.predict


def _beside_python(task, model, dev, batches) -> tuple[dict[str, tuple[float, float]], str | None]:
    """Wall seconds of ``predict`` over ``batches`` alone, then beside a thread that holds the
    interpreter lock half the time (1 ms of pure Python, 1 ms asleep), as runs call it (TorchScript
    on the CPU, ``ingest.ml.common.scripted``) and eager: what Python work in other threads (a
    run's lanes) costs the model when it has a core of its own. Where the model does not script
    (``scripted`` falls back to eager with a warning), only eager, and the warning's text second."""
    def timed() -> float:
        t0 = time.perf_counter()
        for x in batches:
            task.predict(model, x, dev)
        return time.perf_counter() - t0

    def hold_half(stop: threading.Event) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 1e-3:
                pass
            time.sleep(1e-3)

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        not_scripted = common.scripted(model) is model
    why = "; ".join(str(w.message) for w in said) or f"{type(model).__name__} is not scripted"
    ways = [("eager", mock.patch.object(common, "scripted", lambda m: m))]
    if not not_scripted:
        ways.insert(0, ("scripted", contextlib.nullcontext()))
    out = {}
    for name, how in ways:
        with how:
            alone = timed()
            stop = threading.Event()
            holder = threading.Thread(target=hold_half, args=(stop,))
            holder.start()
            try:
                out[name] = (alone, timed())
            finally:
                stop.set()
                holder.join()
    return out, why if not_scripted else None


def _peak_rss_mib() -> float:
    """This process's peak resident memory since the last :func:`_reset_peak_rss` (VmHWM), MiB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _reset_peak_rss() -> float:
    """Reset the peak to the current resident memory (Linux: clear_refs 5) and return it, MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _peak_rss_mib()


def _forget_runs(engine, release_id: int, model_id: int | None = None) -> None:
    """Remove an earlier benchmark's runs on the release (of one model, or all), their outputs and
    skips, and the HNSW indexes of their models, so that every run is measured as the first run of
    its version."""
    from ingest.inference import forget_runs

    with engine.begin() as conn:
        runs = conn.execute(sa.text("SELECT model_id, array_agg(run_id) FROM healcat.inference_run WHERE release_id = :r "
                                    "AND model_id = coalesce(:m, model_id) GROUP BY model_id"),
                            {"r": release_id, "m": model_id}).all()
        if not runs:
            return
        for model_id, run_ids in runs:
            forget_runs(conn, model_id, run_ids)
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS healcat.ix_embedding_hnsw_{int(model_id)}")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) healcat.prediction, healcat.embedding, healcat.inference_skip")


def _counts_from_env(name: str, what: str) -> list[int]:
    """The environment variable ``name`` as comma-separated whole numbers, each at least 1 (one run each;
    [] when unset), or a ConfigurationError naming the variable and its value, as from_env's."""
    given = os.environ.get(name, "")
    try:
        return [number_at_least(x, 1, int) for x in given.split(",") if x]
    except ValueError:
        raise ConfigurationError(f"{name}={given!r}: give whole numbers of {what}, at least 1, separated by "
                                 "commas") from None


def main() -> None:
    engine, photoz_model, shared_buffers = _setup()
    from ingest import inference, registry
    from ingest.tasks import ALL_SOURCES, get_task

    torch.set_num_threads(1)  # the classifier's run and the lock comparison: one core for the model
    dev = inference.device_of(DEVICE)
    lanes = _counts_from_env("BENCH_INFERENCE_LANES", "lanes") or sorted({1, inference.default_lanes()})
    depths = _counts_from_env("BENCH_INFERENCE_QUEUED", "batches queued") or [inference.QUEUED]
    # The model's torch threads, end to end (HEALCAT_INFER_THREADS) and in its forward baseline alike.
    threads = _counts_from_env("BENCH_INFERENCE_THREADS", "threads") or [1]
    runs = [(n_lanes, depth, n_threads) for n_lanes in lanes for depth in depths for n_threads in threads]
    with engine.connect() as conn:
        release_id = registry.release_id_of(conn, RELEASE)
    _forget_runs(engine, release_id)
    with engine.connect() as conn:
        cls_ref = next(m for m in registry.applicable_models(conn, release_id) if m.task == "object_class")
    cls_run = inference.run_model(engine, cls_ref.name, RELEASE, batch_size=BATCH, device=dev.type, lanes=max(lanes))

    # Baseline: the same inputs, read as the run reads them (binary, in batches), prepared, held in
    # memory, then through predict() in the same batches.
    task = get_task("photoz")
    batches, keys = [], []
    with engine.connect() as conn, conn.connection.driver_connection.cursor(name="baseline", binary=True) as cur:
        cur.execute(task.input_query, {"release_id": release_id, "object_class_model_id": cls_ref.model_id,
                                       **ALL_SOURCES})
        while rows := cur.fetchmany(BATCH):
            prepared = task.prepare(rows)
            batches.append(prepared.inputs)
            keys.append(prepared.keys[:, 1])
        model = task.load(str(registry.weights_file(conn, photoz_model.model_id)), dev)
    with torch_threads(threads[0]):  # what every run must store: an untimed pass, its outputs kept
        expected = _expected(keys, [task.predict(model, x, dev) for x in batches])
    forward = {}  # threads -> (the median of three passes, the passes): one pass varied by 1.5x on 2 cores
    for n_threads in dict.fromkeys(threads):
        times = []
        with torch_threads(n_threads):
            for _ in range(3):
                t0 = time.perf_counter()
                n_fwd = sum(len(task.predict(model, x, dev).value) for x in batches)
                times.append(time.perf_counter() - t0)
        forward[n_threads] = (sorted(times)[1], times)
    few = batches[:30]
    beside, not_scripted = _beside_python(task, model, dev, few) if dev.type == "cpu" else (None, None)
    del batches, keys
    with engine.connect() as conn:
        max_wal_size = conn.exec_driver_sql("SHOW max_wal_size").scalar()

    print(f"\ninference: {N_SOURCES:,} synthetic sources (real SDSS galaxies resampled + noise), {dev}, "
          f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} cores, shared_buffers {shared_buffers}")
    print(f"  object classifier run: {cls_run.n_predicted:,} labelled in {cls_run.run_seconds:.1f} s "
          f"({cls_run.n_predicted / cls_run.run_seconds:,.0f} sources/s, {_lanes(cls_run.lanes, max(lanes))})")
    for n_threads, (t_fwd, times) in forward.items():
        print(f"  photo-z pure forward, {n_threads} thread{'s' * (n_threads > 1)}:  {n_fwd:,} in {t_fwd:.1f} s "
              f"({n_fwd / t_fwd:,.0f} sources/s; the median of {', '.join(f'{t:.2f}' for t in times)} s)")
    if not_scripted:
        print(f"  photo-z did NOT script, so its runs here are eager: {not_scripted}")
    if beside:
        print(f"  photo-z forward on {len(few)} batches beside a thread holding the interpreter lock half the time, "
              "against alone: " + ", ".join(f"{name} {b:.2f} s / {a:.2f} s = {b / a:.2f}x"
                                            for name, (a, b) in beside.items()))
    for i, (n_lanes, depth, n_threads) in enumerate(runs):
        last = i == len(runs) - 1
        _forget_runs(engine, release_id, photoz_model.model_id)
        rss_before = _reset_peak_rss()
        with _RunCpu(engine, inference, build_index=BUILD_INDEX and last) as cpu, _ModelTime(task) as model_time, \
                mock.patch.object(inference, "QUEUED", depth), \
                mock.patch.dict(os.environ, {"HEALCAT_INFER_THREADS": str(n_threads)}):
            # the version whose forward pass is the baseline: a retrained one may be a candidate, not current
            run = inference.run_model(engine, photoz_model.name, RELEASE, version=photoz_model.version,
                                      batch_size=BATCH, device=dev.type, lanes=n_lanes)
        _check_predictions(engine, run.run_id, expected)
        t_fwd = forward[n_threads][0]
        _report(run, n_lanes, depth, n_threads, cpu, t_fwd, n_fwd / t_fwd, _peak_rss_mib(), rss_before, max_wal_size,
                BUILD_INDEX and last, model_time.seconds)


def _expected(keys: list, outs: list) -> tuple:
    """(source_ids, value, uncertainty) of the baseline's outputs that a run stores: finite, not refused."""
    from ingest import inference

    ok = [inference._finite(o) & np.equal(np.full(len(o.value), None, object) if o.refused is None else o.refused,
                                          None) for o in outs]
    take = lambda column: np.concatenate([np.asarray(c, np.float64)[m] for c, m in zip(column, ok)])  # noqa: E731
    return (np.concatenate([k[m] for k, m in zip(keys, ok)]), take([o.value for o in outs]),
            take([o.uncertainty for o in outs]))


def _check_predictions(engine, run_id: int, expected: tuple) -> None:
    """The run's stored predictions must be the baseline's outputs for the same sources (TOLERANCE)."""
    source_id, value, uncertainty = expected
    with engine.connect() as conn:
        got = np.array(conn.execute(sa.text("SELECT source_id, value, uncertainty FROM healcat.prediction "
                                            "WHERE run_id = :r ORDER BY source_id"), {"r": run_id}).all(),
                       np.float64).reshape(-1, 3)
    order = np.argsort(source_id)
    assert np.array_equal(got[:, 0].astype(np.int64), source_id[order]), (
        f"inference: run {run_id} stored {len(got):,} predictions, the baseline has {len(source_id):,} "
        f"({len(np.setxor1d(got[:, 0].astype(np.int64), source_id)):,} sources in one only)")
    for name, column, want in (("value", 1, value[order]), ("uncertainty", 2, uncertainty[order])):
        off = ~np.isclose(got[:, column], want, *TOLERANCE)
        assert not off.any(), (f"inference: run {run_id}'s {name} differs from the baseline's for {int(off.sum()):,} "
                               f"sources, e.g. source {int(got[off, 0][0])}: {got[off, column][0]} against "
                               f"{want[off][0]}")


def _lanes(used: int, asked: int) -> str:
    """'4 lanes', or '1 lane (2 asked: the release is small)' when a run took fewer than asked."""
    said = f"{used} lane{'s' * (used > 1)}"
    return said if used == asked else f"{said} ({asked} asked: the release has too few batches for more)"


def _report(run, asked_lanes: int, depth: int, n_threads: int, cpu: _RunCpu, t_fwd: float, fwd: float,
            rss_peak: float, rss_before: float, max_wal_size: str, built_index: bool, model_s: float) -> None:
    e2e = run.n_predicted / run.run_seconds
    print(f"  photo-z end to end, {_lanes(run.lanes, asked_lanes)}, {depth} batch{'es' * (depth > 1)} queued each way, "
          f"{n_threads} model thread{'s' * (n_threads > 1)}: "
          f"{run.n_predicted:,} PDFs + embeddings in "
          f"{run.run_seconds:.1f} s ({e2e:,.0f} sources/s), {run.n_skipped:,} skipped")
    print(f"    end to end / forward:  {e2e / fwd:.2f}")
    print(f"    the model's time in the run: {model_s:.1f} s, {model_s / t_fwd:.2f}x its forward alone "
          f"({model_s / run.run_seconds:.0%} of end to end)")
    if built_index:
        print(f"    then the HNSW index over the new version's embeddings: {run.index_seconds:.1f} s (not in end to end)")
    print(f"    memory: peak resident {rss_peak:,.0f} MiB during the run, {rss_before:,.0f} MiB before it "
          f"(batches of {BATCH:,} streamed{'; the peak includes the index build' if built_index else ''})")
    print(f"    WAL written during the run: {cpu.wal_mb:,.0f} MB; checkpoints begun: "
          f"{'not counted before PostgreSQL 17' if cpu.checkpoints is None else cpu.checkpoints} "
          f"(max_wal_size {max_wal_size})")
    if cpu.server_s is None:
        print(f"    CPU in the run: Python {cpu.python_s:.1f} s; the server's is not visible from here")
        return
    cores = len(os.sched_getaffinity(0))
    cpu_s = cpu.python_s + cpu.server_s
    print(f"    CPU in the run: Python {cpu.python_s:.1f} s (the model's forward alone: {t_fwd:.1f} s of wall time), server {cpu.server_s:.1f} s: "
          f"{cpu_s:.1f} s on {cores} cores, so end to end takes >= {cpu_s / cores:.1f} s here and "
          f"end to end / forward <= {min(1.0, t_fwd * cores / cpu_s):.2f}")
    print(f"    busiest server process: {cpu.busiest_backend_s:.1f} s CPU on its one core, so end to end takes "
          f">= {cpu.busiest_backend_s:.1f} s on any number of cores and end to end / forward "
          f"<= {min(1.0, t_fwd / max(cpu.busiest_backend_s, 1e-9)):.2f}")


if __name__ == "__main__":
    main()
