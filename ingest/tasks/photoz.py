"""Photometric redshift p(z) from SDSS ugriz (mixture density network), for galaxies only."""

from __future__ import annotations

from ingest.ml import photoz as ml_photoz
from ingest.tasks import Outputs, Prepared, Task, Trained, in_lane, register, single_thread, ugriz
from ingest.tasks.object_class import ObjectClass


@register
class Photoz(Task):
    name = "photoz"
    model_name = "photoz-sdss"
    primary_metric = ("nmad", "lower")  # held-out NMAD of dz/(1+z) decides which version is current
    default_training_releases = ("sdss/dr14-skyserver-10k",)
    value_description = "photometric redshift z (the p(z) mixture's median)"
    value_min = ml_photoz.Z_MIN  # a redshift is not negative: p(z) is read truncated at z = 0
    gives_pdf = True
    #: The release's spectroscopic galaxies, ordered so the split is reproducible.
    training_query = ugriz.ugriz_query(
        columns=", r.z",
        joins="JOIN healcat.spec_redshift AS r ON r.shard = s.shard AND r.source_id = s.source_id\n",
        where="AND upper(r.spec_class) = 'GALAXY' AND r.z IS NOT NULL")
    #: Every source of the release, with the reason it is not a galaxy (NULL if it is one): its
    #: spectrum's class where it has one (in any case: 'galaxy' is a galaxy), else the label of the
    #: object classifier it requires (run first).
    input_query = ugriz.ugriz_query(
        columns=""",
       CASE WHEN upper(r.spec_class) <> 'GALAXY' THEN 'not a galaxy: spectrum says ' || r.spec_class
            WHEN r.spec_class IS NULL AND c.label IS NULL THEN 'no class: no spectrum and no object_class prediction'
            WHEN r.spec_class IS NULL AND c.label <> 'GALAXY' THEN 'not a galaxy: classified ' || c.label
       END AS not_galaxy""",
        joins=f"LEFT JOIN healcat.spec_redshift AS r ON r.shard = s.shard AND r.source_id = s.source_id AND {in_lane('r')}\n"
              "LEFT JOIN healcat.prediction AS c ON c.shard = s.shard AND c.source_id = s.source_id "
              f"AND c.model_id = %(object_class_model_id)s AND {in_lane('c')}\n",
        lanes=True)
    applies_query = ugriz.APPLIES_QUERY
    missing_query = ugriz.MISSING_QUERY
    requires = {ObjectClass.name: ObjectClass.model_name}  # object-class-sdss, whatever other classifiers exist

    def fit(self, rows: list[tuple], *, seed: int, epochs: int | None = None) -> Trained:
        keys, mags, dropped = ugriz.split_rows(rows)
        z = {int(r[1]): r[7] for r in rows}
        z_spec = [z[int(k)] for k in keys[:, 1]]
        # cv_folds: the PIT over every galaxy, each predicted by a model that did not train on it
        # (metrics *_cv): 4 more trainings, ~15-25 s on one thread for SDSS's 4,998 galaxies (one alone ~5 s);
        # groups: the same again with folds of whole sky regions (the shard: HEALPix order 4, 3.7 deg), so
        # that no galaxy is predicted by a model that trained on a neighbour of its group (*_sky_cv): 5 more
        model, report = single_thread(ml_photoz.train, mags, z_spec, seed=seed, cv_folds=ml_photoz.CV_FOLDS,
                                       groups=keys[:, 0], **({"epochs": epochs} if epochs else {}))
        report["n_dropped"] += len(dropped)  # galaxies without five valid magnitudes
        return Trained(ml_photoz.to_bytes(model), dict(model.hparams), report, embedding_dim=self.embedding_dim(model))

    def load(self, path: str, device):
        return ml_photoz.load(path, map_location=device)

    def embedding_dim(self, model) -> int:
        return model.hparams["embed_dim"]

    def prepare(self, rows: list[tuple]) -> Prepared:
        keys, mags, skipped = ugriz.split_rows(rows, reason_column=7)
        return Prepared(keys, ml_photoz.features(mags), skipped)

    def predict(self, model, inputs, device) -> Outputs:
        out = ml_photoz.predict(model, inputs, device=device)
        return Outputs(value=out["z_point"], uncertainty=out["z_sigma"], value_p16=out["z_p16"], value_p84=out["z_p84"],
                       pdf_weights=out["weights"],
                       pdf_means=out["means"], pdf_sigmas=out["sigmas"], embedding=out["embedding"],
                       refused=ml_photoz.refused(model, inputs, out))
