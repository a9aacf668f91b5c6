"""The photo-z model: trained on the catalog's galaxies, registered with metrics, run and written back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from scipy import stats

from catalog.errors import HealcatError, QueryError
from catalog.search import similar
from ingest.inference import run_model
from ingest.ml import classifier, common, metrics, photoz
from ingest.registry import backfill, promote_model, register_model, train, weights_file
from ingest.tasks import get_task, ugriz
from ingest.tasks.photoz import Photoz
from tests.conftest import GAIA_RELEASE, SDSS_RELEASE

PHOTOZ_MODEL = Photoz.model_name


def train_photoz(engine, release, seed=0):
    return train(engine, "photoz", release, seed=seed)


def run_photoz(engine, release):
    return run_model(engine, PHOTOZ_MODEL, release)


def test_model_is_registered_with_checksum_query_and_held_out_metrics(engine, catalog):
    model = catalog["model"]
    assert Path(model.weights_path).is_file()
    assert hashlib.sha256(Path(model.weights_path).read_bytes()).hexdigest() == model.weights_sha256
    assert model.training_set == Photoz.training_query and model.training_params["releases"] == [SDSS_RELEASE]
    assert model.task == "photoz" and model.hyperparams["training_releases"] == [SDSS_RELEASE]
    m = model.metrics
    assert m["n_test"] >= 900 and m["n_train"] >= 3000
    # SDSS main-sample galaxies from ugriz alone: the MDN must beat these bounds.
    assert m["nmad"] < 0.025 and m["outlier_fraction"] < 0.01 and abs(m["bias"]) < 0.01
    with engine.connect() as conn:
        current = conn.execute(sa.text("SELECT model_id, version FROM healcat.current_model WHERE name = :n"),
                               {"n": PHOTOZ_MODEL}).one()
    assert current.model_id == model.model_id


def test_training_is_reproducible(engine, catalog):
    again = train_photoz(engine, SDSS_RELEASE)  # same data, same seed: same weights, hence the same version
    assert (again.model_id, again.weights_sha256) == (catalog["model"].model_id, catalog["model"].weights_sha256)


def test_predictions_cover_the_galaxies_and_agree_with_spec_z(engine, catalog):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.value, p.uncertainty, p.pdf_weights, p.pdf_means, p.pdf_sigmas, z.z, z.spec_class "
            "FROM healcat.current_prediction p JOIN healcat.spec_redshift z USING (shard, source_id) "
            "WHERE p.model_name = :m"), {"m": PHOTOZ_MODEL}).all()
        n_galaxies = conn.scalar(sa.text(
            "SELECT count(*) FROM healcat.spec_redshift z JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE r.name = :r AND z.spec_class = 'GALAXY'"),
            {"r": SDSS_RELEASE})
        n_embeddings = conn.scalar(sa.text("SELECT count(*) FROM healcat.embedding WHERE model_id = :m"),
                                   {"m": catalog["model"].model_id})
        n_refused = conn.scalar(sa.text(  # outside the training galaxies' inputs (test_few_sdss_galaxies_are_refused)
            "SELECT count(*) FROM healcat.inference_skip WHERE run_id = :r AND reason NOT LIKE 'not a galaxy: spectrum%'"),
            {"r": catalog["run"].run_id})
    assert len(rows) == n_galaxies - n_refused == n_embeddings == catalog["run"].n_predicted
    assert {r.spec_class for r in rows} == {"GALAXY"}
    z_phot = np.array([r.value for r in rows])
    z_spec = np.array([r.z for r in rows])
    assert metrics.nmad(z_phot, z_spec) < 0.03  # over all galaxies, training ones included
    weights = np.array([r.pdf_weights for r in rows])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)
    assert np.all(np.array([r.pdf_sigmas for r in rows]) > 0) and np.all(np.array([r.uncertainty for r in rows]) > 0)


def test_the_stored_percentiles_are_sqls_median_and_68_percent_interval(engine, catalog):
    """The run stores the 16th, 50th and 84th percentiles of p(z) above z = 0 (float32 in the model):
    SQL's mixture_interval(..., 0.68, 0) and mixture_quantile(..., 0.5, 0) on the stored mixture, in float8."""
    with engine.connect() as conn:
        worst = conn.execute(sa.text(
            "SELECT count(*), count(p.value_p16), count(p.value_p84), max(abs(p.value_p16 - i.lo)), "
            "max(abs(p.value - healcat.mixture_quantile(p.pdf_weights, p.pdf_means, p.pdf_sigmas, 0.5, 0))), "
            "max(abs(p.value_p84 - i.hi)), bool_and(p.value_p16 < p.value AND p.value < p.value_p84) "
            "FROM healcat.prediction p, healcat.mixture_interval(p.pdf_weights, p.pdf_means, p.pdf_sigmas, 0.68, 0) i "
            "WHERE p.run_id = :r"), {"r": catalog["run"].run_id}).one()
    assert worst[0] == worst[1] == worst[2] == catalog["run"].n_predicted > 4000
    assert max(worst[3:6]) < 5e-6 and worst[6]


