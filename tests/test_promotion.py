"""Champion and challenger: a new version becomes current only if its held-out metric is at least as
good as the current version's (else a candidate until promoted); retiring falls back to the previous
promoted version; a version that becomes current is queued on superseded releases its model has run
on too; a run records the versions its inputs came from; the demo after its version is retired."""

from __future__ import annotations

import re
import threading

import pytest
import sqlalchemy as sa

from catalog.cli import main
from catalog.errors import HealcatError, QueryError
from ingest import registry
from ingest.inference import run_model
from ingest.registry import promote_model, register_model, retire_model, train
from ingest.load import ingest_release
from tests.conftest import SDSS_RELEASE, scratch_mapping, sdss_rows, write_csv
from tests.test_ml import PHOTOZ_MODEL, _forget


def _current(engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT version FROM healcat.current_model WHERE name = :n"), {"n": name})


def _queued(engine) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        return {(a["model"], a["version"], a["release"]) for a in conn.execute(sa.text(
            "SELECT args FROM healcat.job WHERE kind = 'infer' AND status = 'queued'")).scalars()}


@pytest.fixture
def scratch_models(engine):
    """Removes the versions registered under the names the test registers, their runs and outputs, and all jobs."""
    names: list[str] = []
    yield names
    with engine.begin() as conn:
        for table in ("embedding", "prediction", "inference_run"):
            conn.execute(sa.text(f"DELETE FROM healcat.{table} WHERE model_id IN "  # noqa: S608
                                 "(SELECT model_id FROM healcat.model WHERE name = ANY(:n))"), {"n": names})
        conn.execute(sa.text("DELETE FROM healcat.model WHERE name = ANY(:n)"), {"n": names})
        conn.execute(sa.text("DELETE FROM healcat.job"))


@pytest.mark.parametrize(("task", "metric", "worse", "better"), [
    ("photoz", "nmad", 0.0335, 0.0143),                                  # lower is better
    ("object_class", "accuracy", 0.80, 0.97),                            # higher is better
    ("gyro_age", "median_abs_delta_log_age_held_out", 0.2, 0.07),
    ("stellar_mass", "median_abs_error_dex", 0.3, 0.1),
    ("lightcurve_embed", "knn_accuracy", 0.5, 0.8),
])
def test_a_worse_version_is_a_candidate_until_promoted(engine, catalog, scratch_models, task, metric, worse, better):
    name = f"challenge-{task}"
    scratch_models.append(name)

    def register(tag: str, metrics: dict):
        return register_model(engine, name=name, task=task, weights=f"{task} {tag}".encode(), training_set="t",
                              metrics=metrics)

    first = register("first", {metric: better})
    assert first.promoted_at is not None and _current(engine, name) == first.version, "no current version: promoted"
    worse_one = register("worse", {metric: worse})
    assert worse_one.promoted_at is None and _current(engine, name) == first.version
    no_metric = register("no metric", {"n_test": 10})
    assert no_metric.promoted_at is None, "nothing to compare: not promoted by itself"
    equal = register("equal", {metric: better})
    assert equal.promoted_at is not None and _current(engine, name) == equal.version, "at least as good"
    # Promoting a candidate by hand makes it current, whatever its metric; retiring it falls back.
    promoted, _ = promote_model(engine, name, worse_one.version, queue_backfill=False)
    assert promoted.promoted_at is not None and _current(engine, name) == worse_one.version
    retire_model(engine, name, worse_one.version)
    assert _current(engine, name) == equal.version
    with pytest.raises(HealcatError, match=f"model promote: {name} version {worse_one.version} was retired at"):
        promote_model(engine, name, worse_one.version)


def test_a_candidate_is_not_what_readers_or_searches_get(conn, catalog):
    """current_run and resolve_model (similarity searches' version) pass over a candidate that has
    finished a run; promoted, it is what they give."""
    model = catalog["model"]
    candidate = conn.scalar(sa.text(
        "INSERT INTO healcat.model (name, version, task, framework, weights_path, weights_sha256, weights, "
        "training_set, training_params, hyperparams, metrics, embedding_dim, promoted_at) "
        "SELECT name, 'cand', task, framework, weights_path, repeat('c', 64), weights, training_set, training_params, "
        "hyperparams, metrics, embedding_dim, NULL FROM healcat.model WHERE model_id = :m RETURNING model_id"),
        {"m": model.model_id})
    conn.execute(sa.text("INSERT INTO healcat.inference_run (model_id, release_id, device, finished_at) "
                         "SELECT :c, release_id, 'cpu', now() FROM healcat.release WHERE name = :r"),
                 {"c": candidate, "r": SDSS_RELEASE})
    current = ("SELECT (SELECT version FROM healcat.current_model WHERE name = :n), "
               "(SELECT model_version FROM healcat.current_run AS c JOIN healcat.release AS r USING (release_id) "
               " WHERE c.model_name = :n AND r.name = :r), (SELECT version FROM healcat.resolve_model(:n))")
    ask = {"n": PHOTOZ_MODEL, "r": SDSS_RELEASE}
    assert tuple(conn.execute(sa.text(current), ask).one()) == (model.version,) * 3
    conn.execute(sa.text("UPDATE healcat.model SET promoted_at = clock_timestamp() WHERE model_id = :c"),
                 {"c": candidate})
    assert tuple(conn.execute(sa.text(current), ask).one()) == ("cand",) * 3


def test_train_says_a_worse_version_is_a_candidate_and_promote_makes_it_current(engine, catalog, capsys):
    """`healcat train photoz --epochs 2` made a version with 2.3x v1's NMAD current everywhere."""
    v1 = catalog["model"]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM healcat.job"))
    assert main(["train", "photoz", "--epochs", "2", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    with engine.connect() as conn:
        v2 = conn.execute(sa.text("SELECT * FROM healcat.model WHERE name = :n AND hyperparams->>'seed' = '7'"),
                          {"n": PHOTOZ_MODEL}).one()
    try:
        assert v2.metrics["nmad"] > v1.metrics["nmad"] and v2.promoted_at is None
        assert (f"candidate, not current (version {v1.version} stays current): held-out nmad "
                f"{v2.metrics['nmad']:.4g}, worse than version {v1.version}'s {v1.metrics['nmad']:.4g} "
                "(lower is better); no backfill queued") in out
        assert f"To make it current anyway: healcat model promote {PHOTOZ_MODEL} {v2.version}" in out
        assert _current(engine, PHOTOZ_MODEL) == v1.version and _queued(engine) == set()
        assert main(["model", "list"]) == 0
        listed = {tuple(line.split()[:2]): line for line in capsys.readouterr().out.splitlines()}
        assert "candidate" in listed[(PHOTOZ_MODEL, v2.version)] and "current" in listed[(PHOTOZ_MODEL, v1.version)]
        assert main(["model", "promote", PHOTOZ_MODEL, v2.version]) == 0
        out = capsys.readouterr().out
        assert f"{PHOTOZ_MODEL} version {v2.version} is current" in out and "backfill: " in out
        assert _current(engine, PHOTOZ_MODEL) == v2.version
        assert (PHOTOZ_MODEL, v2.version, SDSS_RELEASE) in _queued(engine)
        assert main(["model", "retire", PHOTOZ_MODEL, v2.version]) == 0
        assert _current(engine, PHOTOZ_MODEL) == v1.version, "the previous promoted version"
        assert main(["model", "promote", PHOTOZ_MODEL, v2.version]) == 1
        assert "retiring is for good" in capsys.readouterr().err
    finally:
        _forget(engine, v2)


def test_a_version_current_again_is_queued_on_superseded_releases_its_model_ran_on(
        engine, catalog, tmp_path, scratch_release, scratch_models):
    """v2 ran on scratch/a before scratch/b superseded it; retiring v2 left scratch/a with no current
    photo-z and no job to give it one (backfill looked at published releases only)."""
    v1 = catalog["model"]
    rows = sdss_rows()[:300]
    for version in ("a", "b", "c"):  # a and b superseded, c published
        ingest_release(scratch_mapping(tmp_path, version), engine,
                       file=write_csv(tmp_path / f"{version}.csv", rows[:150]))
    with engine.connect() as conn:
        weights = conn.scalar(sa.text("SELECT weights FROM healcat.model WHERE model_id = :m"), {"m": v1.model_id})
    v2 = register_model(engine, name=PHOTOZ_MODEL, task="photoz", weights=weights + b"\0", training_set="t",
                        metrics={"nmad": v1.metrics["nmad"] / 2}, embedding_dim=v1.embedding_dim)
    try:
        assert _current(engine, PHOTOZ_MODEL) == v2.version
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO healcat.inference_run (model_id, release_id, device, finished_at) "
                                 "SELECT :m, release_id, 'cpu', now() FROM healcat.release WHERE name = 'scratch/a'"),
                         {"m": v2.model_id})
            statuses = dict(conn.execute(sa.text("SELECT name, status FROM healcat.release WHERE name LIKE 'scratch/%'")).all())
            conn.execute(sa.text("DELETE FROM healcat.job"))
        assert statuses == {"scratch/a": "superseded", "scratch/b": "superseded", "scratch/c": "published"}
        retire_model(engine, PHOTOZ_MODEL, v2.version)
        queued = _queued(engine)
        # (other published releases v1 has not run on, loaded by other tests, are queued too)
        assert {q for q in queued if q[2].startswith("scratch/")} == {
            (PHOTOZ_MODEL, v1.version, "scratch/a"), (PHOTOZ_MODEL, v1.version, "scratch/c")}
        assert (PHOTOZ_MODEL, v1.version, SDSS_RELEASE) not in queued  # done there already
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM healcat.inference_run WHERE model_id = :m"), {"m": v2.model_id})
            conn.execute(sa.text("DELETE FROM healcat.model WHERE model_id = :m"), {"m": v2.model_id})


def test_a_run_records_the_versions_its_inputs_came_from(engine, catalog, capsys):
    """Which object-class version chose a photo-z run's galaxies was used in its input query, never kept."""
    classifier = catalog["classifier"]
    with engine.connect() as conn:
        inputs = dict(conn.execute(sa.text(
            "SELECT m.task, x.inputs FROM healcat.inference_run AS x JOIN healcat.model AS m USING (model_id) "
            "JOIN healcat.release AS r USING (release_id) WHERE r.name = :r AND m.model_id = ANY(:m)"),
            {"r": SDSS_RELEASE, "m": [catalog["model"].model_id, classifier.model_id]}).all())
    assert inputs == {"photoz": {"object_class": classifier.model_id}, "object_class": {}}
    assert main(["model", "show", PHOTOZ_MODEL, "--version", catalog["model"].version]) == 0
    assert (f"inputs: object_class {classifier.name} version {classifier.version} (model_id {classifier.model_id})"
            in capsys.readouterr().out)


def test_the_demo_searches_its_own_release_once_a_newer_one_is_published(engine, catalog, capsys):
    """A newer SDSS release published (its galaxies without photo-z yet): the demo's similarity search of the
    published releases came back empty and the demo failed in astropy's join, after saying its searches
    showed the newer release's sources. Now both searches name the demo's release, and print that SQL."""
    with engine.begin() as conn:  # as a newer release's publication leaves it (committed: the demo connects anew)
        conn.execute(sa.text("UPDATE healcat.release SET status = 'superseded' WHERE name = :n"), {"n": SDSS_RELEASE})
    try:
        assert main(["demo"]) == 0
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE healcat.release SET status = 'published' WHERE name = :n"), {"n": SDSS_RELEASE})
    out = capsys.readouterr().out
    assert "a newer SDSS release is published, so the searches below name this one" in out
    assert f", 600.0, '{SDSS_RELEASE}');" in out and f", 10, release_name => '{SDSS_RELEASE}');" in out
    similar_rows = out.split("most similar to source")[1].splitlines()
    assert sum(bool(re.match(r"\d{4}-\d{5}-\d{4} ", line)) for line in similar_rows) == 10, out  # object ids


def test_the_demo_shows_the_current_version_once_its_own_is_retired(engine, catalog, capsys):
    """`healcat demo` failed with 'these weights are photoz-sdss version 1, retired' once seed 0's was."""
    v1 = catalog["model"]
    v2 = train(engine, "photoz", SDSS_RELEASE, seed=3, epochs=30)
    try:
        promote_model(engine, PHOTOZ_MODEL, v2.version, queue_backfill=False)
        retire_model(engine, PHOTOZ_MODEL, v1.version)
        assert main(["demo"]) == 0
        out = capsys.readouterr().out
        assert (f"model {PHOTOZ_MODEL} version {v2.version} =" in out
                and f"the demo's training gives version {v1.version}, which was retired: showing the current version"
                in out)
        assert f"held-out galaxies: {v2.metrics['n_test']}" in out and "new predictions" in out
        assert "z_phot" in out.split("most similar to source")[1]
        # a current version without the metrics the demo prints (registered from a file): n/a, no KeyError
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE healcat.model SET metrics = '{}' WHERE model_id = :m"), {"m": v2.model_id})
        assert main(["demo"]) == 0
        out = capsys.readouterr().out
        assert "held-out galaxies: n/a (trained on n/a)" in out and "NMAD of dz/(1+z): n/a" in out
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE healcat.model SET retired_at = NULL WHERE model_id = :m"), {"m": v1.model_id})
        _forget(engine, v2)
    assert _current(engine, PHOTOZ_MODEL) == v1.version


def test_photoz_reads_the_classifier_its_task_names_and_refuses_without_it(
        engine, catalog, capsys, tmp_path, scratch_release, scratch_models):
    """A second object_class model sorting first by name (aaa-clf) became the classifier photo-z read."""
    classifier = catalog["classifier"]
    scratch_models.append("aaa-clf")
    assert main(["model", "register", "object_class", classifier.weights_path, "--name", "aaa-clf",
                 "--no-backfill"]) == 0
    assert "current: no version was current before it" in capsys.readouterr().out
    assert _current(engine, "aaa-clf") == "1"
    ingest_release(scratch_mapping(tmp_path, "twoclf"), engine, file=write_csv(tmp_path / "r.csv", sdss_rows()[:150]))
    with engine.connect() as conn:
        inputs = conn.scalar(sa.text("SELECT inputs FROM healcat.inference_run WHERE run_id = :r"),
                             {"r": run_model(engine, PHOTOZ_MODEL, "scratch/twoclf").run_id})
    assert inputs == {"object_class": classifier.model_id}
    # Without a current object-class-sdss, photo-z refuses rather than read another classifier's labels; a
    # release it has run on is done (it said the same, where a rerun changes nothing), naming the run it read.
    ingest_release(scratch_mapping(tmp_path, "noclf"), engine, file=write_csv(tmp_path / "n.csv", sdss_rows()[:150]))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE healcat.model SET retired_at = now() WHERE model_id = :m"),
                     {"m": classifier.model_id})
    try:
        with pytest.raises(HealcatError, match=f"infer: {PHOTOZ_MODEL} reads the object_class predictions of "
                                               f"{classifier.name}, which has no current version: `healcat train "
                                               r"object_class` \(`--seed N` where"):
            run_model(engine, PHOTOZ_MODEL, "scratch/noclf")
        again = run_model(engine, PHOTOZ_MODEL, "scratch/twoclf")
        assert again.already_done and [(t, n, v) for t, n, v, _ in again.required] == \
            [("object_class", classifier.name, classifier.version)]
        assert again.required[0][3].already_done
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE healcat.model SET retired_at = NULL WHERE model_id = :m"),
                         {"m": classifier.model_id})


