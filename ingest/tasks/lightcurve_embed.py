"""Light-curve + photometry embeddings (AstroM3 / CLIP idea) for similarity search over variable stars.

Each source's curves (all bands) come out of ``healcat.light_curve`` as one JSON row; the
metadata view gets the catalogue period (``source.attrs``: EROS-2 ``period``, Stripe 82 ``P``),
each band's median magnitude and the EROS catalogue's variability features (``source.attrs``:
asymmetries, log p(not variable), flux sigmas; NaN, the model's "not measured", for a star whose
catalogue has none, as Stripe 82's). ``prediction.value`` is the cosine agreement of a star's two views
(low: the curve does not look like its catalogue entry). Training is contrastive (no labels), then
the model is fine-tuned with the training split's labels (``healcat.label``; label-aware
contrastive loss, as AstroM3 fine-tunes after CLIP pretraining) and the fine-tuned model is the one
stored. The held-out metric is the k-nearest-neighbour accuracy of the releases' test-split labels
(a release whose labels have no split holds out a seeded fifth of its own stars)
from embeddings alone (k = :data:`ingest.ml.lightcurve_embed.KNN_K`), for the fine-tuned and the
label-free model, beside a supervised classifier with the same encoders, inputs, augmentations,
split and early stopping.
"""

from __future__ import annotations

import json

import numpy as np

from catalog.errors import HealcatError
from ingest.ml import common
from ingest.ml import lightcurve_embed as le
from ingest.tasks import Outputs, Prepared, Task, Trained, attr_number, register, single_thread

BANDS = ("eros_b", "eros_r", "sdss_u", "sdss_g", "sdss_r", "sdss_i", "sdss_z")

#: ``source.attrs`` columns of the EROS-2 catalogue in the metadata view (after the log period and
#: the band medians), each with whether it enters as its log10 (the flux sigmas span decades);
#: NULL (NaN: "not measured") where a star's catalogue has no such column.
CATALOGUE_ATTRS = (("asym_b", False), ("asym_r", False), ("log_p_not_variable", False),
                   ("sigma_flux_b", True), ("sigma_flux_r", True))
N_META = 1 + len(BANDS) + len(CATALOGUE_ATTRS)

#: shard, source_id, period [d] (text as the catalogue wrote it; NULL if none), curves as JSON [[band, times, mags, errs], ...] (NULL when
#: no curve has magnitudes: the source is then skipped with the reason), label, split, release_id, then the
#: CATALOGUE_ATTRS (text as the catalogue wrote them; NULL if none).
_ROWS = """SELECT s.shard, s.source_id, coalesce(s.attrs->>'period', s.attrs->>'P') AS period_day,
       jsonb_agg(jsonb_build_array(lc.band, lc.time_mjd, lc.mag, lc.mag_err) ORDER BY lc.band)
           FILTER (WHERE lc.mag IS NOT NULL) AS curves,
       min(l.label) AS label, min(l.split) AS split, s.release_id, """ + ", ".join(
    f"s.attrs->>'{a}' AS {a}" for a, _ in CATALOGUE_ATTRS) + """
FROM healcat.source AS s
JOIN healcat.light_curve AS lc ON lc.shard = s.shard AND lc.source_id = s.source_id
LEFT JOIN LATERAL (  -- one label (a second taxonomy's would repeat every curve)
    SELECT l.label, l.split FROM healcat.label AS l WHERE l.shard = s.shard AND l.source_id = s.source_id
    ORDER BY l.taxonomy LIMIT 1) AS l ON true
WHERE s.release_id = %(release_id)s{where}
GROUP BY s.shard, s.source_id
ORDER BY s.source_id"""


