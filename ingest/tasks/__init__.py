"""Model tasks: what a model learns from the catalog, and what it writes back.

A *task* (photo-z, object class, gyrochronology age, ...) is a :class:`Task` subclass registered
with :func:`register`. The machinery does everything else: :mod:`ingest.registry` runs the
training query, hands the rows to :meth:`Task.fit`, stores the weights (sha256-checked, in the
catalog and on disk) with the exact training query and its parameters and the held-out metrics as
a new model version; :mod:`ingest.inference` streams :attr:`Task.input_query` out of PostgreSQL in batches, calls
:meth:`Task.prepare` and :meth:`Task.predict`, and writes :class:`Outputs` back with binary COPY,
one run per (model version, release), visible once finished, with every source it gave no output for
recorded in ``inference_skip`` with the reason.

How a new model plugs in (e.g. ``ingest/tasks/gyro_age.py``)::

    from ingest.tasks import Outputs, Prepared, Task, Trained, register
    from ingest.ml import gyro                      # torch + numpy only

    @register
    class GyroAge(Task):
        name = "gyro_age"                           # model.task; `healcat train gyro_age`
        model_name = "chronoflow"                   # versions are registered under this name
        default_training_releases = ("...",)        # `healcat train` without --release
        unit = "dex(yr)"                            # prediction.value's unit (astropy's string)
        value_description = "log10 age"             # and what it is
        # SQL over the catalog, psycopg parameters: %(release_id)s (a training release: run once per
        # release trained on, the rows put together)
        training_query = "SELECT ... FROM healcat.rotation_period ... WHERE s.release_id = %(release_id)s"
        # SQL, first two columns shard, source_id; %(release_id)s (the release run on), and
        # %(<task>_model_id)s for each task in `requires` (its named model's current version, run first).
        # A run reads it in lanes (ranges of source_id; the run keeps each lane's rows); a query
        # joining several per-source tables puts in_lane(alias) on each, so each lane reads its own.
        input_query = "SELECT s.shard, s.source_id, ... WHERE s.release_id = %(release_id)s AND " + in_lane("s")
        # SQL returning one boolean: does the task apply to a release? (%(release_id)s)
        applies_query = "SELECT EXISTS (SELECT 1 FROM healcat.rotation_period ...)"
        # optional SQL returning one text: what a release the task does not apply to lacks
        missing_query = "SELECT CASE WHEN ... THEN 'no dereddened colour (bp_rp_dered)' ... END"
        requires = {}                               # task: model, e.g. {"object_class": "object-class-sdss"}
        primary_metric = ("median_abs_delta_log_age_held_out", "lower")  # a fit() metric: what
                                                    # decides whether a new version becomes current
        on_gpu = False                              # runs on the CPU even where a GPU is asked for

        def fit(self, rows, *, seed, epochs=None) -> Trained:     # rows: list of tuples
            model, report = gyro.train(..., seed=seed)            # report: held-out metrics
            return Trained(gyro.to_bytes(model), model.hparams, report, embedding_dim=None)

        def load(self, path, device):               # a weights file of fit()'s bytes
            return gyro.load(path, map_location=device)

        def prepare(self, rows) -> Prepared:        # one fetched batch of input_query rows
            ...                                     # keys [N, 2] int64 (shard, source_id) of the
            return Prepared(keys, inputs, skipped)  # rows to run; skipped: [(shard, source_id, reason)]

        def predict(self, model, inputs, device) -> Outputs:
            return Outputs(value=age_myr, uncertainty=err_myr)   # numpy, one row per key

Then add the module to :data:`TASK_MODULES`. Nothing else changes: ``healcat train gyro_age``,
``healcat infer chronoflow RELEASE``, ``healcat model list|show|register|promote|retire``, the worker's
jobs, backfills and :func:`ingest.registry.applicable_models` all go through the registry.
Outputs map to rows as follows: ``value``/``uncertainty``/``value_p16``/``value_p84``/``pdf_*``/``label``/``probabilities``
-> one ``healcat.prediction`` row per source (any of them may be None except ``value``);
``embedding`` -> one ``healcat.embedding`` row (pgvector, HNSW index per model version, cosine);
``refused`` -> an ``inference_skip`` row with the reason instead (inputs the model never saw).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import sqlalchemy as sa
import torch

from catalog.errors import QueryError

#: The modules whose import registers the tasks; a new task adds its module here.
TASK_MODULES = ("ingest.tasks.object_class", "ingest.tasks.photoz", "ingest.tasks.stellar_mass", "ingest.tasks.gyro_age",
                "ingest.tasks.lightcurve_embed")


def in_lane(alias: str) -> str:
    """SQL: the table ``alias``'s source_id is in the run's lane, ``%(lane_from)s <= source_id < %(lane_to)s``.

    A run streams its input query in lanes, ranges of source_id (:func:`ingest.inference.run_model`),
    and keeps each lane's rows of the query's result whatever the query says. PostgreSQL carries a
    range from a query's output down to the table it comes from, but not across a join to the other
    tables: each lane would read all their rows. So an input query restricts each of its per-source
    tables with this (:data:`ALL_SOURCES`: one lane, every source)."""
    return f"{alias}.source_id >= %(lane_from)s AND {alias}.source_id < %(lane_to)s"


#: The lane of every source (a run in one lane).
ALL_SOURCES = {"lane_from": -2**63, "lane_to": 2**63 - 1}


@dataclass
class Trained:
    """What :meth:`Task.fit` returns: deterministic weight bytes and what to register with them."""

    weights: bytes
    hyperparams: dict[str, Any]
    metrics: dict[str, Any]  # held-out metrics: plain floats, ints, lists (stored as JSON)
    embedding_dim: int | None = None


@dataclass
class Prepared:
    """One batch of input rows, split into what the model runs on and what it cannot."""

    keys: np.ndarray  # [N, 2] int64: shard, source_id of the rows in `inputs`
    inputs: Any  # whatever the task's predict() takes, N rows
    skipped: list[tuple[int, int, str]] = field(default_factory=list)  # (shard, source_id, reason)


@dataclass
class Outputs:
    """What a model says about N sources: numpy arrays, row i for keys[i]. Only ``value`` is required."""

    value: np.ndarray  # [N] point estimate, in the task's unit
    uncertainty: np.ndarray | None = None  # [N] 1-sigma, same unit
    value_p16: np.ndarray | None = None  # [N] 16th and 84th percentiles of the posterior, same unit
    value_p84: np.ndarray | None = None  #   (where it is skewed: a half-width would misstate it)
    pdf_weights: np.ndarray | None = None  # [N, K] Gaussian mixture over the value
    pdf_means: np.ndarray | None = None  # [N, K]
    pdf_sigmas: np.ndarray | None = None  # [N, K]
    class_names: tuple[str, ...] | None = None  # classification: the names of probabilities' columns
    probabilities: np.ndarray | None = None  # [N, C]; label = the most probable class
    embedding: np.ndarray | None = None  # [N, D] float32, for similarity search
    #: [N] object: why the model gives row i no output (its inputs are outside what it was trained
    #: on: ingest.ml.common.outside_training, or outside_range for weights without the inputs'
    #: distribution; or an answer the task will not give, as photo-z's p(z) mostly below z = 0),
    #: None where it does; None: it answers every row
    refused: np.ndarray | None = None


class Task(ABC):
    """One kind of prediction; see the module docstring for how to write one."""

    name: ClassVar[str]
    model_name: ClassVar[str]
    #: what ``healcat train TASK`` trains on without --release (one or several releases)
    default_training_releases: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[str] = ""  # prediction.value's unit, as astropy.units writes it ("": dimensionless)
    value_description: ClassVar[str] = ""  # what prediction.value is (the HATS export's field descriptions)
    #: The least value there is (photo-z: z = 0): a stored PDF (``pdf_*``, the untruncated mixture) is read
    #: truncated there and renormalised, as the model's own point value and SQL's photoz_* read it.
    value_min: ClassVar[float | None] = None
    #: What its outputs hold besides a value, so an answer has the same columns whatever rows it holds:
    #: a classifier's classes (its p_<class> columns), and whether it gives a Gaussian-mixture PDF
    #: (pdf_weights, pdf_means, pdf_sigmas: as many components as the version's ``n_components``).
    classes: ClassVar[tuple[str, ...]] = ()
    gives_pdf: ClassVar[bool] = False
    training_query: ClassVar[str]
    input_query: ClassVar[str]
    applies_query: ClassVar[str]
    #: SQL returning one text, what a release lacks where :attr:`applies_query` is false (None: the
    #: error says only that the release has none of the inputs the task reads).
    missing_query: ClassVar[str | None] = None
    #: The models whose outputs the input query reads, by task -> model name: their current
    #: versions run on the release first (an error if one has none), %(<task>_model_id)s in the query.
    requires: ClassVar[dict[str, str]] = {}
    #: (key in :meth:`fit`'s held-out metrics, "lower" or "higher": which is better). A version
    #: registered becomes current only if its model has no current version or this metric is at
    #: least as good as the current version's; otherwise it is a candidate (``healcat model promote``).
    primary_metric: ClassVar[tuple[str, str]]
    #: False: the model runs on the CPU whatever device the run asks for (a small network over a
    #: few thousand rows gains nothing from a GPU); the run records the device it really used.
    on_gpu: ClassVar[bool] = True
    #: True: runs on different releases may predict the same source (a Gaia star that two rotation
    #: catalogues join), so a model version's runs go one at a time, each seeing what the last wrote.
    runs_share_sources: ClassVar[bool] = False

    @classmethod
    def spread_unit(cls) -> str:
        """The unit of a spread of the value (its uncertainty, a PDF's sigmas): a log quantity's (dex(yr))
        spread is in dex."""
        return "dex" if cls.unit.startswith("dex(") else cls.unit

    def applies(self, conn: sa.Connection, release_id: int) -> bool:
        """Whether the task has anything to run on in a release."""
        with conn.connection.driver_connection.cursor() as cur:
            cur.execute(self.applies_query, {"release_id": release_id})
            return bool(cur.fetchone()[0])

    def missing(self, conn: sa.Connection, release_id: int) -> str:
        """What a release the task does not apply to lacks, for the error that says so."""
        if self.missing_query is None:
            return "the release has none of the inputs the task reads"
        with conn.connection.driver_connection.cursor() as cur:
            cur.execute(self.missing_query, {"release_id": release_id})
            return cur.fetchone()[0]

    @abstractmethod
    def fit(self, rows: list[tuple], *, seed: int, epochs: int | None = None) -> Trained:
        """Train on the training query's rows (a seeded held-out split inside); same rows + seed, same bytes."""

    @abstractmethod
    def load(self, path: str, device: Any) -> Any:
        """The model from a file holding :meth:`fit`'s weight bytes, on ``device``, in eval mode."""

    def embedding_dim(self, model: Any) -> int | None:
        """Length of the model's embedding vectors (None: it gives none)."""
        return None

    @abstractmethod
    def prepare(self, rows: list[tuple]) -> Prepared:
        """Split a batch of input rows into model inputs and skipped sources (with reasons)."""

    @abstractmethod
    def predict(self, model: Any, inputs: Any, device: Any) -> Outputs:
        """Run the model on prepared inputs."""

    def finish(self, conn: sa.Connection, model: Any, params: dict, run_id: int) -> None:
        """Write what a run says about the release as a whole (a cluster's age from all its members),
        in the transaction that marks the run finished, so it appears with the run's outputs."""


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch on ``n`` threads inside the block (None: as it is), as it was after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def attr_number(text: str | float | None, name: str) -> tuple[float, str | None]:
    """A number read from ``source.attrs`` (``->>``: text, as the catalogue wrote it), or NaN and
    why not: missing, or text that is no number (one bad cell is its row's reason, never a failed run)."""
    if text is None:
        return np.nan, f"no {name}"
    try:
        value = float(text)
    except ValueError:
        return np.nan, f"{name} {text!r} is not a number"
    return (value, None) if np.isfinite(value) else (np.nan, f"{name} = {text} is not a finite number")


def single_thread(fn, *args, **kwargs):
    """Call ``fn`` with torch on one thread: small MLPs on batches of a few hundred rows only
    contend with more (8x slower on 2 cores), and one thread keeps training bit-reproducible."""
    with torch_threads(1):
        return fn(*args, **kwargs)


_TASKS: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task known by its ``name``."""
    metric = getattr(cls, "primary_metric", None)
    if not (isinstance(metric, tuple) and len(metric) == 2 and isinstance(metric[0], str)
            and metric[1] in ("lower", "higher")):
        raise TypeError(f"task {cls.name}: primary_metric must be (metric key, 'lower' or 'higher'), not {metric!r}")
    _TASKS[cls.name] = cls()
    return cls


def all_tasks() -> dict[str, Task]:
    for module in TASK_MODULES:
        importlib.import_module(module)
    return dict(_TASKS)


def get_task(name: str) -> Task:
    tasks = all_tasks()
    if name not in tasks:
        raise QueryError(f"no task named {name!r}; known: {', '.join(sorted(tasks))}")
    return tasks[name]