@pytest.mark.parametrize("seed", range(4))
def test_the_percentiles_hold_on_hard_mixtures(seed):
    """Narrow components at the sigma floor beside wide ones, modes far apart, mass below z = 0: each
    percentile within 2e-6 of a float8 bisection's (the float32 CDF's resolution over the density)."""
    rng = np.random.default_rng(seed)
    n, k = 2000, 5
    w = rng.dirichlet(np.full(k, 0.3), n)
    mu = rng.uniform(-0.3, 4.0, (n, k))
    sigma = np.exp(rng.uniform(np.log(photoz.SIGMA_FLOOR), np.log(1.0), (n, k)))
    w[:, 0] = np.where(rng.random(n) < 0.2, 0.0, w[:, 0])  # components with no weight
    w /= w.sum(1, keepdims=True)
    t = [torch.tensor(a, dtype=torch.float32) for a in (w, mu, sigma)]
    below = (t[0] * torch.special.ndtr(-t[1] / t[2])).sum(1)
    mean, var = photoz._truncated_moments(*t, 0.0)
    got = photoz._mixture_quantiles(*t, 0.0, below, mean, var.clamp_min(0).sqrt()).numpy()
    w, mu, sigma = (a.numpy().astype(np.float64) for a in t)  # the float32 mixture the model holds
    def cdf(z, rows=slice(None)):
        return (w[rows] * stats.norm.cdf((z[:, None] - mu[rows]) / sigma[rows])).sum(1)

    lost = cdf(np.zeros(n))
    for j, q in enumerate((0.16, 0.5, 0.84)):
        lo, hi = np.maximum((mu - 8 * sigma).min(1), 0.0), (mu + 8 * sigma).max(1)
        for _ in range(70):
            mid = 0.5 * (lo + hi)
            left = cdf(mid) < lost + (1 - lost) * q
            lo, hi = np.where(left, mid, lo), np.where(left, hi, mid)
        want = 0.5 * (lo + hi)
        # where p(z) is nearly flat, any z in the flat run is the percentile: compare CDFs there
        flat = np.abs(got[:, j] - want) > 2e-6
        assert flat.mean() < 0.01
        assert np.abs(cdf(got[flat, j].astype(np.float64), flat) - cdf(want[flat], flat)).max(initial=0) < 1e-6
    assert np.all(got[:, 0] <= got[:, 1]) and np.all(got[:, 1] <= got[:, 2]) and np.all(got[:, 0] >= 0)


def test_rerunning_inference_writes_nothing(engine, catalog):
    again = run_photoz(engine, SDSS_RELEASE)
    assert again.n_predicted == 0 and again.n_skipped == 0 and again.already_done
    with engine.connect() as conn:  # the finished run's id and the device it ran on, not this call's
        assert conn.execute(sa.text("SELECT run_id, device FROM healcat.inference_run WHERE run_id = :r"),
                            {"r": again.run_id}).one() == (again.run_id, again.device)


def test_inference_skips_invalid_magnitudes():
    mags = np.array([[19.0, 17.5, 16.9, 16.5, 16.3], [-9999.0, 17.5, 16.9, 16.5, 16.3], [19, 17, np.nan, 16, 16]])
    assert photoz.valid_rows(mags).tolist() == [True, False, False]


def test_similarity_is_ordered_and_matches_exact_search(engine, catalog):
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source_id, vec FROM healcat.embedding WHERE model_id = :m "
                                    "ORDER BY source_id"), {"m": catalog["model"].model_id}).all()
    ids = np.array([r.source_id for r in rows])
    vecs = np.array([r.vec.to_numpy() for r in rows], dtype=np.float64)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rng = np.random.default_rng(7)
    recalls = []
    for i in rng.choice(len(ids), 20, replace=False):
        got = similar(int(ids[i]), model=PHOTOZ_MODEL, k=10)
        assert len(got) == 10 and int(ids[i]) not in set(got["source_id"])
        assert np.all(np.diff(got["distance"]) >= 0)
        exact_d = 1 - vecs @ vecs[i]
        exact_d[i] = np.inf
        exact = set(ids[np.argsort(exact_d, kind="stable")[:10]])
        recalls.append(len(exact & set(got["source_id"])) / 10)
        lookup = dict(zip(ids, exact_d))
        np.testing.assert_allclose(got["distance"], [lookup[s] for s in got["source_id"]], atol=1e-5)
    assert np.mean(recalls) >= 0.95


