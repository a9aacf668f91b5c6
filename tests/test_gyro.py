"""Gyrochronology: p(Prot | colour, age) from ChronoFlow's open clusters, validated leave-one-cluster-out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ingest.ml import gyro
from tests.science_data import chronoflow

MULTI_AGE = ("ScoCen", "Taurus")  # associations whose subgroups have different ages
MIN_MEMBERS = 20  # a "cluster age" from fewer rotators is little more than one star's (~1 dex wide)


@pytest.fixture(scope="module")
def stars() -> dict:
    d = chronoflow()
    assert gyro.valid_rows(d["bprp0_mag"], d["prot_day"]).all()
    return d


def test_paper_cuts_keep_the_training_set(stars):
    assert len(stars["prot_day"]) == 6892 and int(stars["n_excluded"]) == 7628 - 6892
    assert len(set(stars["cluster"].tolist())) == 25
    assert len(set(stars["population"].tolist())) == 41  # Sco-Cen's 9 and Taurus's 9 subgroups apart


def test_leave_one_cluster_out_ages(stars):
    """Every cluster as the catalog holds it (each subgroup of Sco-Cen and Taurus a cluster with its
    own age) held out in turn, trained on the other 40, aged from all its members."""
    torch.set_num_threads(1)
    res = gyro.leave_one_cluster_out(stars["bprp0_mag"], stars["log_age"], stars["prot_day"],
                                     stars["population"], stars["population"], seed=0)
    assert set(res) == set(stars["population"].tolist())
    rich = np.abs([v["delta_dex"] for v in res.values() if v["n_members"] >= MIN_MEMBERS])
    assert len(rich) == 30
    assert np.median(rich) <= 0.1  # over the 30 clusters with >= 20 rotators (measured 0.074)
    association = {p: c for p, c in zip(stars["population"].tolist(), stars["cluster"].tolist())}
    single = np.abs([v["delta_dex"] for p, v in res.items() if association[p] not in MULTI_AGE])
    assert len(single) == 23 and np.median(single) <= 0.1  # measured 0.055
    sco = np.abs([v["delta_dex"] for p, v in res.items() if association[p] == "ScoCen" and v["n_members"] >= MIN_MEMBERS])
    assert len(sco) == 8 and np.median(sco) < 0.15  # Sco-Cen's subgroups, 6-19 Myr (measured 0.078)
    # The target, over all 41: measured 0.084 (seed 0; seeds 1-3 give 0.103, 0.097 and 0.094, so it
    # holds for 3 of 4 seeds): 22 within 0.1 dex, while the Taurus groups of 1-18 rotators (median
    # 0.50) sit far outside it.
    assert np.median(np.abs([v["delta_dex"] for v in res.values()])) <= 0.1
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
    # Colours the clusters never had (a catalogue's sentinels, a colour in the wrong units) get no
    # age, with the reason, where they got the prior's ~8 +- 1.4 dex.
    # The range is the training stars' 0.1-99.9 percentiles plus 10%: one star at -1.54 (h Per; the next
    # bluest is -0.26) stretched min/max plus 10% to -2.18, so a -1.0 star got an age no cluster supports.
    lo, hi = model.hparams["colour_range"][0]
    bluest, second = np.sort(stars["bprp0_mag"])[:2]
    assert bluest < -1.5 < lo < second < 0 and 4.5 < hi < stars["bprp0_mag"].max()
    refused = np.not_equal(ages["refused"], None)
    assert sorted(stars["bprp0_mag"][refused]) == [bluest, stars["bprp0_mag"].max()], "the two extreme stars"
    from ingest.tasks.gyro_age import GyroAge

    colour = np.array([-9999.0, 99.0, -5.0, -1.0, 1.0])
    out = GyroAge().predict(model, (colour, np.full(5, 10.0)), "cpu")
    assert [why is None for why in out.refused] == [False, False, False, False, True]
    assert out.refused[0].startswith("BP-RP_0 = -9999 is outside what the model was trained on")
    assert out.refused[3] == f"BP-RP_0 = -1 is outside what the model was trained on ({lo:.6g} to {hi:.6g}): no extrapolation"


def test_skipped_stars_say_which_input_is_missing():
    from ingest.tasks.gyro_age import GyroAge

    prepared = GyroAge().prepare([(1, 1, None, 10.0, None), (1, 2, 1.0, 900.0, None), (1, 3, 1.0, 10.0, None),
                                  (1, 4, 1.0, 10.0, "chronoflow/x")])
    assert prepared.keys.tolist() == [[1, 3]]
    assert [why for *_, why in prepared.skipped] == [
        "no dereddened BP-RP colour", "Prot 900 d is not a period in 0.025-500 d",
        "already predicted by this model version for release chronoflow/x"]


def test_invalid_rows_are_refused_with_their_index():
    with pytest.raises(ValueError, match=r"first at \[1\]"):
        gyro.train(np.array([1.0, 1.2]), np.array([8.0, 8.0]), np.array([5.0, -1.0]))
