"""Similarity search on 1 million 128-d embeddings: recall@10 against exact search, latency, k rows always.

The vectors are synthetic: a Gaussian mixture of 1000 centres in 128 dimensions, each component
with its own rank-8 covariance plus a little isotropic noise (so the data have a low intrinsic
dimension, as learned embeddings do), seeded. They are attached, as the embeddings of a benchmark
model ``bench-gmm128``, to 1,000,000 real source rows of the 10M sky (benchmarks/sky10m.py), so
the filters are real: a magnitude cut (Gaia G) keeping 20% of the embedded rows, and a cone
holding 1% of them (its candidates are all sources in the cone, most without an embedding).
The HNSW index (ingest.inference.hnsw_build_params: m=32, ef_construction=200 at 128-d; cosine) is built once
and kept in the benchmark catalog (HEALCAT_HOME, default var/bench).

For each case, 50 seeded query vectors drawn from the mixture. Baseline in the same run: the same
searches with mode 'exact', each checked against numpy brute force over the same vectors and filter
(its rows are the k nearest, up to float rounding; the benchmark fails otherwise). Then
healcat.similar_to_vector with mode 'auto' (the plan it picks is printed) at the default ef_search
and at 40, 64 and 200 (approximate plans only; an exact plan has no ef), the candidates as
ARRAY(SELECT source_id FROM <temp table>): recall@10 against the exact search's rows, p50/p95
latency, the fewest rows returned, and the p50 against the exact search's p50 over the same queries.

``BENCH_SIMILARITY_N`` (default 1,000,000; at most the sky's size) and ``BENCH_SIMILARITY_QUERIES``
(default 50) size a quick run; a size other than the default has a model version of its own (v1-n<N>).
"""

from __future__ import annotations

import os
import time

import astropy.units as u
import numpy as np
import psycopg
import sqlalchemy as sa
from astropy.coordinates import angular_separation
from pgvector.psycopg import register_vector

from benchmarks import bench_cone, sky10m
from catalog.pgcopy import copy_columns
from catalog.settings import from_env

N_EMBEDDED = from_env("BENCH_SIMILARITY_N", 100, int, "embedded sources") or 1_000_000  # 1% of them: a cone
MODEL, VERSION, DIM = "bench-gmm128", "v1" if N_EMBEDDED == 1_000_000 else f"v1-n{N_EMBEDDED}", 128
N_CENTRES, RANK, SEED = 1000, 8, 7
K, N_QUERIES = 10, from_env("BENCH_SIMILARITY_QUERIES", 1, int, "query vectors") or 50
#: Cosine distances this close count as a tie between pgvector's float4 arithmetic and numpy's.
TIE = 1e-5
#: healcat's default (None: what healcat.plan_similar picks), then wider searches: recall against effort.
EF_SEARCH = (None, 40, 64, 200)
TARGET_RECALL, TARGET_P50_MS = 0.95, 10.0


def mixture(rng: np.random.Generator, n: int, centres: np.ndarray, bases: np.ndarray) -> np.ndarray:
    comp = rng.integers(0, len(centres), n)
    z = rng.normal(0.0, 1.0, (n, RANK)).astype(np.float32)
    x = centres[comp] + np.einsum("nr,nrd->nd", z, bases[comp]) + rng.normal(0.0, 0.05, (n, DIM)).astype(np.float32)
    return x.astype(np.float32)


def vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row indices into the sky, their vectors, the query vectors): all from SEED."""
    rng = np.random.default_rng(SEED)
    centres = rng.normal(0.0, 1.0, (N_CENTRES, DIM)).astype(np.float32)
    bases = (rng.normal(0.0, 1.0, (N_CENTRES, RANK, DIM)) * 0.35).astype(np.float32)
    rows = np.sort(rng.choice(len(sky10m.sky()), N_EMBEDDED, replace=False))
    data = np.concatenate([mixture(rng, min(20_000, N_EMBEDDED - i), centres, bases)
                           for i in range(0, N_EMBEDDED, 20_000)])
    queries = mixture(rng, N_QUERIES, centres, bases)
    return rows, data, queries


def _pgvector_binary(x: np.ndarray) -> np.ndarray:
    """pgvector's binary form (int16 dim, int16 0, float4 values, big-endian) as fixed-width raw values."""
    out = np.empty(len(x), dtype=[("dim", ">i2"), ("unused", ">i2"), ("x", ">f4", (DIM,))])
    out["dim"], out["unused"], out["x"] = DIM, 0, x
    return out.view(f"V{out.dtype.itemsize}").ravel()


