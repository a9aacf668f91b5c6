"""Object class (star / galaxy / QSO) from SDSS ugriz, trained on spectroscopic classes."""

from __future__ import annotations

import numpy as np

from ingest.ml import classifier
from ingest.ml import photoz as ml_photoz
from ingest.tasks import Outputs, Prepared, Task, Trained, register, single_thread, ugriz

CLASSES = ("GALAXY", "QSO", "STAR")


@register
class ObjectClass(Task):
    name = "object_class"
    model_name = "object-class-sdss"
    primary_metric = ("accuracy", "higher")  # held-out accuracy decides which version is current
    default_training_releases = ("sdss/dr14-skyserver-10k",)
    value_description = "probability of the label (the most probable class's, 0 to 1)"
    classes = CLASSES
    #: The release's objects with a spectroscopic class, ordered so the split is reproducible.
    training_query = ugriz.ugriz_query(
        columns=", upper(r.spec_class)",  # as class names are written: 'galaxy' is a GALAXY
        joins="JOIN healcat.spec_redshift AS r ON r.shard = s.shard AND r.source_id = s.source_id\n",
        where=f"AND upper(r.spec_class) IN ({', '.join(repr(c) for c in CLASSES)})")
    #: Every source of the release.
    input_query = ugriz.ugriz_query(lanes=True)
    applies_query = ugriz.APPLIES_QUERY
    missing_query = ugriz.MISSING_QUERY

    def fit(self, rows: list[tuple], *, seed: int, epochs: int | None = None) -> Trained:
        keys, mags, dropped = ugriz.split_rows(rows)
        labels = {int(r[1]): CLASSES.index(r[7]) for r in rows}
        y = np.array([labels[int(k)] for k in keys[:, 1]], dtype=np.int64)
        model, report = single_thread(classifier.train, ml_photoz.features(mags), y, n_classes=len(CLASSES),
                                       class_names=CLASSES, seed=seed, **({"epochs": epochs} if epochs else {}))
        report.update(classes=list(CLASSES), n_dropped=len(dropped))  # objects without five valid magnitudes
        return Trained(classifier.to_bytes(model), {**model.hparams, "classes": list(CLASSES)}, report)

    def load(self, path: str, device):
        return classifier.load(path, map_location=device)

    def prepare(self, rows: list[tuple]) -> Prepared:
        keys, mags, skipped = ugriz.split_rows(rows)
        return Prepared(keys, ml_photoz.features(mags), skipped)

    def predict(self, model, inputs, device) -> Outputs:
        probs = classifier.predict(model, inputs, device=device)
        return Outputs(value=probs.max(1), class_names=CLASSES, probabilities=probs,
                       refused=ugriz.outside_training(model, inputs))

