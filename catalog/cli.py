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
DISPLAY_FORMATS = {"ra": ".7f", "dec": ".7f", "distance_arcsec": ".3f", "distance": ".5f",
                   "match_ra": ".7f", "match_dec": ".7f", "ra_a": ".7f", "dec_a": ".7f", "ra_b": ".7f",
                   "dec_b": ".7f", "separation_arcsec": ".3f"}


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
        print(db.libpq_url(db.reader_url(url) if args.reader else url))
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


def cmd_train(args: argparse.Namespace) -> None:
    from ingest.inference import train_photoz

    model = train_photoz(db.engine(), args.release, seed=args.seed, epochs=args.epochs)
    print(f"{model.name} version {model.version} ({model.weights_sha256[:12]}): {_metrics_line(model.metrics)}")


def cmd_infer(args: argparse.Namespace) -> None:
    from ingest.inference import run_photoz

    result = run_photoz(db.engine(), args.release, version=args.version, device=args.device)
    print(f"run {result.run_id} on {result.device}: {result.n_predicted} predicted, {result.n_skipped} skipped")


def cmd_cone(args: argparse.Namespace) -> None:
    from catalog.search import cone_search

    _print_table(cone_search(args.ra, args.dec, args.radius, release=args.release), args.format)


def cmd_similar(args: argparse.Namespace) -> None:
    from catalog.search import similar, source_id_of

    source_id = args.source_id if args.object_id is None else source_id_of(args.object_id, release=args.release)
    _print_table(similar(source_id, model=args.model, k=args.k, version=args.version, where=_similar_filters(args),
                         release=args.in_release, mode=args.mode, ef_search=args.ef_search), args.format)


def _similar_filters(args: argparse.Namespace) -> list | None:
    """`similar`'s --cone, --mag and --z as filters for catalog.search.similar."""
    from catalog.models import Photometry, SpecRedshift
    from catalog.search import Cone

    filters = []
    if args.cone:
        ra, dec, radius = args.cone
        filters.append(Cone.from_arcsec(_ra_deg(ra), _dec_deg(dec), _radius_arcsec(radius)))
    if args.mag:
        band, lo, hi = args.mag
        filters += [Photometry.band == band, Photometry.mag.between(float(lo), float(hi))]
    if args.z:
        filters.append(SpecRedshift.z.between(*args.z))
    return filters or None


#: Input formats of `healcat xmatch` by file suffix (ingest.readers has a reader for each).
XMATCH_SUFFIXES = {".csv": "csv", ".ecsv": "ecsv", ".fits": "fits", ".fit": "fits", ".fits.gz": "fits",
                   ".xml": "votable", ".vot": "votable", ".votable": "votable"}


def cmd_xmatch(args: argparse.Namespace) -> None:
    from astropy.table import vstack

    from catalog.crossmatch import crossmatch
    from catalog.errors import QueryError
    from ingest.readers import read

    from ingest.mapping import data_dir

    path = Path(args.file)
    if not path.exists() and (data_dir() / path).exists():  # a survey file, named inside the data folder
        path = data_dir() / path
    fmt = args.input_format or next((f for suffix, f in XMATCH_SUFFIXES.items() if path.name.lower().endswith(suffix)),
                                    None)
    if fmt is None:
        raise QueryError(f"{path}: cannot tell the format from the name; give --input-format")
    chunks = [table for _, table in read(path, fmt)]
    table = vstack(chunks) if len(chunks) > 1 else chunks[0]
    epoch = args.epoch
    if epoch is not None:
        try:
            epoch = float(epoch)
        except ValueError:
            pass  # a column of epochs
    try:
        answer = crossmatch(table, args.radius, release=args.release, mode=args.mode, ra_col=args.ra_col,
                            dec_col=args.dec_col, pm_cols=args.pm_cols, epoch_jyear=epoch,
                            to_epoch_jyear=args.to_epoch, keep_bad=args.keep_bad)
    except QueryError as exc:
        raise QueryError(f"{path}: {exc}") from None
    _print_table(answer, args.format)


