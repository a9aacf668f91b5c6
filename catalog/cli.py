"""``healcat``: the command line. ``healcat --help`` lists everything."""

from __future__ import annotations

import argparse
import io
import logging
import re
import sys
from pathlib import Path

import astropy.units as u
from astropy.coordinates import Angle
from astropy.table import Table

from catalog import db
from catalog.errors import HealcatError


def _ra_deg(text: str) -> float:
    """RA in degrees, or sexagesimal hours such as 12h30m49.4s / 12:30:49.4."""
    return _angle_deg(text, u.hourangle)


def _dec_deg(text: str) -> float:
    return _angle_deg(text, u.deg)


def _angle_deg(text: str, sexagesimal_unit: u.UnitBase) -> float:
    try:
        return float(text)
    except ValueError:
        try:
            return float(Angle(text, unit=sexagesimal_unit).deg)
        except (ValueError, u.UnitsError) as exc:
            raise argparse.ArgumentTypeError(f"not an angle: {text!r} ({exc})") from None


def _radius_arcsec(text: str) -> float:
    """A radius: a bare number is arcsec; '2arcmin', '0.5deg', '30 arcsec' carry their unit."""
    try:
        return float(text)
    except ValueError:
        try:
            return u.Quantity(text).to_value(u.arcsec)
        except (TypeError, ValueError, u.UnitsError) as exc:
            raise argparse.ArgumentTypeError(f"not an angle: {text!r} ({exc})") from None


#: How the terminal shows columns (CSV, ECSV and VOTable keep full precision).
DISPLAY_FORMATS = {"ra": ".7f", "dec": ".7f", "distance_arcsec": ".3f", "distance": ".5f"}


def for_display(table: Table) -> Table:
    shown = table.copy(copy_data=False)
    for name, spec in DISPLAY_FORMATS.items():
        if name in shown.colnames and shown[name].dtype.kind == "f":
            shown[name].format = spec
    return shown


def _print_table(table: Table, fmt: str) -> None:
    if fmt == "table":
        for_display(table).pprint_all()
        return
    buffer = io.BytesIO() if fmt == "votable" else io.StringIO()
    table.write(buffer, format={"csv": "ascii.csv", "ecsv": "ascii.ecsv", "votable": "votable"}[fmt])
    value = buffer.getvalue()
    sys.stdout.write(value.decode() if isinstance(value, bytes) else value)


