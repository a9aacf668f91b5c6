"""The model registry: versions, their weights and metrics, which is current, and the jobs that follow.

- :func:`train` runs a task's training query, fits, and registers the version (:func:`register_model`):
  weights (sha256) in the catalog and under HEALCAT_HOME/models, the exact training query and its
  parameters, hyperparameters and held-out metrics. Same data and seed give the same bytes, hence
  the same version. :func:`register_weights_file` registers weights trained elsewhere. A version is
  *promoted* (becomes current) when registered if its model has no current version or its task's
  primary held-out metric is at least as good as the current version's (:func:`challenge`); else it
  is a candidate until :func:`promote_model`. :func:`retire_model` retires a version (its outputs
  stay; the previous promoted version is current again).
- :func:`applicable_models` / :func:`enqueue_inference` / :func:`backfill` queue ``infer`` jobs
  (args :func:`infer_job_args`) for the workers: after a release is published, and after a new
  version. :mod:`ingest.inference` runs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import torch

from catalog.db import home
from catalog.errors import HealcatError, QueryError
from catalog.models import Job, Model, Release
from catalog.search.similar import model_hint
from ingest import queue
from ingest.mapping import shipped_mapping_of
from ingest.tasks import Task, all_tasks, get_task

log = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, as jobs and the registry name it."""

    model_id: int
    name: str
    version: str
    task: str


def release_id_of(conn: sa.Connection, release: str, use: str | None = None) -> int:
    """The release's id; ``use`` (what is to read it: ``infer``, ``train photoz``): a withdrawn release is
    refused, saying when and why it was withdrawn."""
    row = conn.execute(sa.select(Release.release_id, Release.withdrawn_at, Release.withdrawn_reason)
                       .where(Release.name == release)).first()
    if row is None:
        mapping = shipped_mapping_of(release)
        raise QueryError(f"no release named {release!r}" + (f": `healcat ingest {mapping}` loads it" if mapping else ""))
    if use is not None and row.withdrawn_at is not None:
        raise QueryError(f"{use}: {_withdrawn(release, row)}")
    return row.release_id


def withdrawal(conn: sa.Connection, release: str, lock: bool = False) -> str | None:
    """When and why ``release`` was withdrawn, and how to bring it back; None if it is not withdrawn.
    ``lock``: its row FOR SHARE until the transaction ends (a withdrawal being committed is waited for)."""
    query = sa.select(Release.withdrawn_at, Release.withdrawn_reason).where(Release.name == release)
    row = conn.execute(query.with_for_update(read=True) if lock else query).first()
    return _withdrawn(release, row) if row is not None and row.withdrawn_at is not None else None


def _withdrawn(release: str, row) -> str:
    return (f"release {release} was withdrawn at {row.withdrawn_at:%Y-%m-%d %H:%M:%S %Z} ({row.withdrawn_reason}); "
            f"`healcat release restore {release}` brings it back")


