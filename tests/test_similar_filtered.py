"""Filtered similarity search: k rows under any filter, the same answer as brute force, the plan by selectivity.

The photo-z model's 16-d embeddings of the SDSS galaxies (the session catalog) are the data; the
reference answers are numpy brute force over the embeddings, and the filters are checked
independently (astropy separations for cones, the photometry rows for magnitude cuts).
"""

from __future__ import annotations

import re
import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord

from catalog.cli import main
from catalog.errors import QueryError
from catalog.models import Label, Model, Photometry, Prediction, Source, SpecRedshift
import catalog as catalog_api
from catalog.search import Cone, similar
from ingest.tasks.object_class import ObjectClass
from ingest.tasks.photoz import Photoz
from tests.conftest import GAIA_RELEASE, SDSS_RELEASE, across_a_migration

PHOTOZ_MODEL = Photoz.model_name


@pytest.fixture(scope="module")
def space(engine, catalog) -> dict:
    """Every embedding of the model with the source's position, r magnitude [AB] and spec-z."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT e.source_id, e.vec, s.ra, s.dec, p.mag AS r_ab, z.z "
            "FROM healcat.embedding e JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.photometry p ON p.shard = s.shard AND p.source_id = s.source_id AND p.band = 'sdss_r' "
            "LEFT JOIN healcat.spec_redshift z ON z.shard = s.shard AND z.source_id = s.source_id "
            "WHERE e.model_id = :m ORDER BY e.source_id"), {"m": catalog["model"].model_id}).all()
    vecs = np.array([r.vec.to_numpy() for r in rows], dtype=np.float64)
    return {
        "id": np.array([r.source_id for r in rows]),
        "unit": vecs / np.linalg.norm(vecs, axis=1, keepdims=True),
        "coord": SkyCoord([r.ra for r in rows] * u.deg, [r.dec for r in rows] * u.deg),
        "r_ab": np.array([r.r_ab for r in rows]),
        "z": np.array([r.z if r.z is not None else np.nan for r in rows]),
    }


def brute_force(space, i: int, passes: np.ndarray, k: int) -> list[int]:
    """The k nearest (cosine) to embedding i among those passing, itself excluded."""
    d = 1 - space["unit"] @ space["unit"][i]
    d[~passes] = np.inf
    d[i] = np.inf
    order = np.argsort(d, kind="stable")[:k]
    return [int(space["id"][j]) for j in order if np.isfinite(d[j])]


def plan(engine, **kwargs) -> sa.Row:
    args = ", ".join(f"{name} => :{name}" for name in kwargs)
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT * FROM healcat.similar_plan(:m, {args})"),
                            {"m": PHOTOZ_MODEL, **kwargs}).one()


def test_a_one_percent_magnitude_cut_gives_k_rows_exactly_as_brute_force(engine, space):
    r_max = float(np.quantile(space["r_ab"], 0.01))
    passes = space["r_ab"] < r_max
    assert 20 <= passes.sum() <= 0.012 * len(passes)
    rng = np.random.default_rng(3)
    for i in rng.choice(len(space["id"]), 5, replace=False):
        got = similar(int(space["id"][i]), model=PHOTOZ_MODEL, k=10,
                      where=[Photometry.band == "sdss_r", Photometry.mag < r_max])
        assert list(got["source_id"]) == brute_force(space, i, passes, 10)
        assert np.all(np.diff(got["distance"]) >= 0)
    ids = list(space["id"][passes])
    assert plan(engine, k=10, candidates=ids).plan == "exact"


def test_sql_candidates_subquery_gives_the_python_answer(engine, space):
    sid = int(space["id"][0])
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT source_id FROM healcat.similar_sources(:s, :m, 10, candidates => ARRAY("
            "  SELECT source_id FROM healcat.spec_redshift WHERE z BETWEEN :lo AND :hi))"),
            {"s": sid, "m": PHOTOZ_MODEL, "lo": 0.1, "hi": 0.12}).scalars().all()
    got = similar(sid, model=PHOTOZ_MODEL, k=10, where=SpecRedshift.z.between(0.1, 0.12))
    assert rows == list(got["source_id"]) == brute_force(space, 0, (space["z"] >= 0.1) & (space["z"] <= 0.12), 10)


def test_a_cone_filter_keeps_only_sources_in_the_cone(engine, space):
    centre = space["coord"][100]
    sep = space["coord"].separation(centre).deg
    radius_deg = float(np.sort(sep)[60])  # about 60 embedded galaxies within the cone
    inside = sep < radius_deg - 1e-9
    cone = Cone.from_arcsec(centre.ra.deg, centre.dec.deg, radius_deg * 3600)
    got = similar(int(space["id"][100]), model=PHOTOZ_MODEL, k=25, where=cone)
    assert list(got["source_id"]) == brute_force(space, 100, inside, 25)
    got_coords = SkyCoord(got["ra"], got["dec"])
    assert np.all(got_coords.separation(centre).deg <= radius_deg)


def test_filter_with_fewer_than_k_candidates_returns_them_all(engine, space):
    passes = space["r_ab"] < float(np.sort(space["r_ab"])[4])  # the four brightest
    got = similar(vector=space["unit"][0], model=PHOTOZ_MODEL, k=10,
                  where=[Photometry.band == "sdss_r", Photometry.mag < float(np.sort(space["r_ab"])[4])])
    assert sorted(got["source_id"]) == sorted(space["id"][passes].tolist()) and len(got) == 4


def test_release_filter(engine, space):
    # a release the model has not run on (photo-z in Gaia): an error saying so, not an empty answer
    with pytest.raises(QueryError, match=rf"version \S+ has no finished run on release {GAIA_RELEASE} "
                                         rf"\(it has on [^)]*{SDSS_RELEASE}[^)]*\), so none of its embeddings"):
        similar(int(space["id"][0]), model=PHOTOZ_MODEL, k=5, release=GAIA_RELEASE)
    in_sdss = similar(int(space["id"][0]), model=PHOTOZ_MODEL, k=5, release=SDSS_RELEASE)
    assert list(in_sdss["source_id"]) == list(similar(int(space["id"][0]), model=PHOTOZ_MODEL, k=5)["source_id"])
    assert set(in_sdss["release"]) == {SDSS_RELEASE}
    # what was searched comes with the rows (the same statement): the version current there, its releases
    with engine.connect() as conn:
        current = conn.scalar(sa.text("SELECT model_version FROM healcat.current_run JOIN healcat.release "
                                      "USING (release_id) WHERE model_name = :m AND name = :r"),
                              {"m": PHOTOZ_MODEL, "r": SDSS_RELEASE})
    assert {k: in_sdss.meta[k] for k in ("model", "model_version", "releases")} == {
        "model": PHOTOZ_MODEL, "model_version": current, "releases": SDSS_RELEASE}
    # and with none: a filter no galaxy passes answers no rows, saying what it searched
    none = similar(int(space["id"][0]), model=PHOTOZ_MODEL, k=5, release=SDSS_RELEASE,
                   where=[Photometry.band == "sdss_r", Photometry.mag < -50])
    assert len(none) == 0 and none.colnames == in_sdss.colnames
    assert (none.meta["model_version"], none.meta["releases"]) == (current, SDSS_RELEASE)
    with pytest.raises(QueryError, match="no release named 'nope'"):
        similar(int(space["id"][0]), model=PHOTOZ_MODEL, release="nope")


def test_approximate_search_under_a_20_percent_filter_has_high_recall(engine, space):
    r_max = float(np.quantile(space["r_ab"], 0.2))
    passes = space["r_ab"] < r_max
    where = [Photometry.band == "sdss_r", Photometry.mag < r_max]
    rng = np.random.default_rng(11)
    recalls = []
    for i in rng.choice(len(space["id"]), 20, replace=False):
        got = similar(int(space["id"][i]), model=PHOTOZ_MODEL, k=10, where=where, mode="approx", ef_search=40)
        exact = similar(int(space["id"][i]), model=PHOTOZ_MODEL, k=10, where=where, mode="exact")
        assert len(got) == 10 and set(got["source_id"]) <= set(space["id"][passes])
        assert list(exact["source_id"]) == brute_force(space, i, passes, 10)
        recalls.append(len(set(got["source_id"]) & set(exact["source_id"])) / 10)
    assert np.mean(recalls) >= 0.9


def test_the_plan_follows_the_filters_selectivity(engine, space):
    n = len(space["id"])
    with engine.connect() as conn:  # the SDSS galaxies' vectors, and any other release's the session added
        n_model = conn.scalar(sa.text("SELECT count(*) FROM healcat.embedding JOIN healcat.current_model "
                                      "USING (model_id) WHERE name = :m"), {"m": PHOTOZ_MODEL})
    unfiltered = plan(engine, k=10)
    assert unfiltered.plan == "approx" and unfiltered.n_embeddings == n_model == unfiltered.n_candidates >= n
    assert plan(engine, k=10, mode="exact").plan == "exact"
    # Half the galaxies: n^2 is far above 10 * ef_search * N, so the index pays.
    half = plan(engine, k=10, candidates=space["id"][::2].tolist())
    assert half.plan == "approx" and half.n_candidates == pytest.approx(n / 2, rel=0.1)
    assert half.hnsw_max_scan_tuples >= 20000 and half.hnsw_ef_search == 100
    # Every Gaia star plus a few galaxies: the candidates are many but few have an embedding; the
    # sample finds that out and the plan is exact.
    with engine.connect() as conn:
        stars = conn.execute(sa.text("SELECT s.source_id FROM healcat.source s JOIN healcat.release r "
                                     "USING (release_id) WHERE r.name = :r"), {"r": GAIA_RELEASE}).scalars().all()
    mixed = plan(engine, k=10, candidates=stars + space["id"][:30].tolist())
    assert mixed.plan == "exact" and mixed.n_candidates < 1000
    with pytest.raises(sa.exc.DBAPIError, match=f"no finished run on release {GAIA_RELEASE}"):
        plan(engine, k=10, release_name=GAIA_RELEASE)  # as the search would be
    assert plan(engine, k=10, release_name=SDSS_RELEASE).n_candidates == n


def test_the_default_ef_search_is_100_or_twice_k(engine, space):
    """ef_search 100 unless k asks for more (2k, at most 1000): on 1M 128-d vectors 40 gave recall@10
    0.958, 100 gave 0.978 (benchmarks/README.md, similarity); an explicit ef_search wins."""
    assert [plan(engine, k=k).hnsw_ef_search for k in (1, 10, 50, 51, 400, 10000)] == [100, 100, 100, 102, 800, 1000]
    assert plan(engine, k=10, ef_search=40).hnsw_ef_search == 40
    # The crossover to the index follows ef_search: approx once n^2 > 10 * ef_search * N. Every
    # second galaxy: all have an embedding, so the estimate is n itself.
    ids = space["id"][::2].tolist()
    n, n_model = len(ids), plan(engine, k=10).n_embeddings
    crossover = n * n / (10 * n_model)  # the ef_search at which these candidates turn exact
    assert 2 <= crossover <= 500
    assert plan(engine, k=10, candidates=ids, ef_search=int(crossover * 2)).plan == "exact"
    assert plan(engine, k=10, candidates=ids, ef_search=int(crossover / 2)).plan == "approx"


def test_a_short_index_scan_falls_back_to_exact(engine, space):
    """max_scan_tuples = 1 stops the iterative scan after its first ef_search (40) tuples, too few to
    hold 10 of a 5% filter; the search is redone exactly, k rows."""
    passes = space["r_ab"] < float(np.quantile(space["r_ab"], 0.05))
    messages = []
    with engine.connect() as conn:
        pg = conn.connection.driver_connection
        pg.add_notice_handler(lambda d: messages.append(d.message_primary))
        conn.execute(sa.text("SET client_min_messages = debug1"))
        rows = conn.execute(sa.text(
            "SELECT source_id FROM healcat.similar_sources(:s, :m, 10, candidates => :c, mode => 'approx', "
            "ef_search => 40, max_scan_tuples => 1)"), {"s": int(space["id"][0]), "m": PHOTOZ_MODEL,
                                       "c": space["id"][passes].tolist()}).scalars().all()
        conn.execute(sa.text("RESET client_min_messages"))
    assert rows == brute_force(space, 0, passes, 10)
    assert any("exact search instead" in m for m in messages), messages


def test_cli_filters_give_the_python_rows(capsys, space):
    centre = space["coord"][7]
    sid = int(space["id"][7])
    expected = similar(sid, model=PHOTOZ_MODEL, k=5,
                       where=[Cone.from_arcsec(centre.ra.deg, centre.dec.deg, 20 * 3600),
                              Photometry.band == "sdss_r", Photometry.mag.between(14.0, 17.5)])
    assert len(expected) == 5
    assert main(["similar", str(sid), "-k", "5", "--cone", str(centre.ra.deg), str(centre.dec.deg), "20deg",
                 "--mag", "sdss_r", "14", "17.5", "--mode", "exact", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(expected["source_id"])


def test_cli_filters_that_are_not_numbers_are_errors_not_tracebacks(capsys, space):
    sid = str(int(space["id"][0]))
    assert main(["similar", sid, "--mag", "sdss_r", "x", "18"]) == 1
    assert "similar: --mag BAND LO HI takes magnitudes, got 'x' '18'" in capsys.readouterr().err
    assert main(["similar", sid, "--cone", "10", "abc", "5"]) == 1
    assert "similar: --cone RA DEC RADIUS:" in capsys.readouterr().err
    # a value out of range names the option too (it said "cone: dec_deg must be in [-90, 90]" alone)
    assert main(["similar", sid, "--cone", "160", "95", "60"]) == 1
    assert "similar: --cone RA DEC RADIUS: cone: dec_deg must be in [-90, 90], got 95" in capsys.readouterr().err


def test_filters_that_can_only_be_mistakes_are_errors_not_empty_answers(capsys, space):
    """A band the catalog lacks (r: the band is sdss_r) or a range upside down answered nothing, exit 0."""
    sid = int(space["id"][0])
    with pytest.raises(QueryError, match=r"similar: where: no photometry in band 'r'; the catalog's bands are .*sdss_r"):
        similar(sid, model=PHOTOZ_MODEL, where=[Photometry.band == "r", Photometry.mag < 18])
    with pytest.raises(QueryError, match=r"photometry.mag between 17.5 and 14 selects nothing: the minimum 17.5"):
        similar(sid, model=PHOTOZ_MODEL, where=sa.and_(Photometry.band.in_(["sdss_r"]), Photometry.mag.between(17.5, 14)))
    either_way = similar(sid, model=PHOTOZ_MODEL, k=3, where=Photometry.mag.between(17.5, 14, symmetric=True))
    assert len(either_way) == 3  # BETWEEN SYMMETRIC takes its bounds in either order
    assert main(["similar", str(sid), "--mag", "r", "14", "17.5"]) == 1
    assert "no photometry in band 'r'" in capsys.readouterr().err
    assert main(["similar", str(sid), "--mag", "sdss_r", "17.5", "14"]) == 1
    assert "the minimum 17.5 exceeds the maximum 14" in capsys.readouterr().err
    assert main(["similar", str(sid), "--z", "0.2", "0.1"]) == 1
    assert "spec_redshift.z between 0.2 and 0.1 selects nothing" in capsys.readouterr().err


def test_a_nan_bound_is_an_error_not_a_wrong_answer(capsys, space):
    """SQL's NaN is above every number: --z 0.05 nan kept every spec-z >= 0.05 and --mag sdss_r nan 17 none,
    both answered as if the filter were what was asked."""
    sid = int(space["id"][0])
    with pytest.raises(QueryError, match=r"similar: where: spec_redshift.z compared with NaN: a bound must be a number"):
        similar(sid, model=PHOTOZ_MODEL, k=3, where=SpecRedshift.z.between(0.05, float("nan")))
    with pytest.raises(QueryError, match=r"similar: where: photometry.mag compared with NaN"):
        similar(sid, model=PHOTOZ_MODEL, k=3, where=[Photometry.band == "sdss_r", Photometry.mag < np.float32("nan")])
    assert main(["similar", str(sid), "-k", "3", "--z", "0.05", "nan"]) == 1
    assert "spec_redshift.z compared with NaN" in capsys.readouterr().err
    assert main(["similar", str(sid), "-k", "3", "--mag", "sdss_r", "nan", "17"]) == 1
    assert "photometry.mag compared with NaN" in capsys.readouterr().err


def test_a_task_name_given_for_a_model_name_says_which_model(capsys, space):
    """`similar --model photoz` and `model show photoz` said only that there is no such model."""
    hint = "(did you mean photoz-sdss, the model of task photoz?)"
    with pytest.raises(QueryError, match=r"no model named 'photoz' \(version current\) " + re.escape(hint)):
        similar(int(space["id"][0]), model="photoz")
    assert main(["similar", str(int(space["id"][0])), "--model", "photoz"]) == 1
    assert hint in capsys.readouterr().err
    assert main(["model", "show", "photoz"]) == 1
    assert f"model show: no model 'photoz' {hint}" in capsys.readouterr().err
    assert main(["model", "show", "nope"]) == 1
    assert re.search(r"no model 'nope' \(the models: .*photoz-sdss", capsys.readouterr().err)
    # a name near a model's (it was: no model named 'photo-z', and nothing more)
    with pytest.raises(QueryError, match=r"no model named 'photo-z' \(version current\) \(did you mean photoz-sdss"):
        similar(int(space["id"][0]), model="photo-z")
    assert main(["infer", "photo-z", SDSS_RELEASE]) == 1
    assert "(did you mean photoz-sdss" in capsys.readouterr().err


def test_a_search_cut_by_the_statement_timeout_is_a_query_error(database_url, catalog):
    """Not retried (the retry is for a dropped session), and saying what happened: the whole sky's
    half a million sources take longer than 100 ms to send."""
    impatient = sa.create_engine(database_url.update_query_dict({"options": "-cstatement_timeout=100"}))
    try:
        with pytest.raises(QueryError, match="cone: cancelled by the server's statement_timeout"):
            catalog_api.cone_search(0.0, 0.0, 180 * 3600.0, engine=impatient)
        with impatient.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "100ms"
    finally:
        impatient.dispose()


@pytest.mark.parametrize("kwargs,message", [
    ({"k": True}, "k must be an integer, got True"),
    ({"source_id": 12.9}, "source_id must be an integer, got 12.9"),
    ({"source_id": None, "vector": np.full(16, np.nan)}, "the query vector must be finite"),
    ({"mode": "fast"}, "mode must be one of auto, exact, approx, got 'fast'"),
    ({"ef_search": 0}, r"ef_search must be in \[1, 1000\], got 0"),
    ({"where": "r < 18"}, r"where takes a region .* not SQL text: got 'r < 18'"),
    ({"where": [Photometry.mag < 18, "r < 18"]}, "a filter is a region"),
    ({"source_id": None, "vector": np.ones((2, 16))}, r"must be one vector \(1-D, or one row\), got shape \(2, 16\)"),
    ({"source_id": None, "vector": ["a"] * 16}, "the query vector must be numbers"),
    ({"model": "photo-z"}, r"^similar: no model named 'photo-z' .*did you mean photoz-sdss"),
])
def test_bad_arguments_are_clear_errors(space, kwargs, message):
    with pytest.raises(QueryError, match=message):
        similar(kwargs.pop("source_id", int(space["id"][0])), **{"model": PHOTOZ_MODEL, **kwargs})


def test_a_filter_with_a_subquery_joins_only_its_own_tables(engine, space, catalog):
    """``NOT IN (SELECT label ...)`` joined label and kept only labelled sources (none of the
    galaxies: 0 rows); a model id by a scalar subquery was refused as a filter 'on table model'."""
    i = 7
    unlabelled = ~Source.source_id.in_(sa.select(Label.source_id).where(Label.label == "c"))
    got = similar(int(space["id"][i]), model=PHOTOZ_MODEL, k=5, where=unlabelled)
    assert list(got["source_id"]) == brute_force(space, i, np.ones(len(space["id"]), dtype=bool), 5)
    version = sa.select(Model.model_id).where(Model.name == PHOTOZ_MODEL, Model.version == catalog["model"].version)
    photoz = [Prediction.model_id == version.scalar_subquery(), Prediction.value < 0.1]
    got = similar(int(space["id"][i]), model=PHOTOZ_MODEL, k=5, where=photoz)
    with engine.connect() as conn:
        low = set(conn.execute(sa.text("SELECT source_id FROM healcat.prediction WHERE model_id = :m AND value < 0.1"),
                               {"m": catalog["model"].model_id}).scalars())
    assert list(got["source_id"]) == brute_force(space, i, np.isin(space["id"], list(low)), 5)


def test_a_model_without_embeddings_is_a_clear_error(space):
    """The object classifier gives classes, not vectors: its NULL dimension made the SQL 'vector()'."""
    with pytest.raises(QueryError, match=f"model {ObjectClass.model_name}/1 gives no embeddings"):
        similar(vector=np.ones(16), model=ObjectClass.model_name)
    with pytest.raises(QueryError, match=f"model {ObjectClass.model_name}/1 gives no embeddings"):
        similar(int(space["id"][0]), model=ObjectClass.model_name)


def test_the_candidate_sample_does_not_depend_on_their_order(engine, space):
    """900 candidates, a third with embeddings, all of those first: a whole-number step sampled only
    the first 500 (estimate 505 one way round, 2 the other)."""
    with engine.connect() as conn:
        stars = conn.execute(sa.text("SELECT s.source_id FROM healcat.source s JOIN healcat.release r "
                                     "USING (release_id) WHERE r.name = :r LIMIT 600"), {"r": GAIA_RELEASE}).scalars().all()
    ids = space["id"][:300].tolist() + stars
    assert len(ids) == 900
    forward, backward = (plan(engine, k=10, candidates=c).n_candidates for c in (ids, ids[::-1]))
    assert forward == pytest.approx(300, rel=0.1) and backward == pytest.approx(300, rel=0.1)


def test_approximate_rows_come_nearest_first_past_the_first_index_batch(engine, space):
    """k = 300 with ef_search 1 or 5: the iterative scan (relaxed_order) goes on for many batches and
    returns rows only roughly in distance order; the re-sort was an Incremental Sort trusting the
    subquery's ORDER BY (sorting only within its batches of ~32 rows), and the rows then kept that order."""
    unsorted = []
    for ef in (1, 5):
        for i in range(0, len(space["id"]), 40):
            got = similar(int(space["id"][i]), model=PHOTOZ_MODEL, k=300, mode="approx", ef_search=ef)
            d, ids = np.asarray(got["distance"]), np.asarray(got["source_id"])
            assert len(got) == 300
            if np.any(np.diff(d) < 0) or np.any((np.diff(d) == 0) & (np.diff(ids) < 0)):
                unsorted.append((ef, int(space["id"][i])))
    assert unsorted == []
    with engine.connect() as conn:  # the SQL function itself, not only the Python table
        d = conn.execute(sa.text("SELECT distance FROM healcat.similar_sources(:s, :m, 300, mode => 'approx', "
                                 "ef_search => 1)"), {"s": int(space["id"][3]), "m": PHOTOZ_MODEL}).scalars().all()
    assert len(d) == 300 and d == sorted(d)


