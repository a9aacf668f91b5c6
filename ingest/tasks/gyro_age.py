"""Gyrochronology ages (ChronoFlow idea): p(Prot | BP-RP_0, age) learnt from open clusters, inverted per star.

Training rows are a release's cluster rotators passing the paper's cuts (kept in
``rotation_period.attrs``). A cluster is a ``healcat.cluster`` row with its own age: the subgroups
of an association (Sco-Cen's Upper Sco, UCL, ..., Taurus's groups) are clusters of their own, with
their literature ages, whose ``parent_id`` names the association. A seeded fifth of the clusters is
held out whole; the metrics give each cluster's age from all its members (product of member
likelihoods), queryable as ``model.metrics->'cluster_ages'``. A run over a release stores each star's
posterior median and 16th/84th percentiles, and each of the release's clusters' age from its members
(``healcat.cluster_age``, :meth:`GyroAge.finish`).
"""

from __future__ import annotations

import numpy as np

import sqlalchemy as sa

from catalog.models import ClusterAge
from ingest.ml import common, gyro
from ingest.tasks import Outputs, Prepared, Task, Trained, attr_number, register, single_thread

#: ChronoFlow's quality cuts, as ``rotation_period.attrs`` keeps the catalogue's columns: a star
#: flagged by any of these (non-zero) or with Gaia RUWE >= MAX_RUWE trains nothing and ages no cluster.
EXCLUDE_FLAGS = ("cmd_exclude", "dered_exclude", "phot_exclude")
MAX_RUWE = 1.4
_CUTS = " AND ".join([f"(rp.attrs->>'{f}')::float8 = 0" for f in EXCLUDE_FLAGS]
                     + [f"(rp.attrs->>'dr3_ruwe')::float8 < {MAX_RUWE}"])
#: A release's cluster members, with the flags and RUWE as text (:func:`_passes_cuts`).
_MEMBERS = ("SELECT rp.cluster_id, rp.bp_rp_dered, rp.period_day, "
            + ", ".join(f"rp.attrs->>'{f}'" for f in (*EXCLUDE_FLAGS, "dr3_ruwe"))
            + " FROM healcat.rotation_period AS rp WHERE rp.release_id = %(release_id)s AND rp.cluster_id IS NOT NULL"
            " ORDER BY rp.cluster_id, rp.bp_rp_dered, rp.period_day, rp.source_id")  # each cluster's sum: one order