def train(engine: sa.Engine, task_name: str, release: str | Sequence[str] | None = None, *, seed: int = 0,
          epochs: int | None = None) -> Model:
    """Train a task's model on a release, or on several (default: the task's), and register the
    version (idempotent). The training query runs once per release, in the order given, and the fit
    sees their rows together (one seeded held-out split over all of them). ``epochs``: the task's
    training length (epochs, or steps for gyro_age), None for its default; registered with the
    seed and the releases, so a version says how to make it again."""
    for what, value, least in (("seed", seed, 0), ("epochs", epochs, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise HealcatError(f"train {task_name}: {what} must be an integer >= {least}, not {value!r}")
    task = get_task(task_name)
    releases = (release,) if isinstance(release, str) else tuple(release or task.default_training_releases)
    if not releases:
        raise QueryError(f"train {task.name}: name a release to train on")
    if len(set(releases)) < len(releases):
        raise QueryError(f"train {task.name}: a release is named twice in {', '.join(releases)}")
    rows: list[tuple] = []
    with engine.connect() as conn:
        release_ids = [release_id_of(conn, r, f"train {task.name}") for r in releases]
        with conn.connection.driver_connection.cursor() as cur:
            for release_id in release_ids:
                cur.execute(task.training_query, {"release_id": release_id})
                rows += cur.fetchall()
        # too few rows: say why where a release lacks what the task reads (as `healcat infer` does)
        lacking = [] if len(rows) >= 100 else [
            f"{task.model_name} (task {task.name}) does not apply to {name}: {task.missing(conn, release_id)}"
            for name, release_id in zip(releases, release_ids) if not task.applies(conn, release_id)]
    if lacking:
        raise HealcatError(f"train {task.name}: {'; '.join(lacking)} ({' + '.join(releases)}: {len(rows)} training "
                           f"rows, need 100); train on a release it applies to, e.g. its default "
                           f"{' + '.join(task.default_training_releases)}")
    if len(rows) < 100:
        raise HealcatError(f"train {task.name}: {' + '.join(releases)} {'has' if len(releases) == 1 else 'have'} "
                           f"only {len(rows)} training rows (need 100)")
    trained = task.fit(rows, seed=seed, epochs=epochs)
    return register_model(
        engine, name=task.model_name, task=task.name, weights=trained.weights, training_set=task.training_query,
        training_params={"release_ids": release_ids, "releases": list(releases)},
        hyperparams={**trained.hyperparams, "seed": seed, "epochs": epochs, "training_releases": list(releases)},
        metrics=trained.metrics, embedding_dim=trained.embedding_dim)


def register_model(engine: sa.Engine, *, name: str, task: str, weights: bytes, training_set: str,
                   training_params: dict | None = None, hyperparams: dict | None = None,
                   metrics: dict | None = None, embedding_dim: int | None = None) -> Model:
    """Register a model version; the same weights (by sha256) under the same name are the same version.

    A new version is promoted (``promoted_at`` set: current from now on) when :func:`challenge` says
    so, else registered as a candidate (``promoted_at`` NULL). Nothing is queued here: the caller
    queues a promoted version's :func:`backfill`. A name is letters, digits, '.', '_' and '-',
    starting with a letter or digit (it names the weights file); metrics are a JSON object."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise HealcatError(f"model register: a model name is letters, digits, '.', '_' and '-', starting with a "
                           f"letter or digit; not {name!r}")
    if metrics is not None and not isinstance(metrics, dict):
        raise HealcatError(f"model register: metrics must be a JSON object (name: value), not {metrics!r}")
    for what, value in (("metrics", metrics), ("hyperparameters", hyperparams), ("training parameters", training_params)):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:  # NaN / Infinity (no JSON number), or no JSON value
            raise HealcatError(f"model register: {what} must be JSON with finite numbers: {exc}") from None
    sha = hashlib.sha256(weights).hexdigest()
    with engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"model:{name}"))))
        other = conn.scalar(sa.select(Model.task).where(Model.name == name, Model.task != task).limit(1))
        if other is not None:
            raise HealcatError(f"model register: {name} is a model of task {other}; these are {task} weights "
                               "(register them under another name)")
        path = _write_weights(name, weights, sha)  # before the row: a version never lacks its file
        same = conn.execute(sa.select(Model).where(Model.name == name, Model.weights_sha256 == sha)).first()
        if same is not None and same.retired_at is not None:
            raise RetiredVersion(same)
        if same is not None:
            return same
        promote = challenge(task, metrics or {}, current_version(conn, name)).promote
        n = conn.scalar(sa.select(sa.func.count()).where(Model.name == name))
        return conn.execute(sa.insert(Model).values(
            name=name, version=str(n + 1), task=task, framework=f"torch {torch.__version__}", weights_path=str(path),
            weights_sha256=sha, weights=weights, training_set=training_set, training_params=training_params or {},
            hyperparams=hyperparams or {}, metrics=metrics or {}, embedding_dim=embedding_dim,
            promoted_at=sa.func.clock_timestamp() if promote else None,
        ).returning(Model)).first()


class RetiredVersion(HealcatError):
    """Weights registered again whose version was retired: retiring is for good. ``model``: that version."""

    def __init__(self, model: Model) -> None:
        super().__init__(f"model register: these weights are {model.name} version {model.version}, retired at "
                         f"{model.retired_at:%Y-%m-%d %H:%M:%S %Z}; retiring is for good (its outputs stay): "
                         "train with another seed or register other weights")
        self.model = model


@dataclass(frozen=True)
class Challenge:
    """A version's primary held-out metric (its task's :attr:`~ingest.tasks.Task.primary_metric`)
    against another version's (the current one, when it is registered): promoted or a candidate."""

    metric: str  # the metrics key, e.g. "nmad"
    better: str  # "lower" or "higher"
    value: float | None  # the version's (None: its metrics have no such number)
    rival: str | None  # the other version (None: there is none, the model had no current version)
    rival_value: float | None

    @property
    def promote(self) -> bool:
        """No rival, or a value at least as good as the rival's."""
        if self.rival is None:
            return True
        if self.value is None or self.rival_value is None:
            return False
        return self.value <= self.rival_value if self.better == "lower" else self.value >= self.rival_value

    def __str__(self) -> str:
        if self.rival is None:
            return "no version was current before it"
        mine, theirs = ("none" if v is None else f"{v:.4g}" for v in (self.value, self.rival_value))
        verdict = ("at least as good as" if self.promote else
                   "not comparable with" if self.value is None or self.rival_value is None else "worse than")
        return f"held-out {self.metric} {mine}, {verdict} version {self.rival}'s {theirs} ({self.better} is better)"


def challenge(task: str, metrics: dict, rival: Model | None) -> Challenge:
    """``metrics`` of a version of ``task`` against ``rival``'s (:class:`Challenge`)."""
    known = all_tasks().get(task)
    key, better = known.primary_metric if known else ("", "lower")  # a task unknown here: only a first version
    return Challenge(key, better, _metric(metrics, key), rival.version if rival else None,
                     _metric(rival.metrics, key) if rival else None)


def rival(conn: sa.Connection, model: Model) -> Model | None:
    """The version ``model`` is measured against: the current version, or where ``model`` is current,
    the one current before it (the newest promoted, unretired other version, as ``current_model`` orders)."""
    return conn.execute(sa.select(Model).where(
        Model.name == model.name, Model.model_id != model.model_id, Model.retired_at.is_(None),
        Model.promoted_at.is_not(None)).order_by(Model.promoted_at.desc(), Model.model_id.desc()).limit(1)).first()


def _metric(metrics: dict, key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) else None


def current_version(conn: sa.Connection, name: str) -> Model | None:
    """The current version of a model (``current_model``: the newest promoted, unretired), or None."""
    model_id = conn.scalar(sa.text("SELECT model_id FROM healcat.current_model WHERE name = :n"), {"n": name})
    return None if model_id is None else conn.execute(sa.select(Model).where(Model.model_id == model_id)).first()


def promote_model(engine: sa.Engine, name: str, version: str, *, queue_backfill: bool = True) -> tuple[Model, list[int]]:
    """Make a version current whatever its metrics (``promoted_at`` now: the newest promoted) and queue
    its :func:`backfill`; returns it and the jobs queued. The current version already: nothing
    changes. A retired version cannot be promoted (retiring is for good)."""
    with engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"model:{name}"))))
        row = conn.execute(sa.select(Model).where(Model.name == name, Model.version == version)).first()
        if row is None:
            raise missing_model(conn, name, version)
        if row.retired_at is not None:
            raise HealcatError(f"model promote: {name} version {version} was retired at "
                               f"{row.retired_at:%Y-%m-%d %H:%M:%S %Z}; retiring is for good")
        current = current_version(conn, name)
        if current is not None and current.model_id == row.model_id:
            return row, []
        row = conn.execute(sa.update(Model).where(Model.model_id == row.model_id)
                           .values(promoted_at=sa.func.clock_timestamp()).returning(Model)).first()
    return row, (backfill(engine, row) if queue_backfill and row.task in all_tasks() else [])


