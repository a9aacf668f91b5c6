"""Loaders for the science models' training files (numpy + csv + astropy), used by their tests.

Each returns plain numpy arrays with units in the key names. Rows the papers exclude are
filtered here with the reason counted; a malformed cell raises naming file, row and column.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ingest.mapping import data_dir

NULLS = {"", "NULL", "nan", "NaN"}


def _float(path: Path, row: int, column: str, text: str) -> float:
    if text.strip() in NULLS:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: row {row}, column {column!r}: not a number: {text!r}") from None


def chronoflow() -> dict[str, np.ndarray]:
    """ChronoFlow rotators after the paper's cuts (cmd/dered/phot_exclude == 0, RUWE < 1.4).

    Keys: ``gaia_dr3_id``, ``cluster``, ``population`` (subgroup: one age each), ``bprp0_mag``,
    ``prot_day``, ``log_age`` (log10 yr), ``n_excluded`` (rows cut, by the paper's flags).
    """
    path = data_dir() / "chronoflow_prot" / "prot_catalogue.csv"
    cols: dict[str, list] = {k: [] for k in ("gaia_dr3_id", "cluster", "population", "bprp0_mag",
                                              "prot_day", "log_age")}
    n_excluded = 0
    with path.open(newline="") as f:
        for i, r in enumerate(csv.DictReader(f), start=2):
            ruwe = _float(path, i, "dr3_ruwe", r["dr3_ruwe"])
            if (r["cmd_exclude"], r["dered_exclude"], r["phot_exclude"]) != ("0", "0", "0") or not ruwe < 1.4:
                n_excluded += 1
                continue
            cols["gaia_dr3_id"].append(int(r["GaiaDR3_ID"]))
            cols["cluster"].append(r["cluster"])
            cols["population"].append(r["subgroup"])
            cols["bprp0_mag"].append(_float(path, i, "BPRP_0", r["BPRP_0"]))
            cols["prot_day"].append(_float(path, i, "Prot", r["Prot"]))
            cols["log_age"].append(np.log10(_float(path, i, "fiducial_age_Myr", r["fiducial_age_Myr"]) * 1e6))
    out = {k: np.array(v) for k, v in cols.items()}
    out["n_excluded"] = np.array(n_excluded)
    return out


CANDELS = "candels_goodss_sedfit_comparison"
CANDELS_BANDS = ("CTIO_U", "VIMOS_U", "ACS_F435W", "ACS_F606W", "ACS_F775W", "ACS_F814W", "ACS_F850LP",
                 "WFC3_F098M", "WFC3_F105W", "WFC3_F125W", "WFC3_F160W", "ISAAC_KS", "HAWKI_KS",
                 "IRAC_CH1", "IRAC_CH2", "IRAC_CH3", "IRAC_CH4")


def _whitespace_table(path: Path, comment: str = "#") -> tuple[list[str], np.ndarray]:
    """Header names (the last ``#`` line before the data) and a float array of the rows."""
    names: list[str] = []
    rows: list[list[float]] = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith(comment):
            names = line.lstrip(comment).replace(",", " ").split()
        elif line.strip():
            cells = line.replace(",", " ").split()
            if len(cells) != len(names):
                raise ValueError(f"{path}: row {i}: {len(cells)} cells for {len(names)} header columns")
            rows.append([_float(path, i, names[j], c) for j, c in enumerate(cells)])
    return names, np.array(rows)


def _code_masses() -> dict[str, dict[int, float]]:
    """Each SED-fitting code's median stellar mass per CANDELS ID, log10(M/Msun), z1 and z3 samples.

    Left out: SpeedyMC (rows numbered 1..N, not CANDELS IDs), the headerless CIGALE z1 table,
    LePhare (the 23-object pilot sample) and the unlabelled mass_sfr_distribution_comparison.txt.
    """
    from astropy.io import fits

    from ingest.mapping import load_mapping

    out_dir = data_dir() / CANDELS / "code_outputs"
    codes: dict[str, dict[int, float]] = {}

    def add(code: str, ids, masses, failed: tuple[float, ...] = ()) -> None:
        table = codes.setdefault(code, {})
        for i, m in zip(np.asarray(ids).astype(float).astype(int).tolist(), np.asarray(masses, float).tolist()):
            if np.isfinite(m) and 6.0 < m < 13.0 and m not in failed:  # log10 Msun; codes flag failed fits with sentinels
                table[i] = m

    for sample in ("z1", "z3"):
        for code, fname, col in (("bagpipes", f"bagpipes_11_3_19_{sample}_noir.cat", "stellar_mass_50"),
                                 ("prospector", f"prospector_output_{sample}.dat", "logmass"),
                                 ("sed3fit", f"RIVERSIDE_{sample}_SED3FIT_RESULTS_8_2.dat", "Mstar50"),
                                 ("interrogator_bpass", f"INTERROGATOR_{sample}_output.dat", "BPASS_log10M*_50"),
                                 ("interrogator_pegase", f"INTERROGATOR_{sample}_output.dat", "PEGASE_log10M*_50")):
            names, arr = _whitespace_table(out_dir / fname)
            # SED3FIT's failed fits (the grid's floor), as its shipped mappings list them
            failed = load_mapping(f"candels_sed3fit_{sample}").section_sentinels["stellar_mass"] if code == "sed3fit" else ()
            add(code, arr[:, 0], arr[:, names.index(col)], failed)
        beagle = fits.getdata(out_dir / f"BEAGLE_summary_catalogue_{sample}.fits", "GALAXY PROPERTIES")
        add("beagle", beagle["ID"], np.log10(beagle["M_star_median"]))
        magphys = fits.getdata(out_dir / ("MAGPHYS_output.fits" if sample == "z1" else "MAGPHYS_output_z3.fits"), 1)
        add("magphys", magphys["ID_0"], magphys["Mstar50_0"])
    eazy = fits.getdata(out_dir / "CANDELS_GDSS_workshop_z1.eazypy.zout.fits", 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        add("eazypy", eazy["id"], np.log10(eazy["mass"]))
    names, arr = _whitespace_table(out_dir / "cigale_27feb_results_z3.dat")
    add("cigale", arr[:, 0], arr[:, names.index("logMstar")])
    return codes


def candels() -> dict[str, np.ndarray]:
    """CANDELS GOODS-S z~1 and z~3 workshop galaxies with photometry and the codes' masses.

    Keys: ``candels_id``, ``z``, ``mag_ab`` ``[N, 17]`` (NaN where the catalogue flags no data:
    98.9x magnitudes or -99 errors), ``mag_err`` ``[N, 17]``, ``code_log_mass`` ``[N, C]``
    (log10 Msun, NaN where a code has no fit), ``codes`` (names), ``bands``.
    """
    rows_id, rows_z, mags, errs = [], [], [], []
    for sample in ("z1", "z3"):
        path = data_dir() / CANDELS / "catalogs" / f"CANDELS_GDSS_workshop_{sample}.dat"
        names, arr = _whitespace_table(path)
        rows_id.append(arr[:, names.index("ID")].astype(int))
        rows_z.append(arr[:, names.index("zz")])
        m = np.stack([arr[:, names.index(b)] for b in CANDELS_BANDS], axis=1)
        e = np.stack([arr[:, names.index("e" + b)] for b in CANDELS_BANDS], axis=1)
        missing = (m > 90) | (e < 0)
        mags.append(np.where(missing, np.nan, m))
        errs.append(np.where(missing, np.nan, e))
    ids = np.concatenate(rows_id)
    codes = _code_masses()
    names = sorted(codes)
    table = np.array([[codes[c].get(i, np.nan) for c in names] for i in ids.tolist()])
    return dict(candels_id=ids, z=np.concatenate(rows_z), mag_ab=np.concatenate(mags),
                mag_err=np.concatenate(errs), code_log_mass=table, codes=np.array(names),
                bands=np.array(CANDELS_BANDS))


LC_BANDS = ("eros_B", "eros_R", "sdss_u", "sdss_g", "sdss_r", "sdss_i", "sdss_z")
EROS_META = ("magnitude_b", "magnitude_r", "period", "asym_b", "asym_r", "log_p_not_variable",
             "sigma_flux_b", "sigma_flux_r")
S82_META = ("P", "u0", "g0", "r0", "i0", "z0", "uA", "gA", "rA", "iA", "zA")
META_COLUMNS = tuple(f"eros_{c}" for c in EROS_META) + tuple(f"s82_{c}" for c in S82_META)
_LOG_META = {"eros_period", "eros_sigma_flux_b", "eros_sigma_flux_r", "s82_P"}
MAG_RANGE = (5.0, 30.0)  # plausible magnitudes; S82 writes -99.99 for a missing epoch
MAX_MAG_ERR = 10.0  # S82 writes 100 for an unmeasured error


def _meta_row(values: dict[str, float]) -> list[float]:
    """One metadata row over META_COLUMNS (NaN where the star's survey has no such column)."""
    return [np.log10(values[c]) if c in _LOG_META and c in values else values.get(c, np.nan)
            for c in META_COLUMNS]


def _light_curve(t: np.ndarray, mag: np.ndarray, err: np.ndarray, band: np.ndarray) -> np.ndarray:
    """``[n, 4]`` rows (time_day, mag, mag_err, band index); epochs with sentinel magnitudes or errors dropped."""
    ok = (np.isfinite(t) & np.isfinite(mag) & np.isfinite(err) & (mag > MAG_RANGE[0]) & (mag < MAG_RANGE[1])
          & (err >= 0) & (err < MAX_MAG_ERR))
    return np.stack([t[ok], mag[ok], err[ok], band[ok].astype(np.float64)], axis=1)


def eros() -> dict[str, list]:
    """EROS-2 LMC variables (RAMP train + test): ``star_id``, ``split``, ``label``, ``light_curve``, ``period_day``, ``meta``.

    ``light_curve`` entries are ``[n, 4]`` arrays (see :func:`_light_curve`) in both EROS bands
    (``eros_B`` = 0, ``eros_R`` = 1); labels are ``eros_1`` .. ``eros_4`` (classes undocumented upstream).
    """
    import gzip
    import json

    csv.field_size_limit(1 << 30)
    out: dict[str, list] = {k: [] for k in ("star_id", "split", "label", "light_curve", "period_day", "meta")}
    root = data_dir() / "ramp_eros_variable_stars"
    for split in ("train", "test"):
        path = root / f"{split}.csv"
        with path.open(newline="") as f:
            catalog = {r[""] if "" in r else r["Unnamed: 0"]: (i, r) for i, r in enumerate(csv.DictReader(f), start=2)}
        lc_path = root / f"{split}_varlength_features.csv.gz"
        with gzip.open(lc_path, "rt", newline="") as f:
            for i, r in enumerate(csv.DictReader(f), start=2):
                row_no, cat = catalog[r[""]]
                parts = []
                for b, suffix in enumerate(("b", "r")):
                    arrays = [np.array(json.loads(r[f"{k}_points_{suffix}"]), dtype=np.float64)
                              for k in ("time", "light", "error")]
                    if len({len(a) for a in arrays}) != 1:
                        raise ValueError(f"{lc_path}: row {i}: band {suffix} time/light/error lengths differ")
                    parts.append(_light_curve(*arrays, np.full(len(arrays[0]), b)))
                out["star_id"].append(f"eros:{r['']}")
                out["split"].append(split)
                out["label"].append(f"eros_{int(_float(path, row_no, 'type', cat['type']))}")
                out["light_curve"].append(np.concatenate(parts))
                out["period_day"].append(_float(path, row_no, "period", cat["period"]))
                out["meta"].append(_meta_row({f"eros_{c}": _float(path, row_no, c, cat[c]) for c in EROS_META}))
    return out


def stripe82_rrlyrae(test_fraction: float = 0.2, seed: int = 0) -> dict[str, list]:
    """Sesar et al. (2010) Stripe 82 RR Lyrae, ugriz light curves (bands 2..6), labels ``rr_ab``/``rr_c``.

    ``split`` is a seeded ``test_fraction`` hold-out (the survey ships no split).
    """
    import gzip
    import tarfile

    root = data_dir() / "astroml_s82_rrlyrae_linear" / "S82_RRLyr"
    t2 = root / "table2.dat.gz"
    with gzip.open(t2, "rt") as f:
        lines = f.read().splitlines()
    names = lines[0].lstrip("#").split()
    table2 = {}
    for i, line in enumerate(lines[1:], start=2):
        cells = dict(zip(names, line.split()))
        table2[cells["id"]] = (cells["type"], {f"s82_{c}": _float(t2, i, c, cells[c]) for c in S82_META})
    out: dict[str, list] = {k: [] for k in ("star_id", "split", "label", "light_curve", "period_day", "meta")}
    with tarfile.open(root / "table1.tar.gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.name.endswith(".dat")), key=lambda m: m.name)
        for m in members:
            star = m.name.rsplit("/", 1)[-1].removesuffix(".dat")
            epochs = np.loadtxt(tar.extractfile(m), ndmin=2)
            if epochs.shape[1] != 17:
                raise ValueError(f"table1.tar.gz/{m.name}: {epochs.shape[1]} columns, expected 17")
            parts = [_light_curve(epochs[:, 2 + 3 * b], epochs[:, 3 + 3 * b], epochs[:, 4 + 3 * b],
                                  np.full(len(epochs), 2 + b)) for b in range(5)]
            kind, meta = table2[star]
            out["star_id"].append(f"s82:{star}")
            out["label"].append(f"rr_{kind}")
            out["light_curve"].append(np.concatenate(parts))
            out["period_day"].append(meta["s82_P"])
            out["meta"].append(_meta_row(meta))
    held = np.random.default_rng(seed).permutation(len(out["star_id"])) < round(test_fraction * len(out["star_id"]))
    out["split"] = ["test" if h else "train" for h in held]
    return out
