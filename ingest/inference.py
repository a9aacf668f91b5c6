"""Between the catalog and the models: training sets by SQL, batched inference, COPY back.

The ML code (``ingest/ml``) knows torch and numpy only; this module streams
inputs out of PostgreSQL with a server-side cursor, runs the model in batches
on the best device, and writes predictions and embedding vectors with binary
COPY, in one transaction per (model version, release), so a run is all or
nothing and rerunning it skips what is done.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import torch

from catalog.db import home
from catalog.errors import HealcatError, QueryError
from catalog.models import InferenceRun, Model, Release
from ingest import progress
from ingest.copy import copy_rows
from ingest.ml import photoz

log = logging.getLogger(__name__)

PHOTOZ_MODEL = "photoz-sdss"
PHOTOZ_BANDS = ("sdss_u", "sdss_g", "sdss_r", "sdss_i", "sdss_z")

#: A release's galaxies (by spectrum, or unclassified), one row each: keys, the five SDSS
#: magnitudes (NULL where not measured) and the spectroscopic redshift.
GALAXY_PHOTOMETRY = f"""
SELECT s.shard, s.source_id,
       {", ".join(f"max(p.mag) FILTER (WHERE p.band = '{b}') AS {b}" for b in PHOTOZ_BANDS)},
       max(r.z) AS z_spec
FROM healcat.source AS s
LEFT JOIN healcat.photometry AS p ON p.shard = s.shard AND p.source_id = s.source_id
LEFT JOIN healcat.spec_redshift AS r ON r.shard = s.shard AND r.source_id = s.source_id
WHERE s.release_id = %(release_id)s AND coalesce(r.spec_class, 'GALAXY') = 'GALAXY' {{where}}
GROUP BY s.shard, s.source_id
"""

#: The photo-z training set: the release's spectroscopic galaxies (recorded in model.training_set).
PHOTOZ_TRAINING_QUERY = GALAXY_PHOTOMETRY.format(where="AND r.spec_class = 'GALAXY' AND r.z IS NOT NULL") + \
    "ORDER BY s.source_id"

_INFERENCE_QUERY = GALAXY_PHOTOMETRY.format(where="""AND NOT EXISTS (
    SELECT 1 FROM healcat.prediction AS x
    WHERE x.shard = s.shard AND x.source_id = s.source_id AND x.model_id = %(model_id)s)""")


def release_id_of(conn: sa.Connection, release: str) -> int:
    release_id = conn.scalar(sa.select(Release.release_id).where(Release.name == release))
    if release_id is None:
        raise QueryError(f"no release named {release!r}")
    return release_id


def photoz_applies(conn: sa.Connection, release: str) -> bool:
    """Whether a release has SDSS photometry for the photo-z model to run on."""
    return bool(conn.scalar(sa.text(
        "SELECT EXISTS (SELECT 1 FROM healcat.source AS s JOIN healcat.photometry AS p USING (shard, source_id) "
        "JOIN healcat.release AS r USING (release_id) WHERE r.name = :release AND p.band = ANY(:bands))"),
        {"release": release, "bands": list(PHOTOZ_BANDS)}))


def train_photoz(engine: sa.Engine, release: str, *, seed: int = 0, epochs: int | None = None) -> Model:
    """Train the photo-z MDN on a release's spectroscopic galaxies and register it (idempotent).

    The same data and seed give the same weights, hence the same checksum and the
    same registered version.
    """
    with engine.connect() as conn:
        release_id = release_id_of(conn, release)
        with conn.connection.driver_connection.cursor() as cur:
            cur.execute(PHOTOZ_TRAINING_QUERY, {"release_id": release_id})
            rows = np.array(cur.fetchall(), dtype=np.float64).reshape(-1, 3 + len(PHOTOZ_BANDS))
    mags, z = rows[:, 2:7], rows[:, 7]
    keep = photoz.valid_rows(mags)
    if keep.sum() < 100:
        raise HealcatError(f"train photoz: {release} has only {keep.sum()} spectroscopic galaxies with ugriz")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 512 through a small MLP: more threads only contend (8x slower on 2 cores)
    try:
        model, report = photoz.train(mags[keep], z[keep], seed=seed, **({"epochs": epochs} if epochs else {}))
    finally:
        torch.set_num_threads(threads)
    blob = photoz.to_bytes(model)
    sha = hashlib.sha256(blob).hexdigest()
    path = _write_weights(blob, sha)
    return register_model(
        engine, name=PHOTOZ_MODEL, task="photoz", weights_path=str(path), weights_sha256=sha,
        weights=blob, training_set=f"-- release_id = {release_id} ({release})\n{PHOTOZ_TRAINING_QUERY}",
        hyperparams={**model.hparams, "seed": seed, "training_release": release},
        metrics=report, embedding_dim=model.hparams["embed_dim"],
    )


def register_model(engine: sa.Engine, *, name: str, weights_sha256: str, **fields) -> Model:
    """Register a model version; the same weights (by checksum) are the same version."""
    with engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"model:{name}"))))
        same = conn.execute(
            sa.select(Model).where(Model.name == name, Model.weights_sha256 == weights_sha256)
        ).first()
        if same is not None:
            return same
        n = conn.scalar(sa.select(sa.func.count()).where(Model.name == name))
        values = dict(name=name, version=str(n + 1), weights_sha256=weights_sha256,
                      framework=f"torch {torch.__version__}", **fields)
        return conn.execute(sa.insert(Model).values(**values).returning(Model)).first()


def _write_weights(blob: bytes, sha256: str) -> Path:
    """Weights under HEALCAT_HOME/models, named by checksum, written atomically."""
    folder = home() / "models"
    folder.mkdir(exist_ok=True)
    path = folder / f"{PHOTOZ_MODEL}-{sha256[:16]}.pt"
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as tmp:
        tmp.write(blob)
    Path(tmp.name).replace(path)
    return path


def _weights_file(conn: sa.Connection, model_id: int) -> Path:
    """A local file with the model's weights, checked against the registered sha256.

    The file written at training time where it exists on this machine, else the weights stored
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
        path = _write_weights(blob, row.weights_sha256)
    return path


