"""The index behind an epoch cross-match's pad and fast movers (migration 0046, sql/xmatch_v7.sql): the
same numbers as a scan of every moving source, read through ix_source_pm."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from ingest.load import ingest_release
from tests.conftest import across_a_migration

KEPLER = "kepler_mcquillan_tgas_prot"  # proper motions at ref_epoch 2015.0
TOTAL = "sqrt(s.pmra_masyr * s.pmra_masyr + s.pmdec_masyr * s.pmdec_masyr)"


@pytest.fixture
def two_epochs(engine, catalog, conn) -> int:
    """The Kepler x TGAS release with a third of its stars given ref_epoch 2000.0 (rolled back after)."""
    release_id = ingest_release(KEPLER, engine).release_id
    conn.execute(sa.text("UPDATE healcat.source SET ref_epoch_yr = 2000.0 WHERE release_id = :r AND source_id % 3 = 0"),
                 {"r": release_id})
    return release_id


def test_the_epochs_and_the_pad_are_a_scans(conn, two_epochs):
    got = conn.execute(sa.text("SELECT release_id, ref_epoch_yr, max_pm_masyr FROM healcat.pm_epochs(0) "
                               "ORDER BY 1, 2")).all()
    want = conn.execute(sa.text(f"SELECT s.release_id, s.ref_epoch_yr, max({TOTAL}) FROM healcat.source AS s "
                                "WHERE s.pmra_masyr IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2")).all()
    assert got == want
    assert [r.ref_epoch_yr for r in got if r.release_id == two_epochs] == [2000.0, 2015.0]
    for epoch in (1985.0, 2000.0, 2007.5, 2015.0, 2016.0, 2100.0):
        pad = conn.scalar(sa.text("SELECT healcat.xmatch_pm_pad_arcsec(:r, :e)"), {"r": two_epochs, "e": epoch})
        scan = conn.scalar(sa.text(
            "SELECT coalesce(max(healcat.pm_displacement_arcsec(s.pmra_masyr, s.pmdec_masyr, :e - s.ref_epoch_yr)), 0) "
            "FROM healcat.source AS s WHERE s.release_id = :r AND s.pmra_masyr IS NOT NULL"), {"r": two_epochs, "e": epoch})
        assert pad == scan > 0, epoch  # exactly: a positive factor keeps the order


def test_the_fast_movers_of_two_epochs_are_matched_where_they_are(conn, two_epochs):
    """Every star seen at 1700.0 from positions moved there is found there, itself, at 1 arcsec: with a
    slow pad of 10 arcsec, the stars moving further (both reference epochs' index ranges) are matched
    as fast movers. ('all': a few stars of the catalogue are one TGAS star twice, at one position.)"""
    conn.execute(sa.text(
        "CREATE TEMP TABLE seen ON COMMIT DROP AS SELECT s.source_id AS row_id, m.ra, m.dec, "
        "healcat.hpx_ang2pix(29, m.ra, m.dec) AS hpx FROM healcat.source AS s "
        "CROSS JOIN LATERAL healcat.pm_propagate(s.ra, s.dec, s.pmra_masyr, s.pmdec_masyr, 1700.0 - s.ref_epoch_yr) "
        "AS m(ra, dec) WHERE s.release_id = :r"), {"r": two_epochs})
    name = conn.scalar(sa.text("SELECT name FROM healcat.release WHERE release_id = :r"), {"r": two_epochs})
    found = conn.scalar(sa.text(
        "SELECT count(DISTINCT row_id) FROM healcat.xmatch_table('seen', 1.0, :n, 'all', 1700.0) "
        "WHERE row_id = source_id AND separation_arcsec < 1e-6"), {"n": name})
    assert found == conn.scalar(sa.text("SELECT count(*) FROM seen")) > 1000
    fast = conn.execute(sa.text(
        "SELECT s.ref_epoch_yr, count(*) FROM healcat.source AS s WHERE s.release_id = :r AND s.pmra_masyr IS NOT NULL "
        "AND healcat.pm_displacement_arcsec(s.pmra_masyr, s.pmdec_masyr, 1700.0 - s.ref_epoch_yr) "
        "> healcat.xmatch_slow_pad_arcsec(1.0, healcat.xmatch_pm_pad_arcsec(:r, 1700.0)) GROUP BY 1 ORDER BY 1"),
        {"r": two_epochs}).all()
    assert [epoch for epoch, n in fast if n >= 5] == [2000.0, 2015.0], "fast movers of both epochs were matched"


def test_the_probes_read_ix_source_pm(conn, two_epochs):
    """The expressions pm_epochs and xmatch_prepare write are the index's: the largest motion at an
    epoch, and the fast movers' range, come from it (a seq scan is ruled out so that the table's size
    in the test catalog decides nothing)."""
    conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
    for query in (f"SELECT {TOTAL} FROM healcat.source AS s WHERE s.release_id = :r AND s.pmra_masyr IS NOT NULL "
                  f"AND s.ref_epoch_yr = 2015.0 ORDER BY {TOTAL} DESC LIMIT 1",
                  f"SELECT s.source_id FROM healcat.source AS s WHERE s.release_id = :r AND s.pmra_masyr IS NOT NULL "
                  f"AND s.ref_epoch_yr = 2015.0 AND {TOTAL} >= 100.0"):
        plan = json.dumps(conn.scalar(sa.text(f"EXPLAIN (FORMAT JSON) {query}"), {"r": two_epochs}))
        assert '"Index Name": "ix_source_pm"' in plan, query


def test_the_downgrade_restores_the_functions_and_drops_the_index(engine, database_url, catalog):
    before, upgraded, after = across_a_migration(engine, database_url, "0046", "0045")
    assert after == before
    assert {row[0] for row in upgraded} - {row[0] for row in before} == {"healcat.pm_epochs(integer)"}
    indexes = "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'healcat.source'::regclass ORDER BY 1"
    before, upgraded, after = across_a_migration(engine, database_url, "0046", "0045", indexes)
    assert after == before and set(upgraded) - set(before) == {("healcat.ix_source_pm",)}
