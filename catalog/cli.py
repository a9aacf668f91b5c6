"""``healcat``: the command line. ``healcat --help`` lists everything."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import astropy.units as u
import sqlalchemy as sa
from astropy.coordinates import Angle
from astropy.table import MaskedColumn, Table

from catalog import db, settings
from catalog.errors import HealcatError, first_line, lost_connection, query_error
from catalog.search.similar import DEFAULT_MODEL


def _ra_deg(text: str) -> float:
    """RA in degrees, or sexagesimal hours such as 12h30m49.4s / 12:30:49.4 (hours in [0, 24))."""
    angle = _angle(text, u.hourangle)
    if angle.unit == u.hourangle and not 0 <= angle.hour < 24:
        raise argparse.ArgumentTypeError(f"not an RA: {text!r} is {angle.hour:g} h; hours are in [0, 24)")
    return float(angle.deg)


def _dec_deg(text: str) -> float:
    """Dec in degrees, decimal or sexagesimal (-0d05m23s, -0:05:23); never in hours."""
    angle = _angle(text, u.deg)
    if angle.unit == u.hourangle:
        raise argparse.ArgumentTypeError(f"not a Dec: {text!r} is in hours; a declination is in degrees "
                                         "(-0d05m23s, -0:05:23 or -0.0897)")
    return float(angle.deg)


def _angle(text: str, sexagesimal_unit: u.UnitBase) -> Angle:
    """An angle as typed: a bare number in degrees, one with its unit (12h30m, 10d30m, 1.5deg) in that
    unit, a sexagesimal one without (12:30:49.4) in ``sexagesimal_unit``."""
    try:
        return Angle(float(text), unit=u.deg)
    except ValueError:
        try:
            try:
                return Angle(text)  # the unit the text carries
            except u.UnitsError:  # none
                return Angle(text, unit=sexagesimal_unit)
        except (ValueError, u.UnitsError) as exc:
            raise argparse.ArgumentTypeError(f"not an angle: {text!r} ({exc})") from None


#: The forms of a radius, for the error that refuses one.
RADIUS_FORMS = "a number with an angle unit (10arcsec, 1.5arcmin, 0.1deg) or a bare number of arcsec (10)"


def _radius_arcsec(text: str) -> float:
    """A radius: a bare number is arcsec; '2arcmin', '0.5deg', '30 arcsec' carry their unit. Anything
    else (astropy reads '10amin' as atto-minutes, and '10"' is no unit of its) is one short error."""
    try:
        radius = float(text)
    except ValueError:
        try:
            radius = u.Quantity(text).to_value(u.arcsec)
        except (TypeError, ValueError, u.UnitsError):
            raise argparse.ArgumentTypeError(f"{text!r} is no angle: give {RADIUS_FORMS}") from None
    if radius == 0 and re.search(r"[1-9]", re.split(r"[eE]", text)[0]):  # 1e-400: not 0, but no float holds it
        raise argparse.ArgumentTypeError(f"{text!r} is below any radius a number holds (a float underflows to 0)")
    return radius


#: How the terminal shows columns (CSV, ECSV and VOTable keep full precision).
#: What a search's positional argument may look like with a leading minus and still be one, not an
#: option: -12.5, -.5, -1e-3, sexagesimal -0d05m23s or -12:30:00, a polygon vertex -10,0.
NEGATIVE = re.compile(r"^-\.?\d[\d.:hdms'\"eE+,-]*$")

DISPLAY_FORMATS = {"ra": ".7f", "dec": ".7f", "distance_arcsec": ".3f", "distance": ".5f",
                   "match_ra": ".7f", "match_dec": ".7f", "ra_a": ".7f", "dec_a": ".7f", "ra_b": ".7f",
                   "dec_b": ".7f", "separation_arcsec": ".3f"}


def for_display(table: Table) -> Table:
    shown = table.copy(copy_data=False)
    for name, spec in DISPLAY_FORMATS.items():
        if name in shown.colnames and shown[name].dtype.kind == "f":
            shown[name].format = spec
    return shown


def _print_table(table: Table, fmt: str, icrs: tuple[str, ...] = ("ra", "dec")) -> None:
    """``table`` on stdout; a VOTable's ``icrs`` columns (healcat's positions: RA, Dec pairs) refer to an
    ICRS COOSYS, and they and the catalog's columns (catalog.service.FIELDS) carry UCDs."""
    if fmt == "table":
        for_display(table).pprint_all()
        return
    if fmt == "votable":
        buffer = io.BytesIO()
        _votable(table, icrs).to_xml(buffer)
        sys.stdout.write(buffer.getvalue().decode())
        return
    buffer = io.StringIO()
    if fmt == "csv":
        table = _one_value_a_cell(table)
    table.write(buffer, format={"csv": "ascii.csv", "ecsv": "ascii.ecsv"}[fmt])
    sys.stdout.write(buffer.getvalue())


def _one_value_a_cell(table: Table) -> Table:
    """``table`` for CSV: a column of K values a row (a mixture's K components) as K columns, name_0 ..."""
    flat = Table()
    for name in table.colnames:
        column = table[name]
        if column.ndim == 1:
            flat[name] = column
        for i in range(column.shape[1] if column.ndim == 2 else 0):
            flat[f"{name}_{i}"] = column[:, i]
    return flat


