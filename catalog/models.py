"""The catalog's tables as SQLAlchemy 2 typed models (schema ``healcat``).

Every table of per-object rows carries ``shard`` (the order-4 HEALPix pixel,
``hpx >> 50``; see :mod:`catalog.healpix`) in its primary key and every unique
constraint (not always first: photometry, predictions and embeddings lead with
the column their writes append in order), and child tables reference ``(shard, source_id)`` so that a distributed
PostgreSQL (Citus) can distribute them all on ``shard`` and colocate an
object's photometry, spectra, predictions and embeddings with it. ``shard`` is
a plain stored column, never a generated one, because Citus cannot distribute
on a generated column.

The migrations in ``migrations/versions`` are the source of truth for the
database; ``tests/test_migrations.py`` proves these models agree with them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    REAL,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from catalog.healpix import NO_SHARD, SHARD_ORDER, SHARD_SHIFT

SCHEMA = "healcat"

#: Alembic's documented naming convention, so constraints have stable names.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class PerSource:
    """The key columns of a table of per-object rows: colocated with the source by ``shard``.

    A class lists its own constraints in ``__extra_args__``; the foreign key to ``source`` is added here.
    """

    __extra_args__: tuple = ()
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, sort_order=-2)
    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, sort_order=-1)

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        fk = ForeignKeyConstraint(
            ["shard", "source_id"],
            [f"{SCHEMA}.source.shard", f"{SCHEMA}.source.source_id"],
            name=f"fk_{cls.__tablename__}_source",
            ondelete="CASCADE",
        )
        return (fk, *cls.__extra_args__)


# --- provenance --------------------------------------------------------------


class Survey(Base):
    __tablename__ = "survey"
    survey_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)


class Release(Base):
    __tablename__ = "release"
    __table_args__ = (
        UniqueConstraint("survey_id", "version", name="uq_release_survey_version"),
        CheckConstraint("status IN ('published', 'superseded', 'withdrawn')", name="status"),
        CheckConstraint("(status = 'withdrawn') = (withdrawn_at IS NOT NULL AND withdrawn_reason IS NOT NULL)",
                        name="withdrawn"),
        # At most one published (current) release per survey: publish.py supersedes the others.
        Index("uq_release_published_survey", "survey_id", unique=True, postgresql_where=text("status = 'published'")),
    )
    release_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.survey.survey_id"))
    name: Mapped[str] = mapped_column(Text, unique=True, comment="survey/version, e.g. sdss/dr14-skyserver-10k")
    version: Mapped[str] = mapped_column(Text)
    release_date: Mapped[dt.date | None] = mapped_column(Date)
    source_uri: Mapped[str] = mapped_column(Text, comment="file path or URL the release was read from")
    checksum: Mapped[str] = mapped_column(Text, unique=True, comment="sha256 of the input file(s) and mapping")
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the column mapping used, verbatim")
    row_counts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    status: Mapped[str] = mapped_column(
        Text, comment="published; superseded once a newer release of the survey replaces it; withdrawn by an "
                      "operator (healcat release withdraw): out of the survey's order, its rows kept"
    )
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_reason: Mapped[str | None] = mapped_column(Text, comment="why the operator withdrew it")
    created_at: Mapped[dt.datetime] = _created()
    previous_release_id: Mapped[int | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.release.release_id"),
        comment="the survey's release this one was compared with when published (release_change)",
    )


class Quarantine(Base):
    """Input rows that failed validation, kept with the reason (never silently dropped)."""

    __tablename__ = "quarantine"
    quarantine_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"), index=True
    )
    file: Mapped[str] = mapped_column(Text)
    row_number: Mapped[int] = mapped_column(BigInteger, comment="1-based data row in the file")
    column_name: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the input row as read")


# --- objects -----------------------------------------------------------------


class Source(Base):
    """One astronomical object in one release."""

    __tablename__ = "source"
    __table_args__ = (
        UniqueConstraint("release_id", "object_id", "shard", name="uq_source_release_object_shard"),
        CheckConstraint("dec BETWEEN -90 AND 90", name="dec_range"),
        CheckConstraint("ra >= 0 AND ra < 360", name="ra_range"),
        CheckConstraint("(hpx IS NULL) = (ra IS NULL) AND (ra IS NULL) = (dec IS NULL)", name="position_complete"),
        CheckConstraint(f"hpx IS NULL OR shard = hpx >> {SHARD_SHIFT}", name="shard_is_hpx_pixel"),
        CheckConstraint(f"shard BETWEEN {NO_SHARD} AND {12 * 4**SHARD_ORDER - 1}", name="shard_range"),
        CheckConstraint("(pmra_masyr IS NULL) = (pmdec_masyr IS NULL) "
                        "AND (pmra_masyr IS NULL OR ref_epoch_yr IS NOT NULL)", name="proper_motion_complete"),
        Index("ix_source_hpx", "hpx"),
        # an epoch cross-match's pad and fast movers (migration 0046, sql/xmatch_v7.sql)
        Index("ix_source_pm", "release_id", "ref_epoch_yr",
              text("sqrt(pmra_masyr * pmra_masyr + pmdec_masyr * pmdec_masyr)"),
              postgresql_where=text("pmra_masyr IS NOT NULL")),
    )
    # Primary key (source_id, shard): source_id first, so that no index but ix_source_hpx leads
    # with the shard and the planner answers a cone's `shard = ANY(...)` through the hpx ranges.
    source_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    shard: Mapped[int] = mapped_column(
        SmallInteger, primary_key=True, comment="order-4 nested HEALPix pixel (hpx >> 50); -1 if unknown"
    )
    release_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.release.release_id"))
    object_id: Mapped[str] = mapped_column(Text, comment="the survey's own identifier, exact, as text")
    ra: Mapped[float | None] = mapped_column(Double, comment="ICRS right ascension [deg]")
    dec: Mapped[float | None] = mapped_column(Double, comment="ICRS declination [deg]")
    hpx: Mapped[int | None] = mapped_column(
        BigInteger, comment="nested HEALPix index at order 29 of (ra, dec); HATS _healpix_29"
    )
    attrs: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default="{}", comment="survey columns with no table of their own"
    )
    pmra_masyr: Mapped[float | None] = mapped_column(
        Double, comment="proper motion in RA, mu_alpha* = mu_alpha cos(dec) [mas/yr]")
    pmdec_masyr: Mapped[float | None] = mapped_column(Double, comment="proper motion in Dec [mas/yr]")
    ref_epoch_yr: Mapped[float | None] = mapped_column(
        Double, comment="epoch of ra, dec and the proper motions [Julian year, e.g. 2016.0]")


class SourceXid(PerSource, Base):
    """External identifiers (Gaia DR3 source_id, SDSS specobjid, ...) for joining by id."""

    __tablename__ = "source_xid"
    __extra_args__ = (Index("ix_source_xid_catalog_xid", "catalog", "xid"),)
    catalog: Mapped[str] = mapped_column(Text, primary_key=True, comment="e.g. gaia_dr3")
    xid: Mapped[str] = mapped_column(Text)


class Photometry(PerSource, Base):
    """One band of one source. Primary key led by ``source_id`` (migration 0014): a load's new
    sources take ids above every earlier one, so their photometry is appended at the right edge of
    the index instead of being inserted in every shard's part of it."""

    __tablename__ = "photometry"
    __extra_args__ = (CheckConstraint("mag_system IN ('AB', 'Vega')", name="mag_system"),
                      PrimaryKeyConstraint("source_id", "shard", "band", name="pk_photometry"))
    band: Mapped[str] = mapped_column(Text, primary_key=True, comment="e.g. sdss_r, gaia_g")
    mag: Mapped[float | None] = mapped_column(REAL, comment="magnitude [mag] in mag_system")
    mag_err: Mapped[float | None] = mapped_column(REAL, comment="[mag]")
    mag_system: Mapped[str] = mapped_column(Text)
    flux_ujy: Mapped[float | None] = mapped_column(REAL, comment="flux density [uJy]")
    flux_err_ujy: Mapped[float | None] = mapped_column(REAL, comment="[uJy]")