def test_similarity_by_vector_sql_and_cli_agree(engine, catalog, capsys):
    from catalog.cli import main

    sid = _a_galaxy(engine)
    with engine.connect() as conn:
        vec = conn.execute(sa.text("SELECT e.vec FROM healcat.embedding e WHERE e.source_id = :s"), {"s": sid}).scalar()
        sql_rows = conn.execute(sa.text("SELECT * FROM healcat.similar_sources(:s, :m, 5)"),
                                {"s": sid, "m": PHOTOZ_MODEL}).all()
    by_vector = similar(vector=vec.to_numpy(), model=PHOTOZ_MODEL, k=6)
    by_source = similar(sid, model=PHOTOZ_MODEL, k=5)
    assert by_vector["source_id"][0] == sid and by_vector["distance"][0] == pytest.approx(0, abs=1e-6)
    assert list(by_vector["source_id"][1:]) == list(by_source["source_id"]) == [r.source_id for r in sql_rows]
    assert main(["similar", str(sid), "-k", "5", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(by_source["source_id"])


def _a_galaxy(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text(
            "SELECT s.source_id FROM healcat.source s JOIN healcat.spec_redshift z USING (shard, source_id) "
            "WHERE z.spec_class = 'GALAXY' ORDER BY s.source_id LIMIT 1"))


def test_similarity_errors_are_clear(engine, catalog):
    with pytest.raises(QueryError, match="no model named 'nope'"):
        similar(1, model="nope")
    # a version the model does not have: the model is named, with its versions (Python and SQL alike)
    from ingest.registry import resolve_model

    with engine.connect() as conn:
        with pytest.raises(QueryError, match=rf"^model {PHOTOZ_MODEL} has no version 99 \(versions: 1"):
            resolve_model(conn, PHOTOZ_MODEL, "99")
    with pytest.raises(QueryError, match=rf"model {PHOTOZ_MODEL} has no version 99 \(versions: 1"):
        similar(1, model=PHOTOZ_MODEL, version="99")
    star = None
    with engine.connect() as conn:
        star = conn.scalar(sa.text("SELECT source_id FROM healcat.spec_redshift WHERE spec_class = 'STAR' LIMIT 1"))
    # why (the run's skip reason), not "name a version, or the release to search", which cannot help
    with pytest.raises(QueryError, match=rf"source {star} has no embedding from model {PHOTOZ_MODEL}/\S+: its run "
                                         rf"on {SDSS_RELEASE} gave it none: not a galaxy: spectrum says STAR$"):
        similar(star, model=PHOTOZ_MODEL)
    with pytest.raises(QueryError, match="has 16 dimensions, the query vector 3"):
        similar(vector=np.ones(3), model=PHOTOZ_MODEL)
    for k in (0, -1, 10_001):
        with pytest.raises(QueryError, match=rf"similar: k must be in \[1, 10000\], got {k}"):
            similar(1, model=PHOTOZ_MODEL, k=k)
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="k must be an integer"):
        conn.execute(sa.text("SELECT * FROM healcat.similar_sources(1, :m, 0)"), {"m": PHOTOZ_MODEL}).all()


def test_large_k_returns_k_rows_in_order(engine, catalog):
    sid = _a_galaxy(engine)
    got = similar(sid, model=PHOTOZ_MODEL, k=1500)  # beyond hnsw.ef_search's 1000: iterative scan
    assert len(got) == 1500 and len(set(got["source_id"])) == 1500
    assert np.all(np.diff(got["distance"]) >= 0)


def test_versions_coexist_and_current_is_a_query(engine, catalog):
    v1 = catalog["model"]
    v2 = train_photoz(engine, SDSS_RELEASE, seed=1)  # another seed: other weights, so a new version
    try:
        v2, _ = promote_model(engine, PHOTOZ_MODEL, v2.version)  # current whether or not its NMAD beats v1's
        assert v2.version != v1.version and v2.weights_sha256 != v1.weights_sha256
        with engine.connect() as conn:  # v2 is current, but until its run finishes readers get v1's outputs
            assert set(conn.execute(sa.text("SELECT DISTINCT model_version FROM healcat.current_prediction "
                                            "WHERE model_name = :n"), {"n": PHOTOZ_MODEL}).scalars()) == {v1.version}
        jobs = backfill(engine, v2)
        with engine.connect() as conn:
            args = conn.execute(sa.text("SELECT args FROM healcat.job WHERE job_id = ANY(:j)"), {"j": jobs}).scalars().all()
        assert {(a["model"], a["version"]) for a in args} == {(PHOTOZ_MODEL, v2.version)}
        releases = [a["release"] for a in args]
        assert SDSS_RELEASE in releases and GAIA_RELEASE not in releases, "not Gaia: no ugriz"
        run = run_photoz(engine, SDSS_RELEASE)  # the current version is now v2
        # the same sources; each version refuses its own few galaxies (its guard is fitted on its own split)
        assert run.n_predicted + run.n_skipped == catalog["run"].n_predicted + catalog["run"].n_skipped
        assert abs(run.n_predicted - catalog["run"].n_predicted) < 0.005 * run.n_predicted
        with engine.connect() as conn:
            current = conn.scalar(sa.text("SELECT version FROM healcat.current_model WHERE name = :n"),
                                  {"n": PHOTOZ_MODEL})
            per_version = dict(conn.execute(sa.text(
                "SELECT m.version, count(*) FROM healcat.prediction p JOIN healcat.model m USING (model_id) "
                "WHERE m.name = :n GROUP BY 1"), {"n": PHOTOZ_MODEL}).all())
        assert current == v2.version
        assert per_version == {v1.version: catalog["run"].n_predicted, v2.version: run.n_predicted}, "v1's outputs stay"
        sid = _a_galaxy(engine)
        assert len(similar(sid, model=PHOTOZ_MODEL, k=3, version=v1.version)) == 3
        assert len(similar(sid, model=PHOTOZ_MODEL, k=3)) == 3
        with engine.connect() as conn:
            assert set(conn.execute(sa.text("SELECT DISTINCT model_version FROM healcat.current_prediction "
                                            "WHERE model_name = :n"), {"n": PHOTOZ_MODEL}).scalars()) == {v2.version}
        from catalog.cli import main

        assert main(["model", "retire", PHOTOZ_MODEL, v2.version]) == 0  # v1 current again; nothing deleted
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT version FROM healcat.current_model WHERE name = :n"),
                               {"n": PHOTOZ_MODEL}) == v1.version
            assert conn.scalar(sa.text("SELECT count(*) FROM healcat.prediction WHERE model_id = :m"),
                               {"m": v2.model_id}) == run.n_predicted
        assert len(similar(sid, model=PHOTOZ_MODEL, k=3, version=v2.version)) == 3, "a retired version still answers"
        with pytest.raises(HealcatError, match=f"these weights are {PHOTOZ_MODEL} version {v2.version}, retired at"):
            with engine.connect() as conn:
                again = weights_file(conn, v2.model_id).read_bytes()
            register_model(engine, name=PHOTOZ_MODEL, task="photoz", weights=again, training_set="again")
    finally:
        _forget(engine, v2)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT model_id FROM healcat.current_model WHERE name = :n"),
                           {"n": PHOTOZ_MODEL}) == v1.model_id