def _votable(table: Table, icrs: tuple[str, ...]):
    """``table`` as a VOTable (astropy's, 1.4) with an ICRS COOSYS for the ``icrs`` columns, and the
    UCD1+ words and descriptions the VO service gives the columns it shares (an input's own columns,
    as xmatch returns them, keep what they had). A unit VOUnit cannot write (``dex(yr)``: a logarithm)
    is said in the field's description instead, so that the VOTable validates. The table's meta of one
    value each (what a similarity search read: model, model_version, releases) become INFOs, as the VO
    service gives them (astropy's from_table leaves the meta out); its frame is the COOSYS."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import CooSys, Info

    from catalog.service import FIELDS

    vot = from_table(table)
    vot.resources[0].infos.extend(Info(name=name, value=str(value)) for name, value in table.meta.items()
                                  if name != "frame" and isinstance(value, (str, int, float)))
    # ... and a list of numbers (predictions' pdf_at: the grid the pdf column is on) as its values, blank-separated
    vot.resources[0].infos.extend(
        Info(name=name, value=" ".join(repr(float(v)) for v in value)) for name, value in table.meta.items()
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                              for v in value))
    for field, column in zip(vot.get_first_table().fields, table.itercols()):
        if column.unit is not None and not _vounit(column.unit):
            field.unit = None
            field.description = f"{field.description or column.name} [{column.unit}]"
    positions = dict(zip(icrs, ("pos.eq.ra", "pos.eq.dec") * (len(icrs) // 2)))
    if positions:
        vot.resources[0].coordinate_systems.append(CooSys(ID="icrs", system="ICRS"))
    for field in vot.get_first_table().fields:
        if field.name in positions:
            field.ref, field.ucd = "icrs", positions[field.name] + (";meta.main" if field.name in ("ra", "dec") else "")
        elif field.name in FIELDS and field.name not in ("ra", "dec"):
            field.description, field.ucd = FIELDS[field.name][0], FIELDS[field.name][2]
        elif field.name == "separation_arcsec":  # a cross-match's (its description: the table's)
            field.ucd = "pos.angDistance"
        elif field.name in ("source_id_a", "object_id_a", "source_id_b", "object_id_b"):  # xmatch-releases'
            field.ucd = "meta.id"
    return vot


def _vounit(unit: u.UnitBase) -> bool:
    """Whether VOUnit writes ``unit`` (not ``dex``, nor a function unit such as ``dex(yr)``)."""
    try:
        unit.to_string("vounit")
    except ValueError:
        return False
    return True


# --- commands ------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> None:
    if args.action == "reader":
        _db_reader(args)
        return
    if args.names or args.password_env:
        raise HealcatError(f"db {args.action}: names and --password-env are for `db reader add|drop`")
    if args.reader and args.action in ("up", "stop"):
        raise HealcatError(f"db {args.action}: --reader is for url, psql and status (up and stop act as the owner)")
    if args.action == "stop":
        if not db.uses_embedded():
            raise HealcatError("db stop: HEALCAT_DATABASE_URL is set; healcat does not manage that server")
        print("stopped" if db.EmbeddedServer().stop() else "not running")
        return
    if args.action == "status" and db.uses_embedded() and not db.EmbeddedServer().running():
        print(f"embedded server: not running (data in {db.EmbeddedServer().pgdata})")
        return
    if args.reader:
        _check_reader(f"db {args.action}", args.reader)
    if args.action == "psql":
        _exec_psql(db.reader_url(role=args.reader) if args.reader else db.database_url())
    url = db.database_url()
    if args.action == "url":
        print(db.libpq_url(db.reader_url(url, args.reader) if args.reader else url))
    elif args.action == "up":
        try:
            db.migrate(url)
        except sa.exc.DBAPIError as exc:  # what an operator can fix: the server's words, not a traceback
            sqlstate, diag = getattr(exc.orig, "sqlstate", None), getattr(exc.orig, "diag", None)
            if sqlstate not in MIGRATION_FIXABLE:
                raise
            said = [diag.message_detail, diag.message_hint] if diag else []
            if "extension \"vector\"" in first_line(exc):
                said = ["pgvector is not installed on that server" if sqlstate in ("0A000", "58P01") else
                        "an administrator may run CREATE EXTENSION vector in that database, then healcat db up again"]
            raise HealcatError(f"db up: a migration failed, and its transaction rolled back (the schema is as it "
                               f"was): {first_line(exc)}" + "".join(f" ({s})" for s in said if s)) from None
        print(f"database ready at {db.shown_url(url)}")
    else:
        engine = sa.create_engine(db.reader_url(url, args.reader) if args.reader else url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            user = conn.scalar(sa.text("SELECT current_user"))
            version = conn.scalar(sa.text("SHOW server_version"))
            vector = conn.scalar(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
            revision = db.current_revision(conn)
            reader = conn.execute(sa.text("SELECT rolconfig, rolconnlimit FROM pg_roles WHERE rolname = :r"),
                                  {"r": db.READER_ROLE}).first()
        where = f"embedded in {db.EmbeddedServer().pgdata}" if db.uses_embedded() else "HEALCAT_DATABASE_URL"
        print(f"server: PostgreSQL {version} ({where}), as {user}\npgvector: {vector or 'not installed'}")
        print(f"schema revision: {revision or 'none (run: healcat db up)'}")
        print(f"read-only role {db.READER_ROLE}: {_reader_limits(reader)}")


def _reader_limits(role) -> str:
    """The read-only role's limits as its role says them (pg_roles' rolconfig, rolconnlimit), or why not."""
    if role is None:
        return "not there (healcat db up makes it)"
    settings = dict(item.split("=", 1) for item in role.rolconfig or ())
    limits = [f"{name} {value}" for name, value in settings.items()]
    limits.append("no connection limit" if role.rolconnlimit < 0 else f"connection limit {role.rolconnlimit}")
    unset = "" if "statement_timeout" in settings else (
        " (its limits are not set: healcat db up, as a role that may alter it, sets them; its warnings say what "
        "an administrator runs)")
    return ", ".join(limits) + unset


def _check_reader(command: str, role: str) -> None:
    """A HealcatError unless ``role`` is healcat's shared read-only role or an astronomer's own (made by
    `healcat db reader add`): a URL for a role that is not there only fails later, as 'cannot reach'."""
    if role == db.READER_ROLE:  # the migrations make it
        return
    engine = sa.create_engine(db.database_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        astronomer = db.is_astronomer(conn, role)
    if astronomer is None:
        raise HealcatError(f"{command}: --reader {role}: no such role; `healcat db reader add {role}` makes it "
                           f"(`healcat db reader list` lists them; --reader alone is {db.READER_ROLE})")
    if not astronomer:
        raise HealcatError(f"{command}: --reader {role}: not a read-only role of healcat's (not made by "
                           f"`healcat db reader add`); name one of `healcat db reader list`, or {db.READER_ROLE}")


def _db_reader(args: argparse.Namespace) -> None:
    """`healcat db reader list | add NAME | drop NAME`: the astronomers' own read-only roles."""
    what, *names = args.names or ["list"]
    if what not in ("list", "add", "drop") or len(names) != (what != "list"):
        raise HealcatError("db reader: list, add NAME or drop NAME")
    if args.reader:
        raise HealcatError("db reader: acts as the owner (--reader is for url, psql and status)")
    if args.password_env and what != "add":
        raise HealcatError("db reader: --password-env is for add")
    url = db.database_url()
    if what == "add":
        password = None
        if args.password_env:
            password = os.environ.get(args.password_env)
            if not password:
                raise HealcatError(f"db reader add: --password-env {args.password_env}: that variable is not set or empty")
        db.add_astronomer(url, names[0], password)
        print(f"{names[0]}: read-only, with healcat_reader's limits; connect with "
              f"psql \"$(healcat db url --reader {shlex.quote(names[0])})\"")  # a name the shell would read
    elif what == "drop":
        ended = db.drop_astronomer(url, names[0])
        print(f"{names[0]}: dropped" + (f" ({ended} session(s) ended)" if ended else ""))
    else:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            rows = db.astronomers(conn)
        for row in rows:
            print(f"{row.name}\tconnection limit {row.connection_limit}\t{row.sessions} session(s) now")
        if not rows:
            print("no astronomer has a role of their own (`healcat db reader add NAME`); everyone reads as healcat_reader")


def _exec_psql(url: sa.URL) -> None:
    """Replace this process with psql on the catalog: the system's, else the embedded server's own.
    The password goes in PGPASSWORD: any local user may read a process's arguments."""
    import shutil

    from catalog.db import embedded_bin

    psql = shutil.which("psql") or str(embedded_bin() / "psql")
    password = url.password or url.query.get("password")
    env = {**os.environ, "PGPASSWORD": password} if password else dict(os.environ)
    os.execve(psql, [psql, db.libpq_url(db.without_password(url))], env)


RELEASE_DATE_HELP = ("the release's date instead of the mapping's [release] date: it places the release among the "
                     "survey's, the newest current (a re-release through the same mapping takes the mapping's)")
RELEASE_VERSION_HELP = ("the release's version instead of the mapping's [release] version (a new release of the "
                        "survey through the same mapping, e.g. with --file)")


def _load_mapping(target: str, version: str | None, date: str | None):
    """ingest.mapping.load_mapping, whose error for a mapping that is not there also lists the shipped ones."""
    from catalog.errors import MappingError
    from ingest.mapping import MAPPINGS_DIR, load_mapping

    try:
        return load_mapping(target, version, date)
    except MappingError as exc:
        if not str(exc).startswith("no mapping file "):
            raise
        import difflib

        names = sorted(p.stem for p in MAPPINGS_DIR.glob("*.toml"))
        stem = Path(target).stem
        near = ([n for n in names if n.startswith(stem)] if stem else []) or difflib.get_close_matches(stem, names, n=1)
        guess = f" (did you mean {' or '.join(near[:3])}?)" if near else ""
        raise MappingError(f"{exc}{guess}; the shipped mappings (by name, in {MAPPINGS_DIR}): {', '.join(names)}; "
                           "or give a .toml file's path") from None


def cmd_ingest(args: argparse.Namespace) -> None:
    from ingest.load import ingest_release

    engine = db.engine()
    result = ingest_release(_load_mapping(args.mapping, args.release_version, args.release_date), engine,
                            file=args.file)
    with engine.connect() as conn:  # published, or superseded at once (an older release loaded after a newer one)
        status = conn.scalar(sa.text("SELECT status FROM healcat.release WHERE release_id = :r"), {"r": result.release_id})
    state = f"already loaded ({status}), nothing changed" if result.already_loaded else status
    if status == "withdrawn":
        state += f" (`healcat release restore {result.release}` brings it back)"
    counts = ", ".join(f"{name.replace('_', ' ')} {n:,}" for name, n in result.row_counts.items())
    print(f"{result.release}: {state}; rows: {counts}")


def cmd_release_report(args: argparse.Namespace) -> None:
    from ingest.report import format_report, release_report

    print(format_report(release_report(db.engine(), args.name, examples=args.examples)))


def cmd_train(args: argparse.Namespace) -> None:
    from ingest.registry import train
    from ingest.tasks import get_task

    before = _current_model_id(get_task(args.task).model_name)
    t0 = time.perf_counter()
    model = train(db.engine(), args.task, args.releases, seed=args.seed, epochs=args.epochs)
    print(f"{model.name} version {model.version} ({model.weights_sha256[:12]}), {time.perf_counter() - t0:.0f} s: "
          f"{_metrics_line(model.metrics)}")
    _current_or_candidate(model, backfill=not args.no_backfill, current_before=before)


