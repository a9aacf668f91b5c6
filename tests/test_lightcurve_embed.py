"""Contrastive light-curve + metadata embeddings on EROS-2 and Stripe 82 variables, judged by k-NN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from catalog.errors import HealcatError
from ingest.ml import common
from ingest.ml import lightcurve_embed as le
from tests.science_data import LC_BANDS, eros, stripe82_rrlyrae


@pytest.fixture(scope="module")
def stars() -> dict:
    e, r = eros(), stripe82_rrlyrae()
    d = {k: e[k] + r[k] for k in e}
    labels = np.array(d["label"])
    d["classes"], d["y"] = np.unique(labels, return_inverse=True)
    d["meta"], d["period_day"] = np.array(d["meta"]), np.array(d["period_day"])
    d["train"] = np.array(d["split"]) == "train"
    return d


def _part(d: dict, mask: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    return [d["light_curve"][i] for i in np.flatnonzero(mask)], d["period_day"][mask], d["meta"][mask]


def test_both_surveys_and_all_six_classes_are_present(stars):
    assert set(stars["classes"]) == {"eros_1", "eros_2", "eros_3", "eros_4", "rr_ab", "rr_c"}
    assert stars["train"].sum() > 3000 and (~stars["train"]).sum() > 800


def _knn_accuracy(model, stars: dict, tr: np.ndarray, te: np.ndarray) -> float:
    """k-NN (k = 20) of the held-out stars from embeddings alone."""
    emb_tr, emb_te = le.embed(model, *_part(stars, tr)), le.embed(model, *_part(stars, te))
    np.testing.assert_allclose(np.linalg.norm(emb_te, axis=1), 1.0, atol=1e-5)
    return float(np.mean(le.knn_classify(emb_tr, stars["y"][tr], emb_te) == stars["y"][te]))


def test_knn_on_embeddings_against_a_supervised_baseline(stars):
    """The same held-out stars, inputs, encoders, augmentations and early stopping for all three."""
    torch.set_num_threads(1)
    tr, te, y = stars["train"], ~stars["train"], stars["y"]
    clip = le.train(*_part(stars, tr), n_bands=len(LC_BANDS), seed=0)
    label_free = _knn_accuracy(clip, stars, tr, te)
    tuned = le.finetune(clip, *_part(stars, tr), y[tr], seed=0)
    knn = _knn_accuracy(tuned, stars, tr, te)
    baseline = le.train(*_part(stars, tr), n_bands=len(LC_BANDS), labels=y[tr], seed=0)
    supervised = float(np.mean(le.classify(baseline, *_part(stars, te)) == y[te]))
    majority = float(np.mean(y[te] == np.bincount(y[tr]).argmax()))
    # Measured (seed 0, k = 20): label-free k-NN 0.919, after label-aware fine-tuning 0.933,
    # supervised 0.930, majority 0.55: k-NN >= supervised here (by 3 of 826 stars) and over six seeds
    # (0.931 against 0.929, README model card); seed to seed the two swing by up to 9 stars, so the
    # test allows 8 (a machine whose floating point trains other weights draws other stars).
    assert label_free > majority + 0.3 and label_free > 0.905
    assert supervised > 0.915
    assert knn >= label_free and knn > supervised - 0.01


def test_training_is_reproducible(stars, tmp_path):
    torch.set_num_threads(1)
    subset = np.zeros(len(stars["y"]), dtype=bool)
    subset[::12] = True
    part, y = _part(stars, subset), stars["y"][subset]
    a, b = (le.train(*part, n_bands=len(LC_BANDS), seed=3, epochs=1) for _ in range(2))
    np.testing.assert_array_equal(le.embed(a, *part), le.embed(b, *part))
    before = le.to_bytes(a)
    tuned_a, tuned_b = (le.finetune(m, *part, y, seed=3, epochs=1) for m in (a, b))
    np.testing.assert_array_equal(le.embed(tuned_a, *part), le.embed(tuned_b, *part))
    assert le.to_bytes(a) == before and le.to_bytes(tuned_a) != before  # a copy is fine-tuned
    assert a.proxies is None and tuned_a.hparams["n_proxies"] == len(np.unique(y))
    path = tmp_path / "tuned.bin"
    path.write_bytes(le.to_bytes(tuned_a))  # the class directions travel with the weights
    np.testing.assert_array_equal(le.embed(le.load(str(path)), *part), le.embed(tuned_a, *part))


def test_margin_loss_asks_for_more_than_the_nearest_class_direction():
    model = le.LightCurveCLIP(n_bands=2, n_meta=3, out_dim=2, n_proxies=2)
    with torch.no_grad():
        model.proxies.copy_(torch.eye(2, 4))  # class 0 along x, class 1 along y
    labels = torch.tensor([0])
    at = lambda deg: torch.tensor([[np.cos(np.radians(deg)), np.sin(np.radians(deg)), 0.0, 0.0]],  # noqa: E731
                                  dtype=torch.float32)
    with torch.no_grad():
        on, near, wrong = (float(model.margin_loss(at(deg), labels)) for deg in (0.0, 40.0, 60.0))
    assert on < near < wrong
    # 40 deg from its own direction and 50 deg from the other's: the nearer class, yet the margin
    # (0.3 rad = 17 deg) still counts it as on the wrong side: loss above log 2.
    assert near > np.log(2.0)
    assert on < 1e-3


def test_class_directions_start_at_the_class_means():
    model = le.LightCurveCLIP(n_bands=2, n_meta=3, out_dim=2)
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, 0, 0], [1.0, -0.2, 0, 0], [0, 0, 3.0, 4.0]]), dim=1)
    copy = model.with_proxies(z, torch.tensor([0, 0, 2]), 3)
    assert model.proxies is None and copy.hparams["n_proxies"] == 3
    np.testing.assert_allclose(copy.proxies[0].detach(), [1, 0, 0, 0], atol=1e-6)  # the two rows' mean direction
    np.testing.assert_allclose(copy.proxies[2].detach(), [0, 0, 0.6, 0.8], atol=1e-6)
    assert float(copy.proxies[1].detach().norm()) == pytest.approx(1.0)  # no rows: a random unit direction


def test_fourier_features_recover_a_folded_curve_whatever_its_phase_origin():
    rng = np.random.default_rng(1)
    period_day = 0.57
    t = np.sort(rng.uniform(0.0, 500.0, 200))
    curves = []
    for shift_day in (0.0, 0.2):  # a later first epoch moves phi_1 and phi_2, not phi_21
        phase = 2 * np.pi * (t + shift_day) / period_day
        mag = 18.0 + 0.4 * np.cos(phase + 0.3) + 0.1 * np.cos(2 * phase + 1.0)
        curves.append(np.stack([t, mag, np.full_like(t, 0.01), np.zeros_like(t)], axis=1))
    curves.append(curves[0][:5])  # too few epochs for a fit
    x = le.batch(curves, np.array([period_day] * 3), np.zeros((3, 1)), n_bands=2)  # as embed() takes them
    f = x.fourier.numpy().reshape(3, 2, le.FOURIER_FEATURES)
    k = le.N_FOURIER - 1
    for row in f[:2, 0]:
        assert row[0] == pytest.approx(np.log10(0.4), abs=1e-3)  # A1
        assert row[2] == pytest.approx(np.log10(0.1 / 0.4), abs=1e-3)  # A2 / A1
        phi21 = 1.0 - 2 * 0.3
        assert (row[2 + k], row[2 + 2 * k]) == pytest.approx((np.sin(phi21), np.cos(phi21)), abs=1e-3)
    assert np.isnan(f[:, 1]).all() and np.isnan(f[2]).all()  # no band-1 epochs; too few epochs


def test_malformed_light_curve_is_named():
    with pytest.raises(ValueError, match="light curve 1"):
        le.batch([np.zeros((3, 4)), np.zeros((3, 2))], np.array([1.0, 1.0]), np.zeros((2, 1)), n_bands=1)


def test_a_source_whose_curves_have_no_magnitudes_is_skipped_with_the_reason(tmp_path):
    """Its curves aggregate to NULL (flux-only, or every magnitude missing): a skip with the reason, not absent."""
    from ingest.tasks.lightcurve_embed import LightCurveEmbed

    curve = [["eros_b", [50000.0, 50001.0, 50002.0], [18.0, 18.1, 18.2], [0.02, 0.02, 0.02]]]
    no_attrs = (1,) + (None,) * 5  # release, the catalogue columns
    rows = [(3, 30, 0.5, curve, None, None) + no_attrs, (3, 31, 0.5, None, None, None) + no_attrs,
            (3, 32, None, [["eros_r", [50000.0], [None], [None]]], None, None) + no_attrs,
            (3, 33, None, [["ztf_g", [50000.0], [18.0], [0.1]], ["ztf_r", [50000.0], [18.0], [0.1]]], None, None)
            + no_attrs]
    prepared = LightCurveEmbed().prepare(rows)
    assert prepared.keys.tolist() == [[3, 30]]
    # a version trained before the catalogue columns (8 metadata columns) still runs on the new inputs
    for n_meta in (8, 13):
        out = LightCurveEmbed().predict(le.LightCurveCLIP(n_bands=7, n_meta=n_meta).eval(), prepared.inputs, "cpu")
        assert out.embedding.shape == (1, 64) and np.isfinite(out.value).all()
    # weights reading another count of columns would read the wrong ones: refused when loaded
    for n_meta, ok in ((8, True), (13, True), (10, False)):
        path = tmp_path / f"m{n_meta}.pt"
        path.write_bytes(common.to_bytes(le.LightCurveCLIP(n_bands=7, n_meta=n_meta)))
        if ok:
            assert LightCurveEmbed().load(str(path), "cpu").hparams["n_meta"] == n_meta
        else:
            with pytest.raises(HealcatError, match="these weights read 10 metadata columns; the task gives 13"):
                LightCurveEmbed().load(str(path), "cpu")
    assert prepared.skipped[:2] == [(3, 31, "no light-curve epoch with a finite magnitude"),
                                    (3, 32, "no light-curve epoch with a finite magnitude")]
    # ZTF's bands: finite epochs, none the model reads (it said 'no ... finite magnitude')
    assert prepared.skipped[2][:2] == (3, 33) and prepared.skipped[2][2].startswith(
        "no band the model reads (has ztf_g, ztf_r; reads eros_b, eros_r, sdss_u")


def test_the_model_applies_to_releases_with_bands_it_reads(engine, per_object):
    """ZTF's g/R curves: a run of 2,289 skips with a false reason; now the task does not apply."""
    from ingest.registry import release_id_of
    from ingest.tasks.lightcurve_embed import LightCurveEmbed

    with engine.connect() as conn:
        applies = {name: LightCurveEmbed().applies(conn, release_id_of(conn, name))
                   for name in ("ztf-bts/snia-light-curve-test-data", "eros2/lmc-ramp-variable-stars",
                                "sdss-s82-rrlyrae/sesar2010")}
    assert applies == {"ztf-bts/snia-light-curve-test-data": False, "eros2/lmc-ramp-variable-stars": True,
                       "sdss-s82-rrlyrae/sesar2010": True}