@register
class GyroAge(Task):
    name = "gyro_age"
    model_name = "chronoflow-gyro"
    primary_metric = ("median_abs_delta_log_age_held_out", "lower")  # decides which version is current
    default_training_releases = ("chronoflow/2025-prot-catalogue",)
    unit = "dex(yr)"
    value_description = "log10 age [yr] (the posterior's median)"
    #: shard, source_id, BP-RP_0 [mag], Prot [d], cluster age [Myr] (the age this release gives the
    #: cluster, else the first one any release gave), cluster name, association (or the cluster); in the
    #: order of what training reads (text by bytes, whatever the server's collation), not of source_id: a
    #: star joined to a source another release made first (a Gaia star) has that release's lower id, so
    #: the same release trained other weights in a catalog that had loaded Gaia DR3 first (0.073 dex held
    #: out against 0.058).
    training_query = f"""SELECT rp.shard, rp.source_id, rp.bp_rp_dered, rp.period_day,
       coalesce(rp.cluster_age_myr, c.age_myr) AS age_myr, c.name, coalesce(a.name, c.name) AS association
FROM healcat.rotation_period AS rp JOIN healcat.cluster AS c USING (cluster_id)
LEFT JOIN healcat.cluster AS a ON a.cluster_id = c.parent_id
WHERE rp.release_id = %(release_id)s AND coalesce(rp.cluster_age_myr, c.age_myr) IS NOT NULL AND {_CUTS}
ORDER BY coalesce(a.name, c.name) COLLATE "C", c.name COLLATE "C", rp.bp_rp_dered, rp.period_day, age_myr, rp.source_id"""
    #: Every rotator of the release: shard, source_id, BP-RP_0 [mag], Prot [d], and the release whose run
    #: of this model version has predicted the star already (its source belongs to another release, e.g.
    #: a Gaia star that two rotation catalogues join: the model's one prediction per star is kept).
    input_query = """SELECT rp.shard, rp.source_id, rp.bp_rp_dered, rp.period_day, r.name AS predicted_for
FROM healcat.rotation_period AS rp
LEFT JOIN healcat.prediction AS p ON p.model_id = %(model_id)s AND p.shard = rp.shard AND p.source_id = rp.source_id
LEFT JOIN healcat.inference_run AS ir ON ir.run_id = p.run_id
LEFT JOIN healcat.release AS r ON r.release_id = ir.release_id
WHERE rp.release_id = %(release_id)s ORDER BY rp.source_id"""
    # a rotation catalogue with dereddened colours (McQuillan's Kepler periods have none: nothing to age)
    applies_query = ("SELECT EXISTS (SELECT 1 FROM healcat.rotation_period WHERE release_id = %(release_id)s "
                     "AND bp_rp_dered IS NOT NULL)")
    missing_query = ("SELECT CASE WHEN EXISTS (SELECT 1 FROM healcat.rotation_period "
                     "WHERE release_id = %(release_id)s) THEN 'its rotation periods have no dereddened colour "
                     "(rotation_period.bp_rp_dered), which the model reads with the period' "
                     "ELSE 'it has no rotation periods (rotation_period)' END")
    on_gpu = False  # a few thousand stars on the age grid
    runs_share_sources = True  # one prediction per star and version, whichever release's run made it

    def fit(self, rows: list[tuple], *, seed: int, epochs: int | None = None) -> Trained:
        # as inference takes them: a colour and a period in the model's range (the cuts keep only such)
        colour, prot = _colour_period(rows)
        keep = gyro.valid_rows(colour, prot)
        rows = [r for r, k in zip(rows, keep) if k]
        colour, prot = colour[keep], prot[keep]
        log_age = np.log10(np.array([r[4] for r in rows], dtype=np.float64) * 1e6)
        cluster = np.array([r[5] for r in rows])
        association = {r[5]: r[6] for r in rows}
        names = np.unique(cluster)
        held = np.random.default_rng(seed).permutation(len(names))[:max(1, round(0.2 * len(names)))]
        test = np.isin(cluster, names[held])
        model, report = single_thread(gyro.train, colour[~test], log_age[~test], prot[~test], seed=seed,
                                      population=cluster[~test], **({"steps": epochs} if epochs else {}))
        # each cluster's age from the members a run ages (:meth:`finish`): a colour in the model's range
        aged = _in_colour_range(model, colour)
        ages = {}
        for name in names.tolist():
            members = (cluster == name) & aged
            if not members.any():
                continue
            ages[name] = dict(association=association[name], held_out=bool(test[members][0]),
                              **gyro.population_age(model, colour[members], prot[members], float(log_age[members][0])))
        deltas = [abs(v["delta_dex"]) for v in ages.values() if v["held_out"]]
        metrics = dict(n_train=report["n_train"], n_test=int(test.sum()), n_test_clusters=len(deltas),
                       n_outside_colour_range=int((~aged).sum()),
                       median_abs_delta_log_age_held_out=float(np.median(deltas)), cluster_ages=ages)
        return Trained(gyro.to_bytes(model), dict(model.hparams), metrics)

    def load(self, path: str, device):
        return gyro.load(path, map_location=device)

    def prepare(self, rows: list[tuple]) -> Prepared:
        keys = np.array([(r[0], r[1]) for r in rows], dtype=np.int64).reshape(-1, 2)
        colour, prot = _colour_period(rows)
        done = np.array([len(r) > 4 and r[4] is not None for r in rows], dtype=bool)
        ok = gyro.valid_rows(colour, prot) & ~done
        skipped = [(int(keys[j, 0]), int(keys[j, 1]),
                    f"already predicted by this model version for release {rows[j][4]}" if done[j]
                    else "no dereddened BP-RP colour" if not np.isfinite(colour[j])
                    else f"Prot {prot[j]:g} d is not a period in 0.025-500 d") for j in np.flatnonzero(~ok)]
        return Prepared(keys[ok], (colour[ok], prot[ok]), skipped)

    def predict(self, model, inputs, device) -> Outputs:
        ages = gyro.star_ages(model, *inputs)
        half_width = 0.5 * (ages["log_age_p84"] - ages["log_age_p16"])
        return Outputs(value=ages["log_age_median"], uncertainty=half_width, value_p16=ages["log_age_p16"],
                       value_p84=ages["log_age_p84"], refused=ages["refused"])

    def finish(self, conn: sa.Connection, model, params: dict, run_id: int) -> None:
        """Each cluster's age from its members in the release: the stars the model would age (a colour
        in its range, a period in 0.025-500 d) that pass the quality cuts where the release has them;
        all of them, whether this run or an earlier release's predicted each star."""
        with conn.connection.driver_connection.cursor() as cur:
            cur.execute(_MEMBERS, params)
            rows = cur.fetchall()
        if not rows:
            return
        cluster = np.array([r[0] for r in rows])
        colour, prot = _colour_period(rows, columns=(1, 2))
        keep = gyro.valid_rows(colour, prot) & _passes_cuts(rows) & _in_colour_range(model, colour)
        values = []
        for cluster_id in np.unique(cluster[keep]).tolist():
            members = keep & (cluster == cluster_id)
            est = gyro.cluster_age(model, colour[members], prot[members])
            values.append(dict(run_id=run_id, cluster_id=cluster_id, n_members=int(members.sum()),
                               log_age_yr=est["log_age_median"], log_age_p16_yr=est["log_age_p16"],
                               log_age_p84_yr=est["log_age_p84"]))
        if values:
            conn.execute(sa.insert(ClusterAge), values)


def _in_colour_range(model, colour: np.ndarray) -> np.ndarray:
    """Per star: its BP-RP_0 [mag] is in the model's ``colour_range`` (a star outside gets no age;
    weights without one: every star)."""
    why = common.outside_range(colour, model.hparams.get("colour_range"), ("BP-RP_0",))
    return np.ones(len(colour), dtype=bool) if why is None else np.equal(why, None)


def _passes_cuts(rows: list[tuple]) -> np.ndarray:
    """Per :data:`_MEMBERS` row: no exclusion flag set and RUWE below :data:`MAX_RUWE`, as training
    has them (a star missing one that other stars of the release give fails, as in :data:`_CUTS`); a
    flag or RUWE that no star of the release gives (another catalogue than ChronoFlow's) cuts nothing."""
    values = np.array([[attr_number(v, "")[0] for v in r[3:]] for r in rows], dtype=np.float64).reshape(len(rows), -1)
    given = np.array([[v is not None for v in r[3:]] for r in rows], dtype=bool).reshape(len(rows), -1).any(0)
    with np.errstate(invalid="ignore"):
        ok = np.column_stack([values[:, :-1] == 0, values[:, -1] < MAX_RUWE])
    return (ok | ~given).all(1)


def _colour_period(rows: list[tuple], columns: tuple[int, int] = (2, 3)) -> tuple[np.ndarray, np.ndarray]:
    """Dereddened BP-RP [mag] and Prot [d] of input or training rows (in ``columns``), NaN where NULL."""
    return tuple(np.array([np.nan if r[k] is None else r[k] for r in rows], dtype=np.float64) for k in columns)
