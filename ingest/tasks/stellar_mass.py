"""Stellar mass (log10 Msun, Gaussian) from the 17 CANDELS bands and the fitted redshift.

Trained on a release's galaxies against the median of the SED-fitting codes' masses the catalog
holds for them (``healcat.stellar_mass``, one row per code); held-out metrics set the network's
error beside the codes' own scatter on the same galaxies.
"""

from __future__ import annotations

import numpy as np

from ingest.ml import common
from ingest.ml import stellar_mass as ml_mass
from ingest.tasks import Outputs, Prepared, Task, Trained, attr_number, register, single_thread

BANDS = ("candels_ctio_u", "candels_vimos_u", "candels_acs_f435w", "candels_acs_f606w", "candels_acs_f775w",
         "candels_acs_f814w", "candels_acs_f850lp", "candels_wfc3_f098m", "candels_wfc3_f105w",
         "candels_wfc3_f125w", "candels_wfc3_f160w", "candels_isaac_ks", "candels_hawki_ks",
         "candels_irac_ch1", "candels_irac_ch2", "candels_irac_ch3", "candels_irac_ch4")

DETECTION_BAND = BANDS.index("candels_wfc3_f160w")

#: shard, source_id, z (the redshift the codes fitted at, as the catalogue wrote it: a number, or
#: text that may be none), AB mags in BANDS order (NULL: no data), every code's median mass for the
#: source from the published releases of the codes' outputs (a code's superseded release is not a
#: second opinion: its re-release replaces it), ordered by code, and those releases' names in the
#: same order.
_ROWS = """SELECT s.shard, s.source_id, s.attrs->>'zz' AS z,
       ARRAY(SELECT p.mag FROM unnest(ARRAY[{bands}]::text[]) WITH ORDINALITY AS b(band, i)
             LEFT JOIN healcat.photometry AS p
               ON p.shard = s.shard AND p.source_id = s.source_id AND p.band = b.band AND p.mag_system = 'AB'
             ORDER BY b.i) AS mags_ab,
       m.code_log_mass, m.code_releases
FROM healcat.source AS s
CROSS JOIN LATERAL (
  SELECT array_agg(m.log_mass_msun ORDER BY m.code, r.name) AS code_log_mass,
         array_agg(r.name ORDER BY m.code, r.name) AS code_releases
  FROM healcat.stellar_mass AS m JOIN healcat.current_release AS r USING (release_id)
  WHERE m.shard = s.shard AND m.source_id = s.source_id) AS m
WHERE s.release_id = %(release_id)s{where}
ORDER BY s.source_id""".format(bands=", ".join(f"'{b}'" for b in BANDS), where="{where}")