def load(engine: sa.Engine, s: sky10m.Sky, ids: np.ndarray, rows: np.ndarray, data: np.ndarray) -> int:
    """The benchmark model with its embeddings and HNSW index (loaded once); returns its model_id."""
    from catalog import healpix
    from catalog.models import InferenceRun, Model, Release
    from ingest.inference import ensure_embedding_index

    with engine.begin() as conn:
        model_id = conn.scalar(sa.select(Model.model_id).where(Model.name == MODEL, Model.version == VERSION))
        if model_id is None:
            model_id = conn.scalar(sa.insert(Model).values(
                name=MODEL, version=VERSION, task="embedding", framework="numpy (synthetic, benchmarks)",
                weights_path="", weights_sha256="", training_set="synthetic Gaussian mixture, benchmarks/bench_similarity.py",
                embedding_dim=DIM).returning(Model.model_id))
            release_id = conn.scalar(sa.select(Release.release_id).where(Release.name == sky10m.RELEASE))
            run_id = conn.scalar(sa.insert(InferenceRun).values(
                model_id=model_id, release_id=release_id, device="cpu", n_predicted=N_EMBEDDED,
                finished_at=sa.func.now()).returning(InferenceRun.run_id))
            shard = healpix.shard_of(s.hpx[rows]).astype(np.int16)
            copy_columns(conn.connection.driver_connection, "healcat.embedding",
                         ("shard", "source_id", "model_id", "run_id", "vec"),
                         (shard, ids[rows], np.full(N_EMBEDDED, model_id, np.int32),
                          np.full(N_EMBEDDED, run_id, np.int64), _pgvector_binary(data)))
    # The m=32 graph of 1M x 128-d vectors (~1.5 GB) fits in 3 GB: an in-memory build, several
    # times faster than one that spills; one parallel worker besides the leader (2 cores).
    builder = sa.create_engine(engine.url, connect_args={
        "options": "-c maintenance_work_mem=3GB -c max_parallel_maintenance_workers=1"})
    t0 = time.perf_counter()
    ensure_embedding_index(builder, model_id, DIM)
    if (took := time.perf_counter() - t0) > 1:
        print(f"HNSW index on {N_EMBEDDED:,} vectors built in {took:.0f} s")
    builder.dispose()
    return model_id


def prewarm_index(url: str, model_id: int) -> str:
    """The model's HNSW index read into shared buffers (sky10m.serve_from_memory sized them); returns
    the setting."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        conn.execute("SELECT pg_prewarm(%s)", (f"healcat.ix_embedding_hnsw_{model_id}",))
        return conn.execute("SHOW shared_buffers").fetchone()[0]


def brute_force(unit: np.ndarray, q: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Every embedded row's cosine distance to q (inf where the filter drops it)."""
    d = 1.0 - unit @ (q / np.linalg.norm(q))
    if mask is not None:
        d[~mask] = np.inf
    return d


def check_exact(got: list[int], emb_ids: np.ndarray, d: np.ndarray, where: str) -> None:
    """An exact search's rows must be the k nearest by brute force (distances d, rows in emb_ids' order,
    which is ascending): as many as there are, none filtered out, none farther than the k-th but by TIE."""
    n_want = min(K, int(np.isfinite(d).sum()))
    kth = np.partition(d, n_want - 1)[n_want - 1] if n_want else -np.inf
    at = np.searchsorted(emb_ids, got)
    known = (at < len(emb_ids)) & (emb_ids[np.minimum(at, len(emb_ids) - 1)] == got)
    far = [sid for sid, i, ok in zip(got, at, known) if not ok or d[i] > kth + TIE]
    assert len(got) == n_want and not far, (f"similarity, exact mode, {where}: {len(got)} rows for {n_want}; "
                                            f"not among the {n_want} nearest: {far[:10]}")