def register_weights_file(engine: sa.Engine, task_name: str, path: str | Path, *, sha256: str | None = None,
                          name: str | None = None, training_set: str | None = None,
                          hyperparams: dict | None = None, metrics: dict | None = None) -> Model:
    """Register weights trained elsewhere for a task, after checking the sha256 and that they load. Their
    hyperparameters (the model's ``hparams``, saved with the weights: the input region it was trained
    on, its recalibration) are recorded as a trained version's are, unless ``hyperparams`` is given."""
    task = get_task(task_name)
    path = Path(path)
    if not path.is_file():
        raise HealcatError(f"model register: no file {path}")
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if sha256 is not None and sha256.lower() != actual:
        raise HealcatError(f"model register: {path} has sha256 {actual}, not the {sha256} given")
    try:
        model = task.load(str(path), torch.device("cpu"))
    except Exception as exc:  # any failure to load means: not weights of this task (what is wrong: common.load)
        raise HealcatError(f"model register: {path} is not a {task.name} weights file: {exc}") from None
    return register_model(
        engine, name=name or task.model_name, task=task.name, weights=blob,
        training_set=training_set or f"-- trained outside healcat; registered from {path}",
        training_params={"registered_from": str(path)},
        hyperparams=dict(getattr(model, "hparams", {})) if hyperparams is None else hyperparams, metrics=metrics,
        embedding_dim=task.embedding_dim(model))