def test_a_retired_version_writes_nothing_new(engine, catalog, capsys, caplog, scratch_models):
    """`healcat infer object-class-sdss RELEASE --version 2` after v2 was retired made a run with predictions."""
    scratch_models.append("retired-clf")
    retired = registry.register_weights_file(engine, "object_class", catalog["classifier"].weights_path,
                                             name="retired-clf")
    # the weights' own hyperparameters are recorded, as a trained version's are (which adds its seed,
    # epochs, classes and training releases); they were {}
    trained = catalog["classifier"].hyperparams
    assert "input_range" in retired.hyperparams and all(trained[k] == v for k, v in retired.hyperparams.items())
    queued = "SELECT count(*) FROM healcat.job WHERE kind = 'infer' AND status = 'queued' AND args->>'model' = :n"
    assert registry.backfill(engine, retired)  # queued (the CLI's register does this)
    with engine.connect() as conn:
        assert conn.scalar(sa.text(queued), {"n": retired.name}) > 0
    retire_model(engine, retired.name, retired.version)
    with engine.connect() as conn:  # dropped: each would only be refused
        assert conn.scalar(sa.text(queued), {"n": retired.name}) == 0
    assert f"retired-clf version {retired.version} retired: its queued infer jobs " in caplog.text
    capsys.readouterr()
    assert main(["model", "show", retired.name, "--version", retired.version]) == 0
    assert re.search(r"\(retired\), task object_class, .*, created [0-9-]+ [0-9:]+(, promoted [0-9-]+ [0-9:]+)?, "
                     r"retired [0-9-]+ [0-9:]+\n",
                     capsys.readouterr().out)
    assert main(["infer", retired.name, SDSS_RELEASE, "--version", retired.version]) == 1
    assert f"infer: retired-clf version {retired.version} is retired (at " in capsys.readouterr().err
    # its only version retired, the model has none current: it said "no model named 'retired-clf'"
    assert main(["infer", retired.name, SDSS_RELEASE]) == 1
    assert (f"model retired-clf has no current version: none is promoted and unretired (versions: {retired.version}): "
            "`healcat train object_class`") in capsys.readouterr().err
    with pytest.raises(HealcatError, match="retiring is for good"):
        run_model(engine, retired.name, SDSS_RELEASE, version=retired.version)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.inference_run WHERE model_id = :m"),
                           {"m": retired.model_id}) == 0