@pytest.mark.parametrize("scale", [1e-30, 1e-19, 1e18])
def test_a_query_vector_of_any_length_gets_the_distances_of_its_direction(engine, space, scale):
    """Cosine distance does not depend on length; pgvector sums the squared norm in float4, so below a
    norm of ~1e-19 it underflowed and every distance came out 0 (exact mode: the lowest source_ids)."""
    direction = space["unit"][10]
    unit = similar(vector=direction, model=PHOTOZ_MODEL, k=5, mode="exact")
    row = similar(vector=direction[None, :], model=PHOTOZ_MODEL, k=5, mode="exact")  # a model's (1, 16) output
    assert list(row["source_id"]) == list(unit["source_id"])
    for mode in ("exact", "approx"):
        got = similar(vector=direction * scale, model=PHOTOZ_MODEL, k=5, mode=mode)
        assert list(got["source_id"]) == list(unit["source_id"]), mode
        assert np.allclose(got["distance"], unit["distance"], atol=1e-6), mode
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source_id, distance FROM healcat.similar_to_vector("
                                    "array_fill(CAST(1e-30 AS real), ARRAY[16])::vector, :m, 3, mode => 'exact')"),
                            {"m": PHOTOZ_MODEL}).all()
    ones = similar(vector=np.ones(16), model=PHOTOZ_MODEL, k=3, mode="exact")
    assert [r.source_id for r in rows] == list(ones["source_id"]) and rows[0].distance > 0


