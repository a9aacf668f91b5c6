"""Gyrochronology: p(Prot | colour, age) from ChronoFlow's open clusters, validated leave-one-cluster-out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ingest.ml import gyro
from tests.science_data import chronoflow

MULTI_AGE = ("ScoCen", "Taurus")  # associations whose subgroups have different ages


@pytest.fixture(scope="module")
def stars() -> dict:
    d = chronoflow()
    assert gyro.valid_rows(d["bprp0_mag"], d["prot_day"]).all()
    return d


def test_paper_cuts_keep_the_training_set(stars):
    assert len(stars["prot_day"]) == 6892 and int(stars["n_excluded"]) == 7628 - 6892
    assert len(set(stars["cluster"].tolist())) == 25


def test_leave_one_cluster_out_ages(stars):
    torch.set_num_threads(1)
    res = gyro.leave_one_cluster_out(stars["bprp0_mag"], stars["log_age"], stars["prot_day"],
                                     stars["cluster"], stars["population"], seed=0)
    assert set(res) == set(stars["population"].tolist())
    single = [v for v in res.values() if v["cluster"] not in MULTI_AGE]
    assert len(single) == 23
    deltas = np.abs([v["delta_dex"] for v in single])
    assert np.median(deltas) <= 0.1  # the target, over the 23 single-age clusters
    for v in res.values():
        assert v["log_age_p16"] <= v["log_age_median"] <= v["log_age_p84"]


def test_star_posteriors_cover_their_cluster_age(stars):
    torch.set_num_threads(1)
    model, report = gyro.train(stars["bprp0_mag"], stars["log_age"], stars["prot_day"],
                               population=stars["population"], seed=0)
    ages = gyro.star_ages(model, stars["bprp0_mag"], stars["prot_day"])
    inside = (ages["log_age_p16"] <= stars["log_age"]) & (stars["log_age"] <= ages["log_age_p84"])
    assert 0.55 < inside.mean() < 0.9  # a 68% interval, in-sample
    hyades = stars["population"] == "Hyades"
    est = gyro.cluster_age(model, stars["bprp0_mag"][hyades], stars["prot_day"][hyades])
    assert abs(est["log_age_median"] - np.log10(775e6)) < 0.1
    again, _ = gyro.train(stars["bprp0_mag"], stars["log_age"], stars["prot_day"],
                          population=stars["population"], seed=0)
    assert gyro.to_bytes(again) == gyro.to_bytes(model)


def test_invalid_rows_are_refused_with_their_index():
    with pytest.raises(ValueError, match=r"first at \[1\]"):
        gyro.train(np.array([1.0, 1.2]), np.array([8.0, 8.0]), np.array([5.0, -1.0]))