@pytest.mark.parametrize("gone", ["retired", "withdrawn"])
def test_a_run_whose_version_is_retired_or_release_withdrawn_meanwhile_keeps_nothing(
        engine, catalog, tmp_path, scratch_release, scratch_models, monkeypatch, gone):
    """Retired (or its release withdrawn) after its run had begun, a version finished the run: its outputs
    were read by version as any version's, though a retired version, or a run on a withdrawn release, writes
    nothing new. Now the run is refused at its end, what it wrote deleted; its job is not run, not failed.
    The retirement (withdrawal) here is still being committed as the run ends: the run waits for it."""
    from ingest import inference
    from ingest.worker import run_infer

    scratch_models.append("racing-clf")
    racing = registry.register_weights_file(engine, "object_class", catalog["classifier"].weights_path,
                                            name="racing-clf")
    ingest_release(scratch_mapping(tmp_path, "race"), engine, file=write_csv(tmp_path / "r.csv", sdss_rows()[:120]))
    lanes, committing = inference._run_lanes, []

    def gone_meanwhile(*args, **kwargs):
        out = lanes(*args, **kwargs)  # the lanes have committed their rows
        conn = engine.connect()
        conn.execute(sa.text("UPDATE healcat.model SET retired_at = now() WHERE model_id = :m") if gone == "retired"
                     else sa.text("UPDATE healcat.release SET status = 'withdrawn', withdrawn_at = now(), "
                                  "withdrawn_reason = 'found wrong' WHERE name = 'scratch/race'"),
                     {"m": racing.model_id})
        committing.append(threading.Timer(1.0, lambda: (conn.commit(), conn.close())))
        committing[0].start()  # committed a second after the run's end began to wait for it
        return out

    monkeypatch.setattr(inference, "_run_lanes", gone_meanwhile)
    why = (f"racing-clf version {racing.version} was retired while it ran \\(at .*\\); its outputs are deleted"
           if gone == "retired" else f"racing-clf version {racing.version}: release scratch/race was withdrawn at .* "
           r"\(found wrong\); .* it was withdrawn "
           "while the run went on, and the run's outputs are deleted")
    result = run_infer(engine, {"model": racing.name, "release": "scratch/race", "version": racing.version}, 0)
    committing[0].join()
    assert set(result) == {"not_run", "queued_jobs"} and re.match(f"infer: {why}", result["not_run"]), result
    with engine.connect() as conn:
        for table in ("inference_run", "prediction", "embedding"):
            assert conn.scalar(sa.text(f"SELECT count(*) FROM healcat.{table} WHERE model_id = :m"),  # noqa: S608
                               {"m": racing.model_id}) == 0, table
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.inference_skip k JOIN healcat.source s "
                                   "USING (shard, source_id) JOIN healcat.release r USING (release_id) "
                                   "WHERE r.name = 'scratch/race'")) == 0


