"""Inference: a registered model version over a release, written back for SQL (:mod:`ingest.registry` keeps the versions).

- :func:`run_model` streams a task's input query out of PostgreSQL with server-side cursors in
  batches, in lanes (source_id ranges, each with a reader and a writer connection), runs the model
  on the best device (CUDA with bf16 autocast, else CPU; tasks with ``on_gpu = False`` on the CPU;
  the run records which), and writes predictions, embeddings and skipped sources (with reasons)
  with binary COPY, one run per (model version, release) at a time: the lanes commit after all have
  written everything, then the run is marked finished, and ``current_prediction`` switches to a new
  version on a release only then. A rerun finds it finished and does nothing; a run that died
  unfinished has its outputs deleted by the next one.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import platform
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import sqlalchemy as sa
import torch

from catalog import settings
from catalog.errors import HealcatError, QueryError, first_line, lost_connection
from catalog.models import InferenceRun, Model, Release
from ingest import progress
from ingest.copy import ParentChecksOff, copy_columns, copy_rows
from ingest.ml.common import inference_device
from ingest.registry import current_version, release_id_of, resolve_model, weights_file, withdrawal
from ingest.tasks import ALL_SOURCES, Outputs, Prepared, Task, get_task, in_lane, torch_threads

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: int
    n_predicted: int
    n_skipped: int
    device: str
    already_done: bool = False
    run_seconds: float = 0.0  # read, infer, write: the run's transaction
    index_seconds: float = 0.0  # building the embedding index afterwards (first run of a version only)
    lanes: int = 1  # source_id ranges read and written at once (run_model's lanes, fewer on a small release)
    #: the runs of the models the task requires, in the order run (theirs first): (task, model, version, result)
    required: tuple[tuple[str, str, str, RunResult], ...] = ()


# --- inference ----------------------------------------------------------------------


def device_of(name: str | None) -> torch.device:
    try:
        device = inference_device(name)
    except RuntimeError as exc:  # torch's own words for a name it does not know
        raise HealcatError(f"infer: {name!r} is no torch device (cpu, cuda, cuda:1, mps): {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HealcatError(f"infer: device {name!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU")
    return device


def run_model(engine: sa.Engine, model_name: str, release: str, *, version: str | None = None,
              batch_size: int = 8192, device: str | None = None, lanes: int | None = None) -> RunResult:
    """Run a model version (default: current) over a release: predictions, embeddings, skips (idempotent).

    The models this task ``requires`` (by name) run on the release first, their current versions (an
    error if one has none); the run records their model ids in ``inference_run.inputs``, by task.
    A retired version is refused (retiring is for good), at the run's end too where it was retired while
    the run went on (what it wrote deleted). A version that has run on the release is done: nothing is run
    again, whatever has become of the models it read (their runs are given as ``required``).
    ``lanes`` (default :func:`default_lanes`) splits the release's sources into that many ranges of
    source_id, each read and written by connections of its own (:func:`_run_lanes`).
    """
    dev = device_of(device)
    lanes = default_lanes() if lanes is None else lanes
    if not 1 <= lanes <= MAX_LANES:
        raise HealcatError(f"infer: lanes must be 1 to {MAX_LANES}, not {lanes}")
    with engine.connect() as conn:
        model_row = resolve_model(conn, model_name, version)
        _refuse_retired(model_row, model_row.retired_at)
        release_id = release_id_of(conn, release, "infer")
        task = get_task(model_row.task)
        if not task.applies(conn, release_id):  # else a finished run of nothing, or of skips only
            raise HealcatError(f"infer: {model_row.name} (task {task.name}) does not apply to {release}: "
                               f"{task.missing(conn, release_id)}")
        # a rerun is done whatever has become of the models it read since (one retired: no current version)
        done = _finished_run(conn, model_row.model_id, release_id)
        read = _runs_read(conn, done.run_id, release_id) if done is not None else ()
        deps = {required: current_version(conn, name) for required, name in task.requires.items()}
    if done is not None:
        return _already_done(engine, model_row, done, read)
    lacking = next((required for required, dep in deps.items() if dep is None), None)
    if lacking is not None:  # never another model's outputs in its place
        name = task.requires[lacking]
        raise HealcatError(f"infer: {model_row.name} reads the {lacking} predictions of {name}, which has no "
                           f"current version: `healcat train {lacking}` (`--seed N` where seed 0's version was "
                           f"retired), or `healcat model register {lacking} WEIGHTS --name {name}`")
    if not task.on_gpu:
        dev = torch.device("cpu")
    params, inputs, required_runs = {"release_id": release_id, "model_id": model_row.model_id}, {}, []
    for required, dep in deps.items():
        try:
            run = run_model(engine, dep.name, release, version=dep.version, batch_size=batch_size, device=device,
                            lanes=lanes)
        except RetiredModel as exc:  # not this version's refusal: run again, the model's current version is read
            raise HealcatError(f"infer: {model_row.name} reads the {required} predictions of {dep.name}, whose "
                               f"version {dep.version} was retired as this run began ({exc}): run it again") from exc
        required_runs += [*run.required, (required, dep.name, dep.version, run)]
        params[f"{required}_model_id"] = inputs[required] = dep.model_id
    t0 = time.perf_counter()
    with engine.connect() as lock, torch_threads(model_threads(lanes) if dev.type == "cpu" else None):
        # One run per (model version, release) at a time, or per model version where runs share
        # sources: the lock is held by a transaction of its own for the whole run (and goes with its
        # connection if this process dies); the next run finds this one finished, or its outputs.
        lock.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(run_lock(task, model_row.model_id,
                                                                                       release_id)))))
        with engine.begin() as conn:
            done = _finished_run(conn, model_row.model_id, release_id)  # by a run this one waited for
            if done is None:
                forget_runs(conn, model_row.model_id, conn.execute(sa.select(InferenceRun.run_id).where(
                    InferenceRun.model_id == model_row.model_id, InferenceRun.release_id == release_id)).scalars().all())
                model = task.load(str(weights_file(conn, model_row.model_id)), dev)
                described = _describe(dev)  # with the model's threads
                run_id = conn.scalar(sa.insert(InferenceRun).values(
                    model_id=model_row.model_id, release_id=release_id, device=described, inputs=inputs)
                    .returning(InferenceRun.run_id))
        if done is None:
            try:
                n_pred, n_skip, lanes = _run_lanes(engine, task, model, dev, params, run_id, batch_size, lanes)
                with engine.begin() as conn:
                    _refuse_gone(conn, model_row, release)
                    task.finish(conn, model, params, run_id)
                    conn.execute(sa.update(InferenceRun).where(InferenceRun.run_id == run_id).values(
                        n_predicted=n_pred, n_skipped=n_skip, finished_at=sa.func.clock_timestamp()))
            except BaseException as failure:
                try:
                    with engine.begin() as conn:
                        forget_runs(conn, model_row.model_id, [run_id])
                except Exception as exc:  # the run stays unfinished, the next one deletes it
                    # The database gone (a restart): the clean-up fails with the run, or is stopped with its job.
                    lost = next((e for e in (failure, exc) if lost_connection(e)), None)
                    if lost is None:
                        log.exception("run %d failed and what it wrote could not be deleted now", run_id)
                    else:
                        log.warning("run %d of %s/%s on %s stopped, its database connection lost (%s): the next run "
                                    "deletes what it wrote", run_id, model_row.name, model_row.version, release,
                                    first_line(lost))
                raise
    if done is not None:
        return _already_done(engine, model_row, done, tuple(required_runs))
    t1 = time.perf_counter()
    if n_pred and model_row.embedding_dim:
        ensure_embedding_index(engine, model_row.model_id, model_row.embedding_dim)
        with engine.connect() as conn:  # the index's reltuples: similarity plans count the embeddings by it
            conn.exec_driver_sql("ANALYZE healcat.embedding")
            conn.commit()
    log.info("%s/%s on %s: %d predicted, %d skipped (%d lanes)", model_row.name, model_row.version, release,
             n_pred, n_skip, lanes)
    return RunResult(run_id, n_pred, n_skip, described, required=tuple(required_runs), run_seconds=t1 - t0,
                     index_seconds=time.perf_counter() - t1, lanes=lanes)


class RetiredModel(QueryError):
    """A run of a retired version, refused: the same every time (a job is not retried)."""


class ReleaseWithdrawn(QueryError):
    """A run whose release was withdrawn while it went on, refused at its end."""


def _refuse_retired(model_row, retired_at, while_running: bool = False) -> None:
    """A retired version writes nothing new (retiring is for good): an error, before a run or at its end."""
    if retired_at is None:
        return
    at = f"{retired_at:%Y-%m-%d %H:%M:%S %Z}"
    state = f"was retired while it ran (at {at}); its outputs are deleted" if while_running else f"is retired (at {at})"
    raise RetiredModel(f"infer: {model_row.name} version {model_row.version} {state}; retiring is for good: run the "
                       "current version or another")


def _refuse_gone(conn: sa.Connection, model_row, release: str) -> None:
    """At a run's end: its version retired, or its release withdrawn, while it ran is an error (the run's
    outputs are deleted), as either is before a run: FOR SHARE waits for a retirement or withdrawal being
    committed; one after this transaction's commit finds the run finished, and keeps its outputs as it
    keeps every run's."""
    _refuse_retired(model_row, conn.scalar(sa.select(Model.retired_at).where(
        Model.model_id == model_row.model_id).with_for_update(read=True)), while_running=True)
    if (withdrawn := withdrawal(conn, release, lock=True)) is not None:
        raise ReleaseWithdrawn(f"infer: {model_row.name} version {model_row.version}: {withdrawn}; it was withdrawn "
                               "while the run went on, and the run's outputs are deleted")


