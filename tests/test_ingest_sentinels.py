"""'No data' values a mapping does not declare (-9999, -99, 99, 1e20, an error of 0): each was stored as a
measurement, one corrupting the shared cluster table. Each now quarantines its row, naming the column and the
value, unless the mapping declares it (then it is a missing value, as declared)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from ingest.load import ingest_release

HEADER = "id,ra,dec,pmra,pmdec,prot,e_prot,bprp0,age,pmem,cl,z,z_err,zq,logm,logsfr\n"
GOOD = "10.0,20.0,1.0,2.0,5,0.1,0.8,125,0.9,scratch-Pleiades,0.1,0.01,3,10.0,0.5"


def _write(tmp_path: Path, name: str, rows: str, body: str, release: str = "") -> Path:
    """A CSV file and its mapping under the survey 'scratch' (version ``name``)."""
    (tmp_path / f"{name}.csv").write_text(rows)
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[survey]\nname = "scratch"\n[release]\nversion = "{name}"\nfile = "{tmp_path / name}.csv"\n'
                    f'format = "csv"\n{release}\n[source]\nobject_id = "{{id}}"\nra = "ra"\ndec = "dec"\n{body}')
    return path


def _quarantine(engine, release_id: int) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT row_number, column_name, reason FROM healcat.quarantine WHERE release_id = :r ORDER BY row_number"),
            {"r": release_id})]


@pytest.fixture
def scratch_clusters(engine, scratch_release):
    """The clusters 'scratch-*' the test's releases made, removed with those releases' periods after it."""
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM healcat.rotation_period WHERE release_id IN (SELECT release_id FROM "
                             "healcat.release JOIN healcat.survey USING (survey_id) WHERE survey.name = 'scratch')"))
        conn.execute(sa.text("DELETE FROM healcat.cluster WHERE name LIKE 'scratch-%'"))


SECTIONS = ('pmra = "pmra"\npmdec = "pmdec"\nref_epoch = 2016.0\n'
            '[rotation_period]\nperiod = "prot"\nperiod_err = "e_prot"\nbp_rp_dered = "bprp0"\n'
            'cluster_age_myr = "age"\nmembership_prob = "pmem"\ncluster = "cl"\n'
            '[spec_redshift]\nz = "z"\nz_err = "z_err"\nquality = "zq"\n'
            '[stellar_mass]\ncode = "test"\nlog_mass = "logm"\nlog_sfr = "logsfr"\n')


def test_undeclared_sentinels_in_non_magnitude_columns_are_quarantined_and_leave_the_cluster_age_alone(
        engine, tmp_path, scratch_clusters):
    """The first row's age -9999 became the Pleiades' age, and every correct row after it was quarantined as
    differing from it; each other sentinel was stored as a value."""
    def row(i: int, column: str, value: str) -> str:
        cells = dict(zip(HEADER.strip().split(",")[1:], GOOD.split(",")))
        cells[column] = value
        return f"{i}," + ",".join(cells.values()) + "\n"

    bad = [("age", "-9999"), ("pmra", "-9999"), ("pmdec", "1e20"), ("e_prot", "-9999"), ("bprp0", "-9999"),
           ("z_err", "-9999"), ("zq", "-9999"), ("logsfr", "-99"), ("pmra", "25000")]
    rows = HEADER + "".join(row(i, c, v) for i, (c, v) in enumerate(bad, 1)) + row(10, "age", "125") \
        + row(11, "e_prot", "0")
    load = ingest_release(_write(tmp_path, "s01", rows, SECTIONS, release="chunk_rows = 2"), engine)
    assert [(n, c) for n, c, _ in _quarantine(engine, load.release_id)] == [(i, c) for i, (c, _) in enumerate(bad, 1)]
    reasons = [r for _, _, r in _quarantine(engine, load.release_id)]
    assert reasons[:2] == ["age -9999.0 is outside (0.0, 14000.0] [Myr]",
                           "pmra -9999 is a common 'no data' value, not a proper motion (leave the cell empty)"]
    assert reasons[6] == ("zq -9999 is a common 'no data' value, not a measurement (list it under [spec_redshift] "
                          "sentinels if it means none)")
    assert reasons[7] == "logsfr -99.0 is outside [-10.0, 5.0] [log10 Msun/yr]"
    assert reasons[8].startswith("pmra 25000 mas/yr is outside [-20000, 20000] mas/yr")
    assert (load.row_counts["rotation_period"], load.row_counts["quarantine"]) == (2, 9)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT age_myr FROM healcat.cluster WHERE name = 'scratch-Pleiades'")) == 125.0


def test_a_declared_section_sentinel_is_missing_not_quarantined(engine, tmp_path, scratch_clusters):
    rows = HEADER + f"1,{GOOD}\n".replace(",3,10.0", ",-9999,10.0")
    body = SECTIONS.replace('quality = "zq"\n', 'quality = "zq"\nsentinels = [-9999.0]\n')
    load = ingest_release(_write(tmp_path, "s02", rows.replace("scratch-Pleiades", "scratch-P2"), body), engine)
    assert load.row_counts["quarantine"] == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT quality FROM healcat.spec_redshift JOIN healcat.source "
                                   "USING (shard, source_id) WHERE release_id = :r"), {"r": load.release_id}) is None