def test_the_eros_catalogue_columns_enter_the_metadata_view():
    """Asymmetries, log p(not variable) and log10 flux sigmas after the log period and the band
    medians; NaN ("not measured") where a catalogue has none (Stripe 82) or a cell is no number."""
    from ingest.tasks.lightcurve_embed import BANDS, N_META, _curves

    curve = [["eros_b", [50000.0, 50001.0, 50002.0], [18.0, 18.1, 18.4], [0.02, 0.02, 0.02]]]
    rows = [(3, 30, "2.5", curve, "3", "train", 1, "0.9", "1.2", "-2.5", "36.0", "1000"),
            (3, 31, "0.5", [["sdss_g", [50000.0, 50001.0], [17.0, 17.2], [0.01, 0.01]]], "ab", None, 2)
            + (None,) * 5,
            (3, 32, "0.5", curve, "3", "test", 1, "0.9", "n/a", "-2.5", "-1.0", "1000")]
    _, period, meta = _curves(rows)
    assert meta.shape == (3, N_META) == (3, 1 + len(BANDS) + 5)
    np.testing.assert_allclose(meta[0], [np.log10(2.5), 18.1] + [np.nan] * 6 + [0.9, 1.2, -2.5, np.log10(36.0), 3.0])
    assert np.isnan(meta[1, 1 + len(BANDS):]).all() and meta[1, 1 + BANDS.index("sdss_g")] == pytest.approx(17.1)
    assert np.isnan(meta[2, [9, 11]]).all()  # "n/a"; a flux sigma that is not positive has no log
    np.testing.assert_allclose(period, [2.5, 0.5, 0.5])