def _forget(engine, model) -> None:
    """Put the catalog back as the other tests know it: the version, its outputs and the jobs gone."""
    with engine.begin() as conn:
        for table in ("prediction", "embedding", "inference_run"):  # skips go with their runs
            conn.execute(sa.text(f"DELETE FROM healcat.{table} WHERE model_id = :m"), {"m": model.model_id})
        conn.execute(sa.text(f"DROP INDEX IF EXISTS healcat.ix_embedding_hnsw_{int(model.model_id)}"))
        conn.execute(sa.text("DELETE FROM healcat.model WHERE model_id = :m"), {"m": model.model_id})
        conn.execute(sa.text("DELETE FROM healcat.job"))


def test_retiring_the_current_version_queues_the_next_where_it_has_not_run(engine, catalog, tmp_path, scratch_release):
    """A release that only the retired version had run on would have no current photo-z: the version
    current again is queued there (and not where it has run)."""
    from ingest.load import ingest_release
    from ingest.registry import retire_model
    from tests.conftest import scratch_mapping, sdss_rows, write_csv

    v1 = catalog["model"]
    v2 = train_photoz(engine, SDSS_RELEASE, seed=1)
    try:
        assert (v2.hyperparams["seed"], v2.hyperparams["epochs"]) == (1, None), "how to make it again"
        promote_model(engine, PHOTOZ_MODEL, v2.version)
        ingest_release(scratch_mapping(tmp_path, "retire"), engine, file=write_csv(tmp_path / "r.csv", sdss_rows()[:300]))
        run = run_photoz(engine, "scratch/retire")
        with engine.begin() as conn:
            assert conn.scalar(sa.text("SELECT model_id FROM healcat.inference_run WHERE run_id = :r"),
                               {"r": run.run_id}) == v2.model_id
            conn.execute(sa.text("DELETE FROM healcat.job"))
        retire_model(engine, PHOTOZ_MODEL, v2.version)
        with engine.connect() as conn:
            queued = {(a["model"], a["version"], a["release"]) for a in conn.execute(sa.text(
                "SELECT args FROM healcat.job WHERE kind = 'infer'")).scalars()}
        assert (PHOTOZ_MODEL, v1.version, "scratch/retire") in queued
        assert all(release != SDSS_RELEASE for *_, release in queued), "v1 has run there"
    finally:
        _forget(engine, v2)


