"""``healcat demo``: the whole product on real data, from an empty catalog to answers.

Starts the database, migrates, ingests the SDSS DR14 sample, trains the object
classifier and the photo-z model, runs inference, then prints a cone search
around a real galaxy and the ten galaxies most similar to it, with spec-z and
photo-z side by side. Every step is idempotent: a second run finds the release
loaded, trains again (the same data and seed give the same weights, hence the
versions already registered) and finds inference done, so the catalog does not change. Where the
version its training gives is not current (retired, or a candidate that a better version beat), it
says so and shows the current version instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from astropy.table import Table, join

from catalog import db
from catalog.cli import for_display
from catalog.errors import HealcatError
from catalog.models import Model
from catalog.search import cone_search, similar
from ingest.inference import run_model
from ingest.load import ingest_release
from ingest.registry import RetiredVersion, current_version, train
from ingest.tasks.photoz import Photoz

PHOTOZ_MODEL = Photoz.model_name

MAPPING = "sdss_dr14_skyserver_10k"

# The demo's galaxy: the first spectroscopic galaxy in the release's most crowded order-8 HEALPix
# pixel (about 0.23 deg across; hpx >> 42 is the order-8 pixel of an order-29 index).
_CROWDED_GALAXY = """
WITH rel AS (SELECT release_id FROM healcat.release WHERE name = :release),
densest AS (
    SELECT s.hpx >> 42 AS pix FROM healcat.source AS s JOIN rel USING (release_id)
    GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)
SELECT s.source_id, s.object_id, s.ra, s.dec
FROM healcat.source AS s
JOIN rel USING (release_id)
JOIN densest ON s.hpx >> 42 = densest.pix
JOIN healcat.spec_redshift AS z ON z.shard = s.shard AND z.source_id = s.source_id
WHERE z.spec_class = 'GALAXY'
ORDER BY s.source_id LIMIT 1
"""

_REDSHIFTS = """
SELECT s.source_id, z.z AS z_spec, p.value AS z_phot, p.uncertainty AS z_phot_err
FROM healcat.source AS s
LEFT JOIN healcat.spec_redshift AS z ON z.shard = s.shard AND z.source_id = s.source_id
LEFT JOIN healcat.current_prediction AS p
       ON p.shard = s.shard AND p.source_id = s.source_id AND p.model_name = :model
WHERE s.source_id = ANY(:ids)
"""


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


class _NotMeasured:
    """A metric a version does not have (registered from a file without it): 'n/a' in any format."""

    def __format__(self, spec: str) -> str:
        return "n/a"


class _Metrics(dict):
    """A version's metrics for printing: a missing one prints as n/a, not a KeyError."""

    def __missing__(self, key: str) -> _NotMeasured:
        return _NotMeasured()

    def percent(self, key: str) -> str:
        return f"{100 * self[key]:.2f}" if key in self else "n/a"


def _trained_or_current(engine: sa.Engine, task: str, release: str) -> Model:
    """The version the demo's training gives if it is current, else the current version, saying why."""
    try:
        trained = train(engine, task, release)
        why = ("is a candidate (a better version is current)" if trained.promoted_at is None
               else "is no longer current (a later version was promoted)")
    except RetiredVersion as exc:
        trained, why = exc.model, "was retired"
    with engine.connect() as conn:
        current = current_version(conn, trained.name)
    if current is None:
        raise HealcatError(f"demo: {trained.name} version {trained.version}, which the demo trains, {why}, and no "
                           f"version is current: `healcat model promote {trained.name} VERSION` makes one current")
    _section(f"model {current.name} version {current.version}")
    if current.model_id != trained.model_id:
        print(f"  the demo's training gives version {trained.version}, which {why}: showing the current version")
    return current