def retire_model(engine: sa.Engine, name: str, version: str) -> Model:
    """Retire a version: it stops being current; its predictions and embeddings stay, and its queued
    infer jobs are dropped (a retired version writes nothing new), as are its runs left unfinished by
    a crash (:func:`ingest.inference.forget_stranded_runs`: no next run would delete them). Where it was
    current, the previous promoted version is current again and is queued on every release it has
    not run on (:func:`backfill`): releases that only the retired version had run on have no current
    outputs until those jobs run."""
    from ingest.inference import forget_stranded_runs  # (which imports this module)

    with engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"model:{name}"))))
        before = current_version(conn, name)
        row = conn.execute(sa.update(Model).where(Model.name == name, Model.version == version)
                           .values(retired_at=sa.func.coalesce(Model.retired_at, sa.func.now()))
                           .returning(Model)).first()
        if row is None:
            raise missing_model(conn, name, version)
        # its queued runs would only be refused (a retired version writes nothing new): not kept waiting
        dropped = conn.scalars(sa.delete(Job).where(
            Job.kind == "infer", Job.status == "queued", Job.args["model"].astext == name,
            Job.args["version"].astext == version).returning(Job.job_id)).all()
        if dropped:
            log.warning("%s version %s retired: its queued infer jobs %s dropped", name, version,
                        ", ".join(map(str, dropped)))
        if row.task in all_tasks() and (stranded := forget_stranded_runs(conn, row.model_id, get_task(row.task))):
            log.warning("%s version %s retired: its unfinished runs %s (left by a crash) deleted with what they "
                        "wrote", name, version, ", ".join(map(str, stranded)))
        current = current_version(conn, name)
    if current is not None and current.task in all_tasks() and (before is None or before.model_id != current.model_id):
        backfill(engine, current)
    return row


def _write_weights(name: str, blob: bytes, sha256: str) -> Path:
    """Weights under HEALCAT_HOME/models, named by model and checksum, written atomically."""
    folder = home() / "models"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}-{sha256[:16]}.pt"
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as tmp:
        tmp.write(blob)
    Path(tmp.name).replace(path)
    return path


def weights_file(conn: sa.Connection, model_id: int) -> Path:
    """A local file with the model's weights, checked against the registered sha256.

    The file written at registration where it exists on this machine, else the weights stored
    in the catalog, cached under HEALCAT_HOME/models.
    """
    row = conn.execute(sa.select(Model.name, Model.version, Model.weights_path, Model.weights_sha256)
                       .where(Model.model_id == model_id)).one()
    path = Path(row.weights_path)
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != row.weights_sha256:
        blob = conn.scalar(sa.select(Model.weights).where(Model.model_id == model_id))
        if blob is None or hashlib.sha256(blob).hexdigest() != row.weights_sha256:
            raise HealcatError(f"{row.name}/{row.version}: no weights matching sha256 {row.weights_sha256[:12]}... "
                               f"at {path} or in the catalog")
        path = _write_weights(row.name, blob, row.weights_sha256)
    return path


# --- which models run where ---------------------------------------------------------


def applicable_models(conn: sa.Connection, release_id: int) -> list[ModelRef]:
    """The current version of every model whose task applies to the release, prerequisites first.

    Queue each with ``queue.enqueue(conn, "infer", infer_job_args(model, release_name))``, or
    call :func:`enqueue_inference`.
    """
    tasks = all_tasks()
    rows = conn.execute(sa.text("SELECT model_id, name, version, task FROM healcat.current_model ORDER BY name")).all()
    models = [ModelRef(*r) for r in rows if r.task in tasks and tasks[r.task].applies(conn, release_id)]
    return sorted(models, key=lambda m: _depth(tasks, m.task))