# --- commands ------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> None:
    if args.action == "stop":
        if not db.uses_embedded():
            raise HealcatError("db stop: HEALCAT_DATABASE_URL is set; healcat does not manage that server")
        print("stopped" if db.EmbeddedServer().stop() else "not running")
        return
    if args.action == "psql":
        _exec_psql(db.libpq_url())
    if args.action == "status" and db.uses_embedded() and not db.EmbeddedServer().running():
        print(f"embedded server: not running (data in {db.EmbeddedServer().pgdata})")
        return
    url = db.database_url()
    if args.action == "url":
        print(db.libpq_url(url))
    elif args.action == "up":
        db.migrate(url)
        print(f"database ready at {db.libpq_url(url)}")
    else:
        import sqlalchemy as sa

        with db.engine().connect() as conn:
            version = conn.scalar(sa.text("SHOW server_version"))
            vector = conn.scalar(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
            revision = db.current_revision(conn)
        where = f"embedded in {db.EmbeddedServer().pgdata}" if db.uses_embedded() else "HEALCAT_DATABASE_URL"
        print(f"server: PostgreSQL {version} ({where})\npgvector: {vector or 'not installed'}")
        print(f"schema revision: {revision or 'none (run: healcat db up)'}")


def _exec_psql(url: str) -> None:
    """Replace this process with psql on the catalog: the system's, else the embedded server's own."""
    import os
    import shutil

    from catalog.db import embedded_bin

    psql = shutil.which("psql") or str(embedded_bin() / "psql")
    os.execv(psql, [psql, url])


def cmd_ingest(args: argparse.Namespace) -> None:
    from ingest.load import ingest_release

    result = ingest_release(args.mapping, db.engine(), file=args.file)
    state = "already loaded, nothing changed" if result.already_loaded else "published"
    print(f"{result.release}: {state}; rows {result.row_counts}")


def cmd_release(args: argparse.Namespace) -> None:
    from ingest.report import format_report, release_report

    print(format_report(release_report(db.engine(), args.name, examples=args.examples)))


def cmd_train(args: argparse.Namespace) -> None:
    from ingest.inference import backfill, train

    model = train(db.engine(), args.task, args.release, seed=args.seed, epochs=args.epochs)
    print(f"{model.name} version {model.version} ({model.weights_sha256[:12]}): {_metrics_line(model.metrics)}")
    if not args.no_backfill:
        jobs = backfill(db.engine(), model)
        print(f"backfill: {len(jobs)} infer jobs queued" + (f" ({', '.join(map(str, jobs))})" if jobs else ""))


def cmd_infer(args: argparse.Namespace) -> None:
    from ingest.inference import run_model
    from ingest.tasks import all_tasks

    tasks = all_tasks()
    model = tasks[args.model].model_name if args.model in tasks else args.model
    result = run_model(db.engine(), model, args.release, version=args.version, device=args.device)
    state = " (already done: nothing to do)" if result.already_done else ""
    print(f"run {result.run_id} on {result.device}: {result.n_predicted} predicted, {result.n_skipped} skipped{state}")


def cmd_model(args: argparse.Namespace) -> None:
    import json

    import sqlalchemy as sa

    from catalog.models import Model
    from ingest import inference

    engine = db.engine()
    if args.action == "register":
        metrics = json.loads(args.metrics) if args.metrics else None
        model = inference.register_weights_file(engine, args.task, args.weights, sha256=args.sha256, name=args.name,
                                                metrics=metrics, training_set=args.training_set)
        print(f"{model.name} version {model.version} ({model.weights_sha256[:12]}) registered for task {model.task}")
        if not args.no_backfill:
            print(f"backfill: {len(inference.backfill(engine, model))} infer jobs queued")
        return
    if args.action == "retire":
        model = inference.retire_model(engine, args.name, args.version)
        print(f"{model.name} version {model.version} retired at {model.retired_at:%Y-%m-%d %H:%M:%S}; outputs kept")
        return
    with engine.connect() as conn:
        current = set(conn.execute(sa.text("SELECT model_id FROM healcat.current_model")).scalars())
        query = sa.select(Model).order_by(Model.name, Model.model_id)
        if args.action == "show":
            query = query.where(Model.name == args.name)
            if args.version:
                query = query.where(Model.version == args.version)
        rows = conn.execute(query).all()
    if args.action == "show":
        if not rows:
            raise HealcatError(f"model show: no model {args.name!r}" + (f" version {args.version!r}" if args.version else ""))
        for m in rows:
            state = "current" if m.model_id in current else ("retired" if m.retired_at else "superseded")
            print(f"{m.name} version {m.version} ({state}), task {m.task}, {m.framework}, created {m.created_at:%Y-%m-%d %H:%M:%S}")
            print(f"  weights: sha256 {m.weights_sha256} ({len(m.weights or b'')} bytes), {m.weights_path}")
            print(f"  training query, run with {json.dumps(m.training_params)}:\n    "
                  + m.training_set.replace("\n", "\n    "))
            print(f"  hyperparameters: {json.dumps(m.hyperparams)}\n  metrics: {json.dumps(m.metrics)}")
        return
    table = Table(rows=[(m.name, m.version, m.task, "current" if m.model_id in current else
                         ("retired" if m.retired_at else "superseded"), str(m.created_at)[:19],
                         m.weights_sha256[:12], _metrics_line(m.metrics)) for m in rows],
                  names=["name", "version", "task", "state", "created_at", "sha256", "metrics"],
                  dtype=[str] * 7)
    _print_table(table, args.format)


def cmd_cone(args: argparse.Namespace) -> None:
    from catalog.search import cone_search

    _print_table(cone_search(args.ra, args.dec, args.radius, release=args.release), args.format)


def cmd_similar(args: argparse.Namespace) -> None:
    from catalog.search import similar, source_id_of

    source_id = args.source_id if args.object_id is None else source_id_of(args.object_id, release=args.release)
    _print_table(similar(source_id, model=args.model, k=args.k, version=args.version), args.format)


def cmd_enqueue(args: argparse.Namespace) -> None:
    from ingest import queue

    if args.kind == "ingest":
        from ingest.mapping import load_mapping

        mapping = load_mapping(args.target)  # fail here, not in the worker, on a mapping that does not exist
        target = str(mapping.path.resolve()) if Path(args.target).suffix else args.target
        job_args = {"mapping": target, **({"file": str(mapping.input_path(args.file))} if args.file else {})}
    with db.engine().begin() as conn:
        if args.kind == "infer":
            from ingest.inference import release_id_of

            from ingest.inference import enqueue_inference

            jobs = enqueue_inference(conn, release_id_of(conn, args.target))  # an unknown release fails here
            print(f"{len(jobs)} infer jobs queued for {args.target}" + (f" ({', '.join(map(str, jobs))})" if jobs else ""))
            return
        job_id, created = queue.enqueue(conn, args.kind, job_args)
    print(f"job {job_id} {'queued' if created else 'already queued or running'}: {args.kind} {job_args}")


def cmd_worker(args: argparse.Namespace) -> None:
    from ingest.worker import Worker

    worker = Worker(db.engine())
    worker.stop_on_signals()
    logging.getLogger().setLevel(logging.INFO)
    n = worker.run(once=args.once, poll_s=args.poll)
    print(f"worker {worker.name}: {n} jobs run")


def cmd_jobs(args: argparse.Namespace) -> None:
    import sqlalchemy as sa

    from catalog.models import Job
    from ingest import queue

    with db.engine().connect() as conn:
        if args.retry is not None:
            if not queue.retry(conn, args.retry):
                raise HealcatError(f"jobs: job {args.retry} is not a failed job")
            print(f"job {args.retry} requeued")
            return
        query = sa.select(Job.job_id, Job.kind, Job.status, Job.attempts, Job.args, Job.run_after,
                          Job.worker, Job.error).order_by(Job.job_id)
        if not args.all:
            query = query.where(Job.status != "done")
        rows = conn.execute(query).all()
    table = Table(rows=[(r.job_id, r.kind, r.status, r.attempts, str(r.args), str(r.run_after)[:19],
                         r.worker or "", (r.error or "").split("\n")[0][:80]) for r in rows],
                  names=["job_id", "kind", "status", "attempts", "args", "run_after", "worker", "error"],
                  dtype=[int, str, str, int, str, str, str, str])
    _print_table(table, args.format)


def cmd_demo(args: argparse.Namespace) -> None:
    from catalog.demo import run

    run()


def _metrics_line(metrics: dict) -> str:
    keys = ("nmad", "bias", "outlier_fraction", "crps", "pit_max_dev", "accuracy", "n_test")
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="healcat", description="A sky catalog database with embedded ML services.",
                                     epilog="HEALCAT_DATABASE_URL picks another PostgreSQL; HEALCAT_HOME the embedded "
                                            "server's folder; HEALCAT_DATA_DIR where survey files are read.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formatter = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser("db", help="the database: up, status, url, psql, stop", formatter_class=formatter,
                       description="up: start the embedded server if it is the one used, and migrate to the newest "
                                   "schema; status: server, pgvector and schema versions; url: a libpq URL for psql "
                                   "and other clients; psql: open psql on the catalog; stop: stop the embedded server")
    p.add_argument("action", choices=["up", "status", "url", "psql", "stop"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("ingest", help="ingest a release through its mapping (idempotent)")
    p.add_argument("mapping", help="mapping name in ingest/mappings (e.g. sdss_dr14_skyserver_10k) or a .toml path")
    p.add_argument("--file", help="read this file instead of the one the mapping names")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("release", help="a release's row counts and quarantined rows by reason")
    release_sub = p.add_subparsers(dest="release_command", required=True, metavar="ACTION")
    r = release_sub.add_parser("report", help="row counts, and quarantined rows by column and reason with examples",
                               formatter_class=formatter)
    r.add_argument("name", help="release name, e.g. gyrointerp/0.7-ruprecht147")
    r.add_argument("--examples", type=int, default=3, help="example rows per reason")
    r.set_defaults(func=cmd_release)

    from ingest.tasks import all_tasks

    tasks = sorted(all_tasks())
    p = sub.add_parser("train", help="train a task's model on the catalog and register the version",
                       formatter_class=formatter,
                       description="Runs the task's training query on a release, holds out 20%% (seeded), trains, "
                                   "and registers the version with its weights, query and held-out metrics; then "
                                   "queues inference of the new version over every release it applies to.")
    p.add_argument("task", choices=tasks)
    p.add_argument("--release", help="train on this release (default: the task's, sdss/dr14-skyserver-10k)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and the batches")
    p.add_argument("--epochs", type=int, help="most epochs (early stopping may end sooner; default: the model's)")
    p.add_argument("--no-backfill", action="store_true", help="do not queue inference of the new version")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("model", help="the model registry: list, show, register, retire", formatter_class=formatter)
    msub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = msub.add_parser("list", help="every model version, with its state and headline metrics")
    q.add_argument("--format", choices=["table", "csv", "ecsv", "votable"], default="table", help="output format")
    q = msub.add_parser("show", help="a model's versions: weights, training query and parameters, metrics")
    q.add_argument("name", help="model name, e.g. photoz-sdss")
    q.add_argument("--version", help="only this version")
    q = msub.add_parser("register", help="register a weights file trained elsewhere (sha256 checked)")
    q.add_argument("task", choices=tasks)
    q.add_argument("weights", help="weights file, as the task's model saves them")
    q.add_argument("--sha256", help="expected sha256 of the file (refused if it differs)")
    q.add_argument("--name", help="model name (default: the task's)")
    q.add_argument("--metrics", help="held-out metrics as a JSON object")
    q.add_argument("--training-set", help="how the training set was built")
    q.add_argument("--no-backfill", action="store_true", help="do not queue inference of the new version")
    q = msub.add_parser("retire", help="retire a version: no longer current; its outputs stay")
    q.add_argument("name")
    q.add_argument("version")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("infer", help="run a model over a release: predictions, embeddings, skipped sources")
    p.add_argument("model", help=f"a model name or a task ({', '.join(tasks)}: its model)")
    p.add_argument("release", help="release name, e.g. sdss/dr14-skyserver-10k")
    p.add_argument("--version", help="model version (default: the current one)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=cmd_infer)

    fmt = dict(choices=["table", "csv", "ecsv", "votable"], default="table", help="output format")
    p = sub.add_parser("cone", help="sources within a radius of a position, nearest first",
                       formatter_class=formatter)
    # A negative sexagesimal declination (-0d05m23s, -12:30:00) is an argument, not an option.
    p._negative_number_matcher = re.compile(r"^-\d[\d.:hdms'\"]*$")
    p.add_argument("ra", type=_ra_deg, help="ICRS right ascension: degrees, or hours as 12h30m49s")
    p.add_argument("dec", type=_dec_deg, help="ICRS declination: degrees, or 12d23m28s")
    p.add_argument("radius", type=_radius_arcsec, help="radius: arcsec, or with a unit (2arcmin, 0.5deg)")
    p.add_argument("--release", help="only this release")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_cone)

    p = sub.add_parser("similar", help="the sources most similar to a source in a model's embedding space",
                       formatter_class=formatter)
    p.add_argument("source_id", type=int, nargs="?",
                   help="healcat source_id (the first column of `healcat cone`)")
    p.add_argument("--object-id", help="the survey's own id instead, e.g. 0275-51910-0435")
    p.add_argument("--release", help="with --object-id: the release, when several have that id")
    p.add_argument("--model", default="photoz-sdss", help="embedding model")
    p.add_argument("--version", help="model version (default: the current one)")
    p.add_argument("-k", type=int, default=10, help="how many neighbours")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("enqueue", help="queue a job for the workers")
    p.add_argument("kind", choices=["ingest", "infer"])
    p.add_argument("target", help="ingest: a mapping name or path; infer: a release name (every model that applies)")
    p.add_argument("--file", help="ingest: read this file instead of the one the mapping names")
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser("worker", help="run queued jobs until stopped")
    p.add_argument("--once", action="store_true", help="stop when no job is due")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between polls of an empty queue")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("jobs", help="the queue: queued, running and failed jobs")
    p.add_argument("--all", action="store_true", help="include finished jobs")
    p.add_argument("--retry", type=int, metavar="JOB_ID", help="requeue a failed job")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("demo", help="load the SDSS sample, train, infer, and show a cone and a similarity search")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "similar" and (args.source_id is None) == (args.object_id is None):
        parser.error("similar: give a SOURCE_ID or --object-id, not both or neither")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.func(args)
    except HealcatError as exc:
        print(f"healcat: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