@pytest.mark.parametrize("kwargs,message", [
    ({"k": 3_000_000_000}, r"similar: k must be in \[1, 10000\], got 3000000000"),
    ({"k": 10**12}, r"similar: k must be in \[1, 10000\], got 1000000000000"),
    ({"ef_search": 3_000_000_000}, r"ef_search must be in \[1, 1000\], got 3000000000"),
    ({"ef_search": 2.5}, "ef_search must be an integer, got 2.5"),
    ({"source_id": None, "vector": np.full(16, 1e39)}, "outside float4's range"),
])
def test_huge_arguments_are_query_errors(space, kwargs, message):
    with pytest.raises(QueryError, match=message):
        similar(kwargs.pop("source_id", int(space["id"][0])), model=PHOTOZ_MODEL, **kwargs)


@pytest.mark.parametrize("argv,message", [
    (["-k", "3000000000"], r"similar: k must be in \[1, 10000\], got 3000000000"),
    (["--ef-search", "3000000000"], r"ef_search must be in \[1, 1000\], got 3000000000"),
])
def test_huge_cli_arguments_are_one_line_errors(capsys, space, argv, message):
    """k went as a bigint, so the function 'did not exist' and the CLI said the database was unmigrated;
    ef_search overflowed integer: a DataError traceback."""
    capsys.readouterr()
    assert main(["similar", str(int(space["id"][0])), *argv]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err) and "healcat schema" not in err and err.count("\n") == 1