def test_retiring_a_version_deletes_its_runs_a_crash_left_unfinished(
        engine, catalog, tmp_path, scratch_release, scratch_models, caplog):
    """A run killed before it finished, whose clean-up failed too, is deleted by the version's next run
    on the release; a retired version has none, so its rows stayed for good. Now retiring deletes them,
    but not a run still going on (it holds its lock), nor a finished run's outputs."""
    from ingest.inference import run_lock

    scratch_models.append("stranded-clf")
    version = registry.register_weights_file(engine, "object_class", catalog["classifier"].weights_path,
                                             name="stranded-clf")
    runs = {}
    for name in ("kept", "crashed", "running"):
        ingest_release(scratch_mapping(tmp_path, name), engine,
                       file=write_csv(tmp_path / f"{name}.csv", sdss_rows()[:80]))
        runs[name] = run_model(engine, version.name, f"scratch/{name}", version=version.version).run_id
    count = "SELECT count(*) FROM healcat.{} WHERE run_id = :r"
    with engine.begin() as conn:  # two runs as a crash between their lanes' commits leaves them
        conn.execute(sa.text("UPDATE healcat.inference_run SET finished_at = NULL WHERE run_id = ANY(:r)"),
                     {"r": [runs["crashed"], runs["running"]]})
        written = {name: conn.scalar(sa.text(count.format("prediction")), {"r": run}) for name, run in runs.items()}
        release = conn.scalar(sa.text("SELECT release_id FROM healcat.release WHERE name = 'scratch/running'"))
    assert all(written.values())
    with engine.connect() as running:  # one of them still going on: it holds its run's lock
        running.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(
            run_lock(registry.get_task("object_class"), version.model_id, release)))))
        retire_model(engine, version.name, version.version)
        running.rollback()
    with engine.connect() as conn:
        left = {name: conn.scalar(sa.text(count.format("inference_run")), {"r": run}) for name, run in runs.items()}
        predictions = {name: conn.scalar(sa.text(count.format("prediction")), {"r": run}) for name, run in runs.items()}
    assert left == {"kept": 1, "crashed": 0, "running": 1}
    assert predictions == {"kept": written["kept"], "crashed": 0, "running": written["running"]}
    assert (f"stranded-clf version {version.version} retired: its unfinished runs {runs['crashed']} (left by a "
            "crash) deleted") in caplog.text