def _device(name: str | None) -> torch.device:
    if name is None:
        return photoz.best_device()
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HealcatError(f"infer: device {name!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU")
    return device


@dataclass
class RunResult:
    run_id: int
    n_predicted: int
    n_skipped: int
    device: str


def run_photoz(engine: sa.Engine, release: str, *, version: str | None = None,
               batch_size: int = 8192, device: str | None = None) -> RunResult:
    """Predict photo-z PDFs and embeddings for a release's galaxies that have none from this model version.

    Galaxies without all five magnitudes get no prediction and are counted in ``n_skipped``.
    """
    dev = _device(device)
    with engine.begin() as conn:
        try:
            model_row = conn.execute(sa.text("SELECT * FROM healcat.resolve_model(:n, :v)"),
                                     {"n": PHOTOZ_MODEL, "v": version}).one()
        except sa.exc.DBAPIError as exc:
            raise QueryError(str(exc.orig).splitlines()[0]) from None
        release_id = release_id_of(conn, release)
        # One run per (model version, release) at a time; the next one finds the work done.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
            sa.func.hashtext(f"infer:{model_row.model_id}:{release_id}"))))
        model = photoz.load(str(_weights_file(conn, model_row.model_id)), map_location=dev)
        run_id = conn.scalar(
            sa.insert(InferenceRun).values(model_id=model_row.model_id, release_id=release_id,
                                           device=_describe(dev)).returning(InferenceRun.run_id)
        )
        pg = conn.connection.driver_connection
        n_pred = n_skip = 0
        with pg.cursor(name=f"infer_{run_id}") as cur:
            cur.itersize = batch_size
            cur.execute(_INFERENCE_QUERY, {"release_id": release_id, "model_id": model_row.model_id})
            while batch := cur.fetchmany(batch_size):
                keys = np.array([r[:2] for r in batch], dtype=np.int64)
                mags = np.array([r[2:7] for r in batch], dtype=np.float64)  # NULL -> NaN
                ok = photoz.valid_rows(mags)
                n_skip += int((~ok).sum())
                progress.report(n_pred + n_skip + int(ok.sum()))
                if ok.any():
                    out = photoz.predict(model, photoz.features(mags[ok]), device=dev)
                    n_pred += _write(pg, keys[ok], out, model_row.model_id, run_id)
        conn.execute(sa.update(InferenceRun).where(InferenceRun.run_id == run_id).values(
            n_predicted=n_pred, n_skipped=n_skip, finished_at=sa.func.now()))
    if n_pred:
        ensure_embedding_index(engine, model_row.model_id, model_row.embedding_dim)
    log.info("%s/%s on %s: %d predicted, %d skipped", PHOTOZ_MODEL, model_row.version, release, n_pred, n_skip)
    return RunResult(run_id, n_pred, n_skip, _describe(dev))


