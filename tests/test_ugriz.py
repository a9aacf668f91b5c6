"""SDSS ugriz as model input (ingest/tasks/ugriz.py): photo-z and the object classifier read AB
magnitudes only, and say so where a source's or a release's are in another system."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from catalog.errors import HealcatError
from ingest.inference import run_model
from ingest.load import ingest_release
from ingest.registry import release_id_of
from ingest.tasks import ALL_SOURCES, get_task
from tests.conftest import scratch_mapping, sdss_rows, write_csv


def _prepared(conn: sa.Connection, release_id: int):
    with conn.connection.driver_connection.cursor() as cur:
        cur.execute(get_task("object_class").input_query, {"release_id": release_id, **ALL_SOURCES})
        return get_task("object_class").prepare(cur.fetchall())


@pytest.mark.parametrize(("change", "reason"), [
    ("mag_system = 'Vega' WHERE band IN ('sdss_g', 'sdss_z')",
     "sdss_g, sdss_z magnitude in Vega, not AB (the model reads AB)"),
    # ingestion stores no NaN; an UPDATE can: it was skipped as 'no sdss_g magnitude'
    ("mag = 'NaN' WHERE band = 'sdss_g'", "sdss_g magnitude NaN in healcat.photometry (ingestion stores none: "
                                          "written by hand?)"),
])
def test_a_source_whose_band_is_vega_or_nan_is_skipped_saying_so(catalog, conn, change, reason):
    release_id = catalog["sdss"].release_id
    before = _prepared(conn, release_id)
    shard, source_id = (int(k) for k in before.keys[0])
    conn.execute(sa.text(f"UPDATE healcat.photometry SET {change} AND shard = :s AND source_id = :i"),  # noqa: S608
                 {"s": shard, "i": source_id})
    after = _prepared(conn, release_id)
    assert (shard, source_id, reason) in after.skipped
    assert len(after.skipped) == len(before.skipped) + 1 and len(after.keys) == len(before.keys) - 1
    assert (after.inputs == before.inputs[1:]).all(), "every other source's inputs as before"


def test_a_release_in_vega_is_not_run_saying_why(engine, catalog, tmp_path, scratch_release):
    mapping = scratch_mapping(tmp_path, "vega")
    text = mapping.read_text()
    assert 'system = "AB"' in text
    mapping.write_text(text.replace('system = "AB"', 'system = "Vega"'))
    rows = sdss_rows()[:3]
    rows[0]["u"] = "-9999"  # the mapping's sentinel: no sdss_u at all, in any system
    ingest_release(mapping, engine, file=write_csv(tmp_path / "vega.csv", rows))
    with engine.connect() as conn:
        release_id = release_id_of(conn, "scratch/vega")
        for task in ("object_class", "photoz"):
            assert not get_task(task).applies(conn, release_id)
            assert get_task(task).missing(conn, release_id) == \
                "its SDSS ugriz magnitudes are not AB, the system the model reads"
        prepared = _prepared(conn, release_id)
    assert len(prepared.keys) == 0
    assert sorted(reason for _, _, reason in prepared.skipped) == [
        "no sdss_u magnitude; sdss_g, sdss_r, sdss_i, sdss_z magnitude in Vega, not AB (the model reads AB)",
        *["sdss_u, sdss_g, sdss_r, sdss_i, sdss_z magnitude in Vega, not AB (the model reads AB)"] * 2]
    with pytest.raises(HealcatError, match="does not apply to scratch/vega: its SDSS ugriz magnitudes are not AB"):
        run_model(engine, catalog["classifier"].name, "scratch/vega")