def test_a_release_without_a_split_holds_out_a_fifth_of_its_own_stars():
    """EROS-2 publishes a train/test split, Stripe 82 none: the latter held out a seeded fifth only
    when no row at all had a split, so trained together every Stripe 82 star was a training star."""
    from ingest.ml import common
    from ingest.tasks.lightcurve_embed import held_out

    release = np.array([1] * 50 + [2] * 30, dtype=object)
    split = np.array(["train", "test"] * 25 + [None] * 30, dtype=object)
    labelled = np.ones(80, dtype=bool)
    labelled[[1, 60]] = False  # an unlabelled star is never a test star
    test = held_out(labelled, split, release, seed=4)
    np.testing.assert_array_equal(test[:50], (split[:50] == "test") & labelled[:50])  # the published split
    fifth = 50 + common.split_indices(30, 4)[0]
    np.testing.assert_array_equal(np.flatnonzero(test[50:]) + 50, np.sort(fifth[fifth != 60]))
    assert test[50:].sum() == 6 - (60 in fifth)
    assert not np.array_equal(test, held_out(labelled, split, release, seed=5))  # seeded
    # one release alone without a split: the same fifth as before (over all its rows)
    alone = held_out(np.ones(30, dtype=bool), np.full(30, None, dtype=object), np.full(30, 2, dtype=object), seed=4)
    np.testing.assert_array_equal(np.flatnonzero(alone), np.sort(common.split_indices(30, 4)[0]))