class SpecRedshift(PerSource, Base):
    __tablename__ = "spec_redshift"
    z: Mapped[float | None] = mapped_column(Double, comment="spectroscopic redshift; NULL when only the class is known")
    z_err: Mapped[float | None] = mapped_column(Double)
    quality: Mapped[int | None] = mapped_column(Integer, comment="survey flag, e.g. SDSS zWarning (0 = good)")
    spec_class: Mapped[str | None] = mapped_column(Text, comment="GALAXY / STAR / QSO")


class Spectrum(PerSource, Base):
    __tablename__ = "spectrum"
    spectrum_name: Mapped[str] = mapped_column(Text, primary_key=True, index=True, comment="e.g. spec-PLATE-MJD-FIBER")
    wavelength: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    flux: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    ivar: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    wavelength_unit: Mapped[str] = mapped_column(Text, comment="astropy unit string, e.g. Angstrom")
    flux_unit: Mapped[str] = mapped_column(Text, comment="astropy unit string, e.g. 1e-17 erg/(s cm2 Angstrom)")
    vacuum: Mapped[bool | None] = mapped_column()
    # Added by migration 0007 (per-object files: ingest/perobject.py).
    release_id: Mapped[int] = mapped_column(  # in the key since migration 0022: one row per release's reading
        ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"), primary_key=True, index=True,
        comment="the release the spectrum was read from (its source may belong to an earlier one)",
    )
    mask: Mapped[list[int] | None] = mapped_column(ARRAY(Integer), comment="survey pixel mask, e.g. SDSS and_mask (0 = good)")
    ivar_unit: Mapped[str | None] = mapped_column(Text, comment="astropy unit string of ivar: flux_unit**-2")
    mjd: Mapped[float | None] = mapped_column(Double, comment="[MJD] observation (SDSS: the plate's MJD)")
    file: Mapped[str | None] = mapped_column(Text, comment="the file it was read from, relative to the data folder")