def _finished_run(conn: sa.Connection, model_id: int, release_id: int):
    return conn.execute(sa.select(InferenceRun.run_id, InferenceRun.device, InferenceRun.n_predicted).where(
        InferenceRun.model_id == model_id, InferenceRun.release_id == release_id,
        InferenceRun.finished_at.is_not(None))).first()


def _runs_read(conn: sa.Connection, run_id: int, release_id: int) -> tuple[tuple[str, str, str, RunResult], ...]:
    """The finished runs on the release whose outputs run ``run_id`` read (its ``inputs``), theirs first, as
    :attr:`RunResult.required` gives them; none where it recorded none (runs before migration 0036)."""
    out = []
    inputs = conn.scalar(sa.select(InferenceRun.inputs).where(InferenceRun.run_id == run_id)) or {}
    for required, model_id in inputs.items():
        model = conn.execute(sa.select(Model.name, Model.version).where(Model.model_id == model_id)).one()
        if (run := _finished_run(conn, model_id, release_id)) is not None:
            out += [*_runs_read(conn, run.run_id, release_id),
                    (required, model.name, model.version, RunResult(run.run_id, 0, 0, run.device, already_done=True))]
    return tuple(out)


def _already_done(engine: sa.Engine, model_row, done, required: tuple) -> RunResult:
    """Nothing to run; but an index build that failed after the run is made now."""
    if done.n_predicted and model_row.embedding_dim:
        ensure_embedding_index(engine, model_row.model_id, model_row.embedding_dim)
    return RunResult(done.run_id, 0, 0, done.device, already_done=True, required=required)


