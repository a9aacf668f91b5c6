"""The science models as registry tasks: trained by SQL over the catalog, predictions written back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa

from catalog import predictions
from catalog.cli import build_parser
from catalog.errors import HealcatError, QueryError
from ingest.inference import run_lock, run_model
from ingest.load import ingest_release
from ingest.mapping import load_mapping
from ingest.registry import train
from ingest.tasks import get_task
from ingest.tasks import gyro_age as gyro_task
from ingest.ml import stellar_mass as ml_mass
from tests import test_readme
from tests.conftest import ADVISORY_WAIT, sessions, wait_until
from tests.science_data import candels, chronoflow

CANDELS_RELEASES = tuple(f"candels_{what}_{z}" for z in ("z1", "z3") for what in ("goodss", "prospector", "sed3fit"))


@pytest.fixture(scope="module")
def candels_mass(engine):
    """The z~1 and z~3 CANDELS photometry and two codes' masses ingested (committed), the model
    trained on both samples (the task's default) and run on each."""
    for name in CANDELS_RELEASES:
        ingest_release(name, engine)
    model = train(engine, "stellar_mass")
    runs = [run_model(engine, model.name, f"candels-goodss-{z}/sedfit") for z in ("z1", "z3")]
    return model, runs


def test_stellar_mass_trained_from_sql_beats_the_codes_scatter(engine, candels_mass):
    model, runs = candels_mass
    m = model.metrics
    assert model.training_params["releases"] == ["candels-goodss-z1/sedfit", "candels-goodss-z3/sedfit"]
    assert len(model.training_params["release_ids"]) == 2
    assert m["n_test"] == round(0.2 * (371 + 161)) and m["n_codes_median"] == 2  # prospector, sed3fit
    assert m["median_abs_error_dex"] < 0.15 and abs(m["bias_dex"]) < 0.05
    # the held-out galaxies of each sample, by their nearest whole redshift
    assert sorted(m["by_redshift"]) == ["z~1", "z~3"]
    assert sum(b["n_test"] for b in m["by_redshift"].values()) == m["n_test"]
    assert all(b["median_abs_error_dex"] < 0.2 for b in m["by_redshift"].values())
    assert "healcat.stellar_mass" in model.training_set
    # the same releases from the command line; a release named twice would count its rows twice
    args = build_parser().parse_args(["train", "stellar_mass", "--release", "candels-goodss-z1/sedfit",
                                      "--release", "candels-goodss-z3/sedfit"])
    assert args.releases == model.training_params["releases"]
    with pytest.raises(QueryError, match="a release is named twice"):
        train(engine, "stellar_mass", ["candels-goodss-z1/sedfit", "candels-goodss-z1/sedfit"])
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT s.object_id, p.source_id, p.value, p.uncertainty FROM healcat.prediction p "
            "JOIN healcat.source s USING (shard, source_id) WHERE p.model_id = :m"), {"m": model.model_id}).all()
    # every galaxy of both samples is predicted: z~3 is no longer outside what the model saw
    assert len(rows) == sum(r.n_predicted for r in runs) == 371 + 161 and all(r.n_skipped == 0 for r in runs)
    shown = predictions([r.source_id for r in rows], model.name)  # log10 solar masses, from Python
    assert shown["value"].unit == u.Unit("dex(solMass)") and shown["uncertainty"].unit == u.dex
    assert list(shown["value"]) == [r.value for r in rows]
    assert set(shown["release"]) == {f"candels-goodss-{z}/sedfit" for z in ("z1", "z3")}
    files = candels()
    ids = files["candels_id"].tolist()
    codes = files["code_log_mass"]
    pred = {int(r.object_id): (r.value, r.uncertainty) for r in rows}
    target = np.array([np.nanmedian(codes[ids.index(i)]) for i in pred])  # nine codes, from the files
    value = np.array([v for v, _ in pred.values()])
    assert np.median(np.abs(value - target)) < 0.15
    assert all(u > 0 for _, u in pred.values())
    assert np.median(ml_mass.code_scatter(codes)) < 0.1