def main() -> None:
    engine, url, s, ids = bench_cone.prepare()
    rows, data, queries = vectors()
    model_id = load(engine, s, ids, rows, data)
    engine.dispose()
    shared_buffers = prewarm_index(url, model_id)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    emb_ids = ids[rows]

    # 20%: a magnitude cut on the embedded rows; 1%: a cone around the first embedded row (in hpx
    # order) holding 10,000 embedded rows (candidates: every source in it).
    g = s.g_mag[rows]
    g20 = float(np.quantile(g, 0.2))
    bright = g < g20
    ra0, dec0 = float(s.ra[rows[0]]), float(s.dec[rows[0]])
    sep = angular_separation(ra0 * u.deg, dec0 * u.deg, s.ra[rows] * u.deg, s.dec[rows] * u.deg).to_value(u.deg)
    ordered, n = np.sort(sep), N_EMBEDDED // 100
    # halfway between the 1%'s farthest and the next: no source on the boundary, where astropy's formula
    # and healcat's may round apart
    radius_deg = float((ordered[n] + ordered[n + 1]) / 2)
    in_cone_emb = sep <= radius_deg
    with psycopg.connect(url) as conn:
        register_vector(conn)
        # The filters' candidate sets, kept server-side as an astronomer's subquery would be.
        conn.execute("CREATE TEMP TABLE cand_bright AS SELECT unnest(%s::bigint[]) AS source_id",
                     (emb_ids[bright].tolist(),))
        conn.execute("CREATE TEMP TABLE cand_cone AS SELECT source_id FROM healcat.cone_search(%s, %s, %s)",
                     (ra0, dec0, radius_deg * 3600))
        n_cone = conn.execute("SELECT count(*) FROM cand_cone").fetchone()[0]
        cases = {"unfiltered": ("NULL", None),
                 f"G < {g20:.2f} (20%)": ("ARRAY(SELECT source_id FROM cand_bright)", bright),
                 f"{radius_deg:.1f} deg cone (1%)": ("ARRAY(SELECT source_id FROM cand_cone)", in_cone_emb)}
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        index = conn.execute(
            "SELECT pg_get_indexdef(c.oid), pg_size_pretty(pg_relation_size(c.oid)) FROM pg_class AS c "
            "WHERE c.relname = %s", (f"ix_embedding_hnsw_{model_id}",)).fetchone()
        print(f"\nsimilarity search: {N_EMBEDDED:,} x {DIM}-d embeddings (synthetic Gaussian mixture) on "
              f"{len(s):,} sources; pgvector {version}; k={K}, {N_QUERIES} queries per case; the cone's "
              f"candidates are its {n_cone:,} sources; load average {os.getloadavg()[0]:.1f}")
        print(f"index: {index[0].split(' USING ')[1]} ({index[1]}, prewarmed; shared_buffers {shared_buffers})")
        print(f"{'filter':>24} {'embedded':>9} {'plan':>6} {'ef':>4} | {'recall@10':>9} {'p50':>8} {'p95':>8} "
              f"{'min rows':>8} | {'exact p50':>9} {'ratio':>6} | target")
        for label, (cands, mask) in cases.items():
            truth_n = int(mask.sum()) if mask is not None else N_EMBEDDED
            exact, t_exact = [], []
            for i, q in enumerate(queries):  # the baseline, on the same queries as the figures beside it
                got, ms = _search(conn, q, cands, "exact", None)
                check_exact(got, emb_ids, brute_force(unit, q, mask), f"{label}, query {i}")
                exact.append(set(got))
                t_exact.append(ms)
            for ef in EF_SEARCH:
                plan, ef_used = conn.execute(
                    f"SELECT plan, hnsw_ef_search FROM healcat.similar_plan(%s, %s, candidates => {cands}, "
                    "ef_search => %s)", (MODEL, K, ef)).fetchone()
                if plan == "exact" and ef is not EF_SEARCH[0]:
                    break  # ef_search plays no part in an exact search
                t, recalls, fewest = [], [], K
                for q, expected in zip(queries, exact):
                    got, ms = _search(conn, q, cands, "auto", ef)
                    t.append(ms)
                    fewest = min(fewest, len(got))
                    recalls.append(len(expected & set(got)) / max(1, len(expected)))
                p50, p95, recall = float(np.median(t)), float(np.percentile(t, 95)), float(np.mean(recalls))
                ok = (recall >= TARGET_RECALL and fewest == min(K, truth_n)
                      and (mask is not None or p50 <= TARGET_P50_MS))
                ef_shown = "-" if plan == "exact" else ef_used  # ef_search plays no part in an exact plan
                print(f"{label:>24} {truth_n:>9,} {plan:>6} {ef_shown:>4} | {recall:>9.3f} {p50:>6.2f}ms "
                      f"{p95:>6.2f}ms {fewest:>8} | {np.median(t_exact):>7.1f}ms {p50 / np.median(t_exact):>6.3f} | "
                      f"{'met' if ok else 'MISSED'}")
        print(f"load average after the run: {os.getloadavg()[0]:.1f}")


def _search(conn: psycopg.Connection, q: np.ndarray, candidates: str, mode: str, ef: int | None):
    t0 = time.perf_counter()
    got = [r[0] for r in conn.execute(
        f"SELECT source_id FROM healcat.similar_to_vector(%s, %s, %s, candidates => {candidates}, mode => %s, "
        "ef_search => %s)", (q, MODEL, K, mode, ef))]
    return got, (time.perf_counter() - t0) * 1000


if __name__ == "__main__":
    main()