def ensure_embedding_index(engine: sa.Engine, model_id: int, dim: int) -> None:
    """The model's HNSW index (cosine), a partial index on vec::vector(dim), built CONCURRENTLY.

    Writers of other models' embeddings are not blocked while it builds; a build that died half
    way leaves an invalid index, which is dropped and built again.
    """
    name = f"ix_embedding_hnsw_{int(model_id)}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        valid = conn.scalar(sa.text("SELECT i.indisvalid FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
                                    "WHERE c.relname = :name AND c.relnamespace = 'healcat'::regnamespace"),
                            {"name": name})
        if valid:
            return
        if valid is False:
            conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY healcat.{name}")
        conn.exec_driver_sql(
            f"CREATE INDEX CONCURRENTLY {name} ON healcat.embedding "
            f"USING hnsw ((vec::vector({int(dim)})) vector_cosine_ops) WHERE model_id = {int(model_id)}")


def _write(pg, keys: np.ndarray, out: dict[str, np.ndarray], model_id: int, run_id: int) -> int:
    shard, sid = keys[:, 0].tolist(), keys[:, 1].tolist()
    n = copy_rows(
        pg, "prediction",
        ("shard", "source_id", "model_id", "run_id", "value", "uncertainty", "pdf_weights", "pdf_means", "pdf_sigmas"),
        ("int2", "int8", "int4", "int8", "float8", "float8", "float4[]", "float4[]", "float4[]"),
        zip(shard, sid, [model_id] * len(sid), [run_id] * len(sid), out["z_point"].tolist(),
            out["z_sigma"].tolist(), out["weights"].tolist(), out["means"].tolist(), out["sigmas"].tolist()),
    )
    copy_rows(
        pg, "embedding", ("shard", "source_id", "model_id", "run_id", "vec"),
        ("int2", "int8", "int4", "int8", "vector"),
        zip(shard, sid, [model_id] * len(sid), [run_id] * len(sid), out["embedding"].astype(np.float32)),
    )
    return n


def _describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


# --- which models a release gets ---------------------------------------------------------------
# The worker queues one infer job per name this returns, and runs it with run_model. Today the
# only model is photo-z; the model registry replaces these two with its own.


def applicable_models(conn: sa.Connection, release_id: int) -> list[str]:
    """Names of the current models that can run on a release's objects."""
    release = conn.scalar(sa.select(Release.name).where(Release.release_id == release_id))
    has_photoz = conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM healcat.current_model WHERE name = :n)"),
                             {"n": PHOTOZ_MODEL})
    return [PHOTOZ_MODEL] if has_photoz and photoz_applies(conn, release) else []


def run_model(engine: sa.Engine, model: str, release: str, *, version: str | None = None) -> RunResult:
    if model != PHOTOZ_MODEL:
        raise QueryError(f"infer: no model named {model!r} (known: {PHOTOZ_MODEL})")
    return run_photoz(engine, release, version=version)