def test_registering_refuses_another_tasks_weights_and_numbers_json_cannot_hold(engine, catalog):
    """Neither leaves a weights file behind; a version of one task never joins another task's model."""
    blob = b"not really weights"
    stray = Path(catalog["model"].weights_path).parent / f"{PHOTOZ_MODEL}-{hashlib.sha256(blob).hexdigest()[:16]}.pt"
    with pytest.raises(HealcatError, match=f"{PHOTOZ_MODEL} is a model of task photoz; these are object_class weights"):
        register_model(engine, name=PHOTOZ_MODEL, task="object_class", weights=blob, training_set="t")
    with pytest.raises(HealcatError, match="metrics must be JSON with finite numbers"):
        register_model(engine, name=PHOTOZ_MODEL, task="photoz", weights=blob, training_set="t",
                       metrics={"nmad": float("nan")})
    assert not stray.exists()
    from ingest.registry import promote_model, retire_model

    for verb in (retire_model, promote_model):
        with pytest.raises(QueryError, match=f"no model named 'photoz' \\(version 1\\) \\(did you mean {PHOTOZ_MODEL}, "
                                             "the model of task"):
            verb(engine, "photoz", "1")  # the task's name, not its model's
        # a version the model lacks: its versions (was: "did you mean photoz-sdss?", the name itself)
        with pytest.raises(QueryError, match=rf"^model {PHOTOZ_MODEL} has no version 99 \(versions: 1"):
            verb(engine, PHOTOZ_MODEL, "99")
    for option, bad in (("seed", -1), ("epochs", 0), ("epochs", 2.5)):
        with pytest.raises(HealcatError, match=f"train photoz: {option} must be an integer"):
            train(engine, "photoz", SDSS_RELEASE, **{"seed": 0, option: bad})
    with pytest.raises(QueryError, match=r"no release named 'nope/x'$"):
        train(engine, "photoz", "nope/x")


def test_a_release_not_loaded_names_the_mapping_that_loads_it(engine, tmp_path, monkeypatch):
    """A newcomer training gyro_age on the demo catalog got 'no release named chronoflow/...' and had
    to find the mapping; every shipped release is loaded by this session's tests, so the shipped
    mappings' folder is one of our own here."""
    import ingest.mapping

    assert ingest.mapping.shipped_mapping_of("chronoflow/2025-prot-catalogue") == "chronoflow_prot"
    (tmp_path / "never_loaded.toml").write_text('[survey]\nname = "never"\n[release]\nversion = "loaded"\n')
    monkeypatch.setattr(ingest.mapping, "MAPPINGS_DIR", tmp_path)
    with pytest.raises(QueryError, match=r"no release named 'never/loaded': `healcat ingest never_loaded` loads it"):
        train(engine, "photoz", "never/loaded")


@pytest.mark.parametrize("name", ["pz/sub", "../../escaped", "   ", "", ".hidden", "a" * 101])
def test_a_model_name_must_be_a_plain_word(engine, catalog, name):
    """It names the weights file under HEALCAT_HOME/models: no folders, no way out of it."""
    with pytest.raises(HealcatError, match="a model name is letters, digits"):
        register_model(engine, name=name, task="photoz", weights=b"x", training_set="none")


def test_null_or_zero_vectors_are_errors_and_hnsw_settings_do_not_leak(engine, catalog):
    with pytest.raises(QueryError, match="must be a non-zero vector"):
        similar(vector=np.zeros(16), model=PHOTOZ_MODEL)
    with engine.connect() as conn:
        with pytest.raises(sa.exc.DBAPIError, match="must be a non-zero vector, got NULL"):
            conn.execute(sa.text("SELECT * FROM healcat.similar_to_vector(NULL, :m)"), {"m": PHOTOZ_MODEL}).all()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM healcat.similar_sources(:s, :m, 500)"),
                     {"s": _a_galaxy(engine), "m": PHOTOZ_MODEL}).all()
        assert conn.scalar(sa.text("SHOW hnsw.ef_search")) == "40"
        assert conn.scalar(sa.text("SHOW hnsw.iterative_scan")) == "off"
        valid = conn.scalar(sa.text("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                    "WHERE c.relname = :n"), {"n": f"ix_embedding_hnsw_{catalog['model'].model_id}"})
    assert valid is True


def test_the_cpu_models_run_scripted_with_the_eager_outputs(engine, catalog, monkeypatch):
    """photo-z and the object classifier predict on the CPU through TorchScript (``common.scripted``:
    no interpreter lock taken per tensor operation) with exactly the eager models' outputs on the
    SDSS sample; a model TorchScript cannot compile runs eager, with a warning saying so."""
    with engine.connect() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(Photoz.training_query, {"release_id": catalog["sdss"].release_id})
        _, mags, _ = ugriz.split_rows(cur.fetchall())
        paths = {m.model_id: weights_file(conn, m.model_id) for m in (catalog["model"], catalog["classifier"])}
    x = photoz.features(mags)
    assert len(x) > 3000
    for module, registered in ((photoz, catalog["model"]), (classifier, catalog["classifier"])):
        task = get_task(registered.task)
        model = task.load(str(paths[registered.model_id]), "cpu")
        scripted = module.predict(model, x, device="cpu", batch_size=1000)
        assert isinstance(common.scripted(model), torch.jit.ScriptModule), module.__name__
        monkeypatch.setattr(torch.jit, "script", _no_torchscript)
        eager_model = task.load(str(paths[registered.model_id]), "cpu")
        with pytest.warns(RuntimeWarning, match="runs eager, not scripted.*no TorchScript here"):
            eager = module.predict(eager_model, x, device="cpu", batch_size=1000)
        monkeypatch.undo()
        assert common.scripted(eager_model) is eager_model
        for key, value in (scripted.items() if isinstance(scripted, dict) else [("probabilities", scripted)]):
            other = eager[key] if isinstance(eager, dict) else eager
            assert value.shape[0] == len(x) and np.array_equal(value, other), (module.__name__, key)


def _no_torchscript(model):
    raise RuntimeError("no TorchScript here")


def test_a_model_that_does_not_apply_or_a_device_that_is_none_is_an_error(engine, catalog):
    with pytest.raises(HealcatError, match=f"does not apply to {GAIA_RELEASE}: it has no SDSS ugriz photometry"):
        run_model(engine, PHOTOZ_MODEL, GAIA_RELEASE)  # Gaia has no ugriz: no run of nothing
    with pytest.raises(HealcatError, match="'bogus' is no torch device"):
        run_model(engine, PHOTOZ_MODEL, SDSS_RELEASE, device="bogus")


def test_a_rerun_builds_the_index_a_failed_build_left_missing(engine, catalog):
    model = catalog["model"]
    index = f"ix_embedding_hnsw_{int(model.model_id)}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP INDEX healcat.{index}")
    assert run_model(engine, PHOTOZ_MODEL, SDSS_RELEASE).already_done
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM pg_indexes WHERE schemaname = 'healcat' AND indexname = :i"),
                           {"i": index}) == 1