def run_lock(task: Task, model_id: int, release_id: int) -> str:
    """The advisory lock (by ``hashtext``) a run of a model version on a release holds throughout."""
    return f"infer:{model_id}" if task.runs_share_sources else f"infer:{model_id}:{release_id}"


#: Batches a lane reads ahead of the model, and writes behind it, at most. The stages' times vary
#: batch to batch, and with one batch either way the model waited for the slower of its
#: neighbours: photo-z on 1M sources, 2 cores, one lane, 5.58 s with one, 5.19-5.31 s with three
#: or six (two lanes: 5.31 s, 5.19 s; benchmarks/README.md, inference).
QUEUED = 3


#: The most lanes a run takes: each holds two connections (``catalog.db`` pools 35).
MAX_LANES = 12


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS


def default_lanes() -> int:
    """Lanes of a run unless the caller says: ``HEALCAT_INFER_LANES``, else a quarter of the cores
    this process may use, 1 to 8 (on 16 cores four lanes ran fastest of 1, 2, 4 and 8; on 2 cores
    one: benchmarks/README.md, inference)."""
    given = settings.from_env("HEALCAT_INFER_LANES", 1, int, "lanes")
    return max(1, min(8, _cores() // 4)) if given is None else given


def model_threads(lanes: int) -> int:
    """Torch threads for a CPU model in a run of ``lanes`` lanes: ``HEALCAT_INFER_THREADS``, else the
    cores left once each lane's two busy database backends have one each (at least 1). torch's
    default, every core, makes its threads wait on cores the backends hold: photo-z over 1M
    sources on 2 cores, one lane (benchmarks/README.md, inference), 4.6-4.8 s end to end with one
    thread against 4.8 s with two, though two threads alone run the model 1.5x faster. On many
    cores the split is reasoned, not measured yet."""
    given = settings.from_env("HEALCAT_INFER_THREADS", 1, int, "threads")
    return max(1, _cores() - 2 * lanes) if given is None else given


def forget_runs(conn: sa.Connection, model_id: int, run_ids: list[int]) -> None:
    """Delete runs of a model and everything they wrote (a run that died half way, before a rerun)."""
    if run_ids:
        for table in ("embedding", "prediction"):
            conn.execute(sa.text(f"DELETE FROM healcat.{table} WHERE model_id = :m AND run_id = ANY(:r)"),  # noqa: S608
                         {"m": model_id, "r": run_ids})
        conn.execute(sa.delete(InferenceRun).where(InferenceRun.run_id.in_(run_ids)))  # skips go with it (cascade)


def forget_stranded_runs(conn: sa.Connection, model_id: int, task: Task) -> list[int]:
    """Delete a version's unfinished runs that no run holds, and what they wrote: a run killed before it
    finished, whose clean-up failed too, is deleted by the version's next run on the release, and a
    retired version has none. A run still going on holds its lock (:func:`run_lock`) and is left to
    refuse its own end. Returns the runs deleted."""
    runs = conn.execute(sa.select(InferenceRun.run_id, InferenceRun.release_id).where(
        InferenceRun.model_id == model_id, InferenceRun.finished_at.is_(None)).order_by(InferenceRun.run_id)).all()
    stranded = [run.run_id for run in runs if conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(
        sa.func.hashtext(run_lock(task, model_id, run.release_id)))))]
    forget_runs(conn, model_id, stranded)
    return stranded


