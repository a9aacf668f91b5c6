"""Between the catalog and the models: training sets by SQL, batched inference, COPY back.

The ML code (``ingest/ml``) knows torch and numpy only; this module streams
inputs out of PostgreSQL with a server-side cursor, runs the model in batches
on the best device, and writes predictions and embedding vectors with binary
COPY, in one transaction per (model version, release), so a run is all or
nothing and rerunning it skips what is done.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import torch

from catalog.db import home
from catalog.errors import HealcatError
from catalog.models import InferenceRun, Model, Release
from ingest.copy import copy_rows
from ingest.ml import photoz

log = logging.getLogger(__name__)

PHOTOZ_MODEL = "photoz-sdss"
PHOTOZ_BANDS = ("sdss_u", "sdss_g", "sdss_r", "sdss_i", "sdss_z")

# Galaxies (by spectrum, or unclassified) with all five SDSS bands, one row each.
_PHOTOMETRY = """
SELECT s.shard, s.source_id, {pivot}, r.z AS z_spec
FROM healcat.source AS s
JOIN healcat.photometry AS p ON p.shard = s.shard AND p.source_id = s.source_id AND p.band = ANY(%(bands)s)
LEFT JOIN healcat.spec_redshift AS r ON r.shard = s.shard AND r.source_id = s.source_id
WHERE coalesce(r.spec_class, 'GALAXY') = 'GALAXY' {where}
GROUP BY s.shard, s.source_id, r.z
HAVING count(p.mag) = cardinality(%(bands)s)
"""

#: The training set of the photo-z model, recorded verbatim in model.training_set.
PHOTOZ_TRAINING_QUERY = _PHOTOMETRY.format(
    pivot=", ".join(f"max(p.mag) FILTER (WHERE p.band = '{b}') AS {b}" for b in PHOTOZ_BANDS),
    where="AND r.z IS NOT NULL AND r.spec_class = 'GALAXY'",
) + "ORDER BY s.source_id"

_INFERENCE_QUERY = _PHOTOMETRY.format(
    pivot=", ".join(f"max(p.mag) FILTER (WHERE p.band = '{b}') AS {b}" for b in PHOTOZ_BANDS),
    where="""AND s.release_id = %(release_id)s AND NOT EXISTS (
        SELECT 1 FROM healcat.prediction AS x
        WHERE x.shard = s.shard AND x.source_id = s.source_id AND x.model_id = %(model_id)s)""",
)


def _pg(conn: sa.Connection):
    return conn.connection.driver_connection


def train_photoz(engine: sa.Engine, *, seed: int = 0, epochs: int | None = None) -> Model:
    """Train the photo-z MDN on the catalog's spectroscopic galaxies and register it (idempotent).

    The same data and seed give the same weights, hence the same checksum and the
    same registered version.
    """
    with engine.connect() as conn, _pg(conn).cursor() as cur:
        cur.execute(PHOTOZ_TRAINING_QUERY, {"bands": list(PHOTOZ_BANDS)})
        rows = np.array(cur.fetchall(), dtype=np.float64).reshape(-1, 3 + len(PHOTOZ_BANDS))
    if len(rows) < 100:
        raise HealcatError(f"train photoz: only {len(rows)} spectroscopic galaxies with ugriz in the catalog")
    mags, z = rows[:, 2:7], rows[:, 7]
    keep = photoz.valid_rows(mags)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 512 through a small MLP: more threads only contend (8x slower on 2 cores)
    try:
        model, report = photoz.train(mags[keep], z[keep], seed=seed, **({"epochs": epochs} if epochs else {}))
    finally:
        torch.set_num_threads(threads)
    folder = home() / "models"
    folder.mkdir(exist_ok=True)
    tmp = folder / f"{PHOTOZ_MODEL}.tmp.pt"
    sha = photoz.save(model, str(tmp))
    path = folder / f"{PHOTOZ_MODEL}-{sha[:16]}.pt"
    tmp.replace(path)
    return register_model(
        engine, name=PHOTOZ_MODEL, task="photoz", weights_path=path, weights_sha256=sha,
        training_set=PHOTOZ_TRAINING_QUERY, hyperparams={**model.hparams, "seed": seed},
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
        values["weights_path"] = str(values["weights_path"])
        return conn.execute(sa.insert(Model).values(**values).returning(Model)).first()


@dataclass
class RunResult:
    run_id: int | None
    n_predicted: int
    n_skipped: int
    device: str


def run_photoz(engine: sa.Engine, release: str, *, version: str | None = None,
               batch_size: int = 8192, device: str | None = None) -> RunResult:
    """Predict photo-z PDFs and embeddings for a release's galaxies that have none from this model version."""
    dev = torch.device(device) if device else photoz.best_device()
    with engine.begin() as conn:
        model_row = conn.execute(sa.text("SELECT * FROM healcat.resolve_model(:n, :v)"),
                                 {"n": PHOTOZ_MODEL, "v": version}).first()
        release_id = conn.scalar(sa.select(Release.release_id).where(Release.name == release))
        if release_id is None:
            raise HealcatError(f"infer: no release named {release!r}")
        if not Path(model_row.weights_path).is_file():
            raise HealcatError(f"infer: weights of {PHOTOZ_MODEL}/{model_row.version} missing: {model_row.weights_path}")
        model = photoz.load(model_row.weights_path, map_location=dev)
        run_id = conn.scalar(
            sa.insert(InferenceRun).values(model_id=model_row.model_id, release_id=release_id,
                                           device=_describe(dev)).returning(InferenceRun.run_id)
        )
        pg = _pg(conn)
        n_pred = n_skip = 0
        with pg.cursor(name=f"infer_{run_id}") as cur:
            cur.itersize = batch_size
            cur.execute(_INFERENCE_QUERY, {"bands": list(PHOTOZ_BANDS), "release_id": release_id,
                                           "model_id": model_row.model_id})
            while batch := cur.fetchmany(batch_size):
                keys = np.array([r[:2] for r in batch], dtype=np.int64)
                mags = np.array([r[2:7] for r in batch], dtype=np.float64)
                ok = photoz.valid_rows(mags)
                n_skip += int((~ok).sum())
                out = photoz.predict(model, photoz.features(mags[ok]), device=dev)
                n_pred += _write(pg, keys[ok], out, model_row.model_id, run_id)
        conn.execute(sa.update(InferenceRun).where(InferenceRun.run_id == run_id).values(
            n_predicted=n_pred, n_skipped=n_skip, finished_at=sa.func.now()))
        if n_pred:
            conn.execute(sa.select(sa.func.healcat.ensure_embedding_index(model_row.model_id)))
    log.info("%s/%s on %s: %d predicted, %d skipped", PHOTOZ_MODEL, model_row.version, release, n_pred, n_skip)
    return RunResult(run_id, n_pred, n_skip, _describe(dev))


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
