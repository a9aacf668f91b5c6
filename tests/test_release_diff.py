"""What a release diff sees: proper motions, numbers in attrs by value, and a joining release's rows
(on another survey's sources), and what it names as changed (migration 0058); and migrations 0045's
and 0058's downgrades give back the functions before them."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from catalog.cli import main
from catalog.releases import diff_release, show_release
from ingest.load import ingest_release
from ingest.mapping import data_dir, load_mapping
from tests import test_readme
from tests.conftest import across_a_migration

KEPLER = "kepler_mcquillan_tgas_prot"
CANDELS = data_dir() / "candels_goodss_sedfit_comparison"


def _changes(engine, release: str) -> dict[str, set[str]]:
    """change -> {object_id of the object (the previous release's, for vanished)}."""
    with engine.connect() as conn:
        table = diff_release(conn, release)
    out: dict[str, set[str]] = {"new": set(), "changed": set(), "vanished": set()}
    for row in table:
        out[str(row["change"])].add(str(row["previous_object_id"] if row["change"] == "vanished" else row["object_id"]))
    return out


def _show(engine, release: str) -> dict:
    with engine.connect() as conn:
        return show_release(conn, release)


# --- a catalogue with proper motions and numeric attrs ----------------------------------------------------------


def _kepler_rows() -> tuple[list[str], list[dict[str, str]]]:
    with (data_dir() / KEPLER / "1473873638462A.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def _write(path: Path, fields: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _kepler_mapping(folder: Path, version: str) -> Path:
    text = load_mapping(KEPLER).path.read_text().replace('name = "kepler-mcquillan"', 'name = "scratch"')
    path = folder / f"kepler-{version}.toml"
    path.write_text(text.replace('version = "2014-x-tgas"', f'version = "{version}"'))
    return path


def test_proper_motions_count_and_numbers_in_attrs_compare_by_value(engine, tmp_path, scratch_release):
    """v2: 20 stars' pmra +50 mas/yr, and one Teff written '5843.0' (the reader then types the column
    float in its chunk, so every star's Teff is stored 5863.0 where v1 stored 5863): 20 changed."""
    fields, rows = _kepler_rows()
    rows = rows[:100]
    v2 = [dict(r) for r in rows]
    for r in v2[:20]:
        r["pmra"] = repr(float(r["pmra"]) + 50)
    teff = next(i for i, r in enumerate(v2) if i >= 20 and r["Teff"].isdigit())
    v2[teff]["Teff"] += ".0"
    ingest_release(_kepler_mapping(tmp_path, "v1"), engine, file=_write(tmp_path / "v1.csv", fields, rows))
    ingest_release(_kepler_mapping(tmp_path, "v2"), engine, file=_write(tmp_path / "v2.csv", fields, v2))
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text(
            "SELECT r.version, count(*) FILTER (WHERE s.attrs->>'Teff' LIKE '%.0') FROM healcat.source s "
            "JOIN healcat.release r USING (release_id) WHERE r.name IN ('scratch/v1', 'scratch/v2') GROUP BY 1")).all())
    assert stored["v1"] == 0 and stored["v2"] > 20, \
        "precondition: v2 stores the Teff column as floats (the scale printed), v1 as integers"
    changes = _changes(engine, "scratch/v2")
    assert changes == {"new": set(), "changed": {f"KIC {r['KIC']}" for r in rows[:20]}, "vanished": set()}
    show = _show(engine, "scratch/v2")
    assert show["changes"] == {"new": 0, "changed": 20, "vanished": 0,
                               "unchanged": show["row_counts"]["source"] - 20}
    assert show["objects"] == {"own": show["row_counts"]["source"], "joined": 0}


def test_the_fingerprint_compares_attrs_numbers_by_value_only(conn, catalog):
    """5863 and 5863.0 are one value; 5863.5, a string '5863' and a nested array are not rewritten."""
    source = conn.execute(sa.text("SELECT shard, source_id FROM healcat.source ORDER BY source_id LIMIT 1")).one()
    fingerprint = sa.text("SELECT healcat.source_fingerprint(CAST(:s AS smallint), :i)")

    def with_attrs(attrs: str) -> str:
        conn.execute(sa.text("UPDATE healcat.source SET attrs = CAST(:a AS jsonb) WHERE shard = :s AND source_id = :i"),
                     {"a": attrs, "s": source.shard, "i": source.source_id})
        return conn.scalar(fingerprint, {"s": source.shard, "i": source.source_id})

    base = with_attrs('{"Teff": 5863, "w": 0.25, "x": [1]}')
    assert with_attrs('{"Teff": 5863.0, "w": 0.2500, "x": [1]}') == base
    assert with_attrs('{"Teff": 5.863e3, "w": 25e-2, "x": [1]}') == base
    assert with_attrs('{"Teff": 5863.5, "w": 0.25, "x": [1]}') != base
    assert with_attrs('{"Teff": "5863", "w": 0.25, "x": [1]}') != base
    assert with_attrs('{"Teff": 5863, "w": 0.25, "x": [2]}') != base
    conn.execute(sa.text("UPDATE healcat.source SET pmra_masyr = 1, pmdec_masyr = 2, ref_epoch_yr = 2016 "
                         "WHERE shard = :s AND source_id = :i"), {"s": source.shard, "i": source.source_id})
    moving = conn.scalar(fingerprint, {"s": source.shard, "i": source.source_id})
    assert moving != base
    conn.execute(sa.text("UPDATE healcat.source SET ref_epoch_yr = 2015.5 WHERE shard = :s AND source_id = :i"),
                 {"s": source.shard, "i": source.source_id})
    assert conn.scalar(fingerprint, {"s": source.shard, "i": source.source_id}) not in (base, moving)


def test_the_diff_names_what_each_changed_object_changed(engine, tmp_path, scratch_release, capsys):
    """v2 changes one thing (or three) of a star each, and writes one Teff '5863.0' (every Teff then
    stored as a float, equal by value): each changed star's ``fields`` names what changed and nothing
    else. For every pair of stars with the same KIC, the list is empty exactly when the fingerprints
    are equal; and no changed object of any diff in the catalog has an empty list."""
    fields, rows = _kepler_rows()
    rows = rows[:40]
    assert all(r["Teff"].isdigit() for r in rows[:10]), "precondition: integer Teffs"
    v2 = [dict(r) for r in rows]
    v2[0]["ra"] = repr(float(rows[0]["ra"]) + 0.2 / 3600)
    v2[1]["pmra"] = repr(float(rows[1]["pmra"]) + 5)
    v2[2]["ref_epoch"] = "2015.5"
    v2[3]["Teff"] = str(int(rows[3]["Teff"]) + 100)
    v2[4]["phot_g_mean_mag"] = f"{float(rows[4]['phot_g_mean_mag']) + 0.1:.3f}"
    v2[5]["source_id"] = str(int(rows[5]["source_id"]) + 1)
    v2[6]["Prot"] = f"{float(rows[6]['Prot']) + 1:.3f}"
    v2[7].update(Teff=str(int(rows[7]["Teff"]) - 50), Mass="1.5",
                 phot_g_mean_mag=f"{float(rows[7]['phot_g_mean_mag']) - 0.2:.3f}")
    v2[8]["Teff"] += ".0"
    v2[9]["KIC"] = str(int(rows[9]["KIC"]) + 100_000_000)  # a new id at the same position
    ingest_release(_kepler_mapping(tmp_path, "v1"), engine, file=_write(tmp_path / "v1.csv", fields, rows))
    ingest_release(_kepler_mapping(tmp_path, "v2"), engine, file=_write(tmp_path / "v2.csv", fields, v2))
    kic = [f"KIC {r['KIC']}" for r in v2]
    with engine.connect() as conn:
        table = diff_release(conn, "scratch/v2", fields=True)
        pairs = conn.execute(sa.text(
            "SELECT n.object_id, healcat.source_changes(n.shard, n.source_id, o.shard, o.source_id) AS parts, "
            "healcat.source_fingerprint(n.shard, n.source_id) IS DISTINCT FROM "
            "healcat.source_fingerprint(o.shard, o.source_id) AS differs "
            "FROM healcat.source n JOIN healcat.release rn USING (release_id) JOIN healcat.source o USING (object_id) "
            "JOIN healcat.release ro ON ro.release_id = o.release_id "
            "WHERE rn.name = 'scratch/v2' AND ro.name = 'scratch/v1'")).all()
        unnamed = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE coalesce(cardinality(healcat.change_fields(release_id, shard, source_id)), 0) "
            "= 0), count(*) FROM healcat.release_change WHERE change = 'changed'")).one()
        # what an astronomer types (the README's, on its SDSS release): each changed star's, and the count per part
        each, per_part = [conn.execute(sa.text(s.replace("sdss/dr14-skyserver-10k", "scratch/v2"))).all()
                          for s in test_readme._statements() if "change_fields" in s]
    assert {str(r["object_id"]): str(r["fields"]) for r in table} == {
        kic[0]: "position", kic[1]: "proper_motion", kic[2]: "ref_epoch", kic[3]: "attrs.Teff",
        kic[4]: "photometry.gaia_dr1_g", kic[5]: "source_xid.gaia_dr1", kic[6]: "rotation_period",
        kic[7]: "attrs.Mass, attrs.Teff, photometry.gaia_dr1_g", kic[9]: "object_id, source_xid.kic"}
    assert {r.object_id: ", ".join(r.fields) for r in each} == {str(r["object_id"]): str(r["fields"]) for r in table}
    assert dict(per_part) == Counter(f for r in table for f in str(r["fields"]).split(", "))
    assert set(table["change"]) == {"changed"}
    assert len(pairs) == 39 and sum(p.differs for p in pairs) == 8
    assert [p.object_id for p in pairs if bool(p.parts) != p.differs] == []
    assert unnamed[0] == 0 and unnamed[1] >= 9, "every changed object of every diff in the catalog names a change"
    assert main(["release", "diff", "scratch/v2", "--fields", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(",previous_source_id,fields")
    several = ',"attrs.Mass, attrs.Teff, photometry.gaia_dr1_g"'  # quoted: it holds commas
    assert any(line.startswith(f"changed,{kic[7]},") and line.endswith(several) for line in out)
    assert main(["release", "diff", "scratch/v2", "--fields", "--format", "votable"]) == 0
    assert 'name="fields"' in capsys.readouterr().out


# --- a joining release: stellar masses on another survey's sources ---------------------------------------------


def _lines(path: Path) -> tuple[list[str], list[str]]:
    lines = [line for line in path.read_text().splitlines(keepends=True) if line.strip()]
    return [line for line in lines if line.startswith("#")], [line for line in lines if not line.startswith("#")]


@pytest.fixture
def base_survey(engine):
    """Removes, after the test, the releases of the survey 'scratch-base' (the photometry a joining
    scratch release joins) and their sources."""
    yield
    base = ("(SELECT release_id FROM healcat.release r JOIN healcat.survey s USING (survey_id) "
            "WHERE s.name = 'scratch-base')")
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM healcat.source WHERE release_id IN {base}"))
        conn.execute(sa.text(f"DELETE FROM healcat.release WHERE release_id IN {base}"))


def _load(engine, mapping_and_file: tuple[Path, Path]):
    mapping, file = mapping_and_file
    return ingest_release(mapping, engine, file=file)


def _base(folder: Path, version: str, n: int) -> tuple[Path, Path]:
    """The CANDELS z1 photometry's first n objects under the survey 'scratch-base', their ids in the
    catalog 'scratch_goodss' (no other test's source carries them)."""
    header, rows = _lines(CANDELS / "catalogs/CANDELS_GDSS_workshop_z1.dat")
    data = folder / f"base-{version}.dat"
    data.write_text("".join(header + rows[:n]))
    text = load_mapping("candels_goodss_z1").path.read_text()
    text = text.replace('name = "candels-goodss-z1"', 'name = "scratch-base"').replace('version = "sedfit"',
                                                                                       f'version = "{version}"')
    mapping = folder / f"base-{version}.toml"
    mapping.write_text(text.replace("candels_goodss = ", "scratch_goodss = "))
    return mapping, data


def _masses(folder: Path, version: str, rows: list[list[str]]) -> tuple[Path, Path]:
    """Prospector masses (rows of the file's fields) under the survey 'scratch', joining 'scratch_goodss'."""
    header, _ = _lines(CANDELS / "code_outputs/prospector_output_z1.dat")
    data = folder / f"p-{version}.dat"
    data.write_text("".join(header) + "".join(",".join(r) + "\n" for r in rows))
    text = load_mapping("candels_prospector_z1").path.read_text()
    text = text.replace('name = "candels-sedfit-prospector-z1"', 'name = "scratch"').replace(
        'version = "goodss"', f'version = "{version}"')
    mapping = folder / f"p-{version}.toml"
    mapping.write_text(text.replace('join = "candels_goodss"', 'join = "scratch_goodss"')
                       .replace("candels_goodss = ", "scratch_goodss = "))
    return mapping, data


def test_a_joining_release_records_its_rows_new_changed_and_vanished(engine, tmp_path, scratch_release, base_survey,
                                                                      capsys):
    """p1: masses of 40 objects; p2: 10 of them gone, 10 with another mass, 5 objects more. Then the
    base survey is re-released and p3 (p2 with one mass changed) is loaded against it: its rows sit on
    the new base's sources, paired with p2's by their object_id."""
    _load(engine, _base(tmp_path, "b1", 60))
    _, masses = _lines(CANDELS / "code_outputs/prospector_output_z1.dat")
    masses = [line.strip().split(",") for line in masses[:45]]
    ids = [m[0] for m in masses]
    p2 = [list(m) for m in masses[10:45]]
    for m in p2[:10]:  # objects 10-19
        m[1] = f"{float(m[1]) + 0.5:.2f}"
    p1 = _load(engine, _masses(tmp_path, "p1", masses[:40]))
    p2_result = _load(engine, _masses(tmp_path, "p2", p2))
    assert (p1.row_counts["joined"], p1.row_counts["source"], p2_result.row_counts["joined"]) == (40, 0, 35)

    assert _changes(engine, "scratch/p2") == {"new": set(ids[40:45]), "changed": set(ids[10:20]),
                                              "vanished": set(ids[:10])}
    show = _show(engine, "scratch/p2")
    assert show["previous"] == "scratch/p1" and show["objects"] == {"own": 0, "joined": 35}
    assert show["changes"] == {"new": 5, "changed": 10, "vanished": 10, "unchanged": 20}
    assert main(["release", "show", "scratch/p2"]) == 0
    assert "new 5, changed 10, vanished 10, unchanged 20" in capsys.readouterr().out
    assert main(["release", "list", "--survey", "scratch", "--format", "csv"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[2].startswith("scratch/p2,scratch,published,2019-04-18,0,scratch/p1,5,10,10,")
    with engine.connect() as conn:
        table = diff_release(conn, "scratch/p2", "changed", fields=True)
    assert set(table["matched_by"]) == {"object_id"} and all(table["source_id"] == table["previous_source_id"])
    assert set(table["fields"]) == {"stellar_mass"}
    with engine.connect() as conn:
        assert set(diff_release(conn, "scratch/p2", "new", fields=True)["fields"]) == {""}
        assert set(diff_release(conn, "scratch/p2", "vanished", fields=True)["fields"]) == {""}

    # The base re-released: p3 joins its new sources; paired with p2's rows by their object_id.
    current = ("SELECT r.name, count(*) FROM healcat.current_stellar_mass m JOIN healcat.release r USING (release_id) "
               "WHERE r.name LIKE 'scratch/p%' GROUP BY 1")
    with engine.connect() as conn:
        assert dict(conn.execute(sa.text(current)).all()) == {"scratch/p2": 35}
    _load(engine, _base(tmp_path, "b2", 60))
    with engine.connect() as conn:  # p2's masses sit on b1's sources, superseded: no current view's (README)
        assert dict(conn.execute(sa.text(current)).all()) == {}
    p3 = [list(m) for m in p2]
    p3[20][1] = f"{float(p3[20][1]) - 0.3:.2f}"  # object 30
    _load(engine, _masses(tmp_path, "p3", p3))
    with engine.connect() as conn:
        assert dict(conn.execute(sa.text(current)).all()) == {"scratch/p3": 35}
    assert _changes(engine, "scratch/p3") == {"new": set(), "changed": {ids[30]}, "vanished": set()}
    assert _show(engine, "scratch/p3")["changes"] == {"new": 0, "changed": 1, "vanished": 0, "unchanged": 34}
    with engine.connect() as conn:
        table = diff_release(conn, "scratch/p3", fields=True)
        moved = conn.execute(sa.text(
            "SELECT n.release_id <> o.release_id FROM healcat.source n, healcat.source o "
            "WHERE n.source_id = :n AND o.source_id = :o"),
            {"n": int(table["source_id"][0]), "o": int(table["previous_source_id"][0])}).scalar()
    assert moved, "p3's row is on the new base release's source, p2's on the old one's"
    assert list(table["fields"]) == ["stellar_mass"]


def test_an_owning_release_with_per_release_rows_records_no_joined_objects(engine, tmp_path, scratch_release):
    """Kepler's rotation periods sit on its own sources: the diff of two identical releases is empty."""
    fields, rows = _kepler_rows()
    ingest_release(_kepler_mapping(tmp_path, "a"), engine, file=_write(tmp_path / "a.csv", fields, rows[:50]))
    ingest_release(_kepler_mapping(tmp_path, "b"), engine, file=_write(tmp_path / "b.csv", fields, rows[:50]))
    show = _show(engine, "scratch/b")
    assert show["row_counts"]["rotation_period"] > 0
    assert show["objects"] == {"own": show["row_counts"]["source"], "joined": 0}
    assert show["changes"] == {"new": 0, "changed": 0, "vanished": 0, "unchanged": show["row_counts"]["source"]}


# --- migration 0045 -----------------------------------------------------------------------------------------------

def test_the_downgrade_restores_the_release_functions(engine, database_url):
    """0045's downgrade leaves every healcat function (definition, comment, ACL, settings) as 0044 made it."""
    before, upgraded, after = across_a_migration(engine, database_url, "0045", "0044")
    changed = {a[0] for a, b in zip(before, upgraded) if a != b}
    assert len(upgraded) == len(before) and changed == {
        "healcat.per_release_fingerprint(smallint,bigint,integer)", "healcat.source_fingerprint(smallint,bigint)"}
    assert all(row[4] == "{\"search_path=pg_catalog, healcat\"}" for row in upgraded if row[0] in changed)
    assert after == before


def test_0058s_downgrade_drops_the_functions_it_added(engine, database_url):
    """0058 adds the functions that name what changed (search_path pinned, the reader may call them), and
    changes no other; its downgrade leaves every healcat function as 0057 made it."""
    before, upgraded, after = across_a_migration(engine, database_url, "0058", "0057")
    added = {row[0] for row in upgraded} - {row[0] for row in before}
    assert added == {"healcat.canonical_attrs(jsonb)", "healcat.change_fields(integer,smallint,bigint)",
                     "healcat.per_release_changes(smallint,bigint,integer,smallint,bigint,integer)",
                     "healcat.per_release_parts(smallint,bigint,integer)",
                     "healcat.source_changes(smallint,bigint,smallint,bigint)", "healcat.source_parts(smallint,bigint)"}
    assert [row for row in upgraded if row[0] not in added] == before
    for row in upgraded:
        if row[0] in added:
            assert row[4] == "{\"search_path=pg_catalog, healcat\"}" and "healcat_reader=X" in row[3], row
    assert after == before


def test_a_joining_release_back_filled_later_becomes_the_previous_one(engine, tmp_path, scratch_release, base_survey):
    """An older joining release loaded after a newer one: superseded at once, and the newer one's diff
    is recomputed against it (its rows on the same base sources)."""
    _load(engine, _base(tmp_path, "b1", 30))
    _, masses = _lines(CANDELS / "code_outputs/prospector_output_z1.dat")
    masses = [line.strip().split(",") for line in masses[:30]]
    ids = [m[0] for m in masses]
    newer = [list(m) for m in masses[5:30]]
    newer[0][1] = f"{float(newer[0][1]) + 0.5:.2f}"  # object 5
    _load(engine, _masses(tmp_path, "new", newer))
    assert _show(engine, "scratch/new")["previous"] == ""
    mapping, data = _masses(tmp_path, "old", masses[:20])
    mapping.write_text(mapping.read_text().replace("date = 2019-04-18", "date = 2010-01-01"))
    _load(engine, (mapping, data))
    old, new = _show(engine, "scratch/old"), _show(engine, "scratch/new")
    assert (old["status"], old["previous"], new["status"], new["previous"]) == ("superseded", "", "published",
                                                                                "scratch/old")
    assert _changes(engine, "scratch/new") == {"new": set(ids[20:30]), "changed": {ids[5]}, "vanished": set(ids[:5])}
    assert new["changes"] == {"new": 10, "changed": 1, "vanished": 5, "unchanged": 14}


# --- the same catalogue in another format ------------------------------------------------------------------------

PICZL_RUN = data_dir() / "piczl_ls10_demo/run_demo_catalog.fits"


@pytest.mark.parametrize("fmt", ["fits", "votable", "parquet", "hdf5"])
def test_the_same_float32_catalogue_in_another_format_changes_nothing(engine, tmp_path, scratch_release, fmt):
    """The PICZL run catalogue's float32 fluxes, inverse variances and transmissions (FITS 'E'), with its
    positions, a magnitude band and a redshift as float32 too, released as CSV (each float32 the shortest
    decimal that gives it back, as a survey's text writes it) and then as ``fmt``. The second release changed
    every object: positions and redshifts were the float64 a float32 widens to (10.123 stored as
    10.12300014...), and the fluxes derived from the file's numbers differed in their last float4 bits (the
    widened 12.3456 against the decimal). Now a float32 column's numbers are the decimals a text format writes:
    no object changed, every stored number equal."""
    from astropy.table import Table

    piczl = Table.read(PICZL_RUN, hdu=1)
    table = Table({"id": [str(i).strip() for i in piczl["FULLID"]],
                   "ra": piczl["RA"].astype(np.float32), "dec": piczl["DEC"].astype(np.float32),
                   "z": np.linspace(0.05, 1.2, len(piczl)).astype(np.float32)})
    for b in ("g", "r", "w1"):
        for col in (f"dered_flux_{b}", f"flux_ivar_{b}", f"mw_transmission_{b}"):
            table[col] = piczl[col].astype(np.float32)  # native order (the FITS column is big-endian)
    assert table["dered_flux_g"].dtype == np.float32 and table["flux_ivar_g"].dtype == np.float32
    flux = np.clip(table["dered_flux_r"], 1e-3, None)
    table["mag_r"] = (22.5 - 2.5 * np.log10(flux)).astype(np.float32)
    table["mag_r_err"] = (2.5 / np.log(10) / (flux * np.sqrt(np.clip(table["flux_ivar_r"], 1e-6, None)))
                          ).astype(np.float32)
    bands = "\n".join(f'{name} = {{ flux = "dered_flux_{b}", flux_ivar = "flux_ivar_{b}", '
                      f'transmission = "mw_transmission_{b}", unit = "nanomaggy" }}'
                      for b, name in (("g", "ls10_g_dered"), ("r", "ls10_r_dered"), ("w1", "wise_w1_dered")))
    # as a survey's text writes a float32: the decimal that gives it back (astropy writes the float64 it widens to)
    as_text = {c: (lambda v: str(np.float32(v))) for c in table.colnames if table[c].dtype == np.float32}
    releases = []
    for version, day, form in (("csv", 1, "csv"), (fmt, 2, fmt)):
        path = tmp_path / f"piczl32.{ {'hdf5': 'h5', 'votable': 'xml'}.get(form, form) }"
        table.write(path, **{"csv": {"format": "ascii.csv", "formats": as_text}, "votable": {"format": "votable"},
                             "hdf5": {"path": "data", "serialize_meta": False}}.get(form, {}))
        mapping = tmp_path / f"piczl32-{version}.toml"
        mapping.write_text(f'[survey]\nname = "scratch"\n[release]\nversion = "f32-{version}"\ndate = 2026-01-0{day}\n'
                           f'file = "{path}"\nformat = "{form}"\n[source]\nobject_id = "{{id}}"\nra = "ra"\n'
                           f'dec = "dec"\n[photometry]\nsystem = "AB"\n[photometry.bands]\n{bands}\n'
                           'sdss_r = { mag = "mag_r", mag_err = "mag_r_err" }\n[spec_redshift]\nz = "z"\n')
        releases.append(ingest_release(mapping, engine).release_id)

    show = _show(engine, f"scratch/f32-{fmt}")
    assert show["previous"] == "scratch/f32-csv"
    assert show["changes"] == {"new": 0, "changed": 0, "vanished": 0, "unchanged": len(piczl)}

    stored = ("SELECT s.object_id, s.ra, s.dec, s.hpx, z.z, p.band, p.mag, p.mag_err, p.flux_ujy, p.flux_err_ujy "
              "FROM healcat.source s JOIN healcat.photometry p USING (source_id, shard) "
              "JOIN healcat.spec_redshift z USING (source_id, shard) WHERE s.release_id = :r")
    with engine.connect() as conn:
        csv_rows, fmt_rows = ({tuple(row[:1]) + tuple(row[5:6]): tuple(row) for row in
                               conn.execute(sa.text(stored), {"r": r})} for r in releases)
    assert len(csv_rows) == 4 * len(piczl) and fmt_rows == csv_rows
    first = csv_rows[min(csv_rows)]
    assert (first[1], first[2], first[4]) == tuple(float(str(v)) for v in
                                                   table[table["id"] == first[0]][0][["ra", "dec", "z"]])