def _current_model_id(name: str) -> int | None:
    """The model_id of a model's current version, None if it has none."""
    from ingest import registry

    with db.engine().connect() as conn:
        current = registry.current_version(conn, name)
    return None if current is None else current.model_id


def _registered_ids(name: str) -> set[int]:
    """The model_ids of a model's versions registered so far."""
    from catalog.models import Model

    with db.engine().connect() as conn:
        return set(conn.execute(sa.select(Model.model_id).where(Model.name == name)).scalars())


def _current_or_candidate(model, *, backfill: bool, current_before: int | None) -> None:
    """Say whether a version just registered (or found registered) is current and why, and queue its
    backfill if it is current; if not, how to promote it anyway. ``current_before``: the model_id of
    the model's current version before the registration (the same version found again: already current)."""
    from ingest import registry

    engine = db.engine()
    with engine.connect() as conn:
        current = registry.current_version(conn, model.name)
        verdict = registry.challenge(model.task, model.metrics, registry.rival(conn, model))
    if current is not None and current.model_id == model.model_id:
        print("current: already the current version" if current_before == model.model_id else f"current: {verdict}")
        if backfill:
            jobs = registry.backfill(engine, model)
            print(f"backfill: {_count(len(jobs), 'infer job')} queued" + (f" ({', '.join(map(str, jobs))})" if jobs else ""))
        return
    stays = f"version {current.version} stays current" if current is not None else "no version is current"
    print(f"{_state(model, set())}, not current ({stays}): {verdict}; no backfill queued. To make it current "
          f"anyway: healcat model promote {model.name} {model.version}")


def cmd_infer(args: argparse.Namespace) -> None:
    from ingest.inference import run_model
    from ingest.tasks import all_tasks

    tasks = all_tasks()
    model = tasks[args.model].model_name if args.model in tasks else args.model
    result = run_model(db.engine(), model, args.release, version=args.version, device=args.device, lanes=args.lanes)
    for required, name, version, run in result.required:  # run first (idempotent: else already done)
        print(f"required {required}: {name} version {version}: {_run_line(run)}")
    print(_run_line(result))


def _run_line(result) -> str:
    """A run's line; a run done before predicted nothing now (it printed "0 predicted, 0 skipped", which
    read as that run's counts: `healcat model show` has them)."""
    if result.already_done:
        return f"run {result.run_id} on {result.device}: done before, nothing to do"
    return (f"run {result.run_id} on {result.device}: {result.n_predicted} predicted, {result.n_skipped} skipped "
            f"in {result.lanes} lane(s)")


def cmd_model(args: argparse.Namespace) -> None:
    from catalog.models import Model
    from catalog.search.similar import model_hint
    from ingest import registry
    from ingest.tasks import get_task

    engine = db.engine()
    if args.action == "register":
        try:
            metrics = json.loads(args.metrics) if args.metrics else None
        except json.JSONDecodeError as exc:
            raise HealcatError(f"model register: --metrics is not JSON ({exc}): {args.metrics!r}") from None
        name = args.name or get_task(args.task).model_name
        before = _current_model_id(name)
        known = _registered_ids(name)
        model = registry.register_weights_file(engine, args.task, args.weights, sha256=args.sha256, name=args.name,
                                               metrics=metrics, training_set=args.training_set)
        if model.model_id in known:  # the same weights (sha256) under the same name: that version, found again
            print(f"{model.name} version {model.version} ({model.weights_sha256[:12]}): these weights were already "
                  f"registered (as version {model.version}); nothing new registered")
        else:
            print(f"{model.name} version {model.version} ({model.weights_sha256[:12]}) registered for task {model.task}")
        _current_or_candidate(model, backfill=not args.no_backfill, current_before=before)
        return
    if args.action == "promote":
        model, jobs = registry.promote_model(engine, args.name, args.version)
        print(f"{model.name} version {model.version} is current (promoted {model.promoted_at:%Y-%m-%d %H:%M:%S}); "
              f"backfill: {_count(len(jobs), 'infer job')} queued")
        return
    if args.action == "retire":
        model = registry.retire_model(engine, args.name, args.version)
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
        hint = model_hint(conn, args.name) if args.action == "show" and not rows else ""
        runs = conn.execute(sa.text(
            "SELECT x.model_id, x.run_id, r.name AS release, x.device, x.started_at, x.finished_at, x.n_predicted, "
            "x.n_skipped, (SELECT string_agg(i.key || ' ' || coalesce(format('%s version %s (model_id %s)', m.name, "
            "m.version, m.model_id), 'none'), ', ' ORDER BY i.key) FROM jsonb_each_text(x.inputs) AS i "
            "LEFT JOIN healcat.model AS m ON m.model_id = i.value::int) AS inputs "
            "FROM healcat.inference_run AS x JOIN healcat.release AS r USING (release_id) "
            "WHERE x.model_id = ANY(:m) ORDER BY x.run_id"), {"m": [m.model_id for m in rows]}).all()
    if args.action == "show":
        if not rows:
            raise HealcatError(f"model show: no model {args.name!r}" + (f" version {args.version!r}" if args.version else "")
                               + hint)
        for m in rows:
            promoted = f", promoted {m.promoted_at:%Y-%m-%d %H:%M:%S}" if m.promoted_at else ""
            retired = f", retired {m.retired_at:%Y-%m-%d %H:%M:%S}" if m.retired_at else ""
            print(f"{m.name} version {m.version} ({_state(m, current)}), task {m.task}, {m.framework}, "
                  f"created {m.created_at:%Y-%m-%d %H:%M:%S}{promoted}{retired}")
            print(f"  weights: sha256 {m.weights_sha256} ({len(m.weights or b'')} bytes), {m.weights_path}")
            each = " (each as release_id, rows put together)" if "release_ids" in m.training_params else ""
            print(f"  training query, run with {json.dumps(m.training_params)}{each}:\n    "
                  + m.training_set.replace("\n", "\n    "))
            print(f"  hyperparameters: {json.dumps(m.hyperparams)}\n  metrics: {json.dumps(m.metrics)}")
            print("  runs:" if any(r.model_id == m.model_id for r in runs) else "  runs: none")
            for r in (r for r in runs if r.model_id == m.model_id):
                state = (f"finished {r.finished_at:%Y-%m-%d %H:%M:%S}: {r.n_predicted} predicted, {r.n_skipped} skipped"
                         if r.finished_at else "not finished (running, or died: the next run deletes its outputs)")
                print(f"    run {r.run_id} on {r.release}, {r.device}, started {r.started_at:%Y-%m-%d %H:%M:%S}, {state}"
                      + (f"; inputs: {r.inputs}" if r.inputs else ""))
        return
    table = Table(rows=[(m.name, m.version, m.task, _state(m, current), str(m.created_at)[:19],
                         m.weights_sha256[:12], _metrics_line(m.metrics)) for m in rows],
                  names=["name", "version", "task", "state", "created_at", "sha256", "metrics"],
                  dtype=[str] * 7)
    _print_table(table, args.format)


def query_cone(args: argparse.Namespace):
    from catalog.search import cone_search

    return cone_search(args.ra, args.dec, args.radius, release=args.release)


def _at_least(minimum: float, kind: type = int, maximum: float | None = None):
    """An argparse type: a finite number of ``kind`` no smaller than ``minimum`` (nor larger than ``maximum``)."""
    def parse(text: str):
        try:
            value = settings.number_at_least(text, minimum, kind)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {text}")
        return value

    return parse


def _vertex(text: str) -> tuple[float, float]:
    """A polygon vertex 'RA,DEC' (each in degrees, or sexagesimal as for cone)."""
    ra, sep, dec = text.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"not a vertex RA,DEC: {text!r}")
    return _ra_deg(ra.strip()), _dec_deg(dec.strip())


def query_box(args: argparse.Namespace):
    from catalog.healpix import box_ra_width_deg
    from catalog.search import box_search

    if 180 < (width := box_ra_width_deg(args.ra_min, args.ra_max)) < 360:  # a swapped pair: the sky less a sliver
        print(f"note: RA from {args.ra_min:g} eastwards to {args.ra_max:g} spans {width:g} deg (through RA 0); "
              f"for the {360 - width:g} deg between them give RA_MIN {args.ra_max:g} and RA_MAX {args.ra_min:g}",
              file=sys.stderr)
    return box_search(args.ra_min, args.ra_max, args.dec_min, args.dec_max, release=args.release)