@pytest.fixture
def superseded(engine, catalog, tmp_path, scratch_release) -> dict:
    """scratch/v1 (SDSS rows 0-199) superseded by scratch/v2 (rows 100-299; row 150 under another plate
    number: the same object by position), photo-z run on both after both were loaded."""
    from ingest.inference import run_model
    from ingest.load import ingest_release
    from tests.conftest import scratch_mapping, sdss_rows, write_csv

    rows = sdss_rows()[:300]
    v2 = [dict(r) for r in rows[100:]]
    v2[50]["plate"] = str(int(v2[50]["plate"]) + 9000)
    ingest_release(scratch_mapping(tmp_path, "v1"), engine, file=write_csv(tmp_path / "v1.csv", rows[:200]))
    ingest_release(scratch_mapping(tmp_path, "v2"), engine, file=write_csv(tmp_path / "v2.csv", v2))
    for release in ("scratch/v1", "scratch/v2"):
        run_model(engine, PHOTOZ_MODEL, release, lanes=1)
    with engine.connect() as conn:
        ids = {(r.release, r.object_id): r.source_id for r in conn.execute(sa.text(
            "SELECT r.name AS release, s.object_id, s.source_id FROM healcat.source s JOIN healcat.release r "
            "USING (release_id) JOIN healcat.embedding e ON e.shard = s.shard AND e.source_id = s.source_id "
            "WHERE r.name LIKE 'scratch/%' AND e.model_id = :m"), {"m": catalog["model"].model_id})}
    return {"ids": ids, "both": sorted(o for (r, o) in ids if r == "scratch/v1" and ("scratch/v2", o) in ids)}