class LightCurve(PerSource, Base):
    """One band of one object's light curve, as aligned arrays."""

    __tablename__ = "light_curve"
    band: Mapped[str] = mapped_column(Text, primary_key=True)
    time_mjd: Mapped[list[float]] = mapped_column(ARRAY(Double), comment="[MJD, TDB unless time_scale says]")
    time_scale: Mapped[str] = mapped_column(Text, server_default="tdb")
    mag: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    mag_err: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    mag_system: Mapped[str | None] = mapped_column(Text)
    flux_ujy: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    flux_err_ujy: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    # Added by migration 0007 (per-object files: ingest/perobject.py).
    release_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"), index=True,
        comment="the release the curve was read from",
    )
    time_origin: Mapped[str] = mapped_column(
        Text, server_default="MJD", comment="how time_mjd was obtained from the file's times, e.g. 'MJD as published'"
    )


class Label(PerSource, Base):
    """A class label of an object under a named taxonomy (training targets for classifiers)."""

    __tablename__ = "label"
    __extra_args__ = (Index("ix_label_taxonomy_label", "taxonomy", "label"),)
    taxonomy: Mapped[str] = mapped_column(Text, primary_key=True, comment="whose classes, e.g. eros2_ramp_type")
    label: Mapped[str] = mapped_column(Text, comment="the class as the dataset spells it")
    split: Mapped[str | None] = mapped_column(Text, comment="train/test as the dataset publishes it, if it does")
    release_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"), index=True
    )


class Cluster(Base):
    """A star cluster or a subgroup of an association, with its own age (reference table: small,
    replicated when distributed)."""

    __tablename__ = "cluster"
    cluster_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    age_myr: Mapped[float | None] = mapped_column(Double, comment="the first age a release gave it [Myr]")
    age_err_myr: Mapped[float | None] = mapped_column(Double, comment="[Myr]")
    ra: Mapped[float | None] = mapped_column(Double, comment="ICRS [deg]")
    dec: Mapped[float | None] = mapped_column(Double, comment="ICRS [deg]")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.cluster.cluster_id"),
        comment="the association this cluster is a subgroup of (e.g. Upper Sco -> Sco-Cen); NULL for a cluster of its own")


class RotationPeriod(PerSource, Base):
    """A star's rotation period as one release gives it; a release may attach it to another
    release's source (joined by external id), so the release is part of the key."""

    __tablename__ = "rotation_period"
    release_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"), primary_key=True
    )
    period_day: Mapped[float] = mapped_column(Double, comment="[d]")
    period_err_day: Mapped[float | None] = mapped_column(Double, comment="[d]")
    bp_rp_dered: Mapped[float | None] = mapped_column(REAL, comment="dereddened Gaia BP-RP [mag, Vega]")
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey(f"{SCHEMA}.cluster.cluster_id"))
    cluster_age_myr: Mapped[float | None] = mapped_column(
        Double, comment="the age this release gives the star's cluster [Myr] (another release may revise it)")
    membership_prob: Mapped[float | None] = mapped_column(REAL)
    reference: Mapped[str | None] = mapped_column(Text, comment="where the period was published")
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class StellarMass(PerSource, Base):
    """Stellar mass and star-formation rate of a galaxy from one SED-fitting code (one release per
    code's output), attached to the photometry's source by its survey id."""

    __tablename__ = "stellar_mass"
    release_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(Text, comment="the SED-fitting code, e.g. prospector")
    log_mass_msun: Mapped[float] = mapped_column(Double, comment="log10 stellar mass [Msun], median")
    log_mass_p16_msun: Mapped[float | None] = mapped_column(Double, comment="16th percentile [log10 Msun]")
    log_mass_p84_msun: Mapped[float | None] = mapped_column(Double, comment="84th percentile [log10 Msun]")
    log_sfr_msun_yr: Mapped[float | None] = mapped_column(Double, comment="log10 SFR [Msun/yr], median")
    log_sfr_p16_msun_yr: Mapped[float | None] = mapped_column(Double)
    log_sfr_p84_msun_yr: Mapped[float | None] = mapped_column(Double)


