"""The photo-z method on a second survey: HSC PDR2 i magnitude and g-z colour against spec-z
(``rail_hsc_pdr2_specz_grid``), read straight from its HDF5 file."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from ingest.mapping import data_dir
from ingest.ml import common, metrics, photoz
from ingest.ml.common import split_indices


def test_mdn_on_hsc_beats_the_no_information_baseline_and_is_calibrated():
    with h5py.File(data_dir() / "rail_hsc_pdr2_specz_grid" / "hsc_ratios_and_specz.hdf5") as f:
        names = [n.decode() for n in f["data/block0_items"][:]]
        values = f["data/block0_values"][:]
    assert names == ["mag", "color", "specz"]
    sample = values[np.random.default_rng(0).choice(len(values), 20_000, replace=False)]
    x, z = sample[:, :2].astype(np.float32), sample[:, 2]  # i [mag], g - z [mag]; spec-z
    torch.set_num_threads(1)
    model, report = photoz.train_features(x, z, seed=0, epochs=40, patience=10)
    test, _, fit = split_indices(len(z), 0)
    out = photoz.predict(model, x[test], device="cpu")
    # the metrics are over the held-out galaxies it answers (photoz.refused: the guard, p(z) below 0)
    outside = common.outside_training(x[test], model.hparams, ("i", "g-z"))
    why = common.first_reason(outside, photoz.mostly_below_z_min(out["below_z_min"]))
    answered = np.ones(len(test), dtype=bool) if why is None else np.equal(why, None)
    assert report["n_test"] == len(test) and (~answered).sum() == report["n_test_outside_training"] + \
        report["n_test_below_z_min"] < 0.01 * len(test)
    assert report["nmad"] == metrics.nmad(out["z_point"][answered], z[test][answered])
    zt = z[test][answered]
    baseline = np.full(len(zt), np.median(z[fit]))  # one redshift for every galaxy
    print(f"HSC held-out ({len(zt)} answered, {report['n_test_outside_training']} outside, "
          f"{report['n_test_below_z_min']} below 0): NMAD {report['nmad']:.4f}, bias {report['bias']:+.4f}, outliers "
          f"{report['outlier_fraction']:.3f}, CRPS {report['crps']:.4f}, PIT {report['pit_histogram']}; baseline NMAD "
          f"{metrics.nmad(baseline, zt):.4f}, outliers {metrics.outlier_fraction(baseline, zt):.3f}")
    assert report["nmad"] < 0.5 * metrics.nmad(baseline, zt)
    assert report["outlier_fraction"] < 0.5 * metrics.outlier_fraction(baseline, zt)
    assert report["pit_max_dev"] <= 0.2 and abs(report["bias"]) < 0.02