def test_the_catalog_keeps_the_eros_catalogue_columns_and_training_holds_out_both_releases(engine, per_object):
    """The EROS catalogue's asymmetries, variability probability and flux sigmas are in
    source.attrs (they were [ignore]d) and reach the training rows; trained on EROS-2 and Stripe 82
    together, the held-out stars are EROS-2's test split and a fifth of Stripe 82's RR Lyrae."""
    import sqlalchemy as sa

    from ingest.registry import release_id_of
    from ingest.tasks.lightcurve_embed import CATALOGUE_ATTRS, LightCurveEmbed, _curves, held_out

    task = LightCurveEmbed()
    names = ("eros2/lmc-ramp-variable-stars", "sdss-s82-rrlyrae/sesar2010")
    with engine.connect() as conn:
        ids = [release_id_of(conn, n) for n in names]
        attrs = conn.scalar(sa.text("SELECT attrs FROM healcat.source WHERE object_id = '271_4304' "
                                    "AND release_id = :r"), {"r": ids[0]})
        rows = []
        with conn.connection.driver_connection.cursor() as cur:
            for release_id in ids:
                cur.execute(task.training_query, {"release_id": release_id})
                rows += cur.fetchall()
    # train.csv's row of 271_4304: asym_b, asym_r, log_p_not_variable, sigma_flux_b, sigma_flux_r
    assert [float(attrs[a]) for a, _ in CATALOGUE_ATTRS] == pytest.approx(
        [0.921875, 1.77778, -14.5146, 136.102, 1269.74])
    _, _, meta = _curves(rows)
    eros_rows = np.array([r[6] == ids[0] for r in rows])
    extra = meta[:, -len(CATALOGUE_ATTRS):]
    assert np.isfinite(extra[eros_rows]).all() and np.isnan(extra[~eros_rows]).all()
    labelled = np.array([r[4] is not None for r in rows])
    split, release = (np.array([r[i] for r in rows], dtype=object) for i in (5, 6))
    test = held_out(labelled, split, release, 0)
    assert (test[eros_rows].sum(), test[~eros_rows].sum()) == (729, 97)