def test_a_search_after_a_release_is_superseded(engine, catalog, superseded):
    """By default the published releases are searched, and the query's own object in another release
    (the same object_id in the survey, or the source release_change matched it to) is excluded: after
    scratch/v2 superseded scratch/v1, 'similar to X' came back with X itself (v2's copy, distance 0)
    and the other objects twice."""
    ids, obj = superseded["ids"], superseded["both"][7]
    old, new = ids[("scratch/v1", obj)], ids[("scratch/v2", obj)]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM healcat.similar_sources(:s, :m, 50)"),
                            {"s": old, "m": PHOTOZ_MODEL}).all()
        assert len(rows) == 50 and "scratch/v1" not in {r.release for r in rows}
        assert not [r for r in rows if r.release == "scratch/v2" and r.object_id == obj]
        assert not [r for r in rows if r.source_id in (old, new)]
        # The superseded release named: searched, with the object itself still left out.
        named = conn.execute(sa.text("SELECT * FROM healcat.similar_sources(:s, :m, 20, release_name => 'scratch/v1')"),
                             {"s": new, "m": PHOTOZ_MODEL}).all()
        assert len(named) == 20 and {r.release for r in named} == {"scratch/v1"}
        assert obj not in {r.object_id for r in named}
        # A source matched by position (its plate number changed): its previous source is left out too.
        moved = conn.execute(sa.text(
            "SELECT c.source_id, c.previous_source_id FROM healcat.release_change c JOIN healcat.release r "
            "USING (release_id) WHERE r.name = 'scratch/v2' AND c.matched_by = 'position'")).one()
        named = conn.execute(sa.text("SELECT source_id FROM healcat.similar_sources(:s, :m, 250, "
                                     "release_name => 'scratch/v1', mode => 'exact')"),
                             {"s": moved.source_id, "m": PHOTOZ_MODEL}).scalars().all()
        assert moved.previous_source_id in {ids[("scratch/v1", o)] for (r, o) in ids if r == "scratch/v1"}
        assert moved.previous_source_id not in named and len(named) == sum(r == "scratch/v1" for r, _ in ids) - 1
        # similar_plan counts the embeddings the runs just wrote (the index's reltuples were the first build's).
        n = conn.scalar(sa.text("SELECT count(*) FROM healcat.embedding WHERE model_id = :m"),
                        {"m": catalog["model"].model_id})
        assert conn.execute(sa.text("SELECT * FROM healcat.similar_plan(:m)"), {"m": PHOTOZ_MODEL}).one().n_embeddings == n