@register
class StellarMass(Task):
    name = "stellar_mass"
    model_name = "stellar-mass-candels"
    primary_metric = ("median_abs_error_dex", "lower")  # held-out, dex: decides which version is current
    default_training_releases = ("candels-goodss-z1/sedfit", "candels-goodss-z3/sedfit")
    unit = "dex(solMass)"
    value_description = "log10 stellar mass [Msun]"
    #: The release's galaxies that at least one SED-fitting code has a mass for.
    training_query = _ROWS.format(where="\n  AND m.code_log_mass IS NOT NULL")
    input_query = _ROWS.format(where="")
    applies_query = ("SELECT EXISTS (SELECT 1 FROM healcat.photometry AS p JOIN healcat.source AS s "
                     "USING (shard, source_id) WHERE s.release_id = %(release_id)s AND p.band = 'candels_wfc3_f160w')")
    on_gpu = False  # a few hundred galaxies

    def fit(self, rows: list[tuple], *, seed: int, epochs: int | None = None) -> Trained:
        usable, _, z, mags = _usable(rows)  # as inference would take them
        n_unusable = int((~usable).sum())
        rows = [r for r, ok in zip(rows, usable) if ok]
        z, mags = z[usable], mags[usable]
        width = max(len(r[4]) for r in rows)
        codes = np.array([list(r[4]) + [np.nan] * (width - len(r[4])) for r in rows], dtype=np.float64)
        target = np.nanmedian(codes, axis=1)
        x = ml_mass.features(mags, z)
        test, val, fit = common.split_indices(len(rows), seed)
        train_rows = np.concatenate([val, fit])
        model = single_thread(ml_mass.train, x[train_rows], target[train_rows], seed=seed,
                              **({"epochs": epochs} if epochs else {}))
        out = ml_mass.predict(model, x[test])
        r = out["log_mass"] - target[test]
        scatter = ml_mass.code_scatter(codes[test])

        def held_out(sel: np.ndarray) -> dict:
            return dict(n_test=int(sel.sum()), median_abs_error_dex=float(np.median(np.abs(r[sel]))),
                        bias_dex=float(np.median(r[sel])),
                        coverage_1sigma=float(np.mean(np.abs(r[sel]) < out["log_mass_sigma"][sel])),
                        code_scatter_dex=float(np.nanmedian(scatter[sel])))
        # the same by the nearest whole redshift of the held-out galaxies (CANDELS' samples: z~1, z~3)
        z_bin = np.rint(z[test]).astype(int)
        metrics = dict(n_train=int(len(train_rows)), **held_out(np.ones(len(test), dtype=bool)),
                       by_redshift={f"z~{b}": held_out(z_bin == b) for b in np.unique(z_bin).tolist()},
                       n_codes_median=float(np.median(np.isfinite(codes).sum(axis=1))), n_unusable=n_unusable,
                       target_releases=sorted({name for r in rows for name in r[5]}))
        return Trained(common.to_bytes(model), dict(model.hparams), metrics)

    def load(self, path: str, device):
        return ml_mass.load(path, map_location=device)

    def prepare(self, rows: list[tuple]) -> Prepared:
        keys = np.array([(r[0], r[1]) for r in rows], dtype=np.int64).reshape(-1, 2)
        ok, why, z, mags = _usable(rows)
        skipped = [(int(keys[j, 0]), int(keys[j, 1]), why[j]) for j in np.flatnonzero(~ok)]
        return Prepared(keys[ok], ml_mass.features(mags[ok], z[ok]), skipped)

    def predict(self, model, inputs, device) -> Outputs:
        out = ml_mass.predict(model, inputs)
        return Outputs(value=out["log_mass"], uncertainty=out["log_mass_sigma"], refused=out["refused"])


def _usable(rows: list[tuple]) -> tuple[np.ndarray, list[str | None], np.ndarray, np.ndarray]:
    """Which rows the model can take (a redshift > 0, an F160W magnitude: CANDELS selects on
    F160W, and a galaxy without it is outside what the model saw; no magnitude that is a
    sentinel), why not, their z (NaN where none) and magnitudes."""
    z_why = [_redshift(r[2]) for r in rows]
    z = np.array([v for v, _ in z_why], dtype=np.float64)
    mags = _mags(rows)
    with np.errstate(invalid="ignore"):
        sentinel = np.isfinite(mags) & ~((mags > common.MAG_MIN) & (mags < common.MAG_MAX))
    why = [zw if zw else
           "no F160W (H) magnitude, the band CANDELS selects on" if not np.isfinite(m[DETECTION_BAND]) else
           (f"magnitude outside ({common.MAG_MIN:g}, {common.MAG_MAX:g}) AB (a sentinel?): "
            + ", ".join(f"{b} = {v:g}" for b, v, bad in zip(BANDS, m, s) if bad)) if s.any() else None
           for (_, zw), m, s in zip(z_why, mags, sentinel)]
    return np.array([w is None for w in why], dtype=bool), why, z, mags


def _redshift(text: str | None) -> tuple[float, str | None]:
    """A row's ``attrs.zz`` as a redshift, or NaN and why not."""
    z, why = attr_number(text, "redshift (attrs.zz)")
    return (z, why) if why or z > 0 else (np.nan, f"redshift (attrs.zz) = {z:g} is not > 0")


def _mags(rows: list[tuple]) -> np.ndarray:
    """``[N, 17]`` AB magnitudes, NaN where the catalog has none."""
    return np.array([[np.nan if m is None else m for m in r[3]] for r in rows], dtype=np.float64).reshape(-1, len(BANDS))