def _run_lanes(engine: sa.Engine, task: Task, model, dev: torch.device, params: dict, run_id: int,
               batch_size: int, lanes: int) -> tuple[int, int, int]:
    """Read, infer and write a release's sources in ``lanes`` ranges of source_id at once; returns
    (predicted, skipped, lanes used).

    Each lane has a reader connection (a server-side cursor over its range) and a writer connection
    (one transaction, holding the release and the run FOR KEY SHARE, COPYing without per-row
    checks where the role may), so the server's work (the input query, the COPYs, their index
    entries and WAL) is spread over 2 x lanes backends; one batch at a time goes through the model
    (a lock), as in the forward pass alone. Every lane's transaction commits only after all lanes
    have written everything; the caller then marks the run finished, and readers of
    ``current_prediction`` see its outputs from that commit on. Should the process die between the
    lanes' commits, the run stays unfinished and the next run deletes what it wrote."""
    ranges = _lane_ranges(engine, params["release_id"], lanes, batch_size)
    model_lock, stop = threading.Lock(), threading.Event()
    n_read = [0] * len(ranges)
    with ExitStack() as stack:
        writers = [stack.enter_context(engine.connect()) for _ in ranges]
        for conn in writers:  # before the readers start: they read rows of a release held
            hold_release(conn, params["release_id"])
            conn.execute(sa.select(InferenceRun.run_id).where(InferenceRun.run_id == run_id)
                         .with_for_update(read=True, key_share=True))

        def lane(i: int) -> tuple[int, int]:
            pg, counts, writing = writers[i].connection.driver_connection, [], deque()
            batches = _read_prepared(engine, task, params, batch_size, ranges[i])
            try:
                with ParentChecksOff(pg), ThreadPoolExecutor(1, f"infer-read-{i}") as reader, \
                        ThreadPoolExecutor(1, f"infer-write-{i}") as writer:
                    for n, prepared in _ahead(batches, reader, QUEUED):
                        if stop.is_set():
                            break
                        n_read[i] += n
                        if len(prepared.keys):
                            with model_lock:
                                out = task.predict(model, prepared.inputs, dev)
                        else:
                            out = None
                        if len(writing) == QUEUED:
                            counts.append(writing.popleft().result())
                        writing.append(writer.submit(_write_batch, pg, prepared, out, params["model_id"], run_id))
                    counts += [w.result() for w in writing]
            finally:
                batches.close()
            return tuple(sum(c) for c in zip(*counts)) if counts else (0, 0)

        with only_new_objects_collected(), ThreadPoolExecutor(len(ranges), "infer-lane") as pool:
            futures = [pool.submit(lane, i) for i in range(len(ranges))]
            try:
                while not all(f.done() for f in futures):
                    wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                    progress.report(sum(n_read))
                    if any(f.done() and f.exception() for f in futures):
                        break
            finally:
                stop.set()  # a failed lane stops the others (each checks between batches)
            counts = [f.result() for f in futures]
        progress.report(sum(n_read))
        for conn in writers:
            conn.commit()
    return sum(c[0] for c in counts), sum(c[1] for c in counts), len(ranges)