def run() -> None:
    url = db.database_url()
    db.migrate(url)
    engine = db.engine()
    _section("database")
    print(db.shown_url(url))  # `healcat db url` prints it with the password

    loaded = ingest_release(MAPPING, engine)
    # superseded by a newer SDSS release: the searches name this one (the published one may hold no photo-z yet)
    superseded = loaded.status == "superseded"  # just loaded too: a newer release was there before it
    named = loaded.release if superseded else None
    cone_also, similar_also = (f", '{loaded.release}'", f", release_name => '{loaded.release}'") if superseded else ("", "")
    _section(f"release {loaded.release}")
    if loaded.already_loaded:  # superseded: a newer release of the survey is what the searches below show
        print(f"already loaded ({loaded.status}); nothing changed"
              + ("; a newer SDSS release is published, so the searches below name this one" if superseded else ""))
    else:
        print("ingested and published" if not superseded else
              "ingested, superseded at once: a newer SDSS release is published, so the searches below name this one")
    for table, n in loaded.row_counts.items():
        print(f"  {table:>14}: {n:>6}" if isinstance(n, int) else f"  {table:>14}: {n}")

    classifier = _trained_or_current(engine, "object_class", loaded.release)
    c = _Metrics(classifier.metrics)
    print(f"  held-out objects: {c['n_test']}, accuracy {c['accuracy']:.3f}")
    model = _trained_or_current(engine, "photoz", loaded.release)
    m = _Metrics(model.metrics)
    print(f"  held-out galaxies: {m['n_test']} (trained on {m['n_train']})")
    print(f"  NMAD of dz/(1+z): {m['nmad']:.4f}   bias: {m['bias']:+.4f}   "
          f"outliers (|dz|/(1+z) > 0.15): {m.percent('outlier_fraction')}%   CRPS: {m['crps']:.4f}")
    run_result = run_model(engine, PHOTOZ_MODEL, loaded.release)
    if run_result.already_done:  # a second demo: the same weights, the same version, its run done
        print(f"  inference: run {run_result.run_id} of this version is done on {loaded.release}; nothing to do")
    else:
        print(f"  inference on {run_result.device}: {run_result.n_predicted} new predictions ({run_result.n_skipped} "
              "skipped: not galaxies or invalid magnitudes; reasons in healcat.inference_skip)")

    with engine.connect() as conn:
        galaxy = conn.execute(sa.text(_CROWDED_GALAXY), {"release": loaded.release}).one()
    _section(f"cone search: 10 arcmin around galaxy {galaxy.object_id}")
    print(f"  SQL: SELECT * FROM healcat.cone_search({galaxy.ra:.6f}, {galaxy.dec:.6f}, 600.0{cone_also});")
    cone = cone_search(galaxy.ra, galaxy.dec, 600.0, release=named)
    for_display(cone).pprint(max_lines=20, max_width=120)

    _section(f"the 10 galaxies most similar to source {galaxy.source_id} ({PHOTOZ_MODEL} embedding)")
    print(f"  SQL: SELECT * FROM healcat.similar_sources({galaxy.source_id}, '{PHOTOZ_MODEL}', 10{similar_also});")
    near = similar(galaxy.source_id, model=PHOTOZ_MODEL, k=10, release=named)
    ids = [int(galaxy.source_id), *near["source_id"].tolist()]
    with engine.connect() as conn:
        rows = conn.execute(sa.text(_REDSHIFTS), {"ids": ids, "model": PHOTOZ_MODEL}).mappings().all()
    redshifts = Table(rows=[dict(r) for r in rows], names=["source_id", "z_spec", "z_phot", "z_phot_err"])
    query = redshifts[redshifts["source_id"] == galaxy.source_id][0]
    print(f"  query galaxy: z_spec={query['z_spec']:.4f}  z_phot={query['z_phot']:.4f} +/- {query['z_phot_err']:.4f}")
    table = join(near, redshifts, keys="source_id")
    table.sort("distance")
    for col in ("z_spec", "z_phot", "z_phot_err"):
        table[col].format = ".4f"
    for_display(table["object_id", "ra", "dec", "distance", "z_spec", "z_phot", "z_phot_err"]).pprint_all()