def test_stellar_mass_target_reads_each_codes_published_release(engine, candels_mass, tmp_path, scratch_release):
    """A code's outputs released again (under one survey, a later date) supersede the first release:
    the training target is the median of the published releases' masses, not of every release ever
    loaded (which counted the re-released code twice), and the version names the releases it used."""
    shipped = load_mapping("candels_prospector_z1")
    lines = shipped.input_path().read_text().splitlines()
    col = lines[0].lstrip("#").split(",").index("logmass")

    def shifted(version: str, dex: float, date: str) -> str:
        rows = [lines[0]] + [",".join(f"{float(v) + dex:.4f}" if i == col else v for i, v in enumerate(line.split(",")))
                             for line in lines[1:] if line.strip()]
        (tmp_path / f"{version}.dat").write_text("\n".join(rows) + "\n")
        text = (shipped.path.read_text().replace('name = "candels-sedfit-prospector-z1"', 'name = "scratch"')
                .replace('version = "goodss"', f'version = "{version}"').replace("date = 2019-04-18", f"date = {date}")
                .replace(f'file = "{shipped.raw["release"]["file"]}"', f'file = "{version}.dat"'))
        (tmp_path / f"{version}.toml").write_text(text)
        return ingest_release(tmp_path / f"{version}.toml", engine).release

    first, second = shifted("v1", 0.1, "2020-01-01"), shifted("v2", 0.3, "2021-01-01")
    task = get_task("stellar_mass")
    with engine.connect() as conn:
        status = dict(conn.execute(sa.text("SELECT name, status FROM healcat.release WHERE name IN (:a, :b)"),
                                   {"a": first, "b": second}).all())
        assert status == {first: "superseded", second: "published"}
        z1 = conn.scalar(sa.text("SELECT release_id FROM healcat.release WHERE name = 'candels-goodss-z1/sedfit'"))
        with conn.connection.driver_connection.cursor() as cur:
            cur.execute(task.training_query, {"release_id": z1})
            rows = cur.fetchall()
    assert rows and all(len(r[4]) == len(r[5]) for r in rows)
    names = {n for r in rows for n in r[5]}
    assert second in names and first not in names
    # the galaxies Prospector fitted carry its first release's mass and the re-release's (+0.3 dex),
    # one each, never the superseded copy's (+0.1 dex)
    both = [r for r in rows if second in r[5]]
    assert both
    for r in both:
        mine = r[4][r[5].index(second)]
        original = r[4][r[5].index("candels-sedfit-prospector-z1/goodss")]
        assert mine == pytest.approx(original + 0.3, abs=2e-4)
        assert first not in r[5] and len(set(r[5])) == len(r[5]) == len(r[4])
    # the version trained before names the releases its target came from
    assert candels_mass[0].metrics["target_releases"] == sorted(
        f"candels-sedfit-{code}-{z}/goodss" for code in ("prospector", "sed3fit") for z in ("z1", "z3"))


def test_the_same_release_trains_the_same_weights_whatever_the_catalog_loaded_first(engine, database_url, catalog):
    """Here Gaia DR3's bright stars were loaded first, so the ChronoFlow stars among them are Gaia's sources,
    with Gaia's lower ids; in a catalog of ChronoFlow alone each star is a source of its own, in the file's
    order. The training rows came by source_id, so the same release, seed and machine trained other
    weights (held out 0.073 dex against 0.058): they now come in the order of their values."""
    from catalog import db

    ingest_release("chronoflow_prot", engine)
    with engine.connect() as conn:
        joined = conn.scalar(sa.text("SELECT count(*) FROM healcat.rotation_period rp JOIN healcat.source s USING "
                                     "(shard, source_id) WHERE rp.release_id <> s.release_id"))
    assert joined > 0, "some stars are sources another release made first"
    here = train(engine, "gyro_age", "chronoflow/2025-prot-catalogue")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS healcat_alone WITH (FORCE)"))
        conn.execute(sa.text("CREATE DATABASE healcat_alone"))
    alone_url = database_url.set(database="healcat_alone")
    db.migrate(alone_url)
    alone = sa.create_engine(alone_url)
    try:
        ingest_release("chronoflow_prot", alone)
        there = train(alone, "gyro_age", "chronoflow/2025-prot-catalogue")
    finally:
        alone.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("DROP DATABASE healcat_alone WITH (FORCE)"))
    assert here.weights_sha256 == there.weights_sha256 and here.metrics == there.metrics