def test_a_search_of_published_releases_without_the_models_outputs_is_an_error(engine, catalog, superseded,
                                                                              tmp_path):
    """A survey's new release published and not yet run (its backfill pending), every published release
    without the version's outputs: similar_scope searched an empty list of releases and answered no
    rows, with no error; now the error names them and where the version has run. A release named
    without outputs is an error too (it answered no rows, as if nothing there were similar)."""
    from ingest.load import ingest_release
    from tests.conftest import scratch_mapping, sdss_rows, write_csv

    ingest_release(scratch_mapping(tmp_path, "v3"), engine, file=write_csv(tmp_path / "v3.csv", sdss_rows()[:50]))
    source = superseded["ids"][("scratch/v2", superseded["both"][0])]
    searches = ("SELECT * FROM healcat.similar_sources(:s, :m, 5{named})",
                "SELECT * FROM healcat.similar_to_vector((SELECT vec FROM healcat.embedding WHERE source_id = :s "
                "LIMIT 1), :m, 5{named})")

    def refused(named: str, message: str) -> None:
        for sql in searches:
            with pytest.raises(sa.exc.DBAPIError, match=message), conn.begin_nested():
                conn.execute(sa.text(sql.format(named=named)), {"s": source, "m": PHOTOZ_MODEL}).all()

    with engine.connect() as conn:
        version = conn.scalar(sa.text("SELECT version FROM healcat.current_model WHERE name = :m"), {"m": PHOTOZ_MODEL})
        refused(", release_name => 'scratch/v3'", rf"model {PHOTOZ_MODEL} version {version} has no finished run on "
                r"release scratch/v3 \(it has on [^)]*scratch/v2[^)]*\), so none of its embeddings: `healcat infer")
        # the other published releases (the session's SDSS sample among them) superseded, in this
        # transaction only: scratch/v3 is then the one published release
        conn.execute(sa.text("UPDATE healcat.release SET status = 'superseded' WHERE status = 'published' "
                             "AND name <> 'scratch/v3'"))
        refused("", r"has no finished run on the published releases \(scratch/v3\), only on .*scratch/v2.*name a "
                r"release it has run on")
        conn.rollback()