def test_a_required_model_retired_as_a_run_begins_fails_the_run_for_a_retry(
        engine, catalog, tmp_path, scratch_release, scratch_models, monkeypatch):
    """photo-z's classifier retired between photo-z resolving it and running it: the classifier's refusal
    (a RetiredModel, which a job does not retry and now reports as not run) came up as photo-z's own."""
    from ingest import inference

    scratch_models.append("gone-clf")
    gone = registry.register_weights_file(engine, "object_class", catalog["classifier"].weights_path, name="gone-clf")
    gone = retire_model(engine, gone.name, gone.version)
    monkeypatch.setattr(inference, "current_version", lambda conn, name: gone)
    ingest_release(scratch_mapping(tmp_path, "dep"), engine, file=write_csv(tmp_path / "d.csv", sdss_rows()[:60]))
    with pytest.raises(HealcatError, match=f"infer: {PHOTOZ_MODEL} reads the object_class predictions of gone-clf, "
                                           f"whose version {gone.version} was retired as this run began") as caught:
        run_model(engine, PHOTOZ_MODEL, "scratch/dep")
    assert not isinstance(caught.value, inference.RetiredModel | QueryError)


def test_the_same_version_again_says_it_was_already_current(catalog, capsys):
    """Retraining with the same seed (or registering the same weights) printed 'current: no version was
    current before it' though the version it landed on was current already."""
    classifier = catalog["classifier"]
    assert main(["model", "register", "object_class", classifier.weights_path, "--no-backfill"]) == 0
    out = capsys.readouterr().out
    assert f"{classifier.name} version {classifier.version} " in out
    assert "current: already the current version" in out and "no version was current" not in out
