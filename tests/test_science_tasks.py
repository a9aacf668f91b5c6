"""The science models as registry tasks: trained by SQL over the catalog, predictions written back."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from ingest.inference import run_model, train
from ingest.load import ingest_release
from ingest.ml import stellar_mass as ml_mass
from tests.science_data import candels

CANDELS_RELEASES = ("candels_goodss_z1", "candels_prospector_z1", "candels_sed3fit_z1")


@pytest.fixture(scope="module")
def candels_mass(engine):
    """The z~1 CANDELS photometry and two codes' masses ingested (committed), the model trained and run."""
    for name in CANDELS_RELEASES:
        ingest_release(name, engine)
    model = train(engine, "stellar_mass", "candels/goodss-sedfit-z1")
    run = run_model(engine, model.name, "candels/goodss-sedfit-z1")
    return model, run


def test_stellar_mass_trained_from_sql_beats_the_codes_scatter(engine, candels_mass):
    model, run = candels_mass
    m = model.metrics
    assert m["n_test"] == round(0.2 * 371) and m["n_codes_median"] == 2  # prospector, sed3fit
    assert m["median_abs_error_dex"] < 0.15 and abs(m["bias_dex"]) < 0.05
    assert "healcat.stellar_mass" in model.training_set
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT s.object_id, p.value, p.uncertainty FROM healcat.prediction p "
            "JOIN healcat.source s USING (shard, source_id) WHERE p.model_id = :m"), {"m": model.model_id}).all()
    assert len(rows) == run.n_predicted == 371 and run.n_skipped == 0
    files = candels()
    ids = files["candels_id"].tolist()
    codes = files["code_log_mass"]
    pred = {int(r.object_id): (r.value, r.uncertainty) for r in rows}
    target = np.array([np.nanmedian(codes[ids.index(i)]) for i in pred])  # nine codes, from the files
    value = np.array([v for v, _ in pred.values()])
    assert np.median(np.abs(value - target)) < 0.15
    assert all(u > 0 for _, u in pred.values())
    assert np.median(ml_mass.code_scatter(codes)) < 0.1