def cmd_xmatch_releases(args: argparse.Namespace) -> None:
    from catalog.crossmatch import crossmatch_releases

    _print_table(crossmatch_releases(args.release_a, args.release_b, args.radius, mode=args.mode), args.format)


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

            release_id_of(conn, args.target)  # an unknown release fails here, not five times in a worker
            job_args = {"task": "photoz", "release": args.target}
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
    keys = ("nmad", "bias", "outlier_fraction", "crps", "n_test")
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
    p.add_argument("--reader", action="store_true",
                   help="url: as the read-only role healcat_reader (SELECT and query functions only)")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("ingest", help="ingest a release through its mapping (idempotent)")
    p.add_argument("mapping", help="mapping name in ingest/mappings (e.g. sdss_dr14_skyserver_10k) or a .toml path")
    p.add_argument("--file", help="read this file instead of the one the mapping names")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("train", help="train a model on the catalog and register it", formatter_class=formatter)
    p.add_argument("task", choices=["photoz"])
    p.add_argument("release", help="train on this release's spectroscopic galaxies, e.g. sdss/dr14-skyserver-10k")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and the batches")
    p.add_argument("--epochs", type=int, help="most epochs (early stopping may end sooner; default: the model's)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("infer", help="run a model over a release and write predictions and embeddings")
    p.add_argument("task", choices=["photoz"])
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
    p.add_argument("--cone", nargs=3, metavar=("RA", "DEC", "RADIUS"),
                   help="only neighbours in this cone (as `healcat cone` reads them)")
    p.add_argument("--mag", nargs=3, metavar=("BAND", "MIN", "MAX"),
                   help="only neighbours with MIN <= mag <= MAX in BAND (e.g. sdss_r 14 18; the band's own system)")
    p.add_argument("--z", nargs=2, type=float, metavar=("MIN", "MAX"), help="only neighbours with a spec-z in [MIN, MAX]")
    p.add_argument("--in-release", help="only neighbours in this release")
    p.add_argument("--mode", choices=["auto", "exact", "approx"], default="auto",
                   help="exact ranking, HNSW index (approx), or by the filter's selectivity (auto)")
    p.add_argument("--ef-search", type=int, help="HNSW candidates per step in approx mode (default max(40, 2k))")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("xmatch", help="cross-match a table (CSV, ECSV, FITS, VOTable) with the catalog",
                       formatter_class=formatter,
                       description="Every row of FILE beside its nearest source within --radius (mode best; "
                                   "unmatched rows keep empty match columns) or beside every source within it "
                                   "(mode all), with the separation in arcsec. Positions are ICRS degrees.")
    p.add_argument("file", help="the table to match (a path, else one inside the survey data folder); "
                                "errors name its 1-based data rows")
    p.add_argument("--radius", type=_radius_arcsec, required=True,
                   help="match radius: arcsec, or with a unit (1arcsec, 0.5arcmin); at most 30 arcmin")
    p.add_argument("--release", help="only this release of the catalog")
    p.add_argument("--mode", choices=["best", "all"], default="best", help="nearest match, or all pairs")
    p.add_argument("--ra-col", help="RA column [deg] (default: ra, ra_deg, raj2000 or ra_icrs)")
    p.add_argument("--dec-col", help="Dec column [deg] (default: dec, dec_deg, dej2000, ...)")
    p.add_argument("--input-format", choices=sorted(set(XMATCH_SUFFIXES.values())),
                   help="format of FILE (default: from its suffix)")
    p.add_argument("--pm-cols", nargs=2, metavar=("PMRA", "PMDEC"),
                   help="proper-motion columns [mas/yr, PMRA times cos Dec]: move positions to --to-epoch")
    p.add_argument("--epoch", help="with --pm-cols: the input's epoch, a Julian year (2000.0) or a column")
    p.add_argument("--to-epoch", type=float, help="with --pm-cols: the catalog's epoch (Gaia DR3: 2016.0)")
    p.add_argument("--keep-bad", action="store_true",
                   help="keep rows with bad positions, unmatched, with the reason in xmatch_problem")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_xmatch)

    p = sub.add_parser("xmatch-releases", help="cross-match two releases in the catalog", formatter_class=formatter)
    p.add_argument("release_a", help="every positioned source of this release is matched ...")
    p.add_argument("release_b", help="... with the sources of this one")
    p.add_argument("--radius", type=_radius_arcsec, required=True, help="match radius: arcsec, or with a unit")
    p.add_argument("--mode", choices=["best", "all"], default="best", help="nearest match, or all pairs")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_xmatch_releases)

    p = sub.add_parser("enqueue", help="queue a job for the workers")
    p.add_argument("kind", choices=["ingest", "infer"])
    p.add_argument("target", help="ingest: a mapping name or path; infer: a release name (runs photo-z)")
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
