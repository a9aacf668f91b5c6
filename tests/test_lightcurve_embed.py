"""Contrastive light-curve + metadata embeddings on EROS-2 and Stripe 82 variables, judged by k-NN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ingest.ml import lightcurve_embed as le
from tests.science_data import LC_BANDS, eros, stripe82_rrlyrae

EPOCHS = 6  # ~15 s of one core per model on the 3,300 training stars


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


def test_knn_on_embeddings_against_a_supervised_baseline(stars):
    torch.set_num_threads(1)
    tr, te, y = stars["train"], ~stars["train"], stars["y"]
    clip = le.train(*_part(stars, tr), n_bands=len(LC_BANDS), seed=0, epochs=EPOCHS)
    emb_tr, emb_te = le.embed(clip, *_part(stars, tr)), le.embed(clip, *_part(stars, te))
    np.testing.assert_allclose(np.linalg.norm(emb_te, axis=1), 1.0, atol=1e-5)
    knn = float(np.mean(le.knn_classify(emb_tr, y[tr], emb_te, k=10) == y[te]))
    baseline = le.train(*_part(stars, tr), n_bands=len(LC_BANDS), labels=y[tr], seed=0, epochs=EPOCHS)
    supervised = float(np.mean(le.classify(baseline, *_part(stars, te)) == y[te]))
    majority = float(np.mean(y[te] == np.bincount(y[tr]).argmax()))
    # Measured (seed 0): k-NN 0.873, supervised 0.912, majority 0.55. Labels never enter the
    # contrastive model; the target "k-NN >= supervised" is NOT met, so the test pins the gap.
    assert knn > majority + 0.3
    assert knn > supervised - 0.06
    assert supervised > 0.88


def test_training_is_reproducible(stars):
    torch.set_num_threads(1)
    subset = np.zeros(len(stars["y"]), dtype=bool)
    subset[::12] = True
    a = le.embed(le.train(*_part(stars, subset), n_bands=len(LC_BANDS), seed=3, epochs=1), *_part(stars, subset))
    b = le.embed(le.train(*_part(stars, subset), n_bands=len(LC_BANDS), seed=3, epochs=1), *_part(stars, subset))
    np.testing.assert_array_equal(a, b)


def test_malformed_light_curve_is_named():
    with pytest.raises(ValueError, match="light curve 1"):
        le.tokenize([np.zeros((3, 4)), np.zeros((3, 2))], np.array([1.0, 1.0]))