class ReleaseChange(PerSource, Base):
    """How a release differs from the survey's previous one: objects new, changed or vanished.

    ``(shard, source_id)`` is the object in this release for 'new' and 'changed', and the object of
    the previous release for 'vanished'; ``previous_*`` is always the previous release's object.
    Objects matched by id with identical values are unchanged and get no row.
    """

    __tablename__ = "release_change"
    __extra_args__ = (
        CheckConstraint("change IN ('new', 'changed', 'vanished')", name="change"),
        CheckConstraint("matched_by IN ('object_id', 'position')", name="matched_by"),
        Index("ix_release_change_release_id_change", "release_id", "change"),
    )
    release_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"), primary_key=True
    )
    change: Mapped[str] = mapped_column(Text)
    previous_shard: Mapped[int | None] = mapped_column(SmallInteger)
    previous_source_id: Mapped[int | None] = mapped_column(BigInteger)
    matched_by: Mapped[str | None] = mapped_column(Text, comment="object_id, or position when the id changed")
    separation_arcsec: Mapped[float | None] = mapped_column(Double, comment="between the two positions [arcsec]")


# --- machine learning --------------------------------------------------------


class Model(Base):
    """One version of one trained model; 'the current version' is a view, not an overwrite: the newest
    promoted, unretired one (``current_model``). A version registered whose primary held-out metric is
    worse than the current version's is a candidate (``promoted_at`` NULL) until promoted."""

    __tablename__ = "model"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_name_version"),)
    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    task: Mapped[str] = mapped_column(Text, comment="e.g. photoz, object_class, gyro_age")
    framework: Mapped[str] = mapped_column(Text, comment="e.g. torch 2.13.0")
    weights_path: Mapped[str] = mapped_column(Text, comment="where the weights were written when trained")
    weights_sha256: Mapped[str] = mapped_column(Text)
    weights: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="the weights file itself, so workers on any machine can load it"
    )
    training_set: Mapped[str] = mapped_column(Text, comment="how the training set was built (the SQL query)")
    training_params: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default="{}", comment="the parameters the training query ran with, e.g. release_id"
    )
    hyperparams: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    embedding_dim: Mapped[int | None] = mapped_column(Integer, comment="length of its embedding vectors")
    created_at: Mapped[dt.datetime] = _created()
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    promoted_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now(),
        comment="when it became current (promoted); NULL: a candidate, never promoted")


class InferenceRun(Base):
    """One run of a model version over a release; outputs are visible (and current) once it is finished."""

    __tablename__ = "inference_run"
    __table_args__ = (
        # One run per (model version, release) at a time (an advisory lock), so at most one finished.
        Index("uq_inference_run_done", "model_id", "release_id", unique=True,
              postgresql_where=text("finished_at IS NOT NULL")),
    )
    run_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.model.model_id"))
    release_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.release.release_id"))
    device: Mapped[str] = mapped_column(Text)
    n_predicted: Mapped[int] = mapped_column(BigInteger, server_default="0")
    n_skipped: Mapped[int] = mapped_column(BigInteger, server_default="0")
    started_at: Mapped[dt.datetime] = _created()
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    inputs: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB, comment='the model versions its input query read, by task, e.g. {"object_class": model_id}; '
                       'NULL: not recorded (runs before migration 0036)')