def test_versions_current_on_different_releases(superseded, conn, catalog):
    # superseded first: its releases are deleted after conn's transaction is rolled back
    """A version current on scratch/v2 only (its backfill not done elsewhere): a search with no version
    named over releases where different versions are current is an error naming them (it searched the
    query source's version only: the other release's neighbours vanished, or 0 rows with that release
    named); a release named is searched with the version current there."""
    model, ids = catalog["model"], superseded["ids"]
    two = conn.scalar(sa.text(
        "INSERT INTO healcat.model (name, version, task, framework, weights_path, weights_sha256, weights, "
        "training_set, training_params, hyperparams, metrics, embedding_dim, created_at) "
        "SELECT name, 'two', task, framework, weights_path, repeat('e', 64), weights, training_set, training_params, "
        "hyperparams, metrics, embedding_dim, now() + interval '1 hour' FROM healcat.model WHERE model_id = :m "
        "RETURNING model_id"), {"m": model.model_id})
    run = conn.scalar(sa.text(
        "INSERT INTO healcat.inference_run (model_id, release_id, device, n_predicted, finished_at) "
        "SELECT :two, release_id, 'cpu', 200, now() FROM healcat.release WHERE name = 'scratch/v2' RETURNING run_id"),
        {"two": two})
    conn.execute(sa.text(
        "INSERT INTO healcat.embedding (shard, source_id, model_id, run_id, vec) "
        "SELECT e.shard, e.source_id, :two, :run, e.vec FROM healcat.embedding e JOIN healcat.source s "
        "USING (shard, source_id) JOIN healcat.release r USING (release_id) "
        "WHERE e.model_id = :m AND r.name = 'scratch/v2'"), {"two": two, "run": run, "m": model.model_id})
    sdss_source = conn.scalar(sa.text(
        "SELECT e.source_id FROM healcat.embedding e JOIN healcat.source s USING (shard, source_id) "
        "JOIN healcat.release r USING (release_id) WHERE e.model_id = :m AND r.name = :r ORDER BY 1 LIMIT 1"),
        {"m": model.model_id, "r": SDSS_RELEASE})
    new = ids[("scratch/v2", superseded["both"][3])]

    def search(sql: str, **params) -> list:
        with conn.begin_nested():
            return conn.execute(sa.text(sql), {"m": PHOTOZ_MODEL, **params}).all()

    for sql in ("SELECT * FROM healcat.similar_sources(:s, :m, 10)",
                "SELECT * FROM healcat.similar_to_vector((SELECT vec FROM healcat.embedding WHERE source_id = :s "
                "AND model_id = :mid), :m, 10)", "SELECT * FROM healcat.similar_plan(:m, 10)"):
        with pytest.raises(sa.exc.DBAPIError, match=rf"version two on scratch/v2.*version {model.version} on "
                           f"{SDSS_RELEASE}|version {model.version} on {SDSS_RELEASE}.*version two on scratch/v2"):
            search(sql, s=sdss_source, mid=model.model_id)
    # One release named: the version current there.
    here = search("SELECT * FROM healcat.similar_sources(:s, :m, 10, release_name => :r)", s=sdss_source,
                  r=SDSS_RELEASE)
    assert len(here) == 10 and {r.release for r in here} == {SDSS_RELEASE}
    there = search("SELECT * FROM healcat.similar_sources(:s, :m, 10, release_name => 'scratch/v2')", s=new)
    assert len(there) == 10 and {r.release for r in there} == {"scratch/v2"}
    with pytest.raises(sa.exc.DBAPIError, match=rf"source {sdss_source} has no embedding from model photoz-sdss/two: "
                                                rf"that version has no finished run on the source's release "
                                                rf"{SDSS_RELEASE} \(it is the version current on scratch/v2"):
        search("SELECT * FROM healcat.similar_sources(:s, :m, 10, release_name => 'scratch/v2')", s=sdss_source)
    # A version named: that version's embeddings wherever it has them.
    named = search("SELECT * FROM healcat.similar_sources(:s, :m, 10, :v)", s=sdss_source, v=model.version)
    assert len(named) == 10