def _depth(tasks: dict[str, Task], name: str) -> int:
    return 1 + max((_depth(tasks, r) for r in tasks[name].requires if r in tasks), default=-1)


def infer_job_args(model: ModelRef, release: str) -> dict:
    return {"model": model.name, "version": model.version, "release": release}


def enqueue_inference(conn: sa.Connection, release_id: int, parent_job_id: int | None = None) -> list[int]:
    """Queue an infer job for every applicable model on a release; returns the job ids."""
    release = conn.scalar(sa.select(Release.name).where(Release.release_id == release_id))
    return [queue.enqueue(conn, "infer", infer_job_args(m, release), parent_job_id=parent_job_id)[0]
            for m in applicable_models(conn, release_id)]


def backfill(engine: sa.Engine, model: Model) -> list[int]:
    """Queue infer jobs for a model version that became current over every release it applies to and
    has not finished a run on: the published ones, and the superseded ones where any version of the
    model has a finished run (they stay queryable, and would otherwise keep no current output of the
    model). Readers keep the previous version's outputs until each run completes."""
    task = get_task(model.task)
    ref = ModelRef(model.model_id, model.name, model.version, model.task)
    with engine.begin() as conn:
        releases = conn.execute(sa.text(
            "SELECT r.release_id, r.name FROM healcat.release AS r "
            "WHERE (r.status = 'published' OR (r.status = 'superseded' AND EXISTS "
            "(SELECT 1 FROM healcat.inference_run AS y JOIN healcat.model AS o USING (model_id) "
            "WHERE y.release_id = r.release_id AND o.name = :name AND y.finished_at IS NOT NULL))) "
            "AND NOT EXISTS (SELECT 1 FROM healcat.inference_run AS x WHERE x.release_id = r.release_id "
            "AND x.model_id = :m AND x.finished_at IS NOT NULL) ORDER BY r.release_id"),
            {"m": model.model_id, "name": model.name}).all()
        return [queue.enqueue(conn, "infer", infer_job_args(ref, r.name))[0]
                for r in releases if task.applies(conn, r.release_id)]


def resolve_model(conn: sa.Connection, name: str, version: str | None = None) -> sa.Row:
    """(model_id, name, version, embedding_dim, task, retired_at) of a named version, else the current
    one: the newest promoted, unretired (``current_model``), which is what a run runs. (Searches,
    SQL's ``healcat.resolve_model``, stay on the newest promoted version that has finished a run.)"""
    columns = "model_id, name, version, embedding_dim, task, retired_at"
    row = (conn.execute(sa.text(f"SELECT {columns} FROM healcat.current_model WHERE name = :n"), {"n": name})
           if version is None else
           conn.execute(sa.text(f"SELECT {columns} FROM healcat.model WHERE name = :n AND version = :v"),
                        {"n": name, "v": version})).first()
    if row is None:
        raise missing_model(conn, name, version)
    return row


def missing_model(conn: sa.Connection, name: str, version: str | None) -> QueryError:
    """The error for a model name, or a version of it, that the registry does not have: the versions
    there are, or the models a name may have meant."""
    rows = conn.execute(sa.text("SELECT version, task FROM healcat.model WHERE name = :n ORDER BY model_id"),
                        {"n": name}).all()
    versions = [row.version for row in rows]
    if versions and version is not None:  # as SQL's healcat.resolve_model says it
        return QueryError(f"model {name} has no version {version} (versions: {', '.join(versions)})")
    if versions:  # every version retired, or none promoted (it said "no model named", naming the model itself)
        task = rows[-1].task  # the newest version's
        return QueryError(f"model {name} has no current version: none is promoted and unretired (versions: "
                          f"{', '.join(versions)}): `healcat train {task}` (`--seed N` where seed 0's version was "
                          f"retired), or `healcat model promote {name} VERSION` for a candidate")
    return QueryError(f"no model named {name!r} (version {version or 'current'}){model_hint(conn, name)}")
