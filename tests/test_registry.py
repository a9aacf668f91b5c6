"""The model registry: tasks, the object classifier, photo-z on galaxies only, skips with reasons,
the PDF functions in SQL, the CLI, and which version's outputs are current."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from catalog.cli import main
from ingest import registry
from ingest.inference import run_model
from ingest.load import ingest_release
from ingest.registry import applicable_models, release_id_of
from ingest.tasks import get_task
from tests.conftest import GAIA_RELEASE, SDSS_RELEASE, scratch_mapping, sdss_rows, write_csv


def test_classifier_is_accurate_on_held_out_sdss_objects(catalog):
    m = catalog["classifier"].metrics
    confusion = np.array(m["confusion"])
    # over the held-out objects it answers: a few are outside what it was trained on (test_ml)
    assert m["classes"] == ["GALAXY", "QSO", "STAR"] and confusion.sum() == m["n_test"] - m["n_test_refused"] >= 1900
    assert 0 < m["n_test_refused"] == sum(m["n_test_refused_by_class"]) < 0.005 * m["n_test"]
    assert m["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert m["accuracy"] >= 0.95


def test_the_classifier_counts_the_labelled_objects_it_could_not_train_on(engine, catalog):
    """Its metrics held no n_dropped (photo-z's do): the objects of its training query without five valid
    magnitudes went unsaid."""
    m = catalog["classifier"].metrics
    with engine.connect() as conn:
        labelled, without = conn.execute(sa.text(
            "SELECT count(*), count(*) FILTER (WHERE (SELECT count(*) FROM healcat.photometry p WHERE p.shard = s.shard "
            "AND p.source_id = s.source_id AND p.band IN ('sdss_u', 'sdss_g', 'sdss_r', 'sdss_i', 'sdss_z')) < 5) "
            "FROM healcat.spec_redshift z JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) "
            "WHERE r.name = :r AND upper(z.spec_class) IN ('GALAXY', 'QSO', 'STAR')"), {"r": SDSS_RELEASE}).one()
    assert m["n_train"] + m["n_val"] + m["n_test"] + m["n_dropped"] == labelled
    assert m["n_dropped"] >= without  # fewer than five bands stored, or one not a valid AB magnitude


def test_photoz_meets_its_targets_with_a_flat_pit(catalog):
    """NMAD and outliers on the held-out galaxies; the PIT flat within 20% per bin over every galaxy
    (cross-validated, ~500 a bin), and the held-out split's consistent with flat. On 1,000 galaxies
    a bin scatters by ~10% (Poisson), so even a calibrated model's largest deviation of ten bins
    passes 20% about a third of the time: the same seed gave 0.12 on one CPU and 0.23 on another
    (AVX2, no AVX-512: other float rounding in training), chi-square 15 for 9 degrees of freedom."""
    from scipy.stats import chisquare

    m = catalog["model"].metrics
    assert m["nmad"] <= 0.02 and m["outlier_fraction"] <= 0.01
    pit = np.array(m["pit_histogram"])
    answered = m["n_test"] - m["n_test_outside_training"] - m["n_test_below_z_min"]  # the galaxies it answers
    assert len(pit) == 10 and pit.sum() == answered
    assert chisquare(pit).pvalue > 0.01, pit  # sigmas 25% too wide: p ~ 5e-16 (the bins 45, 104 ... 92, 44)
    assert m["pit_cv_max_dev"] <= 0.2, m["pit_cv_histogram"]
    assert m["crps"] > 0


def test_training_is_reproducible_from_the_same_rows_and_seed(engine, catalog):
    task = get_task("object_class")
    with engine.connect() as conn, conn.connection.driver_connection.cursor() as cur:
        (release_id,) = catalog["classifier"].training_params["release_ids"]  # run once per release trained on
        cur.execute(task.training_query, {"release_id": release_id})
        rows = cur.fetchall()
    a, b = task.fit(rows, seed=0, epochs=20), task.fit(rows, seed=0, epochs=20)
    assert hashlib.sha256(a.weights).digest() == hashlib.sha256(b.weights).digest()
    assert a.metrics == b.metrics  # every metric, nothing timed: the same data and seed give the same numbers
    assert catalog["classifier"].weights_sha256 != hashlib.sha256(a.weights).hexdigest(), "20 epochs differ from the full run"


def test_applicable_models_put_prerequisites_first(engine, catalog):
    with engine.connect() as conn:
        sdss = applicable_models(conn, release_id_of(conn, SDSS_RELEASE))
        gaia = applicable_models(conn, release_id_of(conn, GAIA_RELEASE))
    assert [m.task for m in sdss] == ["object_class", "photoz"]
    assert sdss[1].model_id == catalog["model"].model_id and gaia == []


def test_photoz_runs_on_galaxies_only_and_records_why_it_skipped_the_rest(engine, catalog):
    with engine.connect() as conn:
        spec = dict(conn.execute(sa.text(
            "SELECT z.spec_class, count(*) FROM healcat.spec_redshift z JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE r.name = :r GROUP BY 1"), {"r": SDSS_RELEASE}).all())
        reasons = dict(conn.execute(sa.text(
            "SELECT reason, count(*) FROM healcat.inference_skip WHERE run_id = :r GROUP BY 1"),
            {"r": catalog["run"].run_id}).all())
        bad = conn.scalar(sa.text("SELECT count(*) FROM healcat.prediction WHERE value = 'NaN' OR uncertainty = 'NaN'"))
        labels = conn.execute(sa.text(
            "SELECT p.label, p.probabilities, p.value, z.spec_class FROM healcat.current_prediction p "
            "JOIN healcat.spec_redshift z USING (shard, source_id) WHERE p.task = 'object_class'")).all()
        classifier_refused = conn.scalar(sa.text(
            "SELECT count(*) FROM healcat.inference_skip k JOIN healcat.inference_run r USING (run_id) "
            "JOIN healcat.model m USING (model_id) WHERE m.model_id = :m AND r.release_id = :r "
            "AND k.reason LIKE '%what the model was trained on%'"),
            {"m": catalog["classifier"].model_id, "r": catalog["sdss"].release_id})
    assert reasons.pop("not a galaxy: spectrum says STAR") == spec["STAR"]
    assert reasons.pop("not a galaxy: spectrum says QSO") == spec["QSO"]
    # the galaxies photo-z refuses: outside the training galaxies' inputs, or most of p(z) below 0 (test_ml)
    assert all(" is outside what the model was trained on " in r or " together are unlike what the model was " in r
               or r.startswith("not a galaxy at z >= 0: ") for r in reasons)
    assert sum(reasons.values()) < 0.005 * spec["GALAXY"]
    assert catalog["run"].n_predicted == spec["GALAXY"] - sum(reasons.values()) and bad == 0
    assert len(labels) == sum(spec.values()) - classifier_refused and 0 < classifier_refused < 0.005 * len(labels)
    for label, probs, value, _ in labels[:200]:
        assert sum(probs.values()) == pytest.approx(1, abs=1e-5) and max(probs, key=probs.get) == label
        assert np.float32(probs[label]) == np.float32(value)  # the label's probability, the same float32
    assert np.mean([r.label == r.spec_class for r in labels]) >= 0.95  # training objects included


def test_without_a_spectrum_the_classifier_decides(engine, catalog, tmp_path, scratch_release):
    rows = [r for r in sdss_rows() if r["class"] == "GALAXY"][:12] + [r for r in sdss_rows() if r["class"] == "STAR"][:12]
    for r in rows[:3] + rows[4:]:
        r["class"] = r["redshift"] = ""  # no spectrum: no spec_redshift row
    rows[0]["u"] = "-9999"  # the mapping's sentinel: not measured
    rows[1]["g"] = "45.0"  # passes validation (<= 50), but is no magnitude the model knows
    rows[2].update(u="39.9", g="0.01", r="39.9", i="0.01", z="39.9")  # valid magnitudes, colours no object has
    rows[3]["class"] = "galaxy"  # a spectrum's class written in lower case is still a galaxy
    ingest_release(scratch_mapping(tmp_path, "nospec"), engine, file=write_csv(tmp_path / "nospec.csv", rows))
    result = run_model(engine, catalog["model"].name, "scratch/nospec")
    with engine.connect() as conn:
        labels = dict(conn.execute(sa.text(
            "SELECT s.object_id, p.label FROM healcat.current_prediction p JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE r.name = 'scratch/nospec' AND p.task = 'object_class'")).all())
        photoz = set(conn.execute(sa.text(
            "SELECT s.object_id FROM healcat.current_prediction p JOIN healcat.source s USING (shard, source_id) "
            "WHERE p.run_id = :r"), {"r": result.run_id}).scalars())
        skips = dict(conn.execute(sa.text(
            "SELECT s.object_id, k.reason FROM healcat.inference_skip k JOIN healcat.source s USING (shard, source_id) "
            "WHERE k.run_id = :r"), {"r": result.run_id}).all())
        classifier_skips = dict(conn.execute(sa.text(
            "SELECT s.object_id, k.reason FROM healcat.inference_skip k JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.inference_run r USING (run_id) JOIN healcat.model m USING (model_id) "
            "WHERE r.release_id = s.release_id AND m.task = 'object_class' AND s.release_id = "
            "(SELECT release_id FROM healcat.release WHERE name = 'scratch/nospec')")).all())
    first, second, third, fourth = (f"{int(r['plate']):04d}-{int(r['mjd']):05d}-{int(r['fiberid']):04d}" for r in rows[:4])
    assert skips.pop(first) == "no sdss_u magnitude"
    assert skips.pop(second) == "magnitude outside (0, 40) mag (a sentinel?): sdss_g = 45"
    assert first not in labels and second not in labels, "the classifier skipped them too"
    # outside every colour the classifier was trained on: refused with the reason, not called a galaxy at p = 1
    assert third not in labels and classifier_skips[third].startswith("r = 39.9 is outside")
    assert "is outside what the model was trained on" in classifier_skips[third]
    assert skips.pop(third) == "no class: no spectrum and no object_class prediction"
    assert fourth in photoz
    assert photoz == {o for o, label in labels.items() if label == "GALAXY"} | {fourth}
    assert len(photoz) >= 9 and result.n_predicted == len(photoz) and result.n_skipped == 24 - len(photoz)
    # one reason per class, so that skips group by reason (the probability is the classifier's prediction)
    assert set(skips.values()) <= {"not a galaxy: classified STAR", "not a galaxy: classified QSO"} and skips


def _norm_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_pdf_and_credible_intervals_in_sql_match_numpy(engine, catalog):
    # A photo-z is the stored mixture truncated at z = 0 and renormalised (ml_v3.sql): the PDF, the
    # CDF, the intervals and the point estimate all read it above 0.
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT source_id, value, pdf_weights, pdf_means, pdf_sigmas FROM healcat.current_prediction "
            "WHERE model_name = 'photoz-sdss' ORDER BY healcat.mixture_cdf(pdf_weights, pdf_means, pdf_sigmas, 0) "
            "DESC, source_id LIMIT 15")).all()
        for row in rows:
            w, mu, s = (np.array(a, dtype=np.float64) for a in row[2:])
            w = w / w.sum()  # relative weights, as the mixture functions take them (ml_v4.sql)
            def cdf(z):
                return sum(wi * _norm_cdf((z - mi) / si) for wi, mi, si in zip(w, mu, s))
            kept = 1 - cdf(0.0)
            for z in (0.0, 0.05, 0.1, 0.3):
                expected = float(np.sum(w * np.exp(-0.5 * ((z - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi)))) / kept
                got = conn.scalar(sa.text("SELECT healcat.photoz_pdf(:s, :z)"), {"s": row.source_id, "z": z})
                assert got == pytest.approx(expected, rel=1e-6)  # float4 parameters: far below their resolution
                got = conn.scalar(sa.text("SELECT healcat.photoz_cdf(:s, :z)"), {"s": row.source_id, "z": z})
                assert got == pytest.approx((cdf(z) - cdf(0.0)) / kept, abs=1e-7)
            assert conn.scalar(sa.text("SELECT healcat.photoz_pdf(:s, -0.01)"), {"s": row.source_id}) == 0
            assert conn.scalar(sa.text("SELECT healcat.photoz_cdf(:s, -0.01)"), {"s": row.source_id}) == 0
            lo, hi = conn.execute(sa.text("SELECT z_lo, z_hi FROM healcat.photoz_interval(:s, 0.9)"),
                                  {"s": row.source_id}).one()
            truncated = [(cdf(z) - cdf(0.0)) / kept for z in (lo, hi)]
            assert truncated[0] == pytest.approx(0.05, abs=1e-7) and truncated[1] == pytest.approx(0.95, abs=1e-7)
            assert 0 <= lo < row.value < hi
            # the stored point estimate is the truncated mixture's median (float32, 24 bisections)
            assert (cdf(row.value) - cdf(0.0)) / kept == pytest.approx(0.5, abs=1e-4)
        # these are the galaxies with the most mass below z = 0 (up to 41%: one with more than half
        # below 0 gets no photo-z; one with 75%, whose untruncated median was negative, is refused)
        below = max(sum(wi * _norm_cdf(-mi / si) for wi, mi, si in zip(*r[2:])) for r in rows)
        assert below > 0.05
        with pytest.raises(sa.exc.DBAPIError, match=r"level must be in \(0, 1\), got 1.5"):
            conn.execute(sa.text("SELECT * FROM healcat.photoz_interval(:s, 1.5)"), {"s": rows[0].source_id}).all()
    with engine.connect() as conn:
        star = conn.scalar(sa.text("SELECT source_id FROM healcat.spec_redshift WHERE spec_class = 'STAR' LIMIT 1"))
        assert conn.scalar(sa.text("SELECT healcat.photoz_pdf(:s, 0.1)"), {"s": star}) is None


def test_searches_stay_on_the_version_that_has_run_until_a_new_one_has(conn, catalog):
    """A version registered but not run yet (or still running) leaves similarity searches and the
    photo-z functions on the version whose run is current; naming the new version asks for it."""
    model = catalog["model"]
    conn.execute(sa.text(
        "INSERT INTO healcat.model (name, version, task, framework, weights_path, weights_sha256, weights, "
        "training_set, training_params, hyperparams, metrics, embedding_dim, created_at) "
        "SELECT name, 'unrun', task, framework, weights_path, repeat('f', 64), weights, training_set, training_params, "
        "hyperparams, metrics, embedding_dim, now() + interval '1 hour' FROM healcat.model WHERE model_id = :m"),
        {"m": model.model_id})
    source = conn.scalar(sa.text("SELECT source_id FROM healcat.current_prediction WHERE model_name = 'photoz-sdss' "
                                 "ORDER BY source_id LIMIT 1"))
    assert conn.scalar(sa.text("SELECT version FROM healcat.resolve_model('photoz-sdss')")) == model.version
    assert conn.scalar(sa.text("SELECT version FROM healcat.resolve_model('photoz-sdss', 'unrun')")) == "unrun"
    assert registry.resolve_model(conn, "photoz-sdss").version == "unrun", "a run runs the newest version"
    assert len(conn.execute(sa.text("SELECT * FROM healcat.similar_sources(:s, 'photoz-sdss', 5)"),
                            {"s": source}).all()) == 5
    assert conn.scalar(sa.text("SELECT healcat.photoz_pdf(:s, 0.1)"), {"s": source}) > 0
    savepoint = conn.begin_nested()
    with pytest.raises(sa.exc.DBAPIError, match="has no embedding from model photoz-sdss/unrun: that version has "
                                                "no finished run on the source's release"):
        conn.execute(sa.text("SELECT * FROM healcat.similar_sources(:s, 'photoz-sdss', 5, 'unrun')"),
                     {"s": source}).all()
    savepoint.rollback()
    # Its backfill has finished on another release (Gaia's) only: searches from this release's sources
    # use the version current here, as current_prediction does.
    conn.execute(sa.text(
        "INSERT INTO healcat.inference_run (model_id, release_id, device, finished_at) "
        "SELECT m.model_id, r.release_id, 'cpu', now() FROM healcat.model m, healcat.release r "
        "WHERE m.name = 'photoz-sdss' AND m.version = 'unrun' AND r.name = :gaia"), {"gaia": GAIA_RELEASE})
    assert conn.scalar(sa.text("SELECT version FROM healcat.resolve_model('photoz-sdss')")) == "unrun"
    near = conn.execute(sa.text("SELECT source_id FROM healcat.similar_sources(:s, 'photoz-sdss', 5)"),
                        {"s": source}).scalars().all()
    assert near == conn.execute(sa.text("SELECT source_id FROM healcat.similar_sources(:s, 'photoz-sdss', 5, :v)"),
                                {"s": source, "v": model.version}).scalars().all() and len(near) == 5


@pytest.mark.parametrize(("call", "message"), [
    ("healcat.photoz_pdf(:s, 0.1, 'photoz_sdss')", "no photo-z model named 'photoz_sdss'"),
    ("healcat.photoz_pdf(:s, 0.1, 'object-class-sdss')", "no photo-z model named 'object-class-sdss'"),
    ("(SELECT z_lo FROM healcat.photoz_interval(:s, 0.68, 'nope'))", "no photo-z model named 'nope'"),
])
def test_photoz_functions_name_an_unknown_model(conn, catalog, call, message):
    source = conn.scalar(sa.text("SELECT min(source_id) FROM healcat.current_prediction WHERE model_name = 'photoz-sdss'"))
    with pytest.raises(sa.exc.DBAPIError, match=message) as err:
        conn.execute(sa.text(f"SELECT {call}"), {"s": source})
    assert err.value.orig.sqlstate == "22023"


def test_a_named_version_shows_only_finished_runs(conn, catalog):
    """A run that died half way leaves rows that only the next run deletes: never an answer."""
    source = conn.scalar(sa.text("SELECT min(source_id) FROM healcat.prediction WHERE run_id = :r"),
                         {"r": catalog["run"].run_id})
    ask = sa.text("SELECT count(*) FROM healcat.photoz_prediction(:s, 'photoz-sdss', :v)")
    assert conn.scalar(ask, {"s": source, "v": catalog["model"].version}) == 1
    conn.execute(sa.text("UPDATE healcat.inference_run SET finished_at = NULL WHERE run_id = :r"),
                 {"r": catalog["run"].run_id})
    assert conn.scalar(ask, {"s": source, "v": catalog["model"].version}) == 0


def test_mixture_functions_with_a_lower_bound(conn):
    w, m, s = "'{0.4,0.6}'", "'{-0.02,0.05}'", "'{0.03,0.02}'"
    def cdf(x):
        return 0.4 * _norm_cdf((x + 0.02) / 0.03) + 0.6 * _norm_cdf((x - 0.05) / 0.02)
    def one(sql):
        return conn.scalar(sa.text(f"SELECT {sql}"))
    kept = 1 - cdf(0.0)
    assert one(f"healcat.mixture_pdf({w}, {m}, {s}, 0.03, 0)") == pytest.approx(
        one(f"healcat.mixture_pdf({w}, {m}, {s}, 0.03)") / kept, rel=1e-6)
    assert one(f"healcat.mixture_pdf({w}, {m}, {s}, -0.001, 0)") == 0
    assert one(f"healcat.mixture_cdf({w}, {m}, {s}, 0.04, 0)") == pytest.approx((cdf(0.04) - cdf(0)) / kept, abs=1e-7)
    lo, hi = conn.execute(sa.text(f"SELECT lo, hi FROM healcat.mixture_interval({w}, {m}, {s}, 0.68, 0)")).one()
    assert [(cdf(z) - cdf(0)) / kept for z in (lo, hi)] == pytest.approx([0.16, 0.84], abs=1e-7) and lo > 0
    # no lower bound: the whole mixture, as before
    lo, hi = conn.execute(sa.text(f"SELECT lo, hi FROM healcat.mixture_interval({w}, {m}, {s})")).one()
    assert [cdf(lo), cdf(hi)] == pytest.approx([0.16, 0.84], abs=1e-7) and lo < 0
    # a mixture with nothing above the bound has no PDF there
    assert one("healcat.mixture_pdf('{1}', '{-5}', '{0.1}', 0.1, 0)") is None


@pytest.mark.parametrize("function", ["mixture_pdf", "mixture_cdf", "mixture_quantile"])
@pytest.mark.parametrize(("w", "m", "s"), [("{0.5,0.5}", "{0,1}", "{1}"), ("{1}", "{0,1}", "{1,1}"), ("{}", "{}", "{}")])
def test_mixture_arrays_of_other_lengths_are_an_error(conn, function, w, m, s):
    """Not a value computed from the components unnest could pair (0.1995 for the first)."""
    x = 0.5
    with pytest.raises(sa.exc.DBAPIError, match=f"{function}: weights, means and sigmas must have the same non-zero length"
                       ) as err:
        conn.execute(sa.text(f"SELECT healcat.{function}(CAST(:w AS real[]), CAST(:m AS real[]), CAST(:s AS real[]), :x)"),
                     {"w": w, "m": m, "s": s, "x": x})
    assert err.value.orig.sqlstate == "22023"


def test_mixture_functions_refuse_nan_and_vanish_far_out(conn):
    w, m, s = "'{0.5,0.5}'::real[]", "'{0.1,0.3}'::real[]", "'{0.02,0.05}'::real[]"
    for fn in ("mixture_pdf", "mixture_cdf"):  # NaN gave NaN (migration 0040: an error naming it)
        with pytest.raises(sa.exc.DBAPIError, match=f"{fn}: x must not be NaN"), conn.begin_nested():
            conn.scalar(sa.text(f"SELECT healcat.{fn}({w}, {m}, {s}, 'NaN')"))
    pdf = [conn.scalar(sa.text(f"SELECT healcat.mixture_pdf({w}, {m}, {s}, '{x}')")) for x in ("Infinity", "5", "0.1")]
    assert pdf[0] == 0.0 and pdf[1] == 0.0
    assert pdf[2] == pytest.approx(0.5 / (0.02 * math.sqrt(2 * math.pi)) + 0.5 * math.exp(-8) / (0.05 * math.sqrt(2 * math.pi)),
                                   rel=1e-6)
    # a tiny weight between 35.6 and 37 sigmas: its term is below exp(-700), 0, not an underflow error;
    # alone it is the whole mixture (weights are relative, since migration 0054 as their shares)
    assert conn.scalar(sa.text("SELECT healcat.mixture_pdf('{1e-30}', '{0}', '{1}', 36.9)")) == pytest.approx(
        math.exp(-0.5 * 36.9 ** 2) / math.sqrt(2 * math.pi), rel=1e-9)
    assert conn.scalar(sa.text("SELECT healcat.mixture_pdf('{1e-30,1}', '{0,36}', '{1,1}', 36.9)")) == pytest.approx(
        math.exp(-0.5 * 0.9 ** 2) / math.sqrt(2 * math.pi), rel=1e-6)
    cdf = [conn.scalar(sa.text(f"SELECT healcat.mixture_cdf({w}, {m}, {s}, '{x}')")) for x in ("Infinity", "-Infinity")]
    assert cdf[0] == pytest.approx(1.0) and cdf[1] == pytest.approx(0.0, abs=1e-15)


def test_model_cli_lists_shows_registers_and_refuses_bad_weights(engine, catalog, tmp_path, capsys):
    model = catalog["model"]
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert "photoz-sdss" in out and "object-class-sdss" in out and "current" in out
    assert main(["model", "show", "photoz-sdss"]) == 0
    out = capsys.readouterr().out
    assert model.weights_sha256 in out and "WHERE s.release_id = %(release_id)s" in out and '"release_ids"' in out
    run = catalog["run"]
    assert f"run {run.run_id} on {SDSS_RELEASE}, {run.device}" in out
    assert f"{run.n_predicted} predicted, {run.n_skipped} skipped" in out
    weights = Path(model.weights_path)
    assert main(["model", "register", "photoz", str(weights), "--sha256", "0" * 64, "--no-backfill"]) == 1
    assert f"has sha256 {model.weights_sha256}, not the {'0' * 64} given" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not weights")
    assert main(["model", "register", "photoz", str(junk), "--no-backfill"]) == 1
    assert "is not a photoz weights file" in capsys.readouterr().err
    # The same bytes under the same name are the same version: nothing new.
    assert main(["model", "register", "photoz", str(weights), "--sha256", model.weights_sha256, "--no-backfill"]) == 0
    assert f"photoz-sdss version {model.version} ({model.weights_sha256[:12]})" in capsys.readouterr().out
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.model WHERE name = 'photoz-sdss'")) == 1


def test_register_says_what_is_wrong_with_a_file_that_is_not_weights(engine, catalog, tmp_path, capsys):
    """`healcat model register object_class garbage.pt` said '... is not a object_class weights file (101)'."""
    import io

    import torch

    garbage, keyless, foreign = tmp_path / "garbage.pt", tmp_path / "keyless.pt", tmp_path / "foreign.pt"
    garbage.write_bytes(b"e" * 100)
    for path, blob in ((keyless, {"state_dict": {}}), (foreign, {"hparams": {}, "state_dict": {"w": torch.zeros(1)}})):
        buffer = io.BytesIO()
        torch.save(blob, buffer)
        path.write_bytes(buffer.getvalue())
    for path, what in ((garbage, r"not a torch weights file \(torch.load: \w+\)"),
                       (keyless, "a torch file without 'hparams' \\(healcat's weights files hold 'hparams' and "
                                 "'state_dict'\\)"),
                       (foreign, r'its state_dict does not fit ObjectClassifier: Missing key\(s\) in state_dict: '
                                 r'"x_mean".*Unexpected key\(s\) in state_dict: "w"')):
        assert main(["model", "register", "object_class", str(path), "--no-backfill"]) == 1
        err = capsys.readouterr().err
        assert re.search(f"model register: {re.escape(str(path))} is not a object_class weights file: {what}", err), err