def test_a_cpu_run_gives_the_model_the_cores_its_database_backends_leave(engine, catalog, monkeypatch):
    from ingest import inference

    # the run recorded the threads its model had, and gave torch back the threads it had before
    assert catalog["run"].device.endswith(f", {inference.model_threads(inference.default_lanes())} threads)")
    before = torch.get_num_threads()
    run_model(engine, PHOTOZ_MODEL, SDSS_RELEASE)
    assert torch.get_num_threads() == before
    monkeypatch.setattr(inference, "_cores", lambda: 16)
    assert [inference.model_threads(n) for n in (1, 4, 8)] == [14, 8, 1]
    monkeypatch.setattr(inference, "_cores", lambda: 2)
    assert inference.model_threads(1) == 1
    monkeypatch.setenv("HEALCAT_INFER_THREADS", "3")
    assert inference.model_threads(1) == 3
    monkeypatch.setenv("HEALCAT_INFER_THREADS", "all")
    with pytest.raises(HealcatError, match="HEALCAT_INFER_THREADS='all': give a whole number of threads"):
        inference.model_threads(1)


# The review's source (no spectrum): r-i = -1.48, i-z = -1.40. Under the per-column min/max ranges
# the classifier called it a GALAXY at p = 0.98 and photo-z gave z = 0.0048 from a mixture with
# 99.92% of its mass below z = 0.
REVIEW_UGRIZ = np.array([[16.823, 16.815, 16.692, 18.174, 19.572]])


def _current(task_name: str, model) -> torch.nn.Module:
    return get_task(task_name).load(model.weights_path, "cpu")


def test_colours_no_training_object_has_are_refused_by_both_models(catalog):
    x = photoz.features(REVIEW_UGRIZ)
    for task_name, model in (("photoz", catalog["model"]), ("object_class", catalog["classifier"])):
        loaded = _current(task_name, model)
        lo, hi = loaded.hparams["input_range"][3]  # r-i: the training rows' 0.1-99.9 percentiles, padded
        assert -1 < lo < 0 < hi < 1.5, "a few outlier rows (r-i down to -3.3) no longer set the range"
        why = get_task(task_name).predict(loaded, x, "cpu").refused
        assert why[0] == (f"r-i = -1.482 is outside what the model was trained on ({lo:.6g} to {hi:.6g}): "
                          "no extrapolation")


def test_a_combination_unlike_the_training_galaxies_is_refused_inside_the_box(catalog):
    """Each column inside the box, together far from every training galaxy (blue u-g and r-i, red
    g-r and i-z): the joint check refuses it; weights without the joint check (trained before it was
    kept) check the box alone, as they did."""
    model = _current("photoz", catalog["model"])
    lo, hi = np.array(model.hparams["input_range"]).T
    x = (lo + np.array([0.5, 0.05, 0.95, 0.05, 0.95]) * (hi - lo))[None].astype(np.float32)
    assert common.outside_range(x, model.hparams["input_range"], photoz.FEATURE_NAMES) is None
    why = Photoz().predict(model, x, "cpu").refused
    assert why[0].startswith("r, u-g, g-r, r-i, i-z = ") and "together are unlike what the model was trained on: " \
        "Mahalanobis distance " in why[0] and "beyond their 99.9th percentile x 2 = " in why[0]
    limit = model.hparams["input_distribution"]["components"][0]["limit"]
    assert float(why[0].split("Mahalanobis distance ")[1].split()[0]) > limit
    model.hparams["input_distribution"] = None  # as weights trained before it was kept load
    assert common.outside_training(x, model.hparams, photoz.FEATURE_NAMES) is None
    assert common.outside_training(x[:, :] + [[0, 0, 0, -5, 0]], model.hparams, photoz.FEATURE_NAMES)[0].startswith(
        "r-i = ")