def query_polygon(args: argparse.Namespace):
    from catalog.search import polygon_search

    return polygon_search(args.vertices, release=args.release)


def query_ellipse(args: argparse.Namespace):
    from catalog.search import ellipse_search

    return ellipse_search(args.ra, args.dec, args.semi_major, args.semi_minor, args.pa, release=args.release)


def query_moc(args: argparse.Namespace):
    from catalog.search import moc_search

    return moc_search(args.moc, release=args.release)


def query_nearest(args: argparse.Namespace):
    from catalog.search import nearest

    return nearest(args.ra, args.dec, args.k, release=args.release)


def cmd_query(args: argparse.Namespace) -> None:
    _print_table(args.query(args), args.format)


def cmd_skymap(args: argparse.Namespace) -> None:
    from catalog.search import density_of, sky_density
    from catalog.skymap import check_png_name, write_skymap

    check_png_name(args.png)
    folder = Path(args.png).resolve().parent
    if not folder.is_dir():
        raise HealcatError(f"skymap: no folder {folder} to write {args.png} in")
    if args.search and args.search[0].startswith("--"):
        raise HealcatError(f"skymap: options go before the PNG's name ({args.search[0]} came after it); "
                           "what follows the name is a search command line")
    if args.search and args.release:
        raise HealcatError(f"skymap: --release is for the whole-catalog map; a search takes its own "
                           f"(`{' '.join(args.search)} --release {args.release}`)")
    if not 0 <= args.order <= 10:
        raise HealcatError(f"skymap: --order must be 0 to 10 (a Mollweide image of finer pixels is noise), "
                           f"got {args.order}")
    if args.search:
        query = build_parser().parse_args(args.search)
        if not hasattr(query, "query"):
            raise HealcatError(f"skymap: {args.search[0]!r} is not a search (cone, box, polygon, ellipse, moc, nearest)")
        sources = query.query(query)
        density = density_of(sources, args.order)
        what = f"{len(sources)} sources of `healcat {' '.join(args.search)}`"
    else:
        density = sky_density(args.order, release=args.release)
        what = f"{int(density['n'].sum())} sources{f' of {args.release}' if args.release else ''}"
    write_skymap(density, args.order, args.png, args.width)
    print(f"{args.png}: {what} in {len(density)} order-{args.order} pixels (Mollweide, "
          f"{args.width}x{args.width // 2} px)")


def cmd_export_hats(args: argparse.Namespace) -> None:
    from catalog.hats_export import export_hats

    result = export_hats(args.release, args.out_dir, max_rows_per_partition=args.max_rows_per_partition,
                         highest_order=args.highest_order)
    orders = result.partitions[:, 0]
    left_out = f"; {result.n_without_position} sources without a position left out" if result.n_without_position else ""
    print(f"{result.path}: {result.n_rows} rows of {result.release} in {len(orders)} partitions (orders {orders.min()}"
          f"-{orders.max()}, at most {result.partitions[:, 2].max()} rows){left_out}; lsdb.open_catalog opens it")


def cmd_similar(args: argparse.Namespace) -> None:
    from catalog.errors import QueryError
    from catalog.search import similar, source_id_of

    source_id = args.source_id if args.object_id is None else source_id_of(args.object_id, release=args.release)
    try:
        answer = similar(source_id, model=args.model, k=args.k, version=args.version, where=_similar_filters(args),
                         release=args.in_release, mode=args.mode, ef_search=args.ef_search)
    except QueryError as exc:  # the SQL function's hint names its parameter; here it is an option
        if "(release_name)" not in str(exc):
            raise
        aside = "; --release only picks which release's copy of --object-id is the query" if args.release else ""
        raise QueryError(str(exc).replace("(release_name)", f"(--in-release RELEASE{aside})")) from None
    _print_table(answer, args.format)


def cmd_predictions(args: argparse.Namespace) -> None:
    from catalog.objects import predictions
    from catalog.search import source_id_of

    ids = [*args.source_id, *(source_id_of(object_id, release=args.release) for object_id in args.object_id)]
    _print_table(predictions(ids, args.model, version=args.version, pdf_at=args.pdf_at), args.format, icrs=())


def _similar_filters(args: argparse.Namespace) -> list | None:
    """`similar`'s --cone, --mag and --z as filters for catalog.search.similar."""
    from catalog.errors import QueryError
    from catalog.models import Photometry, SpecRedshift
    from catalog.search import Cone

    filters = []
    if args.cone:
        ra, dec, radius = args.cone
        try:
            filters.append(Cone.from_arcsec(_ra_deg(ra), _dec_deg(dec), _radius_arcsec(radius)))
        except (argparse.ArgumentTypeError, QueryError) as exc:  # the text, or the value's range
            raise HealcatError(f"similar: --cone RA DEC RADIUS: {exc}") from None
    if args.mag:
        band, lo, hi = args.mag
        try:
            lo, hi = float(lo), float(hi)
        except ValueError:
            raise HealcatError(f"similar: --mag BAND LO HI takes magnitudes, got {lo!r} {hi!r}") from None
        filters += [Photometry.band == band, Photometry.mag.between(lo, hi)]
    if args.z:
        filters.append(SpecRedshift.z.between(*args.z))
    return filters or None


#: Input formats of `healcat xmatch` by file suffix (ingest.readers has a reader for each).
XMATCH_SUFFIXES = {".csv": "csv", ".ecsv": "ecsv", ".fits": "fits", ".fit": "fits", ".fits.gz": "fits",
                   ".xml": "votable", ".vot": "votable", ".votable": "votable"}


AT_EPOCH_HELP = ("match at this epoch, a Julian year: catalog sources with proper motions are moved to it "
                 "from their reference epochs")


def _stacked(chunks: list[Table]) -> Table:
    """A file's chunks as one table. Text files are typed chunk by chunk, so a column of numbers in
    one chunk may be text in the next (ids 12345, then J1234+56): such a column is text throughout
    (integers in one chunk and decimals in another stay numbers)."""
    from astropy.table import vstack

    if len(chunks) == 1:
        return chunks[0]
    for name in chunks[0].colnames:
        kinds = {chunk[name].dtype.kind for chunk in chunks}
        if len(kinds) > 1 and kinds - set("biuf"):  # numbers of two kinds stack as floats
            for chunk in chunks:
                chunk[name] = chunk[name].astype(str)
    return vstack(chunks)


def cmd_xmatch(args: argparse.Namespace) -> None:
    from catalog.crossmatch import crossmatch, declare_votable_frames
    from catalog.errors import QueryError
    from ingest.readers import ReadOptions, read

    from ingest.mapping import data_dir

    path = Path(args.file)
    if not path.exists() and (data_dir() / path).exists():  # a survey file, named inside the data folder
        path = data_dir() / path
    fmt = args.input_format or next((f for suffix, f in XMATCH_SUFFIXES.items() if path.name.lower().endswith(suffix)),
                                    None)
    if fmt is None:
        raise QueryError(f"{path}: cannot tell the format from the name; give --input-format")
    # your ids as you wrote them: a column of integers with one written 0042 is text, not 42
    chunks = [chunk for _, chunk in read(path, fmt, ReadOptions(chunk_rows=sys.maxsize, padded_text=True))]
    if not chunks:  # a header and no rows
        raise QueryError(f"{path}: no data rows: nothing to cross-match")
    table = _stacked(chunks)
    if fmt == "votable":  # the frame its COOSYS declares: converted to ICRS, or refused naming it
        declare_votable_frames(table, path)
    epoch = args.epoch
    if epoch is not None:
        try:
            epoch = float(epoch)
        except ValueError:
            pass  # a column of epochs
    try:
        answer = crossmatch(table, args.radius, release=args.release, mode=args.mode, ra_col=args.ra_col,
                            dec_col=args.dec_col, pm_cols=args.pm_cols, epoch_jyear=epoch,
                            to_epoch_jyear=args.to_epoch, at_epoch_jyear=args.at_epoch, keep_bad=args.keep_bad)
    except QueryError as exc:
        raise QueryError(f"{path}: {exc}") from None
    _print_table(answer, args.format, icrs=("match_ra", "match_dec"))  # ra, dec: the input's, in its frame


def cmd_xmatch_releases(args: argparse.Namespace) -> None:
    from catalog.crossmatch import crossmatch_releases

    _print_table(crossmatch_releases(args.release_a, args.release_b, args.radius, mode=args.mode,
                                     at_epoch_jyear=args.at_epoch), args.format, icrs=("ra_a", "dec_a", "ra_b", "dec_b"))