def _curves(rows: list[tuple]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Light curves ``[n, 4]`` (MJD, mag, err, band index), periods [d] and metadata ``[N, N_META]``
    (log period, the 7 band medians, the CATALOGUE_ATTRS; NaN where not measured)."""
    curves, meta = [], np.full((len(rows), N_META), np.nan)
    for i, r in enumerate(rows):
        parts = []
        for band, t, mag, err in (json.loads(r[3]) if isinstance(r[3], str) else r[3] or []):
            if band not in BANDS:
                continue
            b = BANDS.index(band)
            a = np.array([t, mag, [np.nan if e is None else e for e in err]], dtype=np.float64).T
            a = a[np.isfinite(a).all(axis=1)]
            parts.append(np.column_stack([a, np.full(len(a), b)]))
            if len(a):
                meta[i, 1 + b] = np.median(a[:, 1])
        curves.append(np.concatenate(parts) if parts else np.empty((0, 4)))
    # a period cell that is no number is no period (the model reads a curve without one)
    period = np.array([attr_number(r[2], "period")[0] for r in rows], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        meta[:, 0] = np.log10(period)
        for j, (name, log) in enumerate(CATALOGUE_ATTRS):  # a cell that is no number is not measured
            value = np.array([attr_number(r[7 + j], name)[0] for r in rows], dtype=np.float64)
            meta[:, 1 + len(BANDS) + j] = np.where(value > 0, np.log10(value), np.nan) if log else value
    return curves, period, meta


def held_out(labelled: np.ndarray, split: np.ndarray, release: np.ndarray, seed: int) -> np.ndarray:
    """Which rows are test stars: the labelled rows of the test split, and in a release none of
    whose labelled rows is in a test split (Stripe 82's RR Lyrae have no split) a seeded fifth of its rows
    (:func:`common.split_indices` over the release's rows in order; for one release alone the same
    fifth as over all rows). Per release, so that a release with a split beside one without does not
    put all of the latter into training."""
    test = labelled & (split == "test")
    for r in dict.fromkeys(release.tolist()):
        rows = np.flatnonzero(release == r)
        if not test[rows].any():  # this release publishes no split: a seeded fifth of it
            test[rows[common.split_indices(len(rows), seed)[0]]] = True
    return test & labelled


def _why_no_curve(curves) -> str:
    """Why a source has nothing the model reads: no band it knows, or no finite epoch in them."""
    bands = sorted({c[0] for c in (json.loads(curves) if isinstance(curves, str) else curves or [])})
    if bands and not set(bands) & set(BANDS):
        return f"no band the model reads (has {', '.join(bands)}; reads {', '.join(BANDS)})"
    return "no light-curve epoch with a finite magnitude"


@register
class LightCurveEmbed(Task):
    name = "lightcurve_embed"
    model_name = "lightcurve-clip"
    primary_metric = ("knn_accuracy", "higher")  # held-out k-NN accuracy decides which version is current
    #: Both labelled releases (the issue's training set): EROS-2's RAMP split, and a seeded fifth of
    #: the Stripe 82 RR Lyrae held out (see held_out); metrics.by_release_id gives each one's figures.
    default_training_releases = ("eros2/lmc-ramp-variable-stars", "sdss-s82-rrlyrae/sesar2010")
    value_description = "cosine agreement of the curve's and the catalogue's views"
    training_query = _ROWS.format(where="")
    input_query = _ROWS.format(where="")
    # light curves in a band the model reads (ZTF's g and r are none of them)
    applies_query = ("SELECT EXISTS (SELECT 1 FROM healcat.light_curve WHERE release_id = %(release_id)s AND band IN ("
                     + ", ".join(f"'{b}'" for b in BANDS) + "))")

    def fit(self, rows: list[tuple], *, seed: int, epochs: int | None = None) -> Trained:
        curves, period, meta = _curves(rows)
        split, release = (np.array([r[j] for r in rows], dtype=object) for j in (5, 6))
        labels = np.array([r[4] or "" for r in rows], dtype=object)
        keep = np.array([len(c) > 0 for c in curves])
        labelled = labels != ""  # an unlabelled star trains the label-free model only (never a class "")
        if not (keep & labelled).any():
            raise HealcatError("train lightcurve_embed: no star with a light curve has a label (healcat.label)")
        test = held_out(keep & labelled, split, release, seed)
        fit = keep & ~test
        part = lambda m: ([curves[i] for i in np.flatnonzero(m)], period[m], meta[m])  # noqa: E731
        kw = dict(n_bands=len(BANDS), seed=seed, **({"epochs": epochs} if epochs else {}))
        contrastive = single_thread(le.train, *part(fit), **kw)
        classes, y = np.unique(labels[labelled], return_inverse=True)
        y = np.searchsorted(classes, np.where(labelled, labels, classes[0])).astype(np.int64)
        fit = fit & labelled  # from here on: the labels' turn
        model = single_thread(le.finetune, contrastive, *part(fit), y[fit], seed=seed,
                              **({"epochs": epochs} if epochs else {}))

        def knn_right(m) -> np.ndarray:
            """Whether each held-out star's k-NN vote over the training stars' embeddings is its label."""
            emb_fit = le.embed(m, *part(fit))
            return le.knn_classify(emb_fit, y[fit], le.embed(m, *part(test))) == y[test]

        knn, knn_contrastive = knn_right(model), knn_right(contrastive)
        baseline = single_thread(le.train, *part(fit), labels=y[fit], **kw)
        supervised = le.classify(baseline, *part(test)) == y[test]
        tested = release[test]
        by_release = {str(r): dict(n_test=int((tested == r).sum()), knn_accuracy=float(knn[tested == r].mean()),
                                   knn_accuracy_contrastive=float(knn_contrastive[tested == r].mean()),
                                   supervised_accuracy=float(supervised[tested == r].mean()))
                      for r in dict.fromkeys(tested.tolist())}
        metrics = dict(n_train=int(fit.sum()), n_test=int(test.sum()), n_unlabelled=int((keep & ~labelled).sum()),
                       classes=classes.tolist(), knn_k=le.KNN_K,
                       knn_accuracy=float(knn.mean()), knn_accuracy_contrastive=float(knn_contrastive.mean()),
                       supervised_accuracy=float(supervised.mean()),
                       majority_accuracy=float(np.mean(y[test] == np.bincount(y[fit]).argmax())),
                       epochs_contrastive=contrastive.epochs_run, epochs_finetune=model.epochs_run,
                       epochs_supervised=baseline.epochs_run,
                       by_release_id=by_release)  # the held-out stars of each release (release_id: figures)
        return Trained(common.to_bytes(model), dict(model.hparams), metrics,
                       embedding_dim=2 * model.hparams["out_dim"])

    def load(self, path: str, device):
        model = le.load(path, map_location=device)
        # the metadata columns it was trained on: these (N_META), or the first 8 of them (before 2026-12-05);
        # weights with another count read other columns (predict cuts to the model's own count)
        if model.hparams["n_meta"] not in (1 + len(BANDS), N_META):
            raise HealcatError(f"lightcurve_embed: these weights read {model.hparams['n_meta']} metadata columns; the "
                               f"task gives {N_META} (log period, {len(BANDS)} band medians, "
                               f"{', '.join(a for a, _ in CATALOGUE_ATTRS)}) or, for weights before them, the first "
                               f"{1 + len(BANDS)}")
        return model

    def embedding_dim(self, model) -> int:
        return 2 * model.hparams["out_dim"]

    def prepare(self, rows: list[tuple]) -> Prepared:
        keys = np.array([(r[0], r[1]) for r in rows], dtype=np.int64).reshape(-1, 2)
        curves, period, meta = _curves(rows)
        ok = np.array([len(c) > 0 for c in curves], dtype=bool)
        skipped = [(int(keys[i, 0]), int(keys[i, 1]), _why_no_curve(rows[i][3])) for i in np.flatnonzero(~ok)]
        return Prepared(keys[ok], ([curves[i] for i in np.flatnonzero(ok)], period[ok], meta[ok]), skipped)

    def predict(self, model, inputs, device) -> Outputs:
        curves, period, meta = inputs
        # A version trained before the catalogue columns (2026-12-05) reads the first 8 columns, its own.
        embedding, agreement = le.embed_and_agreement(model, curves, period, meta[:, :model.hparams["n_meta"]])
        return Outputs(value=agreement, embedding=embedding)