def _lane_ranges(engine: sa.Engine, release_id: int, lanes: int, batch_size: int) -> list[tuple[int, int] | None]:
    """``lanes`` half-open ranges of source_id covering the release's sources (fewer where the
    release has under 4 batches per lane; ``[None]``: one lane, no range). A release's sources
    take consecutive ids when it is loaded, so equal widths are equal shares."""
    if lanes == 1:
        return [None]
    with engine.connect() as conn:
        lo, hi = conn.execute(sa.text("SELECT min(source_id), max(source_id) FROM healcat.source "
                                      "WHERE release_id = :r"), {"r": release_id}).one()
    if lo is None:
        return [None]
    lanes = min(lanes, (hi - lo + 1) // (4 * batch_size))
    if lanes <= 1:
        return [None]
    edges = [lo + (hi + 1 - lo) * k // lanes for k in range(lanes + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _read_prepared(engine: sa.Engine, task: Task, params: dict, batch_size: int,
                   source_ids: tuple[int, int] | None = None) -> Iterator[tuple[int, Prepared]]:
    """The task's input query (its rows with ``source_ids[0] <= source_id < source_ids[1]`` where
    given), streamed with a server-side cursor on a connection of its own, as (rows read, prepared
    batch). Its inputs are committed rows (the release, required models' runs). Results come in
    binary: numbers are sent as bytes, not formatted as text and parsed again."""
    query = f"SELECT * FROM ({task.input_query}) AS lane WHERE {in_lane('lane')}"
    params = {**params, **(ALL_SOURCES if source_ids is None else dict(zip(("lane_from", "lane_to"), source_ids)))}
    with engine.connect() as conn, conn.connection.driver_connection.cursor(name="infer_input", binary=True) as cur:
        cur.execute(query, params)
        while batch := cur.fetchmany(batch_size):
            yield len(batch), task.prepare(batch)


@contextmanager
def only_new_objects_collected() -> Iterator[None]:
    """Python's cycle collector skips the objects that were alive on entry until exit (``gc.freeze``).

    A run allocates a tuple per input row, and every so often that triggers a full collection,
    which walks every object the process holds: torch's, SQLAlchemy's, the model's, hundreds of
    thousands that the run neither made nor frees. Frozen, they are not walked; objects are still
    freed by reference counting as ever, and on exit (``gc.unfreeze``) the frozen ones are
    collectable again, unless the process had frozen objects of its own before (then it keeps its
    policy and these stay frozen too). The full collections took 1 s of the reader's 2 s of Python
    CPU on 1M sources (benchmarks/README.md, inference).
    """
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


def _ahead(items: Iterator[T], pool: ThreadPoolExecutor, depth: int = 1) -> Iterator[T]:
    """``items``, up to ``depth`` next ones computed in ``pool``'s thread (one thread: in order)
    while the caller works on the current one."""
    end = object()
    pending = deque(pool.submit(next, items, end) for _ in range(depth))
    while (item := pending.popleft().result()) is not end:
        pending.append(pool.submit(next, items, end))
        yield item


def _write_batch(pg, prepared: Prepared, out: Outputs | None, model_id: int, run_id: int) -> tuple[int, int]:
    """COPY a batch's outputs (the finite ones) and its skipped sources; returns (predicted, skipped)."""
    skipped, n_pred = list(prepared.skipped), 0
    if out is not None:
        ok = _finite(out)
        refused = np.full(len(ok), None, dtype=object) if out.refused is None else out.refused
        ok &= np.equal(refused, None)
        skipped += [(int(s), int(i), why or "model output not finite")
                    for (s, i), why in zip(prepared.keys[~ok], refused[~ok])]
        n_pred = write_outputs(pg, prepared.keys[ok], _take(out, ok), model_id, run_id)
    n_skip = copy_rows(pg, "inference_skip", ("shard", "source_id", "run_id", "reason"),
                       ("int2", "int8", "int8", "text"), ((s, i, run_id, r) for s, i, r in skipped)) if skipped else 0
    return n_pred, n_skip


def hold_release(conn: sa.Connection, release_id: int) -> None:
    """Lock the release FOR KEY SHARE until the transaction ends: no source of it can be deleted or
    re-keyed before then (trigger ``source_guard``, migration 0016, locks the release FOR UPDATE
    first), so outputs written for its sources without per-row foreign-key checks keep their parents."""
    conn.execute(sa.select(Release.release_id).where(Release.release_id == release_id)
                 .with_for_update(read=True, key_share=True))


def _finite(out: Outputs) -> np.ndarray:
    ok = np.isfinite(out.value)
    for a in (out.uncertainty, out.value_p16, out.value_p84, out.pdf_weights, out.pdf_means, out.pdf_sigmas, out.probabilities, out.embedding):
        if a is not None:
            ok &= np.isfinite(a).reshape(len(ok), -1).all(1)
    return ok


def _take(out: Outputs, ok: np.ndarray) -> Outputs:
    return Outputs(**{k: (v[ok] if isinstance(v, np.ndarray) else v) for k, v in vars(out).items()})


def write_outputs(pg, keys: np.ndarray, out: Outputs, model_id: int, run_id: int) -> int:
    """COPY one batch's outputs: a prediction row per key, and an embedding row if the model gives one."""
    n = len(keys)
    base = [("shard", "int2", keys[:, 0]), ("source_id", "int8", keys[:, 1]),
            ("model_id", "int4", np.full(n, model_id)), ("run_id", "int8", np.full(n, run_id))]
    fixed = [(c, t, v) for c, t, v in (("value", "float8", out.value), ("uncertainty", "float8", out.uncertainty),
                                       ("value_p16", "float8", out.value_p16), ("value_p84", "float8", out.value_p84),
                                       ("pdf_weights", "float4[]", out.pdf_weights),
                                       ("pdf_means", "float4[]", out.pdf_means),
                                       ("pdf_sigmas", "float4[]", out.pdf_sigmas)) if v is not None]
    if out.probabilities is not None:  # the most probable class, and every class's probability as JSON
        names = np.array([c.encode() for c in out.class_names])  # UTF-8 once, not per row
        fixed += [("label", "text", names[out.probabilities.argmax(1)]),
                  ("probabilities", "jsonb", probabilities_json(out.class_names, out.probabilities))]
    copy_columns(pg, "prediction", base + fixed)
    if out.embedding is not None:
        copy_columns(pg, "embedding", base + [("vec", "vector", out.embedding)])
    return n


def probabilities_json(class_names: tuple[str, ...], probabilities: np.ndarray) -> np.ndarray:
    """``[N]`` JSON objects ``{"class": p, ...}`` as ASCII bytes (numpy ``S``, which the COPY encodes
    without a loop), each ``p`` with the 9 significant digits that give back its float32 exactly
    (``%.9g``; ``repr`` of the float64 wrote up to 17, float noise). One C-level format per row:
    1M rows of three classes in 0.7 s, against 1.9 s for ``repr`` and joins (benchmarks/README.md)."""
    template = "{" + ", ".join(json.dumps(c) + ": %.9g" for c in class_names) + "}"
    columns = (p.tolist() for p in np.asarray(probabilities, dtype=np.float32).T)
    return np.array(list(map(template.__mod__, zip(*columns))), dtype="S")


def ensure_embedding_index(engine: sa.Engine, model_id: int, dim: int) -> None:
    """The model's HNSW index (cosine), a partial index on vec::vector(dim), built CONCURRENTLY.

    Writers of other models' embeddings are not blocked while it builds; a build that died half
    way leaves an invalid index, which is dropped and built again. The build gets
    ``maintenance_work_mem`` = ``HEALCAT_HNSW_BUILD_MEMORY`` (a PostgreSQL size, default
    :data:`HNSW_BUILD_MEMORY`): a graph that outgrows it is built on disk, page by page (1M 16-d
    vectors in the default 64 MB: 22 min on the shared 2-core machine, against 2-4 min in 1 GB).
    When :func:`hnsw_build_bytes` says the model's vectors will not fit, a warning says how much
    they need.
    """
    name = f"ix_embedding_hnsw_{int(model_id)}"
    memory = os.environ.get("HEALCAT_HNSW_BUILD_MEMORY", HNSW_BUILD_MEMORY)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, _building(conn, name):
        valid = conn.scalar(sa.text("SELECT i.indisvalid FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
                                    "WHERE c.relname = :name AND c.relnamespace = 'healcat'::regnamespace"),
                            {"name": name})
        if valid:
            return
        if valid is False:
            conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY healcat.{name}")
        try:
            have = conn.scalar(sa.text("SELECT pg_size_bytes(:memory)"), {"memory": memory})
        except sa.exc.DBAPIError as e:
            raise HealcatError(f"HEALCAT_HNSW_BUILD_MEMORY={memory!r} is not a PostgreSQL size "
                               f"(e.g. 1GB, 512MB): {e.orig}") from None
        n = conn.scalar(sa.text("SELECT count(*) FROM healcat.embedding WHERE model_id = :m"), {"m": model_id})
        if (need := hnsw_build_bytes(n, dim)) > have:
            log.warning("HNSW index of model %d: %d vectors need about %.1f GB to be built in memory, "
                        "HEALCAT_HNSW_BUILD_MEMORY is %s: it will be built on disk, many times more slowly",
                        model_id, n, need / 2**30, memory)
        m, ef_construction = hnsw_build_params(dim)
        conn.execute(sa.text("SELECT set_config('maintenance_work_mem', :memory, false)"), {"memory": memory})
        try:
            conn.exec_driver_sql(
                f"CREATE INDEX CONCURRENTLY {name} ON healcat.embedding "
                f"USING hnsw ((vec::vector({int(dim)})) vector_cosine_ops) "
                f"WITH (m = {m}, ef_construction = {ef_construction}) WHERE model_id = {int(model_id)}")
        finally:
            conn.exec_driver_sql("RESET maintenance_work_mem")


@contextmanager
def _building(conn: sa.Connection, name: str, poll_s: float = 1.0) -> Iterator[None]:
    """Hold a session advisory lock on index ``name`` (one build at a time: a run's end and the
    release's index job may both find the index missing, and the second would fail creating it, or
    drop the first's build in progress as invalid). Taken by trying every ``poll_s``, each try its
    own short statement: a statement waiting for the lock would hold a snapshot, which CREATE INDEX
    CONCURRENTLY in the holder's session waits out (a deadlock)."""
    key = sa.text("SELECT pg_try_advisory_lock(hashtext(:k))")
    while not conn.scalar(key, {"k": f"build:{name}"}):
        time.sleep(poll_s)
    try:
        yield
    finally:
        conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": f"build:{name}"})


#: Memory for an HNSW build unless ``HEALCAT_HNSW_BUILD_MEMORY`` says otherwise (PostgreSQL takes it
#: only as the graph grows): room for about 1.4M 16-d vectors (:func:`hnsw_build_bytes`).
HNSW_BUILD_MEMORY = "1GB"


def hnsw_build_bytes(n_vectors: int, dim: int) -> int:
    """Memory an HNSW build of ``n_vectors`` ``dim``-d vectors needs to keep its graph in memory.

    Per vector ~203 + 4 dim + 32 m bytes (m from :func:`hnsw_build_params`): fitted to where
    pgvector 0.8 reports that the graph stopped fitting (779 bytes per 16-d vector at m = 16,
    1,739 per 128-d vector at m = 32; checked against the server in the tests).
    """
    m, _ = hnsw_build_params(dim)
    return n_vectors * (203 + 4 * dim + 32 * m)


def hnsw_build_params(dim: int) -> tuple[int, int]:
    """(m, ef_construction) of a model's HNSW index by its embedding dimension.

    pgvector's defaults (16, 64) below 64 dimensions (the 16-d photo-z embedding); from 64 up,
    (32, 200): with 16 links and 64 build candidates a 1M x 128-d index reached only 0.73
    recall@10 at ef_search 40 and 0.92 at 500 (benchmarks/README.md, similarity), a graph too
    sparse for the search to fix. On 100k vectors of the same mixture (unfiltered): recall@10 at
    ef_search 40 went from 0.980 to 1.000, the build took 5x as long (30 s -> 160 s, 2 shared
    cores) and a query 2.2 ms instead of 0.9.
    """
    return (32, 200) if dim >= 64 else (16, 64)


def _describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