def cmd_enqueue(args: argparse.Namespace) -> None:
    from ingest import queue

    if args.kind == "ingest":
        from ingest.load import refuse_file

        # fail here, not in the worker, on a bad mapping
        mapping = _load_mapping(args.target, args.release_version, args.release_date)
        refuse_file(mapping, args.file)
        target = str(mapping.path.resolve()) if Path(args.target).suffix else args.target
        job_args = {"mapping": target, **({"file": str(mapping.input_path(args.file))} if args.file else {}),
                    **({"version": args.release_version} if args.release_version is not None else {}),
                    **({"date": mapping.release_date.isoformat()} if args.release_date is not None else {})}
    with db.engine().begin() as conn:
        if args.kind == "infer":
            from ingest.registry import enqueue_inference, release_id_of

            jobs = enqueue_inference(conn, release_id_of(conn, args.target, "enqueue infer"))  # unknown, withdrawn: fail
            print(f"{_count(len(jobs), 'infer job')} queued for {args.target}" + (f" ({', '.join(map(str, jobs))})" if jobs else ""))
            return
        job_id, created = queue.enqueue(conn, args.kind, job_args)
    print(f"job {job_id} {'queued' if created else 'already queued or running'}: {args.kind} {job_args}")


def cmd_worker(args: argparse.Namespace) -> None:
    from ingest.worker import Worker, run_pool

    if args.concurrency > 1:
        codes = run_pool(args.concurrency, once=args.once, poll_s=args.poll)
        print(f"{_count(len(codes), 'worker')} stopped (exit codes {codes})")
        if args.once and any(codes):  # a job failed, or a member was killed: a cron job's mail should say so
            raise HealcatError("worker: a member's job failed or a member was killed (`healcat jobs` lists failures)")
        return
    worker = Worker(db.engine())
    worker.stop_on_signals()
    logging.getLogger().setLevel(logging.INFO)
    n = worker.run(once=args.once, poll_s=args.poll)
    print(f"worker {worker.name}: {_count(n, 'job')} run")
    if args.once and worker.failed:  # recorded and, where it may pass, queued again; the exit status says so (cron)
        raise HealcatError(f"worker {worker.name}: {_count(worker.failed, 'job')} failed (`healcat jobs` lists them)")


def cmd_jobs(args: argparse.Namespace) -> None:
    from catalog.models import Job
    from ingest import queue

    with db.engine().connect() as conn:
        if args.retry is not None:
            if not queue.retry(conn, args.retry):
                status = conn.scalar(sa.select(Job.status).where(Job.job_id == args.retry))
                if status is None:
                    raise HealcatError(f"jobs: no job {args.retry} (`healcat jobs --all` lists them)")
                raise HealcatError(f"jobs: job {args.retry} is {status}, not failed: only a failed job is retried")
            print(f"job {args.retry} requeued")
            return
        if args.cancel is not None:
            was = queue.cancel(conn, args.cancel)
            if was is None:
                raise HealcatError(f"jobs: no job {args.cancel}")
            print(f"job {args.cancel} ({was}) cancelled: removed from the queue")
            return
        # A running job whose lock nobody holds has lost its worker (the next claim requeues it).
        held = sa.literal_column(queue.lock_held("job.job_id"))
        query = sa.select(Job.job_id, Job.kind, Job.status, Job.attempts, Job.max_attempts, Job.args,
                          Job.run_after, Job.started_at, Job.worker, Job.progress_done, Job.progress_total,
                          Job.parent_job_id, Job.error, held.label("held"),
                          (sa.func.coalesce(Job.finished_at, sa.func.now()) - Job.started_at).label("elapsed")
                          ).order_by(Job.job_id)
        if not args.all:
            query = query.where(Job.status != "done")
        rows = conn.execute(query).all()
    # A terminal's line: the error and the args cut (their start and end); files get them whole.
    error_width, args_width = (80, 60) if args.format == "table" else (None, None)
    table = Table(rows=[(r.job_id, r.kind, r.status, f"{r.attempts}/{r.max_attempts}", _progress(r),
                         _cut(json.dumps(r.args), args_width),
                         str(r.run_after)[:19] if r.status == "queued" else "",  # due then; else nothing is due
                         str(r.started_at)[:19] if r.status != "queued" and r.started_at else "",
                         _elapsed(r.elapsed) if r.status != "queued" and r.elapsed is not None else "",
                         (r.worker or "") + (" (gone)" if r.status == "running" and not r.held else ""),
                         r.parent_job_id or 0, _cut(_job_error(r), error_width)) for r in rows],
                  names=["job_id", "kind", "status", "attempts", "progress", "args", "run_after", "started",
                         "elapsed", "worker", "parent", "error"],
                  dtype=[int, str, str, str, str, str, str, str, str, str, int, str])
    table["parent"] = MaskedColumn(table["parent"], mask=[r.parent_job_id is None for r in rows])  # none: empty
    _print_table(table, args.format)


def _job_error(job) -> str:
    """A job's error's first line; a queued or running job's is an earlier attempt's, and says so."""
    if not job.error:
        return ""
    line = job.error.split("\n")[0]
    if job.status == "failed":
        return line
    earlier = job.attempts - (job.status == "running")
    return f"attempt {earlier}: {line}" if earlier else f"before it was retried: {line}"


def _elapsed(delta) -> str:
    """A duration as H:MM:SS."""
    seconds = max(0, int(delta.total_seconds()))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _cut(text: str, width: int | None) -> str:
    """``text`` in ``width`` characters, its start and its end (where an error says what to do)."""
    if width is None or len(text) <= width:
        return text
    half = (width - 5) // 2
    return f"{text[:half]} ... {text[-(width - 5 - half):]}"


def _progress(job) -> str:
    if job.progress_done is None:
        return ""
    if job.progress_total:
        return f"{job.progress_done}/{job.progress_total} ({100 * job.progress_done / job.progress_total:.0f}%)"
    return str(job.progress_done)


#: SQLSTATEs of a failed migration that an operator fixes (a privilege, healcat's own RAISE EXCEPTION
#: saying what to run, an extension not there): one line; anything else keeps its traceback.
MIGRATION_FIXABLE = ("42501", "P0001", "0A000", "58P01")


def _count(n: int, noun: str) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def cmd_scheduler(args: argparse.Namespace) -> None:
    from ingest.scheduler import Scheduler, check_sources, interval_from_env, sources_from_env

    sources = args.source or sources_from_env()
    if not sources:
        raise HealcatError("scheduler: no release sources; give --source PATH or set HEALCAT_RELEASE_SOURCES")
    check_sources(sources)
    interval = args.interval if args.interval is not None else interval_from_env()
    scheduler = Scheduler(db.engine(), sources, settle_s=args.settle)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: scheduler.stopping.set())
    logging.getLogger().setLevel(logging.INFO)
    n = scheduler.run(once=args.once, interval_s=interval)
    print(f"scheduler {scheduler.name}: {_count(n, 'ingest job')} queued")
    if args.once and scheduler.skipped:  # cron's mail, a monitor: a drop that cannot be loaded is an error
        raise HealcatError(f"scheduler: {len(scheduler.skipped)} skipped, mappings or sources (the errors above)")