class Prediction(PerSource, Base):
    __tablename__ = "prediction"
    # Led by model_id (migration 0016): a run's rows are appended at the index's right edge.
    __extra_args__ = (PrimaryKeyConstraint("model_id", "source_id", "shard", name="pk_prediction"),
                      Index("ix_prediction_run_id", "run_id", postgresql_using="brin"))  # deleting a run (0023)
    model_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.model.model_id"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.inference_run.run_id"))
    value: Mapped[float] = mapped_column(Double, comment="point estimate, in the task's unit")
    uncertainty: Mapped[float | None] = mapped_column(Double, comment="1-sigma, same unit as value")
    pdf_weights: Mapped[list[float] | None] = mapped_column(ARRAY(REAL), comment="Gaussian-mixture weights")
    pdf_means: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    pdf_sigmas: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    label: Mapped[str | None] = mapped_column(Text, comment="classification: the most probable class")
    probabilities: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB, comment='classification: probability per class, e.g. {"GALAXY": 0.97, "QSO": 0.01, "STAR": 0.02}'
    )
    created_at: Mapped[dt.datetime] = _created()
    value_p16: Mapped[float | None] = mapped_column(Double, comment="16th percentile of the posterior, same unit as value")
    value_p84: Mapped[float | None] = mapped_column(Double, comment="84th percentile of the posterior, same unit as value")


class ClusterAge(Base):
    """A cluster's age from all its members in a release, by one run of an age model (migration 0028)."""

    __tablename__ = "cluster_age"
    __table_args__ = {"comment": "a cluster's age from all its members in a release, by one inference run"}
    run_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.inference_run.run_id", ondelete="CASCADE"), primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.cluster.cluster_id"), primary_key=True)
    n_members: Mapped[int] = mapped_column(Integer, comment="the members whose likelihoods were multiplied")
    log_age_yr: Mapped[float] = mapped_column(Double, comment="posterior median of log10(age / yr)")
    log_age_p16_yr: Mapped[float] = mapped_column(Double, comment="16th percentile [log10 yr]")
    log_age_p84_yr: Mapped[float] = mapped_column(Double, comment="84th percentile [log10 yr]")


class InferenceSkip(PerSource, Base):
    """A source an inference run gave no output for, with the reason (missing band, not a galaxy...)."""

    __tablename__ = "inference_skip"
    __extra_args__ = (Index("ix_inference_skip_run_id", "run_id"),)
    run_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.inference_run.run_id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(Text)


class Embedding(PerSource, Base):
    """Similarity vectors; each model gets a partial HNSW index on ``vec::vector(dim)``."""

    __tablename__ = "embedding"
    __extra_args__ = (PrimaryKeyConstraint("model_id", "source_id", "shard", name="pk_embedding"),
                      Index("ix_embedding_run_id", "run_id", postgresql_using="brin"))
    model_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.model.model_id"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.inference_run.run_id"))
    vec: Mapped[Any] = mapped_column(Vector())


# --- jobs --------------------------------------------------------------------


class Job(Base):
    """A unit of work for the workers (ingest, infer); see ingest/queue.py."""

    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint("kind IN ('ingest', 'infer', 'index')", name="kind"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        # One live job per piece of work: duplicates are stopped here, not by code.
        Index("uq_job_live_key", "key", unique=True, postgresql_where=text("status IN ('queued', 'running')")),
        Index("ix_job_due", "run_after", postgresql_where=text("status = 'queued'")),
    )
    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text, comment="what the job does, e.g. ingest:sdss_dr14_skyserver_10k")
    args: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    status: Mapped[str] = mapped_column(Text, server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="5")
    run_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    queued_at: Mapped[dt.datetime] = _created()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(Text, comment="host:pid of the worker that ran it last")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    parent_job_id: Mapped[int | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.job.job_id", ondelete="SET NULL"), comment="the job whose success queued this one"
    )
    progress_done: Mapped[int | None] = mapped_column(BigInteger, comment="rows (or steps) done so far")
    progress_total: Mapped[int | None] = mapped_column(BigInteger, comment="rows (or steps) in all, when known")


class ScheduledIngest(Base):
    """A release file the scheduler has queued, by checksum: two schedulers never queue it twice."""

    __tablename__ = "scheduled_ingest"
    checksum: Mapped[str] = mapped_column(Text, primary_key=True, comment="release checksum (file and mapping)")
    mapping: Mapped[str] = mapped_column(Text)
    file: Mapped[str] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(ForeignKey(f"{SCHEMA}.job.job_id", ondelete="SET NULL"))
    scheduler: Mapped[str] = mapped_column(Text, comment="host:pid of the scheduler that found it")
    found_at: Mapped[dt.datetime] = _created()


#: Every table of the schema, from the models above (tests/test_migrations.py proves they are the
#: migrations' tables): what ANALYZE refreshes (ingest.indexing, ingest.load.analyze_written).
TABLES = tuple(t.name for t in Base.metadata.sorted_tables if t.schema == SCHEMA)