def test_gyro_ages_trained_from_sql_with_held_out_clusters(engine, tmp_path, scratch_release):
    ingest_release("chronoflow_prot", engine)
    files = chronoflow()
    # Sco-Cen's and Taurus's subgroups are clusters of their own, each with its literature age.
    populations = sorted(set(files["population"].tolist()))
    with engine.connect() as conn:
        clusters = {r.name: r for r in conn.execute(sa.text(
            "SELECT c.name, c.age_myr, p.name AS parent FROM healcat.cluster c "
            "LEFT JOIN healcat.cluster p ON p.cluster_id = c.parent_id")).all()}
    assert clusters["ScoCen"].age_myr is None and clusters["Taurus"].age_myr is None
    assert {n for n, c in clusters.items() if c.parent == "ScoCen"} == set(files["population"][files["cluster"] == "ScoCen"])
    assert clusters["USco_fg"].age_myr == 18.75 and clusters["Taurus_C1"].age_myr == 1.73  # the file's ages
    assert clusters["Hyades"].parent is None
    model = train(engine, "gyro_age", "chronoflow/2025-prot-catalogue")
    ages = model.metrics["cluster_ages"]
    assert sorted(ages) == populations and len(populations) == 41
    # each cluster aged from its members in the model's colour range (the training stars' 0.1-99.9
    # percentiles plus 10%), as a run ages them: h Per's star at -1.54 and a few of the reddest are not
    lo, hi = model.hyperparams["colour_range"][0]
    inside = (files["bprp0_mag"] >= lo) & (files["bprp0_mag"] <= hi)
    assert model.metrics["n_outside_colour_range"] == (~inside).sum() == 8
    for name in populations:
        members = files["population"] == name
        assert ages[name]["n_members"] == (members & inside).sum() > 0
        assert ages[name]["log_age_true"] == pytest.approx(files["log_age"][members][0])
        assert ages[name]["association"] == files["cluster"][members][0]
    assert model.metrics["n_test_clusters"] == round(0.2 * 41)
    # A seeded fifth of the clusters held out; leave-one-cluster-out on the files: tests/test_gyro.py.
    assert model.metrics["median_abs_delta_log_age_held_out"] < 0.2
    # A CPU-only task asked for another device (torch's "meta", which exists without a GPU) runs on
    # the CPU, and its run says so.
    run = run_model(engine, model.name, "chronoflow/2025-prot-catalogue", device="meta")
    assert run.device.startswith("cpu (")
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT device FROM healcat.inference_run WHERE run_id = :r"),
                           {"r": run.run_id}) == run.device
        by_sql = conn.execute(sa.text(
            "SELECT key, (value->>'log_age_median')::float8 AS est, (value->>'log_age_true')::float8 AS truth "
            "FROM healcat.model, jsonb_each(metrics->'cluster_ages') WHERE model_id = :m"), {"m": model.model_id}).all()
        stars = conn.execute(sa.text(
            "SELECT p.source_id, p.value, p.uncertainty, p.value_p16, p.value_p84, c.age_myr FROM healcat.prediction p "
            "JOIN healcat.rotation_period rp USING (shard, source_id) JOIN healcat.cluster c USING (cluster_id) "
            "WHERE p.model_id = :m AND c.name = 'Praesepe'"), {"m": model.model_id}).all()
    assert len(by_sql) == 41 and run.n_predicted + run.n_skipped == 7628
    hyades = {r.key: r for r in by_sql}["Hyades"]
    assert abs(hyades.est - np.log10(775e6)) < 0.15
    # One star's age is broad (~1 dex) and skewed: its 16th-84th percentiles are stored beside the
    # median. They hold Praesepe's age for 45% of its 995 rotators, the symmetric half-width for 39%
    # (the file's flagged stars are included here; a single star's posterior is too narrow).
    truth = [np.log10(s.age_myr * 1e6) for s in stars]
    assert all(s.value_p16 < s.value < s.value_p84 for s in stars)
    assert all(s.uncertainty == pytest.approx(0.5 * (s.value_p84 - s.value_p16)) for s in stars)
    inside = np.mean([s.value_p16 <= t <= s.value_p84 for s, t in zip(stars, truth)])
    half_width = np.mean([abs(s.value - t) <= s.uncertainty for s, t in zip(stars, truth)])
    assert len(stars) > 900 and 0.3 < inside < 0.95 and inside > half_width
    shown = predictions([s.source_id for s in stars], model.name)  # the stored percentiles, in log10 years
    assert shown["value_p16"].unit == u.Unit("dex(yr)") and shown["uncertainty"].unit == u.dex
    assert list(shown["value_p16"]) == [s.value_p16 for s in stars] and shown["reason"].mask.all()

    # Each cluster's age from all its members in the release, written by the run: the same members
    # (the paper's cuts) and the same product of likelihoods as the training metrics', so the same ages.
    with engine.connect() as conn:
        run_ages = {r.cluster: r for r in conn.execute(sa.text(
            "SELECT * FROM healcat.current_cluster_age WHERE model_name = :n AND release = :r"),
            {"n": model.name, "r": "chronoflow/2025-prot-catalogue"}).all()}
    assert sorted(run_ages) == populations
    readme = next(s for s in test_readme._statements() if "current_cluster_age" in s)  # what an astronomer types
    star_ages = next(s for s in test_readme._statements() if "current_rotation_period" in s)
    with engine.connect() as conn:
        assert len(conn.execute(sa.text(readme)).all()) == len(populations)
        shown = conn.execute(sa.text(star_ages)).all()
    assert len(shown) == 10 and all(r.value_p16 < r.log_age_yr < r.value_p84 for r in shown)
    assert [r.period_day for r in shown] == sorted(r.period_day for r in shown)
    for name, est in ages.items():
        row = run_ages[name]
        assert row.run_id == run.run_id and row.n_members == est["n_members"]
        assert row.log_age_yr == pytest.approx(est["log_age_median"], abs=1e-9)
        assert row.log_age_p16_yr < row.log_age_yr < row.log_age_p84_yr
        assert row.literature_age_myr == pytest.approx(10 ** est["log_age_true"] / 1e6)
        assert row.age_myr == pytest.approx(10 ** row.log_age_yr / 1e6)

    # A second rotation catalogue joins some of the same stars: the model keeps one prediction per star
    # and version, so those are skipped with the release that has it, not a duplicate-key crash.
    second = tmp_path / "second.toml"
    second.write_text(load_mapping("chronoflow_prot").path.read_text().replace('name = "chronoflow"', 'name = "scratch"')
                      .replace('version = "2025-prot-catalogue"', 'version = "second"\nmax_rows = 40'))
    second_release = ingest_release(second, engine).release
    # ... and its run waits while another run of this version (on any release) holds the version's
    # lock, so two releases' runs never both predict a shared star.
    with engine.connect() as holder:
        key = run_lock(get_task("gyro_age"), model.model_id, 0)  # any release: the version's lock
        assert key == f"infer:{model.model_id}"
        holder.execute(sa.text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": key})
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(run_model, engine, model.name, second_release)
            wait_until(lambda: sessions(engine, ADVISORY_WAIT) or waiting.done(), "the run waits for the lock")
            assert not waiting.done()
            with engine.connect() as conn:
                assert conn.scalar(sa.text("SELECT count(*) FROM healcat.inference_run r JOIN healcat.release USING "
                                           "(release_id) WHERE name = :n"), {"n": second_release}) == 0
            holder.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
            again = waiting.result(timeout=120)
    with engine.connect() as conn:
        reasons = conn.execute(sa.text("SELECT reason, count(*) FROM healcat.inference_skip WHERE run_id = :r "
                                       "GROUP BY 1"), {"r": again.run_id}).all()
    assert again.n_predicted == 0 and again.n_skipped == 40
    assert dict(reasons)["already predicted by this model version for release chronoflow/2025-prot-catalogue"] > 30
    # ... yet its clusters are aged from its own members, whichever release's run predicted each star.
    with engine.connect() as conn:
        second_ages = conn.execute(sa.text("SELECT cluster, n_members FROM healcat.current_cluster_age "
                                           "WHERE release = :r"), {"r": second_release}).all()
        passing = conn.scalar(sa.text(
            f"SELECT count(*) FROM healcat.rotation_period rp JOIN healcat.release r USING (release_id) "
            f"WHERE r.name = :r AND rp.cluster_id IS NOT NULL AND rp.bp_rp_dered BETWEEN :lo AND :hi AND {gyro_task._CUTS}"),
            {"r": second_release, "lo": lo, "hi": hi})  # in the model's colour range, as above
    assert second_ages and sum(n for _, n in second_ages) == passing > 0

    # A release the task does not apply to: the error says what it lacks (gyrointerp's Pleiades has
    # rotation periods and Gaia's observed colour, no dereddened one).
    pleiades = tmp_path / "pleiades.toml"
    pleiades.write_text(load_mapping("gyrointerp_pleiades").path.read_text()
                        .replace('name = "gyrointerp-pleiades"', 'name = "scratch"')
                        .replace('version = "0.7"', 'version = "pleiades"\nmax_rows = 40'))
    release = ingest_release(pleiades, engine).release
    with pytest.raises(HealcatError, match=rf"infer: {model.name} \(task gyro_age\) does not apply to {release}: "
                                           r"its rotation periods have no dereddened colour "
                                           r"\(rotation_period.bp_rp_dered\), which the model reads with the period$"):
        run_model(engine, model.name, release)


def test_lightcurve_embeddings_from_sql_are_searchable(engine, per_object):
    from catalog.search import similar

    # A few epochs: this tests training by SQL and the write-back; tests/test_lightcurve_embed.py the quality.
    model = train(engine, "lightcurve_embed", "eros2/lmc-ramp-variable-stars", epochs=6)
    m = model.metrics
    assert m["n_test"] == 729 and m["n_train"] == 2912 and model.embedding_dim == 64
    assert m["knn_accuracy"] > m["majority_accuracy"] + 0.15 and m["supervised_accuracy"] > m["majority_accuracy"]
    assert m["knn_accuracy_contrastive"] > m["majority_accuracy"] + 0.15  # before the labels' fine-tuning
    assert m["knn_k"] == 20  # the k the accuracies were measured with, recorded beside them
    (only,) = m["by_release_id"].values()  # one release: its held-out figures are the whole's
    assert only == {"n_test": 729, "knn_accuracy": m["knn_accuracy"], "supervised_accuracy": m["supervised_accuracy"],
                    "knn_accuracy_contrastive": m["knn_accuracy_contrastive"]}
    assert 1 <= m["epochs_contrastive"] <= 6 and 1 <= m["epochs_finetune"] <= 6 and 1 <= m["epochs_supervised"] <= 6
    run = run_model(engine, model.name, "eros2/lmc-ramp-variable-stars")
    assert run.n_predicted == 3641
    with engine.connect() as conn:
        source_id = conn.scalar(sa.text("SELECT source_id FROM healcat.embedding WHERE model_id = :m LIMIT 1"),
                                {"m": model.model_id})
    near = similar(source_id, model=model.name, k=5, engine=engine)
    assert len(near) == 5 and source_id not in near["source_id"].tolist()
    assert np.all(np.diff(near["distance"]) >= 0)


def test_unlabelled_stars_train_the_label_free_model_only(engine, per_object):
    """A star without a label is no class "" in the fine-tuning, the k-NN or the classifier (it
    was: one more class, scored as any other); it still teaches the label-free model."""
    task = get_task("lightcurve_embed")
    with engine.connect() as conn, conn.connection.driver_connection.cursor() as cur:
        release_id = conn.scalar(sa.text("SELECT release_id FROM healcat.release WHERE name = 'eros2/lmc-ramp-variable-stars'"))
        cur.execute(task.training_query, {"release_id": release_id})
        rows = cur.fetchall()[:400]
    rows = [r[:4] + (None,) + r[5:] if i % 8 == 0 else r for i, r in enumerate(rows)]  # 50 without a label
    trained = task.fit(rows, seed=0, epochs=1)
    m = trained.metrics
    assert "" not in m["classes"] and m["n_unlabelled"] == 50
    assert m["n_train"] + m["n_test"] == 350
    with pytest.raises(HealcatError, match="no star with a light curve has a label"):
        task.fit([r[:4] + (None,) + r[5:] for r in rows], seed=0, epochs=1)