def cmd_serve(args: argparse.Namespace) -> None:
    from catalog.service import make_server, warn_of_connection_limit
    from catalog.watchdog import Elsewhere

    if not args.no_watchdog and db.database_url().username == db.READER_ROLE:  # it would sweep nothing
        raise HealcatError(f"serve: HEALCAT_DATABASE_URL is {db.READER_ROLE}'s, and the watchdog sweeps as the "
                           "owner: where workers run (each runs the watchdog), serve with --no-watchdog; else give "
                           "the owner's URL")
    _check_reader("serve", args.reader)  # never the owner, nor any role healcat did not make read-only
    # every query as a read-only role, under the reader's statement timeout, in read-only transactions
    engine = db.engine(reader=True, role=args.reader, read_only=True)
    with engine.connect() as conn:  # fail now, not at the first request: the role and the schema are there
        conn.execute(sa.text("SELECT 1 FROM healcat.release LIMIT 1"))
        warn_of_connection_limit(conn, args.threads)  # now, not as 503s under load
    server = make_server(engine, args.host, args.port, args.threads,
                         watchdog=Elsewhere() if args.no_watchdog else None)
    host, port = server.server_address[:2]
    logging.getLogger().setLevel(logging.INFO)
    print(f"serving http://{host}:{port}/ (Simple Cone Search: http://{host}:{port}/scs?RA=&DEC=&SR=; "
          f"similarity: /similar?SOURCE_ID=); Ctrl-C stops", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.dispose()  # its threads' sessions end with it (not left idle until the process exits)


def cmd_release_list(args: argparse.Namespace) -> None:
    from catalog.releases import list_releases

    with db.engine().connect() as conn:
        _print_table(list_releases(conn, args.survey), args.format)


def cmd_release_show(args: argparse.Namespace) -> None:
    from catalog.releases import show_release

    with db.engine().connect() as conn:
        info = show_release(conn, args.name)
    rows = [(key, ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else str(value))
            for key, value in info.items()]
    _print_table(Table(rows=rows, names=["field", "value"], dtype=[str, str]), args.format)


def cmd_release_diff(args: argparse.Namespace) -> None:
    from catalog.releases import diff_release, show_release

    with db.engine().connect() as conn:
        changes = diff_release(conn, args.name, args.change, args.fields)
        if not changes and not show_release(conn, args.name)["previous"]:  # not "nothing changed": nothing before
            print(f"{args.name} is its survey's first release: there is no previous release to diff against",
                  file=sys.stderr)
        _print_table(changes, args.format)


def cmd_release_withdraw(args: argparse.Namespace) -> None:
    from ingest.publish import withdraw

    with db.engine().begin() as conn:
        done = withdraw(conn, args.name, args.reason)
    print(f"{args.name}: withdrawn; {f'{done.published} is' if done.published else 'no release is'} its survey's "
          f"published release now{_queued(done.queued)} (`healcat release restore {args.name}` brings it back)")
    for release, n in done.joined.items():
        print(f"warning: {release} has {n:,} rows on {args.name}'s sources, which no current view reaches now; load "
              f"it again, as a new version, against {done.published or 'a published release'}", file=sys.stderr)


def cmd_release_restore(args: argparse.Namespace) -> None:
    from ingest.publish import restore

    with db.engine().begin() as conn:
        done = restore(conn, args.name)
    print(f"{args.name}: restored, {done.status}{_queued(done.queued)}")


def _queued(jobs: list[int]) -> str:
    return f"; {_count(len(jobs), 'infer job')} queued on it ({', '.join(map(str, jobs))})" if jobs else ""


def _release_action(group, action: str, func, help: str, fmt: dict) -> argparse.ArgumentParser:
    """One `healcat release ACTION NAME [--format F]` subcommand."""
    p = group.add_parser(action, help=help)
    p.add_argument("name", help="release name, e.g. sdss/dr14-skyserver-10k")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=func)
    return p


def cmd_demo(args: argparse.Namespace) -> None:
    from catalog.demo import run

    run()


def _state(model, current: set[int]) -> str:
    """A version's state: current (its model_id in ``current``), retired, candidate (never promoted:
    its metric did not beat the current version's), or superseded (promoted, then another was)."""
    if model.model_id in current:
        return "current"
    return "retired" if model.retired_at else "candidate" if model.promoted_at is None else "superseded"


