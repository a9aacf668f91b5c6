"""Catalogs built by older code, upgraded by the current migrations: the data they hold comes out as
the current code would have written it (migration 0049), a downgrade says what it drops, and a
round trip below migration 0036 keeps which model versions are current.

Each test builds its catalog in a scratch database migrated to an old revision, writes rows there
as the code of that time wrote them (SQL, for the columns of that revision), and migrates across."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa
from alembic import command

from catalog import db
from tests.conftest import scratch_database


def downgrade(url: sa.URL, revision: str) -> None:
    command.downgrade(db.alembic_config(url), revision)


def add_release(conn, survey: str, version: str, mapping: dict, row_counts: dict, status: str = "published",
                previous: int | None = None) -> int:
    conn.execute(sa.text("INSERT INTO healcat.survey (name) VALUES (:s) ON CONFLICT DO NOTHING"), {"s": survey})
    return conn.scalar(sa.text("""
        INSERT INTO healcat.release (survey_id, name, version, source_uri, checksum, mapping, row_counts, status,
                                     previous_release_id)
        SELECT survey_id, :name, :version, 'test', md5(:name), CAST(:mapping AS jsonb), CAST(:counts AS jsonb),
               :status, :previous
        FROM healcat.survey WHERE name = :survey RETURNING release_id"""),
        {"survey": survey, "name": f"{survey}/{version}", "version": version, "mapping": json.dumps(mapping),
         "counts": json.dumps(row_counts), "status": status, "previous": previous})


def add_source(conn, release_id: int, object_id: str, attrs: dict | None = None, pm: tuple | None = None) -> int:
    """A source without a position (shard -1), with ``attrs`` and proper motions ``pm`` (pmra, pmdec, epoch)."""
    pm = pm or (None, None, None)
    return conn.scalar(sa.text("""
        INSERT INTO healcat.source (shard, release_id, object_id, attrs, pmra_masyr, pmdec_masyr, ref_epoch_yr)
        VALUES (-1, :r, :o, CAST(:a AS jsonb), :pmra, :pmdec, :epoch) RETURNING source_id"""),
        {"r": release_id, "o": object_id, "a": json.dumps(attrs or {}), "pmra": pm[0], "pmdec": pm[1],
         "epoch": pm[2]})


# --- 1: diffs stored before migration 0045 are computed again ---------------------------------------


def test_a_diff_stored_before_0045_is_computed_again_with_proper_motions(engine, database_url):
    with scratch_database(engine, database_url, "healcat_upgrade_diff") as (url, other):
        db.migrate(url, "0044")
        with other.begin() as conn:  # two releases, the second revising 20 of 30 objects' proper motions only
            old = add_release(conn, "pm", "v1", {}, {"source": 30}, status="superseded")
            new = add_release(conn, "pm", "v2", {}, {"source": 30}, previous=old)
            for i in range(30):
                add_source(conn, old, f"star{i}", {"g": 12.5}, (10.0 + i, -5.0, 2016.0))
                add_source(conn, new, f"star{i}", {"g": 12.5}, (10.0 + i + (0.5 if i < 20 else 0), -5.0, 2016.0))
            # What publishing recorded at 0044 (releases_v2.sql's fingerprints: proper motions unseen): nothing
            # changed, no object new or vanished, so release_change holds no row of the new release.
            assert conn.scalar(sa.text(
                "SELECT count(*) FROM healcat.source AS n JOIN healcat.source AS o USING (object_id) "
                "WHERE n.release_id = :n AND o.release_id = :o AND healcat.source_fingerprint(n.shard, n.source_id) "
                "IS DISTINCT FROM healcat.source_fingerprint(o.shard, o.source_id)"), {"n": new, "o": old}) == 0
        db.migrate(url)
        with other.connect() as conn:
            changes = dict(conn.execute(sa.text(
                "SELECT change, count(*) FROM healcat.release_change WHERE release_id = :n GROUP BY 1"),
                {"n": new}).all())
            assert changes == {"changed": 20}
            assert conn.scalar(sa.text("SELECT count(*) FROM healcat.release_change WHERE release_id = :o"),
                               {"o": old}) == 0  # a survey's first release has none
            from catalog.releases import list_releases

            listed = {r["release"]: r["n_changed"] for r in list_releases(conn, "pm")}
            assert listed == {"pm/v1": 0, "pm/v2": 20}


# --- 2b: rotation periods loaded before 0035 get their release's (the cluster's) age -----------------


ROTATION_MAPPING = {"release": {"format": "csv"}, "rotation_period": {"period": "P", "cluster": "cluster",
                                                                       "cluster_age_myr": "age"}}


def test_rotation_periods_loaded_before_0035_get_the_age_their_release_gave(engine, database_url):
    with scratch_database(engine, database_url, "healcat_upgrade_ages") as (url, other):
        db.migrate(url, "0034")
        with other.begin() as conn:
            base = add_release(conn, "stars", "v1", {}, {"source": 3})
            sources = [add_source(conn, base, f"s{i}") for i in range(3)]
            aged = add_release(conn, "prot", "v1", ROTATION_MAPPING, {"rotation_period": 2})
            ageless = add_release(conn, "prot2", "v1", {"rotation_period": {"period": "P", "cluster": "c"}},
                                  {"rotation_period": 1})
            cluster = conn.scalar(sa.text(
                "INSERT INTO healcat.cluster (name, age_myr) VALUES ('Praesepe', 670.0) RETURNING cluster_id"))
            for release, sid in ((aged, sources[0]), (aged, sources[1]), (ageless, sources[2])):
                conn.execute(sa.text(
                    "INSERT INTO healcat.rotation_period (shard, source_id, release_id, period_day, cluster_id) "
                    "VALUES (-1, :s, :r, 10.5, :c)"), {"s": sid, "r": release, "c": cluster})
        db.migrate(url, "0048")
        with other.begin() as conn:  # loaded since 0035: its file gave one star's age and not the other's
            late = add_release(conn, "prot", "v0", ROTATION_MAPPING, {"rotation_period": 2}, status="superseded")
            for sid, age in ((sources[0], 670.0), (sources[1], None)):
                conn.execute(sa.text(
                    "INSERT INTO healcat.rotation_period (shard, source_id, release_id, period_day, cluster_id, "
                    "cluster_age_myr) VALUES (-1, :s, :r, 10.5, :c, :age)"),
                    {"s": sid, "r": late, "c": cluster, "age": age})
        db.migrate(url)
        with other.begin() as conn:
            ages = dict(conn.execute(sa.text(
                "SELECT source_id, cluster_age_myr FROM healcat.rotation_period WHERE release_id <> :late ORDER BY 1"),
                {"late": late}).all())
            assert dict(conn.execute(sa.text(
                "SELECT source_id, cluster_age_myr FROM healcat.rotation_period WHERE release_id = :late"),
                {"late": late}).all()) == {sources[0]: 670.0, sources[1]: None}, "what the file gave, as it was"
            # the release that maps an age: the cluster's (the one its rows agreed with); the other: NULL,
            # as the current code writes for a mapping without cluster_age_myr
            assert ages == {sources[0]: 670.0, sources[1]: 670.0, sources[2]: None}
            # The same rows in a later release, as the current code writes them: the same fingerprint.
            again = add_release(conn, "prot", "v2", ROTATION_MAPPING, {"rotation_period": 2}, status="superseded")
            conn.execute(sa.text(
                "INSERT INTO healcat.rotation_period (shard, source_id, release_id, period_day, cluster_id, "
                "cluster_age_myr) SELECT shard, source_id, :again, period_day, cluster_id, 670.0 "
                "FROM healcat.rotation_period WHERE release_id = :aged"), {"again": again, "aged": aged})
            same = conn.execute(sa.text(
                "SELECT healcat.per_release_fingerprint(-1::smallint, s, :aged) "
                "= healcat.per_release_fingerprint(-1::smallint, s, :again) FROM unnest(CAST(:s AS bigint[])) AS s"),
                {"aged": aged, "again": again, "s": sources[:2]}).scalars().all()
            assert same == [True, True]


# --- 2c: ivar units old code wrote as '(FLUX)**-2' ---------------------------------------------------


def test_ivar_units_written_before_ebe3f1b_parse_as_astropy_units(engine, database_url):
    import astropy.units as u

    flux = "1e-17 erg / (s cm2 Angstrom)"
    ppxf = "1e-19 erg / (s cm2 Angstrom)"
    with scratch_database(engine, database_url, "healcat_upgrade_units") as (url, other):
        db.migrate(url, "0048")
        with other.begin() as conn:
            release = add_release(conn, "spectra", "v1", {}, {"spectrum": 3, "source": 3})
            for name, unit in (("a", flux), ("b", ppxf), ("c", "bogus-units")):
                sid = add_source(conn, release, name)
                conn.execute(sa.text(
                    "INSERT INTO healcat.spectrum (shard, source_id, spectrum_name, release_id, wavelength, flux, "
                    "wavelength_unit, flux_unit, ivar_unit) VALUES (-1, :s, :n, :r, '{4000, 4001}', '{1, 2}', "
                    "'Angstrom', :f, :i)"), {"s": sid, "n": name, "r": release, "f": unit, "i": f"({unit})**-2"})
        db.migrate(url)
        with other.connect() as conn:
            units = dict(conn.execute(sa.text("SELECT spectrum_name, ivar_unit FROM healcat.spectrum")).all())
    assert units == {"a": (u.Unit(flux) ** -2).to_string(), "b": (u.Unit(ppxf) ** -2).to_string(),
                     "c": "(bogus-units)**-2"}  # a flux unit astropy cannot parse: left as it was
    assert u.Unit(units["a"]) == u.Unit(flux) ** -2


# --- 2a: numbers a text column held as strings (before 52174c7) --------------------------------------


def test_the_frozen_rules_are_the_current_codes():
    """Migrations 0049 and 0059 carry their own copies of ingest/cells.py's rule for attrs (a migration must
    not change with the code): 0049's on a text cell of a numeric attr, then 0059's, give what ingest stores
    now, the same value of the same type, for every kind of cell. Should ingest's rule change later, this
    fails: compare the migrations with a copy of the old rule here then, and give the data loaded before
    the change a migration of its own."""
    import importlib

    from ingest.cells import attr_value

    numbers = importlib.import_module("migrations.versions.0049_upgrade_old_data").number_in_text
    alike = importlib.import_module("migrations.versions.0059_attrs_alike").stored_attr
    for text in ("16.62", "-19.20", "30", "30.0", "1.0e1", "+5", "0.5", " 7 ", "1e999", "12345678901234567890",
                 "9007199254740993.0", ">25.1", "-", "007", "1_000", "NaN", "inf", "-Infinity", "\u0131nf", "", "  ",
                 "SN 2018abc", " b ", "3.", "\xa016.62", "\x1c7"):
        for numeric in (True, False):
            now = attr_value(text, numeric)
            # stored before 0049, or after it (numbers already numbers, bar padding 0049's SQL did not select)
            for frozen in [alike(text, numeric)] + ([alike(numbers(text), numeric)] if numeric else []):
                assert frozen == now and type(frozen) is type(now), (text, numeric, frozen, now)


ZTF_MAPPING = {"release": {"version": "snia"}, "catalog": {"format": "ascii.csv", "key": "ZTFID"},
               "source": {"object_id": "{key}", "attrs": ["IAUID", "peakmag", "peakabs", "duration", "rise", "fade"]},
               "xid": {"tns": "IAUID"}}


def test_attrs_a_text_column_held_as_strings_become_numbers_as_the_current_code_stores_them(engine, database_url):
    with scratch_database(engine, database_url, "healcat_upgrade_attrs") as (url, other):
        db.migrate(url, "0048")
        with other.begin() as conn:
            ztf = add_release(conn, "ztf-bts", "snia", ZTF_MAPPING, {"source": 3})
            rows = {"ZTF18a": {"IAUID": "2018123", "peakmag": 18.3, "peakabs": "-19.20", "duration": ">25.1",
                               "rise": "12.5", "fade": "16.62"},
                    "ZTF18b": {"IAUID": "SN 2018b", "peakmag": 18.0, "peakabs": "-", "duration": "30",
                               "rise": "1.0e1", "fade": "007"},
                    "ZTF18c": {"IAUID": None, "peakmag": 17.1, "peakabs": -18.5, "duration": 22.0, "rise": 8,
                               "fade": 14.0}}
            for o, a in rows.items():
                add_source(conn, ztf, o, a)
            # a binary format's text column too (ingest reads any attr column a reader gives as text so)
            binary = add_release(conn, "bin", "v1", {"release": {"format": "hdf5"}, "source": {"object_id": "{id}",
                                                                                               "attrs": ["x"]}},
                                 {"source": 1})
            add_source(conn, binary, "1", {"x": "16.62"})
            # the object_id template's field is read as text: it stays text
            plain = add_release(conn, "plain", "v1", {"release": {"format": "csv"},
                                                      "source": {"object_id": "{id}", "attrs": ["id", "y"]}},
                                {"source": 1})
            add_source(conn, plain, "42", {"id": "42", "y": "42"})
        db.migrate(url)
        with other.connect() as conn:
            stored = dict(conn.execute(sa.text("SELECT object_id, attrs FROM healcat.source")).all())
            kinds = dict(conn.execute(sa.text(
                "SELECT object_id, jsonb_typeof(attrs->'fade') FROM healcat.source WHERE release_id = :r"),
                {"r": ztf}).all())
    assert stored["ZTF18a"] == {"IAUID": "2018123", "peakmag": 18.3, "peakabs": -19.2, "duration": ">25.1",
                                "rise": 12.5, "fade": 16.62}  # IAUID: an [xid] column, read as text
    assert stored["ZTF18b"] == {"IAUID": "SN 2018b", "peakmag": 18.0, "peakabs": "-", "duration": 30, "rise": 10,
                                "fade": "007"}
    assert stored["ZTF18c"] == rows["ZTF18c"]
    assert kinds == {"ZTF18a": "number", "ZTF18b": "string", "ZTF18c": "number"}
    assert stored["1"] == {"x": 16.62} and stored["42"] == {"id": "42", "y": 42}


def test_attrs_stored_before_0059_are_stored_as_every_format_now_stores_them(engine, database_url):
    mapping = {"release": {"format": "fits"}, "source": {"object_id": "{id}", "attrs": ["name", "note", "x", "IAUID"]},
               "xid": {"tns": "IAUID"}}
    with scratch_database(engine, database_url, "healcat_upgrade_alike") as (url, other):
        db.migrate(url, "0058")
        with other.begin() as conn:
            old = add_release(conn, "alike", "v1", mapping, {"source": 3}, status="superseded")
            new = add_release(conn, "alike", "v2", {**mapping, "release": {"format": "hdf5"}}, {"source": 3},
                              previous=old)
            # the same two objects, as FITS stored them at 0058 and as CSV did
            add_source(conn, old, "1", {"name": "  b ", "note": "", "x": 1.5, "IAUID": "NaN"})
            add_source(conn, old, "2", {"name": "c", "note": "\u3000", "x": None, "IAUID": "SN 1"})
            add_source(conn, new, "1", {"name": "b", "note": None, "x": 1.5, "IAUID": "NaN"})
            add_source(conn, new, "2", {"name": "c", "note": None, "x": "inf", "IAUID": "SN 1"})
            # what HDF5 stored at 0058 (bytes were left text), and a padding 0049's SQL did not select
            add_source(conn, new, "3", {"name": "d", "note": None, "x": "16.62", "IAUID": "SN 2"})
            add_source(conn, old, "3", {"name": "d", "note": None, "x": "\xa016.62", "IAUID": "SN 2"})
        db.migrate(url)
        with other.connect() as conn:
            stored = {(r, o): a for r, o, a in conn.execute(sa.text(
                "SELECT release_id, object_id, attrs FROM healcat.source")).all()}
            changes = conn.execute(sa.text("SELECT count(*) FROM healcat.release_change WHERE release_id = :n"),
                                   {"n": new}).scalar()
    both = {"1": {"name": "b", "note": None, "x": 1.5, "IAUID": "NaN"},  # an [xid] column is text: 'NaN' a name
            "2": {"name": "c", "note": None, "x": None, "IAUID": "SN 1"},
            "3": {"name": "d", "note": None, "x": 16.62, "IAUID": "SN 2"}}
    assert stored == {(r, o): a for r in (old, new) for o, a in both.items()}
    assert changes == 0  # the diff computed again: the formats no longer make objects 'changed'


# --- 3: a round trip below 0036 keeps which version is current ----------------------------------------


def add_model(conn, name: str, version: str, created: str, promoted: str | None) -> int:
    return conn.scalar(sa.text("""
        INSERT INTO healcat.model (name, version, task, framework, weights_path, weights_sha256, training_set,
                                   created_at, promoted_at)
        VALUES (:n, :v, 'photoz', 'torch', 'w', 'sha', 'q', CAST(:c AS timestamptz), CAST(:p AS timestamptz))
        RETURNING model_id"""), {"n": name, "v": version, "c": created, "p": promoted})


def test_a_round_trip_below_0036_keeps_the_current_versions(engine, database_url, caplog):
    with scratch_database(engine, database_url, "healcat_upgrade_promotion") as (url, other):
        db.migrate(url, "0035")
        with other.begin() as conn:  # versions registered before 0036: each current once registered
            conn.execute(sa.text(
                "INSERT INTO healcat.model (name, version, task, framework, weights_path, weights_sha256, "
                "training_set, created_at) VALUES ('c', '1', 'photoz', 't', 'w', 's', 'q', '2026-01-01'), "
                "('c', '2', 'photoz', 't', 'w', 's', 'q', '2026-02-01')"))
        db.migrate(url)
        with other.begin() as conn:
            # a first upgrade through 0036 promotes them as of their creation, as it did
            assert conn.execute(sa.text(
                "SELECT version, promoted_at = created_at FROM healcat.model ORDER BY 1")).all() == [
                ("1", True), ("2", True)]
            add_model(conn, "a", "1", "2026-01-01", "2026-01-01")
            add_model(conn, "a", "2", "2026-02-01", None)  # a candidate, worse than 1: rejected
            add_model(conn, "b", "1", "2026-01-01", "2026-03-01")  # promoted again after 2
            add_model(conn, "b", "2", "2026-02-01", "2026-02-01")
            before = conn.execute(sa.text("SELECT name, version FROM healcat.current_model ORDER BY 1")).all()
            promoted = conn.execute(sa.text("SELECT name, version, promoted_at FROM healcat.model ORDER BY 1, 2")).all()
        assert before == [("a", "1"), ("b", "1"), ("c", "2")]
        with caplog.at_level(logging.WARNING):
            downgrade(url, "0035")
        said = [r.getMessage() for r in caplog.records if "0036" in r.getMessage()]
        assert any("model a's current version becomes 2" in m and "was 1" in m for m in said), said
        assert any("model b's current version becomes 2" in m for m in said), said
        assert not any("model c's" in m for m in said)
        db.migrate(url)
        with other.connect() as conn:
            assert conn.execute(sa.text("SELECT name, version FROM healcat.current_model ORDER BY 1")).all() == before
            assert conn.execute(sa.text(
                "SELECT name, version, promoted_at FROM healcat.model ORDER BY 1, 2")).all() == promoted
            assert conn.scalar(sa.text("SELECT to_regclass('healcat.model_promotion_0036')")) is None


# --- 4 and 7: downgrades say what they drop, and what stops them ---------------------------------------


def test_downgrades_that_drop_values_name_them_and_count_their_rows(engine, database_url, caplog):
    with scratch_database(engine, database_url, "healcat_upgrade_drops") as (url, other):
        db.migrate(url)
        with other.begin() as conn:
            release = add_release(conn, "pm", "v1", {}, {"source": 3})
            sources = [add_source(conn, release, f"s{i}", pm=(1.0, 2.0, 2016.0) if i < 2 else None)
                       for i in range(3)]
            parent = conn.scalar(sa.text("INSERT INTO healcat.cluster (name) VALUES ('Sco-Cen') RETURNING cluster_id"))
            child = conn.scalar(sa.text("INSERT INTO healcat.cluster (name, age_myr, parent_id) "
                                        "VALUES ('Upper Sco', 10.0, :p) RETURNING cluster_id"), {"p": parent})
            conn.execute(sa.text("INSERT INTO healcat.rotation_period (shard, source_id, release_id, period_day, "
                                 "cluster_id, cluster_age_myr) VALUES (-1, :s, :r, 3.0, :c, 10.0)"),
                         {"s": sources[0], "r": release, "c": child})
            model = add_model(conn, "gyro", "1", "2026-01-01", "2026-01-01")
            run = conn.scalar(sa.text("INSERT INTO healcat.inference_run (model_id, release_id, device, inputs, "
                                      "finished_at) VALUES (:m, :r, 'cpu', '{}', now()) RETURNING run_id"),
                              {"m": model, "r": release})
            for sid in sources[:2]:
                conn.execute(sa.text("INSERT INTO healcat.prediction (shard, source_id, model_id, run_id, value, "
                                     "value_p16, value_p84) VALUES (-1, :s, :m, :r, 8.0, 7.9, 8.1)"),
                             {"s": sid, "m": model, "r": run})
            conn.execute(sa.text("INSERT INTO healcat.cluster_age (run_id, cluster_id, n_members, log_age_yr, "
                                 "log_age_p16_yr, log_age_p84_yr) VALUES (:r, :c, 1, 7.0, 6.9, 7.1)"),
                         {"r": run, "c": child})
        with caplog.at_level(logging.WARNING):
            downgrade(url, "0010")
    said = "\n".join(r.getMessage() for r in caplog.records)
    for expected in ("below 0036 drops healcat.inference_run (inputs): 1 row ",
                     "below 0035 drops healcat.rotation_period (cluster_age_myr): 1 row ",
                     "below 0028 drops healcat.prediction (value_p16, value_p84): 2 rows ",
                     "below 0028 drops the table healcat.cluster_age: 1 row ",
                     "below 0013 drops healcat.cluster (parent_id): 1 row ",
                     "below 0011 drops healcat.source (pmra_masyr, pmdec_masyr, ref_epoch_yr): 2 rows "):
        assert expected in said, (expected, said)
    assert "--release-version" in said and "healcat infer" in said


def test_a_downgrade_below_0008_with_index_jobs_says_what_to_do(engine, database_url):
    with scratch_database(engine, database_url, "healcat_upgrade_jobs") as (url, other):
        db.migrate(url, "0008")
        with other.begin() as conn:
            conn.execute(sa.text("INSERT INTO healcat.job (kind, key, status) VALUES ('index', 'index:1', 'done'), "
                                 "('index', 'index:2', 'queued'), ('ingest', 'ingest:x', 'done')"))
        with pytest.raises(RuntimeError, match=r"2 job\(s\) of kind 'index' \(1 queued or running\).*"
                                               r"DELETE FROM healcat.job WHERE kind = 'index'"):
            downgrade(url, "0005")
        with other.connect() as conn:
            assert db.current_revision(conn) == "0008"  # nothing changed
        with other.begin() as conn:
            conn.execute(sa.text("DELETE FROM healcat.job WHERE kind = 'index'"))
        downgrade(url, "0005")