def test_a_vector_search_of_a_version_that_never_finished_a_run_is_an_error(conn, catalog):
    """similar_scope leaves a version with no finished run unfiltered (release_ids NULL), and
    similar_to_vector answered no rows without a word (similar_sources said 'no embedding')."""
    model = catalog["model"]
    conn.execute(sa.text(
        "INSERT INTO healcat.model (name, version, task, framework, weights_path, weights_sha256, weights, "
        "training_set, training_params, hyperparams, metrics, embedding_dim) "
        "SELECT name, 'unrun', task, framework, weights_path, repeat('f', 64), weights, training_set, training_params, "
        "hyperparams, metrics, embedding_dim FROM healcat.model WHERE model_id = :m"), {"m": model.model_id})
    vec = conn.scalar(sa.text("SELECT vec::text FROM healcat.embedding WHERE model_id = :m ORDER BY source_id LIMIT 1"),
                      {"m": model.model_id})
    sql = "SELECT * FROM healcat.similar_to_vector(CAST(:v AS vector), :n, 5, :version)"
    with pytest.raises(sa.exc.DBAPIError, match=rf"similar: model {PHOTOZ_MODEL} version unrun has no finished run, "
                                                rf"so no embeddings to search: name a version that has one "
                                                rf"\([^)]*{re.escape(model.version)}") as err:
        with conn.begin_nested():
            conn.execute(sa.text(sql), {"v": vec, "n": PHOTOZ_MODEL, "version": "unrun"}).all()
    assert err.value.orig.sqlstate == "22023"
    assert len(conn.execute(sa.text(sql), {"v": vec, "n": PHOTOZ_MODEL, "version": model.version}).all()) == 5


def test_similar_sources_says_what_is_wrong_with_the_source(conn, catalog):
    """A NULL source_id said 'source  has no embedding'; a source_id naming no source, and a source
    whose release the model never ran on, got advice to name a version or release, which cannot help."""
    missing = conn.scalar(sa.text("SELECT max(source_id) + 1000 FROM healcat.source"))
    survey = conn.scalar(sa.text("INSERT INTO healcat.survey (name) VALUES ('unrun-survey') RETURNING survey_id"))
    release = conn.scalar(sa.text(
        "INSERT INTO healcat.release (survey_id, name, version, source_uri, checksum, mapping, status) "
        "VALUES (:s, 'unrun-survey/r1', 'r1', 'x', 'x', '{}', 'published') RETURNING release_id"), {"s": survey})
    hpx = conn.scalar(sa.text("SELECT healcat.hpx_ang2pix(29, 10, 10)"))
    conn.execute(sa.text("INSERT INTO healcat.source (source_id, shard, release_id, object_id, ra, dec, hpx, attrs) "
                         "VALUES (:id, :shard, :rel, 'o1', 10, 10, :hpx, '{}')"),
                 {"id": missing + 1, "shard": hpx >> 50, "rel": release, "hpx": hpx})
    for source_id, message in [
        (None, r"similar: source_id must not be NULL"),
        (missing, rf"similar: there is no source {missing}$"),
        (missing + 1, rf"similar: source {missing + 1} has no embedding from model {PHOTOZ_MODEL}: the model has not "
                      r"run on its release unrun-survey/r1 \(no version of it has a finished run there\)$"),
    ]:
        with pytest.raises(sa.exc.DBAPIError) as err:
            with conn.begin_nested():
                conn.execute(sa.text("SELECT * FROM healcat.similar_sources(:s, :n, 10)"),
                             {"s": source_id, "n": PHOTOZ_MODEL}).all()
        assert err.value.orig.sqlstate == "22023"
        assert re.search(message, err.value.orig.diag.message_primary), err.value.orig.diag.message_primary


def test_the_downgrade_restores_similar_sources(engine, database_url, catalog):
    """Migration 0047 replaces similar_sources alone (its message for a source with no embedding);
    its downgrade gives back similarity_v7.sql's."""
    before, upgraded, after = across_a_migration(engine, database_url, "0047", "0046")
    assert after == before
    assert [a[0].split("(")[0] for a, b in zip(before, upgraded) if a != b] == ["healcat.similar_sources"]