def test_weights_without_the_joint_check_load_and_keep_the_per_column_check(tmp_path):
    """A file written before ``input_distribution`` was kept: min/max ranges alone refuse."""
    torch.manual_seed(0)
    old = photoz.PhotoZMDN(input_range=[[11.2, 26.0], [-1.5, 3.0], [-7.1, 2.3], [-3.33, 1.48], [-2.1, 3.9]])
    hparams = {k: v for k, v in old.hparams.items() if k != "input_distribution"}
    torch.save({"hparams": hparams, "state_dict": old.state_dict()}, tmp_path / "old.pt")
    loaded = photoz.load(str(tmp_path / "old.pt"))
    assert loaded.hparams["input_distribution"] is None
    x = photoz.features(np.vstack([REVIEW_UGRIZ, [[16.8, 16.8, 16.7, 21.0, 19.6]]]))  # r-i -1.48, then -4.3
    why = common.outside_training(x, loaded.hparams, photoz.FEATURE_NAMES)
    assert why[0] is None and why[1].startswith("r-i = -4.3 is outside what the model was trained on (-3.33 to 1.48)")


def test_photoz_sigmas_are_recalibrated_on_the_validation_galaxies_and_kept_with_the_weights(tmp_path):
    """fit_sigma_scale finds the factor the mixture's sigmas are off by from galaxies drawn wider than
    it says; set, it is in predict's sigmas (scripted), in the saved hparams and back after load; a
    file saved before it loads with 1."""
    model = _mixture_model([0.3] * 5)  # every answer N(0.3, 0.05^2)
    x = photoz.features(np.array([[19.0, 17.5, 16.9, 16.5, 16.3]] * 4000))
    z = 0.3 + 0.05 * 1.3 * np.random.default_rng(0).standard_normal(4000)
    scale = photoz.fit_sigma_scale(model, x, z)
    assert scale == pytest.approx(1.3, rel=0.03)
    old_file = tmp_path / "old.pt"
    torch.save({"hparams": {k: v for k, v in model.hparams.items() if k != "sigma_scale"},
                "state_dict": model.state_dict()}, old_file)
    photoz.set_sigma_scale(model, scale)
    np.testing.assert_allclose(photoz.predict(model, x[:2], device="cpu")["sigmas"], 0.05 * scale, rtol=1e-5)
    with pytest.raises(RuntimeError, match="before the model is scripted"):
        photoz.set_sigma_scale(model, 1.0)  # predict scripted it: TorchScript copied the value
    (tmp_path / "w.pt").write_bytes(photoz.to_bytes(model))
    loaded = photoz.load(str(tmp_path / "w.pt"))
    assert loaded.hparams["sigma_scale"] == scale
    np.testing.assert_allclose(photoz.predict(loaded, x[:2], device="cpu")["sigmas"], 0.05 * scale, rtol=1e-5)
    assert photoz.load(str(old_file)).sigma_scale == 1.0
    np.testing.assert_allclose(photoz.predict(photoz.load(str(old_file)), x[:2], device="cpu")["sigmas"], 0.05, rtol=1e-5)


@pytest.mark.parametrize("n", [4998, 4996, 37])
def test_photoz_cross_validation_folds_hold_out_every_galaxy_once(n):
    """Fold 0 is the single split's (the returned model's); the folds' test sets partition the rows, and
    each fold's validation and fit rows are the others, apart."""
    folds = photoz.fold_indices(n, 3, 5)
    assert len(folds) == 5 and all(np.array_equal(a, b) for a, b in zip(folds[0], common.split_indices(n, 3)))
    assert np.array_equal(np.sort(np.concatenate([t for t, _, _ in folds])), np.arange(n))
    for test, val, fit in folds:
        assert np.array_equal(np.sort(np.concatenate([test, val, fit])), np.arange(n))
        assert len(val) == round(0.1 * (n - len(test))) and abs(len(test) - n / 5) < 1