def _metrics_line(metrics: dict) -> str:
    keys = ("nmad", "bias", "outlier_fraction", "crps", "pit_max_dev", "nmad_sky_cv", "accuracy",  # photo-z, classes
            "median_abs_delta_log_age_held_out",  # gyro ages [dex]
            "median_abs_error_dex", "code_scatter_dex",  # stellar mass
            "knn_accuracy", "supervised_accuracy", "n_test")  # light-curve embeddings
    return ", ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], (int, float)) else f"{k}={metrics[k]}"
                     for k in keys if k in metrics)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one (not "(default: None)" or "(default: False)")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None or action.default is False else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="healcat", description="A sky catalog database with embedded ML services.",
                                     epilog="HEALCAT_DATABASE_URL picks another PostgreSQL; HEALCAT_HOME the embedded "
                                            "server's folder; HEALCAT_DATA_DIR where survey files are read.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formatter = _DefaultsFormatter

    p = sub.add_parser("db", help="the database: up, status, url, psql, stop, reader", formatter_class=formatter,
                       description="up: start the embedded server if it is the one used, and migrate to the newest "
                                   "schema; status: server, pgvector and schema versions; url: a libpq URL for psql "
                                   "and other clients; psql: open psql on the catalog; stop: stop the embedded server; "
                                   "reader list | add NAME | drop NAME: astronomers' own read-only roles (each with "
                                   "healcat_reader's privileges and limits; sessions of one cannot end another's)")
    p.add_argument("action", choices=["up", "status", "url", "psql", "stop", "reader"])
    p.add_argument("names", nargs="*", metavar="list|add NAME|drop NAME", help="reader: what to do")
    p.add_argument("--reader", nargs="?", const=db.READER_ROLE, metavar="ROLE",
                   help="url, psql, status: as a read-only role: healcat_reader, or an astronomer's own (SELECT and "
                        "query functions only)")
    p.add_argument("--password-env", metavar="VAR",
                   help="reader add: the environment variable holding the role's password (where the server asks for one)")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("ingest", help="ingest a release through its mapping (idempotent)")
    p.add_argument("mapping", help="mapping name in ingest/mappings (e.g. sdss_dr14_skyserver_10k) or a .toml path")
    p.add_argument("--file", help="read this file instead of the one the mapping names")
    p.add_argument("--release-version", help=RELEASE_VERSION_HELP)
    p.add_argument("--release-date", metavar="YYYY-MM-DD", help=RELEASE_DATE_HELP)
    p.set_defaults(func=cmd_ingest)

    from ingest.tasks import all_tasks

    registered = all_tasks()
    tasks = sorted(registered)
    p = sub.add_parser("train", help="train a task's model on the catalog and register the version",
                       formatter_class=formatter,
                       description="Runs the task's training query on a release (or each of several), holds out "
                                   "20% (seeded), trains, "
                                   "and registers the version with its weights, query and held-out metrics. If its "
                                   "model has no current version, or its held-out metric is at least as good as the "
                                   "current version's, it becomes current and inference of it is queued over every "
                                   "release it applies to; otherwise it is a candidate (`healcat model promote`).")
    p.add_argument("task", choices=tasks)
    defaults = "; ".join(f"{name}: {' + '.join(task.default_training_releases)}"
                         for name, task in sorted(registered.items()))
    p.add_argument("--release", action="append", dest="releases", metavar="RELEASE",
                   help=f"train on this release; repeat it to train on several together (default: the task's "
                        f"own; {defaults})")
    p.add_argument("--seed", type=_at_least(0), default=0, help="seed of the split, the initial weights and the batches")
    p.add_argument("--epochs", type=_at_least(1), help="most epochs (early stopping may end sooner; default: the model's)")
    p.add_argument("--no-backfill", action="store_true", help="do not queue inference of the new version")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("model", help="the model registry: list, show, register, promote, retire",
                       formatter_class=formatter)
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
    q = msub.add_parser("promote", help="make a version current whatever its metrics (a candidate, or one "
                        "superseded) and queue its backfill")
    q.add_argument("name")
    q.add_argument("version")
    q = msub.add_parser("retire", help="retire a version: no longer current; its outputs stay")
    q.add_argument("name")
    q.add_argument("version")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("infer", help="run a model over a release: predictions, embeddings, skipped sources")
    p.add_argument("model", help=f"a model name or a task ({', '.join(tasks)}: its model)")
    p.add_argument("release", help="release name, e.g. sdss/dr14-skyserver-10k")
    p.add_argument("--version", help="model version (default: the current one)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--lanes", type=int, help="source_id ranges read and written at once, each with two connections "
                   "(default: HEALCAT_INFER_LANES, else a quarter of the cores, 1 to 8)")
    p.set_defaults(func=cmd_infer)

    fmt = dict(choices=["table", "csv", "ecsv", "votable"], default="table", help="output format")
    p = sub.add_parser("cone", help="sources within a radius of a position, nearest first",
                       formatter_class=formatter)
    p._negative_number_matcher = NEGATIVE
    p.add_argument("ra", type=_ra_deg, help="ICRS right ascension: degrees, or hours as 12h30m49s")
    p.add_argument("dec", type=_dec_deg, help="ICRS declination: degrees, or 12d23m28s")
    p.add_argument("radius", type=_radius_arcsec, help="radius: arcsec, or with a unit (2arcmin, 0.5deg)")
    p.add_argument("--release", help="only this release")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_query, query=query_cone)

    def search_parser(name: str, help: str, query) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, formatter_class=formatter)
        p._negative_number_matcher = NEGATIVE
        p.set_defaults(func=cmd_query, query=query)
        return p

    def search_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--release", help="only this release")
        p.add_argument("--format", **fmt)

    p = search_parser("box", "sources in an RA/Dec box (RA from RA_MIN eastwards to RA_MAX: 350 10 spans 0)",
                      query_box)
    p.add_argument("ra_min", type=_ra_deg, help="RA lower bound: degrees, or hours as 23h20m")
    p.add_argument("ra_max", type=_ra_deg, help="RA upper bound")
    p.add_argument("dec_min", type=_dec_deg, help="Dec lower bound [deg]")
    p.add_argument("dec_max", type=_dec_deg, help="Dec upper bound [deg]")
    search_options(p)

    p = search_parser("polygon", "sources inside a spherical polygon (great-circle edges, either winding)",
                      query_polygon)
    p.add_argument("vertices", type=_vertex, nargs="+", metavar="RA,DEC", help="vertices, at least 3")
    search_options(p)

    p = search_parser("ellipse", "sources inside a spherical ellipse, nearest its centre first", query_ellipse)
    p.add_argument("ra", type=_ra_deg, help="centre RA: degrees, or hours as 12h30m49s")
    p.add_argument("dec", type=_dec_deg, help="centre Dec")
    p.add_argument("semi_major", type=_radius_arcsec, help="semi-major axis: arcsec, or with a unit (2arcmin)")
    p.add_argument("semi_minor", type=_radius_arcsec, help="semi-minor axis: arcsec, or with a unit")
    p.add_argument("pa", type=float, nargs="?", default=0.0, help="position angle of the major axis [deg east of north]")
    search_options(p)

    p = search_parser("moc", "sources in a MOC (a survey footprint, a GW credible region)", query_moc)
    p.add_argument("moc", help="a MOC FITS file, or ASCII ('3/1-3 4/40') or JSON ('{\"3\": [1, 2]}') text")
    search_options(p)

    p = search_parser("nearest", "the k sources nearest to a position, nearest first", query_nearest)
    p.add_argument("ra", type=_ra_deg, help="RA: degrees, or hours as 12h30m49s")
    p.add_argument("dec", type=_dec_deg, help="Dec: degrees, or 12d23m28s")
    p.add_argument("-k", type=int, default=1, help="how many neighbours")
    search_options(p)

    p = sub.add_parser("skymap", help="a Mollweide PNG of source counts per HEALPix pixel", formatter_class=formatter,
                       description="The whole catalog's density (straight from the hpx index), or that of the "
                                   "sources of a search command line given after the PNG's name (options first), "
                                   "e.g. `healcat skymap --order 5 box.png box 350 10 -5 5`. The image has no axes: "
                                   "ICRS, RA 0 at the centre and growing to the left (east), north up; counts on a "
                                   "log colour scale, empty sky light grey.")
    p.add_argument("png", help="PNG file to write (its name ends in .png)")
    p.add_argument("--order", type=int, default=5, help="HEALPix order of the density pixels (0..10)")
    p.add_argument("--width", type=_at_least(16, int, 8000), default=1200,
                   help="image width in pixels, 16 to 8000 (height: half of it)")
    p.add_argument("--release", help="only this release (whole-catalog map; a search takes its own --release)")
    p.add_argument("search", nargs=argparse.REMAINDER, metavar="SEARCH ...",
                   help="a search command line: cone, box, polygon, ellipse, moc or nearest and its arguments")
    p.set_defaults(func=cmd_skymap)

    from catalog.hats_export import DEFAULT_HIGHEST_ORDER, DEFAULT_MAX_ROWS

    p = sub.add_parser("export-hats", help="write a release as a HATS catalog (HEALPix-partitioned Parquet, for lsdb)",
                       formatter_class=formatter,
                       description="Writes the release's sources (position, _healpix_29 = hpx, photometry one column "
                                   "per band, the spectroscopic redshift, the current models' point values) as a HATS catalog in OUT_DIR (new "
                                   "or empty), partitioned as hats-import does; `lsdb.open_catalog(OUT_DIR)` opens "
                                   "it. Needs the extra healcat[hats].")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write: new, or empty (nothing is overwritten)")
    p.add_argument("--release", required=True, help="release name, e.g. sdss/dr14-skyserver-10k (superseded too)")
    p.add_argument("--max-rows-per-partition", type=_at_least(1), default=DEFAULT_MAX_ROWS,
                   help="most rows in one Parquet file (hats-import's pixel_threshold)")
    p.add_argument("--highest-order", type=int, default=DEFAULT_HIGHEST_ORDER,
                   help="HEALPix order at which rows are counted: the finest partition pixels")
    p.set_defaults(func=cmd_export_hats)

    p = sub.add_parser("similar", help="the sources most similar to a source in a model's embedding space",
                       formatter_class=formatter)
    p.add_argument("source_id", type=int, nargs="?",
                   help="healcat source_id (the first column of `healcat cone`)")
    p.add_argument("--object-id", help="the survey's own id instead, e.g. 0275-51910-0435")
    p.add_argument("--release", help="with --object-id: which release's copy of that object is the query (when "
                                     "several releases have that id); it does not restrict the neighbours: "
                                     "--in-release does")
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedding model")
    p.add_argument("--version", help="model version (default: the current one)")
    p.add_argument("-k", type=int, default=10, help="how many neighbours")
    p.add_argument("--cone", nargs=3, metavar=("RA", "DEC", "RADIUS"),
                   help="only neighbours in this cone (as `healcat cone` reads them)")
    p.add_argument("--mag", nargs=3, metavar=("BAND", "MIN", "MAX"),
                   help="only neighbours with MIN <= mag <= MAX in BAND (e.g. sdss_r 14 18; the band's own system)")
    p.add_argument("--z", nargs=2, type=float, metavar=("MIN", "MAX"), help="only neighbours with a spec-z in [MIN, MAX]")
    p.add_argument("--in-release", metavar="RELEASE",
                   help="search only this release for neighbours (default: the published releases); name one the "
                        "model has run on when the published ones lack its outputs")
    p.add_argument("--mode", choices=["auto", "exact", "approx"], default="auto",
                   help="exact ranking, HNSW index (approx), or by the filter's selectivity (auto)")
    p.add_argument("--ef-search", type=int, help="HNSW candidates per step in approx mode (default max(100, 2k), at most 1000)")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("predictions", help="what a model says of sources: value and interval, PDF, class, or why none",
                       formatter_class=formatter)
    p.add_argument("source_id", type=int, nargs="*", help="healcat source_ids (the first column of `healcat cone`)")
    p.add_argument("--object-id", action="append", default=[],
                   help="a survey's own id instead, e.g. 0275-51910-0435 (repeat it for several; after the SOURCE_IDs)")
    p.add_argument("--release", help="with --object-id: which release's copy, where several releases have that id")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name, e.g. object-class-sdss")
    p.add_argument("--version", help="model version (default: the model's current runs, as current_prediction)")
    p.add_argument("--pdf-at", nargs="+", type=float, metavar="X", help="also the PDF at these values (photo-z: z)")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_predictions)

    p = sub.add_parser("xmatch", help="cross-match a table (CSV, ECSV, FITS, VOTable) with the catalog",
                       formatter_class=formatter,
                       description="Every row of FILE beside its nearest source within --radius (mode best; "
                                   "unmatched rows keep empty match columns) or beside every source within it "
                                   "(mode all), with the separation in arcsec. Positions are degrees unless a column "
                                   "carries a unit (an ECSV, FITS or VOTable unit: hourangle, ...), and ICRS unless "
                                   "the file says otherwise: FK4, FK5 and Galactic (a VOTable's COOSYS, Galactic "
                                   "columns) are converted to ICRS; a frame it cannot convert is an error.")
    p.add_argument("file", help="the table to match (a path, else one inside the survey data folder); "
                                "errors name its 1-based data rows")
    p.add_argument("--radius", type=_radius_arcsec, required=True,
                   help="match radius: arcsec, or with a unit (1arcsec, 0.5arcmin); at most 30 arcmin")
    p.add_argument("--release", help="only this release of the catalog")
    p.add_argument("--mode", choices=["best", "all"], default="best", help="nearest match, or all pairs")
    p.add_argument("--ra-col", help="RA column: degrees, or the unit the file gives it (default: ra, ra_deg, "
                                    "raj2000 or ra_icrs)")
    p.add_argument("--dec-col", help="Dec column: degrees, or the unit the file gives it (default: dec, dec_deg, "
                                     "dej2000, ...)")
    p.add_argument("--input-format", choices=sorted(set(XMATCH_SUFFIXES.values())),
                   help="format of FILE (default: from its suffix)")
    p.add_argument("--pm-cols", nargs=2, metavar=("PMRA", "PMDEC"),
                   help="proper-motion columns [mas/yr unless the file gives a unit; PMRA times cos Dec]: "
                        "move positions to --to-epoch")
    p.add_argument("--epoch", help="with --pm-cols: the input's epoch, a Julian year (2000.0) or a column")
    p.add_argument("--to-epoch", type=float, help="with --pm-cols: the catalog's epoch (Gaia DR3: 2016.0)")
    p.add_argument("--at-epoch", type=float, help=AT_EPOCH_HELP)
    p.add_argument("--keep-bad", action="store_true",
                   help="keep rows with bad positions, unmatched, with the reason in xmatch_problem")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_xmatch)

    p = sub.add_parser("xmatch-releases", help="cross-match two releases in the catalog", formatter_class=formatter)
    p.add_argument("release_a", help="every positioned source of this release is matched ...")
    p.add_argument("release_b", help="... with the sources of this one")
    p.add_argument("--radius", type=_radius_arcsec, required=True, help="match radius: arcsec, or with a unit")
    p.add_argument("--mode", choices=["best", "all"], default="best", help="nearest match, or all pairs")
    p.add_argument("--at-epoch", type=float, help=AT_EPOCH_HELP)
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_xmatch_releases)

    p = sub.add_parser("enqueue", help="queue a job for the workers")
    p.add_argument("kind", choices=["ingest", "infer"])
    p.add_argument("target", help="ingest: a mapping name or path; infer: a release name (every model that applies)")
    p.add_argument("--file", help="ingest: read this file instead of the one the mapping names")
    p.add_argument("--release-version", help="ingest: " + RELEASE_VERSION_HELP)
    p.add_argument("--release-date", metavar="YYYY-MM-DD", help="ingest: " + RELEASE_DATE_HELP)
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser("worker", help="run queued jobs until stopped")
    p.add_argument("--once", action="store_true", help="stop when no job is due")
    p.add_argument("--poll", type=_at_least(0.01, float), default=2.0, help="seconds between polls of an empty queue")
    p.add_argument("--concurrency", type=_at_least(1), default=1, help="worker processes to run here")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("scheduler", help="scan release sources now and then, queue ingest jobs for new releases",
                       formatter_class=formatter)
    p.add_argument("--source", action="append", type=Path, metavar="PATH",
                   help="a directory of mapping files (data files beside them) or a manifest file; repeatable "
                        "(default: HEALCAT_RELEASE_SOURCES, separated by ':')")
    p.add_argument("--interval", type=_at_least(0.01, float), metavar="SECONDS",
                   help="seconds between scans (default: HEALCAT_SCHEDULE_INTERVAL_S, else 300)")
    p.add_argument("--settle", type=_at_least(0, float), metavar="SECONDS",
                   help="queue only files (and mappings) unmodified this long: a newer one may still be being written "
                        "(default: HEALCAT_SCHEDULE_SETTLE_S, else 60)")
    p.add_argument("--once", action="store_true", help="scan once and stop")
    p.set_defaults(func=cmd_scheduler)

    p = sub.add_parser("serve", help="serve the catalog to VO clients over HTTP (Simple Cone Search, similarity)",
                       formatter_class=formatter,
                       description="IVOA Simple Cone Search 1.03 at /scs (RA, DEC, SR in ICRS degrees; VERB, RELEASE, "
                                   "MAXREC) and similarity search at /similar (SOURCE_ID, K, MODEL, VERSION, RELEASE), "
                                   "answering VOTables, every query as a read-only role: healcat_reader, or one "
                                   "of its own (--reader).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=_at_least(0), default=8008, help="port (0: any free one)")
    p.add_argument("--threads", type=_at_least(1), default=4, help="requests answered at once (one database "
                                                                   "session each)")
    p.add_argument("--reader", default=db.READER_ROLE, metavar="ROLE",
                   help="the read-only role the queries run as: a role of the service's own made by `healcat db "
                        "reader add ROLE` (the shared role's limits and its own connection limit; astronomers' "
                        "sessions cannot cancel its statements, as they can the shared role's)")
    p.add_argument("--no-watchdog", action="store_true",
                   help="run no watchdog: the readers' sessions are swept by another process's (every `healcat "
                        "worker` runs one), so HEALCAT_DATABASE_URL may be the read-only role's, without the "
                        "owner's password (docker-compose's vo service)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("jobs", help="the queue: queued, running and failed jobs")
    p.add_argument("--all", action="store_true", help="include finished jobs")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--retry", type=int, metavar="JOB_ID", help="requeue a failed job")
    action.add_argument("--cancel", type=int, metavar="JOB_ID",
                        help="remove a queued (due or backing off) or failed job from the queue")
    p.add_argument("--format", **fmt)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("release", help="releases: list, show, diff against the previous one, report, "
                                             "withdraw, restore")
    releases = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = releases.add_parser("list", help="every release with its status (published = current) and its changes")
    q.add_argument("--survey", help="only this survey's releases")
    q.add_argument("--format", **fmt)
    q.set_defaults(func=cmd_release_list)
    _release_action(releases, "show", cmd_release_show, "a release's provenance, row counts and changes", fmt)
    q = _release_action(releases, "diff", cmd_release_diff, "objects new, changed or vanished since the previous "
                        "release of the survey", fmt)
    q.add_argument("--change", choices=["new", "changed", "vanished"], help="only these")
    q.add_argument("--fields", action="store_true", help="a column fields: what each changed object changed "
                   "(position, attrs.KEY, photometry.BAND, ...; 0.3-0.5 ms a changed object)")
    q = releases.add_parser("withdraw", help="take a release published by mistake (or found wrong) out of its "
                            "survey's releases (if it was published, the newest of the others is, its models "
                            "queued); its rows, diff and predictions are kept, read by its name; no new model run "
                            "or training reads it")
    q.add_argument("name", help="release name, e.g. sdss/dr14-skyserver-10k")
    q.add_argument("--reason", required=True, help="why, kept with the release (release show)")
    q.set_defaults(func=cmd_release_withdraw)
    q = releases.add_parser("restore", help="put a withdrawn release back in its place among its survey's releases "
                            "(its models queued)")
    q.add_argument("name", help="release name, e.g. sdss/dr14-skyserver-10k")
    q.set_defaults(func=cmd_release_restore)
    q = releases.add_parser("report", help="row counts, and quarantined rows by column and reason with examples",
                            formatter_class=formatter)
    q.add_argument("name", help="release name, e.g. gyrointerp-ruprecht147/0.7")
    q.add_argument("--examples", type=_at_least(0), default=3, help="example rows per reason (0: counts only)")
    q.set_defaults(func=cmd_release_report)

    p = sub.add_parser("demo", help="load the SDSS sample, train, infer, and show a cone and a similarity search")
    p.set_defaults(func=cmd_demo)
    return parser


#: SQLSTATEs of a statement naming what the schema lacks: undefined table, function, column; no schema
UNMIGRATED = ("42P01", "42883", "42703", "3F000")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "similar" and (args.source_id is None) == (args.object_id is None):
        parser.error("similar: give a SOURCE_ID or --object-id, not both or neither")
    if args.command == "predictions" and not (args.source_id or args.object_id):
        parser.error("predictions: give one or more SOURCE_IDs and/or --object-id")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.func(args)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Python's docs advise
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 1
    except HealcatError as exc:
        print(f"healcat: error: {exc}", file=sys.stderr)
        return 1
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) not in UNMIGRATED or "healcat." not in str(exc.orig):
            raise
        print(f"healcat: error: the database ({db.describe_url()}) has no healcat schema, or an older one "
              f"({first_line(exc.orig)}): `healcat db up` migrates it", file=sys.stderr)
        return 1
    except sa.exc.OperationalError as exc:
        if lost_connection(exc):  # the server is down, unreachable or refuses us
            print(f"healcat: error: cannot reach the database ({db.describe_url()}): {first_line(exc)}", file=sys.stderr)
        else:  # a statement failed (a timeout, a deadlock, a full disk)
            print(f"healcat: error: {query_error(exc, args.command) or first_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