@pytest.mark.parametrize("seed", [0, 5])
def test_photoz_sky_folds_hold_out_whole_regions(seed):
    """Folds of whole groups (the galaxies' sky regions, clustered as SDSS's are: a few large groups, many
    small): their test sets partition the rows, no group is both held out and fitted on, and each
    fold holds about a fifth of the rows (within its largest group)."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(3072, size=4998, p=rng.dirichlet(np.full(3072, 0.05)))
    folds = photoz.group_fold_indices(groups, seed, 5)
    assert np.array_equal(np.sort(np.concatenate([t for t, _, _ in folds])), np.arange(len(groups)))
    largest = np.unique(groups, return_counts=True)[1].max()
    for test, val, fit in folds:
        assert np.array_equal(np.sort(np.concatenate([test, val, fit])), np.arange(len(groups)))
        assert not set(groups[test]) & set(groups[np.concatenate([val, fit])])
        assert abs(len(test) - len(groups) / 5) <= largest and len(val) == round(0.1 * (len(groups) - len(test)))
    assert [t.tolist() for t, _, _ in folds] == [t.tolist() for t, _, _ in photoz.group_fold_indices(groups, seed, 5)]


def test_photoz_records_a_cross_validated_pit_over_all_galaxies(catalog):
    """Every SDSS galaxy predicted by a model that did not train on it: PIT flat within 12% per bin
    (Poisson scatter ~4.5% with ~5,000), the targets met over all of them; and the recalibration
    fitted on the validation galaxies is the stored model's."""
    m = catalog["model"].metrics
    pit = np.array(m["pit_cv_histogram"])
    assert m["cv_folds"] == 5 and m["n_cv"] == 4998 and 0 <= m["n_cv_refused"] < 0.005 * m["n_cv"]
    assert len(pit) == 10 and pit.sum() == m["n_cv"] - m["n_cv_refused"]
    assert m["pit_cv_max_dev"] == pytest.approx(np.max(np.abs(pit / (pit.sum() / 10) - 1)))
    assert m["pit_cv_max_dev"] <= 0.12, pit
    assert m["nmad_cv"] <= 0.02 and m["outlier_fraction_cv"] <= 0.01
    # and with folds of whole sky regions (order-4 pixels): the targets hold where no galaxy of a held-out
    # galaxy's region trained its model (spectroscopic galaxies cluster; a random split could flatter)
    sky = np.array(m["pit_sky_cv_histogram"])
    assert m["n_sky_cv"] == 4998 and 0 <= m["n_sky_cv_refused"] < 0.005 * m["n_sky_cv"] and m["sky_cv_groups"] > 100
    assert sky.sum() == m["n_sky_cv"] - m["n_sky_cv_refused"] and m["pit_sky_cv_max_dev"] <= 0.12, sky
    assert m["nmad_sky_cv"] <= 0.02 and m["outlier_fraction_sky_cv"] <= 0.01
    assert abs(m["interval_68_coverage_sky_cv"] - 0.68) < 0.03
    # the stored 68% interval holds 68% of the spec-z (binomial scatter ~0.7% with ~5,000, 1.5% with 1,000)
    assert abs(m["interval_68_coverage_cv"] - 0.68) < 0.03 and abs(m["interval_68_coverage"] - 0.68) < 0.05
    model = _current("photoz", catalog["model"])
    assert model.sigma_scale == m["sigma_scale"] == catalog["model"].hyperparams["sigma_scale"] != 1.0


def test_few_sdss_galaxies_are_refused(engine, catalog):
    """The guard's cost: the spectroscopic galaxies of the training release that photo-z refuses
    (inputs outside the training galaxies', or most of p(z) below 0), held out and all."""
    m = catalog["model"].metrics
    assert 0 < m["n_test"] and (m["n_test_outside_training"] + m["n_test_below_z_min"]) / m["n_test"] < 0.005
    with engine.connect() as conn:
        reasons = conn.execute(sa.text(
            "SELECT reason FROM healcat.inference_skip WHERE run_id = :r AND reason NOT LIKE 'not a galaxy: spectrum says %'"),
            {"r": catalog["run"].run_id}).scalars().all()
    n_galaxies = catalog["run"].n_predicted + len(reasons)
    assert n_galaxies > 4000 and len(reasons) / n_galaxies < 0.005
    assert all(" is outside what the model was trained on " in r or " together are unlike what the model was " in r
               or r.startswith("not a galaxy at z >= 0: ") for r in reasons) and reasons


def _mixture_model(means: list[float]) -> photoz.PhotoZMDN:
    """A photo-z model whose every answer is the same mixture: equal weights, these means, sigma 0.05."""
    model = photoz.PhotoZMDN(n_components=len(means))
    with torch.no_grad():
        model.head.weight.zero_()
        bias = torch.zeros(3 * len(means))
        bias[len(means):2 * len(means)] = torch.tensor(means)
        bias[2 * len(means):] = float(np.log(np.expm1(0.05 - photoz.SIGMA_FLOOR)))  # softplus^-1
        model.head.bias.copy_(bias)
    return model.eval()


@pytest.mark.parametrize("means, refused", [([-1, -1, -1, 1, 1], True), ([-1, -1, 1, 1, 1], False)])
def test_a_galaxy_with_most_of_its_p_z_below_zero_gets_no_photo_z(means, refused):
    """Three fifths of the mixture below z = 0: "not a galaxy at z >= 0", no redshift from the truncated
    rest; two fifths: a redshift, from the mass above 0."""
    x = photoz.features(np.array([[19.0, 17.5, 16.9, 16.5, 16.3]] * 2))
    out = Photoz().predict(_mixture_model(means), x, "cpu")
    assert np.allclose(photoz.predict(_mixture_model(means), x, device="cpu")["below_z_min"], 0.6 if refused else 0.4)
    if refused:
        assert list(out.refused) == ["not a galaxy at z >= 0: 60% of its p(z) lies below z = 0 (more than 50%)"] * 2
    else:
        assert out.refused is None and np.allclose(out.value, 1.0, atol=0.01)
